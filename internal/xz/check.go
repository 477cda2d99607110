package xz

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"hash/crc32"
	"hash/crc64"
)

var crc64Table = crc64.MakeTable(crc64.ECMA)

// newCheck returns the hash of a check type, nil for none.
func newCheck(c byte) hash.Hash {
	switch c {
	case checkCRC32:
		return crc32.NewIEEE()
	case checkCRC64:
		return crc64.New(crc64Table)
	case checkSHA256:
		return sha256.New()
	}
	return nil
}

// checkSum returns the check field xz writes for h: CRCs little-endian.
func checkSum(h hash.Hash) []byte {
	switch h := h.(type) {
	case nil:
		return nil
	case hash.Hash32:
		return binary.LittleEndian.AppendUint32(nil, h.Sum32())
	case hash.Hash64:
		return binary.LittleEndian.AppendUint64(nil, h.Sum64())
	default:
		return h.Sum(nil)
	}
}
