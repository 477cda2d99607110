package imgfmt

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/kiln-build/kiln/pkg/repro"
)

// Identity fields of the formats (the VHD unique ID, the VMDK CID) come
// from Options.ID when it is set, else from the content of the disk:
//
//	sha256("kiln imgfmt content id\x00" || be64(size) ||
//	       for each 64 KiB chunk that is not all zero, in disk order:
//	           be64(chunk index) || sha256(chunk))
//
// truncated to 16 bytes and marked as an RFC 9562 version 8 (custom) UUID.
// The chunk hashes are computed by the workers; only the short records are
// hashed in order, so this costs one pass of SHA-256 spread over the CPUs.
// The result depends on the content only, not on how or in which order it
// was written, and the same disk gives the same ID in every format.

// contentID accumulates a content ID.
type contentID struct{ h hash.Hash }

func newContentID(size int64) *contentID {
	c := &contentID{h: sha256.New()}
	c.h.Write([]byte("kiln imgfmt content id\x00"))
	c.h.Write(binary.BigEndian.AppendUint64(nil, uint64(size)))
	return c
}

// add takes a unit's chunk digests; units must come in disk order.
func (c *contentID) add(ds []chunkDigest) {
	var rec [8 + sha256.Size]byte
	for _, d := range ds {
		binary.BigEndian.PutUint64(rec[:8], uint64(d.chunk))
		copy(rec[8:], d.sum[:])
		c.h.Write(rec[:])
	}
}

func (c *contentID) sum() repro.UUID {
	var u repro.UUID
	copy(u[:], c.h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}
