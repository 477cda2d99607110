package ext4

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the kernel's ext4_chksum/ext2fs_crc32c_le: crc32c without the
// final inversion, continuing from seed (Go's crc32 inverts on entry and
// exit, so the seed and the result are inverted around it).
func crc32c(seed uint32, p []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, p)
}

func crc32cU32(seed, v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return crc32c(seed, b[:])
}

func crc32cU64(seed uint32, v uint64) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return crc32c(seed, b[:])
}

// inodeSeed is ei->i_csum_seed: the per-inode seed for inode, extent,
// directory and dx checksums.
func inodeSeed(fsSeed, ino, gen uint32) uint32 {
	return crc32cU32(crc32cU32(fsSeed, ino), gen)
}
