package repro

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UUID is an RFC 4122 UUID in its canonical (big-endian, string-order) bytes.
// GPT stores GUIDs mixed-endian; pkg/disk converts when encoding.
type UUID [16]byte

// Namespace is kiln's UUIDv5 namespace, itself UUIDv5(URL, "https://kiln.dev/ns").
var Namespace = NewV5(UUID{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}, "https://kiln.dev/ns")

// NewV5 returns the name-based (SHA-1) UUID of name in namespace ns.
func NewV5(ns UUID, name string) UUID {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u UUID
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	return u
}

// Derive returns the identifier for purpose (e.g. "partition/root/guid")
// of a build whose content digest is seed: UUIDv5 in kiln's namespace.
func Derive(seed, purpose string) UUID {
	return NewV5(Namespace, seed+"\x00"+purpose)
}

// Derive32 returns a 32-bit identifier (FAT volume ID, MBR disk signature).
func Derive32(seed, purpose string) uint32 {
	u := Derive(seed, purpose)
	v := binary.BigEndian.Uint32(u[:4])
	if v == 0 {
		v = 1 // zero often means "unset"
	}
	return v
}

func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// IsZero reports whether u is all zeros.
func (u UUID) IsZero() bool { return u == UUID{} }

// ParseUUID parses the canonical 8-4-4-4-12 form (case-insensitive).
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("invalid UUID %q: want the form 01234567-89ab-cdef-0123-456789abcdef", s)
	}
	h := strings.ReplaceAll(s, "-", "")
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("invalid UUID %q: %w", s, err)
	}
	return u, nil
}

// EpochFromEnv returns SOURCE_DATE_EPOCH if set, and whether it was.
// It is read once, by the command line, and passed down as a parameter.
func EpochFromEnv() (int64, bool, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative integer of seconds", v)
	}
	return n, true, nil
}
