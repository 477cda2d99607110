package ext4

import "encoding/binary"

// jbd2 superblock (journal_superblock_t, big-endian) in the journal's
// first block. The rest of the journal is zero: an empty, clean log.
const (
	jbdMagic        = 0xC03B3998
	jbdSuperblockV2 = 4
	jHdrMagic       = 0x00 // h_magic
	jHdrBlocktype   = 0x04 // h_blocktype
	jHdrSequence    = 0x08 // h_sequence
	jBlocksize      = 0x0C
	jMaxlen         = 0x10 // blocks in the journal
	jFirst          = 0x14 // first log block
	jSequence       = 0x18 // first commit ID expected
	jStart          = 0x1C // 0: the log is empty
	jUUID           = 0x30 // [16]
	jNrUsers        = 0x40
)

// journalSuperblock returns the first block of a fresh journal of n
// blocks, as e2fsprogs' ext2fs_create_journal_superblock2 makes it for an
// internal journal (no features, one user, users list left empty).
func journalSuperblock(n uint32, uuid [16]byte) []byte {
	b := make([]byte, blockSize)
	be := binary.BigEndian
	be.PutUint32(b[jHdrMagic:], jbdMagic)
	be.PutUint32(b[jHdrBlocktype:], jbdSuperblockV2)
	be.PutUint32(b[jBlocksize:], blockSize)
	be.PutUint32(b[jMaxlen:], n)
	be.PutUint32(b[jFirst:], 1)
	be.PutUint32(b[jSequence:], 1)
	be.PutUint32(b[jStart:], 0)
	copy(b[jUUID:], uuid[:])
	be.PutUint32(b[jNrUsers:], 1)
	return b
}
