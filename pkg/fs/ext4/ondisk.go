package ext4

import (
	"encoding/binary"
	"math"
)

var le = binary.LittleEndian

// Feature flags (ext4.h).
const (
	compatHasJournal = 0x4
	compatExtAttr    = 0x8
	compatResizeIno  = 0x10
	compatDirIndex   = 0x20

	incompatFiletype = 0x2
	incompatRecover  = 0x4
	incompatExtents  = 0x40
	incompat64bit    = 0x80
	incompatFlexBG   = 0x200
	incompatCsumSeed = 0x2000
	incompatLargeDir = 0x4000

	roCompatSparseSuper  = 0x1
	roCompatLargeFile    = 0x2
	roCompatHugeFile     = 0x8
	roCompatGdtCsum      = 0x10
	roCompatDirNlink     = 0x20
	roCompatExtraIsize   = 0x40
	roCompatMetadataCsum = 0x400

	ourCompat   = compatHasJournal | compatExtAttr | compatDirIndex
	ourIncompat = incompatFiletype | incompatExtents | incompat64bit | incompatFlexBG
	ourRoCompat = roCompatSparseSuper | roCompatLargeFile | roCompatHugeFile |
		roCompatDirNlink | roCompatExtraIsize | roCompatMetadataCsum
)

// Superblock (struct ext4_super_block), 1024 bytes at byte 1024 of the
// filesystem (and at byte 0 of each backup group's first block).
const (
	sbOffset            = 1024
	sbSize              = 1024
	sbInodesCount       = 0x00 // u32
	sbBlocksCountLo     = 0x04 // u32
	sbRBlocksCountLo    = 0x08 // u32
	sbFreeBlocksLo      = 0x0C // u32
	sbFreeInodes        = 0x10 // u32
	sbFirstDataBlock    = 0x14 // u32: 0 for 4 KiB blocks
	sbLogBlockSize      = 0x18 // u32: block size = 1024 << n
	sbLogClusterSize    = 0x1C // u32
	sbBlocksPerGroup    = 0x20 // u32
	sbClustersPerGroup  = 0x24 // u32
	sbInodesPerGroup    = 0x28 // u32
	sbMtime             = 0x2C // u32: last mount
	sbWtime             = 0x30 // u32: last write
	sbMntCount          = 0x34 // u16
	sbMaxMntCount       = 0x36 // s16: -1 = no mount-count check
	sbMagic             = 0x38 // u16: 0xEF53
	sbState             = 0x3A // u16: 1 = cleanly unmounted
	sbErrors            = 0x3C // u16: 1 = continue
	sbMinorRev          = 0x3E // u16
	sbLastCheck         = 0x40 // u32
	sbCheckInterval     = 0x44 // u32
	sbCreatorOS         = 0x48 // u32: 0 = Linux
	sbRevLevel          = 0x4C // u32: 1 = dynamic
	sbDefResuid         = 0x50 // u16
	sbDefResgid         = 0x52 // u16
	sbFirstIno          = 0x54 // u32
	sbInodeSize         = 0x58 // u16
	sbBlockGroupNr      = 0x5A // u16: group of this copy
	sbFeatureCompat     = 0x5C // u32
	sbFeatureIncompat   = 0x60 // u32
	sbFeatureRoCompat   = 0x64 // u32
	sbUUID              = 0x68 // [16]
	sbVolumeName        = 0x78 // [16]
	sbLastMounted       = 0x88 // [64]
	sbJournalUUID       = 0xD0 // [16]: external journal only
	sbJournalInum       = 0xE0 // u32
	sbHashSeed          = 0xEC // [4]u32
	sbDefHashVersion    = 0xFC // u8
	sbJnlBackupType     = 0xFD // u8: 1 = s_jnl_blocks holds i_block
	sbDescSize          = 0xFE // u16
	sbDefaultMountOpts  = 0x100
	sbMkfsTime          = 0x108 // u32
	sbJnlBlocks         = 0x10C // [17]u32: journal i_block[15], i_size_high, i_size
	sbBlocksCountHi     = 0x150
	sbRBlocksCountHi    = 0x154
	sbFreeBlocksHi      = 0x158
	sbMinExtraIsize     = 0x15C // u16
	sbWantExtraIsize    = 0x15E // u16
	sbFlags             = 0x160 // u32
	sbLogGroupsPerFlex  = 0x174 // u8
	sbChecksumType      = 0x175 // u8: 1 = crc32c
	sbWtimeHi           = 0x274 // u8
	sbMtimeHi           = 0x275 // u8
	sbMkfsTimeHi        = 0x276 // u8
	sbLastCheckHi       = 0x277 // u8
	sbChecksum          = 0x3FC // u32: crc32c(~0, sb[:0x3FC])
	sbMagicValue        = 0xEF53
	sbFlagSignedHash    = 0x1
	sbFlagUnsignedHash  = 0x2
	defmXattrUser       = 0x4
	defmACL             = 0x8
	hashHalfMD4         = 1
	jnlBackupBlocks     = 1
	bgInodeUninit       = 0x1
	bgItableZeroed      = 0x4
	extentMagic         = 0xF30A
	extentsPerBlock     = (blockSize - 12) / 12 // 340; the 4-byte tail fits after
	extentMaxLen        = 32768                 // longest initialized extent
	inodeExtentsPerRoot = 4
)

// Group descriptor (struct ext4_group_desc, 64 bytes).
const (
	bgBlockBitmapLo     = 0x00
	bgInodeBitmapLo     = 0x04
	bgInodeTableLo      = 0x08
	bgFreeBlocksLo      = 0x0C // u16
	bgFreeInodesLo      = 0x0E // u16
	bgUsedDirsLo        = 0x10 // u16
	bgFlags             = 0x12 // u16
	bgBlockBitmapCsumLo = 0x18 // u16
	bgInodeBitmapCsumLo = 0x1A // u16
	bgItableUnusedLo    = 0x1C // u16
	bgChecksum          = 0x1E // u16: crc32c(seed, group, desc) & 0xFFFF
	bgBlockBitmapHi     = 0x20
	bgInodeBitmapHi     = 0x24
	bgInodeTableHi      = 0x28
	bgFreeBlocksHi      = 0x2C // u16
	bgFreeInodesHi      = 0x2E // u16
	bgUsedDirsHi        = 0x30 // u16
	bgItableUnusedHi    = 0x32 // u16
	bgBlockBitmapCsumHi = 0x38 // u16
	bgInodeBitmapCsumHi = 0x3A // u16
)

// Inode (struct ext4_inode, 256 bytes: 128 + i_extra_isize 32 + in-inode
// xattrs).
const (
	iMode        = 0x00 // u16
	iUIDLo       = 0x02 // u16
	iSizeLo      = 0x04 // u32
	iAtime       = 0x08 // u32
	iCtime       = 0x0C
	iMtime       = 0x10
	iDtime       = 0x14
	iGIDLo       = 0x18 // u16
	iLinksCount  = 0x1A // u16
	iBlocksLo    = 0x1C // u32: 512-byte sectors
	iFlags       = 0x20 // u32
	iBlock       = 0x28 // [60]: extent root, fast symlink, device numbers
	iGeneration  = 0x64
	iFileACLLo   = 0x68 // xattr block
	iSizeHigh    = 0x6C
	iBlocksHi    = 0x74 // u16
	iFileACLHi   = 0x76 // u16
	iUIDHi       = 0x78 // u16
	iGIDHi       = 0x7A // u16
	iChecksumLo  = 0x7C // u16
	iExtraIsize  = 0x80 // u16
	iChecksumHi  = 0x82 // u16
	iCtimeExtra  = 0x84 // u32: nsec<<2 | epoch bits
	iMtimeExtra  = 0x88
	iAtimeExtra  = 0x8C
	iCrtime      = 0x90
	iCrtimeExtra = 0x94
	iXattrStart  = 128 + extraIsize // in-inode xattrs: magic, entries, values

	flagIndex   = 0x1000  // hashed directory
	flagExtents = 0x80000 // i_block holds an extent tree

	sIFIFO = 0x1000
	sIFCHR = 0x2000
	sIFDIR = 0x4000
	sIFBLK = 0x6000
	sIFREG = 0x8000
	sIFLNK = 0xA000
)

// Directory entry file types.
const (
	ftReg     = 1
	ftDir     = 2
	ftChr     = 3
	ftBlk     = 4
	ftFIFO    = 5
	ftSymlink = 7
)

// encodeTime splits t into the 32-bit seconds field and the extra field
// (nanoseconds << 2 | bits 32-33 of the seconds), clamping to what ext4
// can hold, as the kernel does.
func encodeTime(t int64, nsec uint32) (uint32, uint32) {
	const lo, hi = math.MinInt32, 1<<34 - 1 + math.MinInt32 // 1901 .. 2446
	if t < lo {
		t, nsec = lo, 0
	} else if t > hi {
		t, nsec = hi, 999999999
	}
	if nsec > 999999999 {
		nsec = 999999999
	}
	epoch := uint32((t-int64(int32(t)))>>32) & 3
	return uint32(int32(t)), nsec<<2 | epoch
}

// inode is what an on-disk inode is made from.
type inode struct {
	mode       uint16 // type and permission bits
	uid, gid   uint32
	size       uint64
	links      uint16
	sectors    uint64 // i_blocks in 512-byte units
	flags      uint32
	iblock     [60]byte
	fileACL    uint64
	mtime      int64
	nsec       uint32
	xattrs     []byte // in-inode xattr area (from iXattrStart), or nil
	extraIsize uint16
}

// encode returns the 256-byte inode ino with its checksum.
func (n *inode) encode(b []byte, ino, fsSeed uint32) {
	clear(b[:inodeSize])
	le.PutUint16(b[iMode:], n.mode)
	le.PutUint16(b[iUIDLo:], uint16(n.uid))
	le.PutUint16(b[iUIDHi:], uint16(n.uid>>16))
	le.PutUint16(b[iGIDLo:], uint16(n.gid))
	le.PutUint16(b[iGIDHi:], uint16(n.gid>>16))
	le.PutUint32(b[iSizeLo:], uint32(n.size))
	le.PutUint32(b[iSizeHigh:], uint32(n.size>>32))
	le.PutUint16(b[iLinksCount:], n.links)
	le.PutUint32(b[iBlocksLo:], uint32(n.sectors))
	le.PutUint16(b[iBlocksHi:], uint16(n.sectors>>32))
	le.PutUint32(b[iFlags:], n.flags)
	copy(b[iBlock:iBlock+60], n.iblock[:])
	le.PutUint32(b[iFileACLLo:], uint32(n.fileACL))
	le.PutUint16(b[iFileACLHi:], uint16(n.fileACL>>32))
	sec, extra := encodeTime(n.mtime, n.nsec)
	for _, off := range []int{iAtime, iCtime, iMtime} {
		le.PutUint32(b[off:], sec)
	}
	le.PutUint16(b[iExtraIsize:], n.extraIsize)
	if n.extraIsize >= extraIsize {
		for _, off := range []int{iCtimeExtra, iMtimeExtra, iAtimeExtra, iCrtimeExtra} {
			le.PutUint32(b[off:], extra)
		}
		le.PutUint32(b[iCrtime:], sec)
		copy(b[iXattrStart:inodeSize], n.xattrs)
	}
	// Checksum over the whole inode with both halves of the field zero
	// (generation is 0).
	c := crc32c(inodeSeed(fsSeed, ino, 0), b[:inodeSize])
	le.PutUint16(b[iChecksumLo:], uint16(c))
	if n.extraIsize >= 4 {
		le.PutUint16(b[iChecksumHi:], uint16(c>>16))
	}
}
