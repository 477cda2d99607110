package ext4

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Reading. ReadTree reads what Write writes, and ext2/3/4 filesystems of
// other makers: block sizes 1 KiB to 64 KiB, 32- and 64-byte group
// descriptors, meta_bg, bigalloc, extent trees and ext2/3 block maps,
// inline data, linear and hashed directories, in-inode and block xattrs
// (and xattr values in their own inodes), metadata_csum and gdt_csum.
// Encrypted inodes are errors (the encrypt feature alone is not).
//
// The image is hostile input. Every offset and count read from it is
// checked against the image before it is used, and the work is bounded by
// the image's size: each metadata block (directory, extent tree, block
// map, xattr) costs one unit of a budget of as many units as the
// filesystem has blocks, which a well-formed filesystem never exceeds,
// as no block belongs to two inodes; directory entries and depth have
// their own limits (ReadOptions).

// Read limits.
const (
	// DefaultMaxEntries is ReadOptions.MaxEntries when zero: directory
	// entries (names, so hardlinks count once per name) in the whole tree.
	// A file costs some 700 bytes allocated while reading (its on-disk
	// inode and directory entry, its tree inode, name, place in its
	// directory's map, extents), so that 2^18 of them keep a read under
	// the 256 MiB every image read is held to; a Debian root filesystem
	// has some 10^5. Callers that must read more set MaxEntries.
	DefaultMaxEntries = 1 << 18
	// DefaultMaxDepth is ReadOptions.MaxDepth when zero: directories
	// nested below the root.
	DefaultMaxDepth = 2048

	maxSymlinkLen  = 4095  // PATH_MAX - 1
	maxXattrValue  = 65536 // XATTR_SIZE_MAX
	maxExtentDepth = 5     // EXT4_MAX_EXTENT_DEPTH
	// maxGroups bounds the block groups ReadTree reads (10 bytes of
	// state each): 2^22 groups of 128 MiB are 512 TiB.
	maxGroups = 1 << 22
	// maxMappings bounds the extents (runs of blocks) of all files that
	// ReadTree keeps, 32 bytes each: a hostile block map can point every
	// entry of its indirect blocks at a different block.
	maxMappings = 1 << 20
	// maxMetaBytes bounds the metadata blocks (directory, extent tree,
	// indirect, xattr and symlink blocks) ReadTree reads, as it bounds
	// them by the filesystem's block count: a hostile block map can point
	// a million times at one indirect block.
	maxMetaBytes = 1 << 30
	// maxXattrBytes bounds the xattr values kept in all (each at most
	// maxXattrValue): a hostile image can give every file its own 64 KiB
	// value in an ea_inode inode, all over the same blocks, or in a
	// 64 KiB inode of its own. Root filesystems keep a few MiB (SELinux
	// labels, capabilities, ACLs).
	maxXattrBytes = 64 << 20
)

// Features and flags the reader knows beyond what the writer sets.
const (
	incompatMetaBG     = 0x10
	incompatMMP        = 0x100
	incompatEAInode    = 0x400
	incompatInlineData = 0x8000
	incompatEncrypt    = 0x10000
	incompatCasefold   = 0x20000
	compatSparseSuper2 = 0x200

	readIncompat = incompatFiletype | incompatRecover | incompatExtents | incompat64bit |
		incompatFlexBG | incompatCsumSeed | incompatLargeDir | incompatMetaBG | incompatMMP |
		incompatEAInode | incompatInlineData | incompatCasefold | incompatEncrypt

	roCompatBigalloc = 0x200

	sbFirstMetaBG   = 0x104
	sbBackupBGs     = 0x24C
	sbChecksumSeed  = 0x270
	flagHugeFile    = 0x40000
	flagEncrypt     = 0x800
	flagEAInode     = 0x200000
	flagInlineData  = 0x10000000
	sIFSOCK         = 0xC000
	sIFMT           = 0xF000
	goodOldInode    = 128
	dxNodeCountOff  = 8
	dxRootCountOff  = 32
	dirRecMin       = 12
	inlineDirHeader = 4 // the parent's inode number before an inline directory's entries
)

// ReadOptions bound and tune ReadTreeOptions.
type ReadOptions struct {
	// MaxEntries bounds the directory entries of the whole tree; 0 means
	// DefaultMaxEntries.
	MaxEntries int
	// MaxDepth bounds how deep directories nest; 0 means DefaultMaxDepth.
	MaxDepth int
	// Lenient makes checksum mismatches (metadata_csum, gdt_csum) problems
	// that ReadTreeOptions returns instead of errors. Structural damage is
	// an error either way.
	Lenient bool
}

// ReadTree reads the ext2/3/4 filesystem in the first size bytes of r into
// a tree.
//
// Every directory is read by a linear scan of its blocks (htree index
// blocks are skipped, as the kernel's readdir does), "." and ".." left
// out, lost+found included as it is. Inodes keep their kind, mode
// (permissions with setuid, setgid and sticky), 32-bit uid and gid, mtime
// with nanoseconds, size, device numbers (old and new encodings), symlink
// targets (fast, slow and inline) and xattrs, in-inode and in the xattr
// block, with their name prefixes restored and POSIX ACLs converted back to
// the form getxattr returns. Names of one inode share a *tree.Inode.
// Regular files' Content reads the image lazily through the extent tree or
// block map (holes and unwritten extents read as zeros); Open may be called
// any number of times, from any goroutine if r allows concurrent ReadAt.
// Sockets, which a tree cannot hold, are left out.
//
// Corrupt structures, and checksums that do not match where the
// filesystem has metadata_csum (or gdt_csum), are errors; so is a
// filesystem larger than size. The work is bounded: at most
// DefaultMaxEntries names, directories at most DefaultMaxDepth deep,
// extent trees at most 5 deep, and no more metadata blocks read than the
// filesystem has, so that blocks shared or looped by a hostile image
// cannot multiply it.
func ReadTree(r io.ReaderAt, size int64) (*tree.Tree, error) {
	t, _, err := ReadTreeOptions(r, size, ReadOptions{})
	return t, err
}

// ReadTreeOptions is ReadTree with limits and leniency. It returns the
// problems found that were not errors: checksum mismatches with Lenient,
// the sockets left out, and a journal that needs recovery (the tree is
// what the filesystem holds without it).
func ReadTreeOptions(r io.ReaderAt, size int64, o ReadOptions) (*tree.Tree, []error, error) {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	rd := &fsReader{img: &image{r: r, size: size}, o: o}
	if err := rd.readSuper(); err != nil {
		return nil, rd.problems, fmt.Errorf("ext4: read: %w", err)
	}
	if err := rd.readGroups(); err != nil {
		return nil, rd.problems, fmt.Errorf("ext4: read: %w", err)
	}
	t, err := rd.readTree()
	if err != nil {
		return nil, rd.problems, fmt.Errorf("ext4: read: %w", err)
	}
	return t, rd.problems, nil
}

// image is the filesystem's bytes.
type image struct {
	r    io.ReaderAt
	size int64
	bs   int64 // block size
}

// readAt fills b from offset off, which must lie inside the image.
func (m *image) readAt(b []byte, off int64) error {
	if off < 0 || off > m.size || int64(len(b)) > m.size-off {
		return fmt.Errorf("%d bytes at offset %d are outside the %d-byte image", len(b), off, m.size)
	}
	n, err := m.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading %d bytes at offset %d: %w", len(b), off, err)
}

// fsReader holds what ReadTree learns about a filesystem.
type fsReader struct {
	img      *image
	o        ReadOptions
	problems []error

	blocks      uint64 // s_blocks_count
	firstData   uint64 // s_first_data_block
	clusterSize int64  // bytes per cluster: the block size without bigalloc
	bpg, ipg    uint32 // blocks and inodes per group
	groups      uint32
	inodes      uint32
	inodeSize   int
	firstIno    uint32
	descSize    int
	incompat    uint32
	roCompat    uint32
	compat      uint32
	csum        bool // metadata_csum
	gdtCsum     bool // uninit_bg's crc16 descriptor checksums
	fsSeed      uint32
	uuid        [16]byte
	itable      []uint64 // per group: first block of the inode table
	bgFlags     []uint16 // per group
	firstMeta   uint64   // s_first_meta_bg
	backupBGs   [2]uint32

	budget int64 // metadata blocks left to read
	verity bool  // parseXattrs skipped fs-verity metadata

	inodeBuf   []byte   // readInode's buffer
	free       [][]byte // metaBlock's free buffers
	maps       int      // mappings kept, at most maxMappings
	xattrBytes int64    // bytes of xattr values kept, at most maxXattrBytes
	entries    int      // directory entries read

	byIno   map[uint32]*tree.Inode  // inodes already in the tree
	xblocks map[uint64][]tree.Xattr // parsed xattr blocks, which inodes share
	eaVals  map[uint32][]byte       // values of ea_inode inodes, which xattrs share
}

// problem records a checksum mismatch: an error unless Lenient.
func (rd *fsReader) problem(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if rd.o.Lenient {
		rd.problems = append(rd.problems, err)
		return nil
	}
	return err
}

func (rd *fsReader) readSuper() error {
	sb := make([]byte, sbSize)
	if err := rd.img.readAt(sb, sbOffset); err != nil {
		return fmt.Errorf("superblock: %w", err)
	}
	if m := le.Uint16(sb[sbMagic:]); m != sbMagicValue {
		return fmt.Errorf("superblock: magic %#04x, want %#04x: not ext2/3/4", m, sbMagicValue)
	}
	rd.compat = le.Uint32(sb[sbFeatureCompat:])
	rd.incompat = le.Uint32(sb[sbFeatureIncompat:])
	rd.roCompat = le.Uint32(sb[sbFeatureRoCompat:])
	rd.csum = rd.roCompat&roCompatMetadataCsum != 0
	rd.gdtCsum = !rd.csum && rd.roCompat&roCompatGdtCsum != 0
	copy(rd.uuid[:], sb[sbUUID:sbUUID+16])
	if rd.csum {
		if t := sb[sbChecksumType]; t != 1 {
			return fmt.Errorf("superblock: checksum type %d, want 1 (crc32c)", t)
		}
		if got, want := crc32c(^uint32(0), sb[:sbChecksum]), le.Uint32(sb[sbChecksum:]); got != want {
			if err := rd.problem("superblock: checksum %#08x, want %#08x", got, want); err != nil {
				return err
			}
		}
	}
	if rd.incompat&incompatRecover != 0 {
		rd.problems = append(rd.problems, errors.New("superblock: the journal needs recovery: what it holds is not in the tree"))
	}
	if bad := rd.incompat &^ readIncompat; bad != 0 {
		return fmt.Errorf("superblock: unsupported incompatible features %s", strings.Join(featureNames(bad, incompatNames, "I"), ", "))
	}
	logBS := le.Uint32(sb[sbLogBlockSize:])
	if logBS > 6 {
		return fmt.Errorf("superblock: block size log %d is not in 0..6", logBS)
	}
	bs := int64(1024) << logBS
	rd.img.bs = bs
	rd.clusterSize = bs
	if rd.roCompat&roCompatBigalloc != 0 {
		logCS := le.Uint32(sb[sbLogClusterSize:])
		if logCS < logBS || logCS > logBS+16 {
			return fmt.Errorf("superblock: cluster size log %d is not in %d..%d", logCS, logBS, logBS+16)
		}
		rd.clusterSize = int64(1024) << logCS
	}
	rd.blocks = uint64(le.Uint32(sb[sbBlocksCountLo:]))
	if rd.incompat&incompat64bit != 0 {
		rd.blocks |= uint64(le.Uint32(sb[sbBlocksCountHi:])) << 32
	}
	if rd.blocks == 0 || rd.blocks > uint64(rd.img.size/bs) {
		return fmt.Errorf("superblock: %d blocks of %d bytes do not fit the %d-byte image", rd.blocks, bs, rd.img.size)
	}
	rd.firstData = uint64(le.Uint32(sb[sbFirstDataBlock:]))
	if rd.firstData >= rd.blocks || (bs > 1024 && rd.firstData != 0) || rd.firstData > 1 {
		return fmt.Errorf("superblock: first data block %d is invalid for %d-byte blocks", rd.firstData, bs)
	}
	rd.bpg = le.Uint32(sb[sbBlocksPerGroup:])
	rd.ipg = le.Uint32(sb[sbInodesPerGroup:])
	maxBPG := uint64(8 * bs)
	if rd.roCompat&roCompatBigalloc != 0 {
		maxBPG <<= 16
	}
	if rd.bpg < 8 || uint64(rd.bpg) > maxBPG {
		return fmt.Errorf("superblock: %d blocks per group is not in 8..%d", rd.bpg, maxBPG)
	}
	if rd.ipg == 0 || int64(rd.ipg) > 8*bs {
		return fmt.Errorf("superblock: %d inodes per group is not in 1..%d", rd.ipg, 8*bs)
	}
	groups := (rd.blocks - rd.firstData + uint64(rd.bpg) - 1) / uint64(rd.bpg)
	rd.inodes = le.Uint32(sb[sbInodesCount:])
	if uint64(rd.inodes) != groups*uint64(rd.ipg) {
		return fmt.Errorf("superblock: %d inodes, but %d groups of %d inodes", rd.inodes, groups, rd.ipg)
	}
	if groups > maxGroups {
		return fmt.Errorf("superblock: %d block groups (s_blocks_count %d, s_blocks_per_group %d) are more than the %d kiln reads", groups, rd.blocks, rd.bpg, maxGroups)
	}
	rd.groups = uint32(groups)
	rd.inodeSize, rd.firstIno = goodOldInode, firstIno
	if le.Uint32(sb[sbRevLevel:]) >= 1 {
		rd.inodeSize = int(le.Uint16(sb[sbInodeSize:]))
		rd.firstIno = le.Uint32(sb[sbFirstIno:])
	}
	if rd.inodeSize < goodOldInode || int64(rd.inodeSize) > bs || rd.inodeSize&(rd.inodeSize-1) != 0 {
		return fmt.Errorf("superblock: inode size %d is not a power of two in %d..%d", rd.inodeSize, goodOldInode, bs)
	}
	if rd.firstIno <= rootIno || rd.firstIno > rd.inodes {
		return fmt.Errorf("superblock: first inode %d is not in %d..%d", rd.firstIno, rootIno+1, rd.inodes)
	}
	rd.descSize = 32
	if rd.incompat&incompat64bit != 0 {
		rd.descSize = int(le.Uint16(sb[sbDescSize:]))
		if rd.descSize < 64 || rd.descSize > 1024 || rd.descSize&(rd.descSize-1) != 0 || int64(rd.descSize) > bs {
			return fmt.Errorf("superblock: group descriptor size %d is not a power of two in 64..1024", rd.descSize)
		}
	}
	if rd.incompat&incompatCsumSeed != 0 {
		rd.fsSeed = le.Uint32(sb[sbChecksumSeed:])
	} else {
		rd.fsSeed = crc32c(^uint32(0), rd.uuid[:])
	}
	if rd.incompat&incompatMetaBG != 0 {
		rd.firstMeta = uint64(le.Uint32(sb[sbFirstMetaBG:]))
	}
	rd.backupBGs = [2]uint32{le.Uint32(sb[sbBackupBGs:]), le.Uint32(sb[sbBackupBGs+4:])}
	rd.budget = min(int64(rd.blocks)+16, maxMetaBytes/bs)
	rd.byIno = map[uint32]*tree.Inode{}
	rd.xblocks = map[uint64][]tree.Xattr{}
	rd.eaVals = map[uint32][]byte{}
	return nil
}

// descBlock returns the block holding descriptor block i (of the primary
// copy), as ext2fs_descriptor_block_loc2 does: after the superblock, or
// with meta_bg in the first group of its meta group. With 1 KiB blocks
// and s_first_data_block 0 (bigalloc), block 0 is not the filesystem's
// and the superblock is block 1, so group 0's descriptors are one block
// further (ext2fs_open2's group_zero_adjust).
func (rd *fsReader) descBlock(i uint64) uint64 {
	adjust := uint64(0)
	if rd.firstData == 0 && rd.img.bs == 1024 {
		adjust = 1
	}
	if rd.incompat&incompatMetaBG == 0 || i < rd.firstMeta {
		return rd.firstData + 1 + i + adjust
	}
	g := i * uint64(rd.img.bs) / uint64(rd.descSize)
	b := rd.firstData + g*uint64(rd.bpg)
	if rd.groupHasSuper(g) {
		b++
	}
	if g == 0 {
		b += adjust
	}
	return b
}

// groupHasSuper is ext2fs_bg_has_super: whether group g starts with a
// superblock copy.
func (rd *fsReader) groupHasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case rd.compat&compatSparseSuper2 != 0:
		return g == uint64(rd.backupBGs[0]) || g == uint64(rd.backupBGs[1])
	case rd.roCompat&roCompatSparseSuper == 0:
		return true
	}
	return g <= 0xFFFFFFFF && hasSuper(uint32(g))
}

// readGroups reads the group descriptors: where each inode table is.
func (rd *fsReader) readGroups() error {
	bs := rd.img.bs
	dpb := uint64(bs) / uint64(rd.descSize)
	itb := (uint64(rd.ipg)*uint64(rd.inodeSize) + uint64(bs) - 1) / uint64(bs)
	rd.itable = make([]uint64, rd.groups)
	rd.bgFlags = make([]uint16, rd.groups)
	blk := make([]byte, bs)
	for g := uint32(0); g < rd.groups; g++ {
		i := uint64(g) / dpb
		if uint64(g)%dpb == 0 {
			b := rd.descBlock(i)
			if b >= rd.blocks {
				return fmt.Errorf("group descriptor block %d at block %d, past the %d blocks", i, b, rd.blocks)
			}
			if err := rd.img.readAt(blk, int64(b)*bs); err != nil {
				return fmt.Errorf("group descriptors: %w", err)
			}
		}
		d := blk[(uint64(g)%dpb)*uint64(rd.descSize):][:rd.descSize]
		if err := rd.checkDesc(g, d); err != nil {
			return err
		}
		t := uint64(le.Uint32(d[bgInodeTableLo:]))
		if rd.descSize >= 64 {
			t |= uint64(le.Uint32(d[bgInodeTableHi:])) << 32
		}
		rd.bgFlags[g] = le.Uint16(d[bgFlags:])
		if rd.bgFlags[g]&bgInodeUninit != 0 && !rd.csum && !rd.gdtCsum {
			rd.bgFlags[g] &^= bgInodeUninit // the flag means nothing without checksums
		}
		if t <= rd.firstData || t >= rd.blocks || itb > rd.blocks-t {
			return fmt.Errorf("group %d: inode table at blocks %d..%d, outside %d..%d", g, t, t+itb-1, rd.firstData+1, rd.blocks-1)
		}
		rd.itable[g] = t
	}
	return nil
}

// checkDesc verifies a group descriptor's checksum.
func (rd *fsReader) checkDesc(g uint32, d []byte) error {
	want := le.Uint16(d[bgChecksum:])
	var got uint16
	switch {
	case rd.csum:
		c := crc32cU32(rd.fsSeed, g)
		c = crc32c(c, d[:bgChecksum])
		c = crc32c(c, []byte{0, 0})
		c = crc32c(c, d[bgChecksum+2:])
		got = uint16(c)
	case rd.gdtCsum:
		var gb [4]byte
		le.PutUint32(gb[:], g)
		c := crc16(0xFFFF, rd.uuid[:])
		c = crc16(c, gb[:])
		c = crc16(c, d[:bgChecksum])
		if len(d) > bgChecksum+2 {
			c = crc16(c, d[bgChecksum+2:])
		}
		got = c
	default:
		return nil
	}
	if got != want {
		return rd.problem("group %d: descriptor checksum %#04x, want %#04x", g, got, want)
	}
	return nil
}

// crc16 is e2fsprogs' ext2fs_crc16: CRC-16/ARC (reflected 0x8005)
// continuing from crc.
func crc16(crc uint16, p []byte) uint16 {
	for _, b := range p {
		crc ^= uint16(b)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// rawInode is an inode as read from the image.
type rawInode struct {
	ino        uint32
	mode       uint16
	uid, gid   uint32
	size       uint64
	links      uint16
	flags      uint32
	iblock     [60]byte
	fileACL    uint64
	mtime      int64
	nsec       uint32
	blocks512  uint64 // i_blocks in 512-byte units
	generation uint32
	xattrArea  []byte // the in-inode xattr area after i_extra_isize and its magic, or nil
	seed       uint32 // per-inode checksum seed
	inline     []byte // the system.data value (inline data), once xattrs are read; nil if none
}

func (n *rawInode) kind() uint16 { return n.mode & sIFMT }

// readInode reads and checks inode ino.
func (rd *fsReader) readInode(ino uint32) (*rawInode, error) {
	if ino == 0 || ino > rd.inodes {
		return nil, fmt.Errorf("inode %d is not in 1..%d", ino, rd.inodes)
	}
	g, idx := (ino-1)/rd.ipg, (ino-1)%rd.ipg
	if rd.bgFlags[g]&bgInodeUninit != 0 {
		return nil, fmt.Errorf("inode %d is in group %d, whose inodes are all unused", ino, g)
	}
	if len(rd.inodeBuf) != rd.inodeSize {
		rd.inodeBuf = make([]byte, rd.inodeSize)
	}
	b := rd.inodeBuf // reused: nothing below keeps a reference to it
	off := int64(rd.itable[g])*rd.img.bs + int64(idx)*int64(rd.inodeSize)
	if err := rd.img.readAt(b, off); err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	n := &rawInode{
		ino:        ino,
		mode:       le.Uint16(b[iMode:]),
		uid:        uint32(le.Uint16(b[iUIDLo:])) | uint32(le.Uint16(b[iUIDHi:]))<<16,
		gid:        uint32(le.Uint16(b[iGIDLo:])) | uint32(le.Uint16(b[iGIDHi:]))<<16,
		size:       uint64(le.Uint32(b[iSizeLo:])) | uint64(le.Uint32(b[iSizeHigh:]))<<32,
		links:      le.Uint16(b[iLinksCount:]),
		flags:      le.Uint32(b[iFlags:]),
		mtime:      int64(int32(le.Uint32(b[iMtime:]))),
		blocks512:  uint64(le.Uint32(b[iBlocksLo:])),
		generation: le.Uint32(b[iGeneration:]),
		fileACL:    uint64(le.Uint32(b[iFileACLLo:])),
	}
	copy(n.iblock[:], b[iBlock:iBlock+60])
	if rd.incompat&incompat64bit != 0 {
		n.fileACL |= uint64(le.Uint16(b[iFileACLHi:])) << 32
	}
	if rd.roCompat&roCompatHugeFile != 0 {
		n.blocks512 |= uint64(le.Uint16(b[iBlocksHi:])) << 32
		if n.flags&flagHugeFile != 0 {
			n.blocks512 *= uint64(rd.img.bs / 512)
		}
	}
	extra := 0
	if rd.inodeSize > goodOldInode {
		extra = int(le.Uint16(b[iExtraIsize:]))
		if extra%4 != 0 || goodOldInode+extra > rd.inodeSize {
			return nil, fmt.Errorf("inode %d: i_extra_isize %d is invalid for %d-byte inodes", ino, extra, rd.inodeSize)
		}
	}
	n.seed = inodeSeed(rd.fsSeed, ino, n.generation)
	if rd.csum {
		hasHi := extra >= iChecksumHi+2-goodOldInode
		want := uint32(le.Uint16(b[iChecksumLo:]))
		if hasHi {
			want |= uint32(le.Uint16(b[iChecksumHi:])) << 16
		}
		// The checksum of the inode with its checksum fields zeroed.
		var zero [2]byte
		got := crc32c(n.seed, b[:iChecksumLo])
		got = crc32c(got, zero[:])
		if hasHi {
			got = crc32c(got, b[iChecksumLo+2:iChecksumHi])
			got = crc32c(got, zero[:])
			got = crc32c(got, b[iChecksumHi+2:])
		} else {
			got = crc32c(got, b[iChecksumLo+2:])
		}
		if !hasHi {
			got &= 0xFFFF
		}
		if got != want {
			if err := rd.problem("inode %d: checksum %#08x, want %#08x", ino, got, want); err != nil {
				return nil, err
			}
		}
	}
	if extra >= iMtimeExtra+4-goodOldInode {
		x := le.Uint32(b[iMtimeExtra:])
		n.mtime += int64(x&3) << 32
		n.nsec = x >> 2
		if n.nsec > 999999999 {
			return nil, fmt.Errorf("inode %d: mtime nanoseconds %d are not below 10^9", ino, n.nsec)
		}
	}
	if start := goodOldInode + extra; start+4 <= rd.inodeSize && le.Uint32(b[start:]) == xattrMagic {
		n.xattrArea = bytes.Clone(b[start+4:])
	}
	return n, nil
}

// fileBlocks is the number of blocks that hold size bytes.
func (rd *fsReader) fileBlocks(size uint64) uint64 {
	return size/uint64(rd.img.bs) + min(1, size%uint64(rd.img.bs))
}

// mapping maps n logical blocks from lblk to physical blocks from pblk;
// zero marks an unwritten extent, which reads as zeros.
type mapping struct {
	lblk, n, pblk uint64
	zero          bool
}

// metaBlock reads block blk, metadata of inode ino (0: named by the
// caller) described by what, charging the budget. The buffer comes from
// a free list: give it back with release once nothing refers to it.
func (rd *fsReader) metaBlock(blk uint64, ino uint32, what string) ([]byte, error) {
	name := func() string {
		if ino == 0 {
			return what
		}
		return fmt.Sprintf("inode %d: %s", ino, what)
	}
	if blk <= rd.firstData || blk >= rd.blocks {
		return nil, fmt.Errorf("%s at block %d, outside %d..%d", name(), blk, rd.firstData+1, rd.blocks-1)
	}
	rd.budget--
	if rd.budget < 0 {
		return nil, fmt.Errorf("%s at block %d: more metadata blocks read than the filesystem has, or than the %d bytes kiln reads: blocks are shared or looped", name(), blk, maxMetaBytes)
	}
	var b []byte
	if k := len(rd.free); k > 0 {
		b, rd.free = rd.free[k-1], rd.free[:k-1]
	} else {
		b = make([]byte, rd.img.bs)
	}
	if err := rd.img.readAt(b, int64(blk)*rd.img.bs); err != nil {
		return nil, fmt.Errorf("%s: %w", name(), err)
	}
	return b, nil
}

// release gives a block buffer from metaBlock back.
func (rd *fsReader) release(b []byte) {
	rd.free = append(rd.free, b)
}

// countXattr counts n more bytes of xattr values kept, failing past
// maxXattrBytes.
func (rd *fsReader) countXattr(n int) error {
	rd.xattrBytes += int64(n)
	if rd.xattrBytes > maxXattrBytes {
		return fmt.Errorf("more than %d bytes of xattr values in the filesystem, more than kiln reads", maxXattrBytes)
	}
	return nil
}

// countMapping counts one more mapping kept, failing past maxMappings.
func (rd *fsReader) countMapping() error {
	rd.maps++
	if rd.maps > maxMappings {
		return fmt.Errorf("more than %d extents in the filesystem's files, more than kiln reads", maxMappings)
	}
	return nil
}

// blockMap returns the mappings of an inode's data blocks, sorted and
// disjoint.
func (rd *fsReader) blockMap(n *rawInode) ([]mapping, error) {
	if n.flags&flagExtents != 0 {
		if rd.incompat&incompatExtents == 0 {
			return nil, fmt.Errorf("inode %d: extent-mapped, but the filesystem has no extent feature", n.ino)
		}
		var out []mapping
		if err := rd.extentNode(n, n.iblock[:], -1, 0, 1<<32, &out); err != nil {
			return nil, fmt.Errorf("inode %d: extent tree: %w", n.ino, err)
		}
		return out, nil
	}
	nblocks := rd.fileBlocks(n.size)
	p := uint64(rd.img.bs / 4)
	if max := 12 + p + p*p + p*p*p; nblocks > max {
		return nil, fmt.Errorf("inode %d: %d bytes is more than a block map holds", n.ino, n.size)
	}
	var out []mapping
	add := func(lblk, pblk uint64) error {
		if pblk <= rd.firstData || pblk >= rd.blocks {
			return fmt.Errorf("inode %d: block %d maps to block %d, outside %d..%d", n.ino, lblk, pblk, rd.firstData+1, rd.blocks-1)
		}
		if k := len(out); k > 0 && out[k-1].lblk+out[k-1].n == lblk && out[k-1].pblk+out[k-1].n == pblk {
			out[k-1].n++
			return nil
		}
		if err := rd.countMapping(); err != nil {
			return fmt.Errorf("inode %d: %w", n.ino, err)
		}
		out = append(out, mapping{lblk: lblk, n: 1, pblk: pblk})
		return nil
	}
	var walk func(blk uint64, level int, start uint64) error
	walk = func(blk uint64, level int, start uint64) error {
		b, err := rd.metaBlock(blk, n.ino, "indirect block")
		if err != nil {
			return err
		}
		defer rd.release(b)
		span := uint64(1)
		for i := 1; i < level; i++ {
			span *= p
		}
		for i := uint64(0); i < p; i++ {
			lblk := start + i*span
			if lblk >= nblocks {
				break
			}
			ptr := uint64(le.Uint32(b[4*i:]))
			switch {
			case ptr == 0:
			case level == 1:
				if err := add(lblk, ptr); err != nil {
					return err
				}
			default:
				if err := walk(ptr, level-1, lblk); err != nil {
					return err
				}
			}
		}
		return nil
	}
	start := uint64(0)
	for i := 0; i < 15 && start < nblocks; i++ {
		ptr := uint64(le.Uint32(n.iblock[4*i:]))
		level := max(0, i-11)
		span := uint64(1)
		for j := 0; j < level; j++ {
			span *= p
		}
		switch {
		case ptr == 0:
		case level == 0:
			if err := add(start, ptr); err != nil {
				return nil, err
			}
		default:
			if err := walk(ptr, level, start); err != nil {
				return nil, err
			}
		}
		start += span
	}
	return out, nil
}

// extentNode appends the mappings of the extent tree node b (the inode's
// root when depth is -1) that covers logical blocks [lo, hi).
func (rd *fsReader) extentNode(n *rawInode, b []byte, depth int, lo, hi uint64, out *[]mapping) error {
	if le.Uint16(b[0:]) != extentMagic {
		return fmt.Errorf("node magic %#04x, want %#04x", le.Uint16(b[0:]), extentMagic)
	}
	entries, limit, d := int(le.Uint16(b[2:])), int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))
	if 12+12*limit > len(b) || entries > limit {
		return fmt.Errorf("node with %d entries of at most %d does not fit %d bytes", entries, limit, len(b))
	}
	if depth < 0 {
		if d > maxExtentDepth {
			return fmt.Errorf("depth %d is more than %d", d, maxExtentDepth)
		}
	} else if d != depth {
		return fmt.Errorf("node at depth %d says it is at depth %d", depth, d)
	}
	if d == 0 {
		for i := 0; i < entries; i++ {
			e := b[12+12*i:]
			lblk := uint64(le.Uint32(e[0:]))
			ln := uint64(le.Uint16(e[4:]))
			zero := false
			if ln > extentMaxLen {
				ln, zero = ln-extentMaxLen, true
			}
			pblk := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			switch {
			case ln == 0:
				return fmt.Errorf("extent at block %d has length 0", lblk)
			case lblk < lo || lblk+ln > hi:
				return fmt.Errorf("extent of blocks %d..%d is outside its node's %d..%d", lblk, lblk+ln-1, lo, hi-1)
			case pblk <= rd.firstData || pblk >= rd.blocks || ln > rd.blocks-pblk:
				return fmt.Errorf("extent of blocks %d..%d maps to blocks %d..%d, outside %d..%d", lblk, lblk+ln-1, pblk, pblk+ln-1, rd.firstData+1, rd.blocks-1)
			}
			if k := len(*out); k > 0 && (*out)[k-1].lblk+(*out)[k-1].n > lblk {
				return fmt.Errorf("extent at block %d overlaps or precedes the one before", lblk)
			}
			if err := rd.countMapping(); err != nil {
				return err
			}
			*out = append(*out, mapping{lblk: lblk, n: ln, pblk: pblk, zero: zero})
		}
		return nil
	}
	if entries == 0 {
		return errors.New("index node without entries")
	}
	for i := 0; i < entries; i++ {
		e := b[12+12*i:]
		first := uint64(le.Uint32(e[0:]))
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		end := hi
		if i+1 < entries {
			end = uint64(le.Uint32(b[12+12*(i+1):]))
		}
		if first < lo || first >= end || end > hi {
			return fmt.Errorf("index entry %d covers blocks %d..%d, outside its node's %d..%d or out of order", i, first, end, lo, hi)
		}
		cb, err := rd.metaBlock(child, 0, "extent tree block")
		if err != nil {
			return err
		}
		if rd.csum {
			tail := 12 + 12*int(le.Uint16(cb[4:]))
			if tail+4 > len(cb) {
				return fmt.Errorf("block %d: %d entries leave no room for the checksum", child, le.Uint16(cb[4:]))
			}
			if got, want := crc32c(n.seed, cb[:tail]), le.Uint32(cb[tail:]); got != want {
				if err := rd.problem("inode %d: extent tree block %d: checksum %#08x, want %#08x", n.ino, child, got, want); err != nil {
					return err
				}
			}
		}
		err = rd.extentNode(n, cb, d-1, first, end, out)
		rd.release(cb)
		if err != nil {
			return err
		}
	}
	return nil
}

// readTree walks the directories from the root.
func (rd *fsReader) readTree() (*tree.Tree, error) {
	raw, err := rd.readInode(rootIno)
	if err != nil {
		return nil, fmt.Errorf("root directory: %w", err)
	}
	if raw.kind() != sIFDIR {
		return nil, fmt.Errorf("root directory: inode %d has mode %#o, not a directory", rootIno, raw.mode)
	}
	root, err := rd.newInode(raw)
	if err != nil {
		return nil, fmt.Errorf("root directory: %w", err)
	}
	rd.byIno[rootIno] = root
	if err := rd.readDir("/", raw, root, 0); err != nil {
		return nil, err
	}
	return &tree.Tree{Root: root}, nil
}

// dirent is one directory entry as read.
type dirent struct {
	name  string
	ino   uint32
	ftype uint8
}

// readDir reads directory n (inode raw) at path p and everything below it.
func (rd *fsReader) readDir(p string, raw *rawInode, n *tree.Inode, depth int) error {
	ents, err := rd.dirEntries(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, e := range ents {
		cp := prefix + e.name
		if n.Child(e.name) != nil {
			return fmt.Errorf("%s: the name is in its directory twice", cp)
		}
		rd.entries++
		if rd.entries > rd.o.MaxEntries {
			return fmt.Errorf("%s: more than %d directory entries", cp, rd.o.MaxEntries)
		}
		if c := rd.byIno[e.ino]; c != nil {
			if c.Kind == tree.Dir {
				return fmt.Errorf("%s: directory inode %d has a second name", cp, e.ino)
			}
			if err := checkFileType(e, c.Kind); err != nil {
				return fmt.Errorf("%s: %w", cp, err)
			}
			n.SetChild(e.name, c)
			continue
		}
		if e.ino < rd.firstIno && e.ino != rootIno {
			return fmt.Errorf("%s: entry for reserved inode %d", cp, e.ino)
		}
		craw, err := rd.readInode(e.ino)
		if err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		if craw.kind() == sIFSOCK {
			rd.problems = append(rd.problems, fmt.Errorf("%s: socket (inode %d) left out", cp, e.ino))
			continue
		}
		c, err := rd.newInode(craw)
		if err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		if err := checkFileType(e, c.Kind); err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		rd.byIno[e.ino] = c
		n.SetChild(e.name, c)
		if c.Kind == tree.Dir {
			if depth+1 > rd.o.MaxDepth {
				return fmt.Errorf("%s: directories nest deeper than %d", cp, rd.o.MaxDepth)
			}
			if err := rd.readDir(cp, craw, c, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkFileType compares a directory entry's file type with its inode.
func checkFileType(e dirent, k tree.Kind) error {
	if e.ftype == 0 {
		return nil
	}
	if want := k.DirentType(); e.ftype != want {
		return fmt.Errorf("entry says file type %d, inode %d is a %s", e.ftype, e.ino, k)
	}
	return nil
}

// newInode makes the tree inode of raw, reading symlink targets, xattrs
// and block maps.
func (rd *fsReader) newInode(raw *rawInode) (*tree.Inode, error) {
	if raw.links == 0 {
		return nil, fmt.Errorf("inode %d is not in use (link count 0)", raw.ino)
	}
	if raw.flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("inode %d is encrypted", raw.ino)
	}
	if raw.flags&flagEAInode != 0 {
		return nil, fmt.Errorf("inode %d holds an xattr value, it has no name", raw.ino)
	}
	n := &tree.Inode{Mode: uint32(raw.mode & 0o7777), UID: raw.uid, GID: raw.gid, Mtime: raw.mtime, Nsec: raw.nsec}
	xs, inline, err := rd.xattrs(raw)
	if err != nil {
		return nil, err
	}
	n.Xattrs, raw.inline = xs, inline
	isInline := raw.flags&flagInlineData != 0
	if isInline {
		if rd.incompat&incompatInlineData == 0 {
			return nil, fmt.Errorf("inode %d: inline data, but the filesystem has no inline_data feature", raw.ino)
		}
		if inline == nil {
			return nil, fmt.Errorf("inode %d: inline data without its system.data attribute", raw.ino)
		}
	}
	switch raw.kind() {
	case sIFDIR:
		d := tree.NewDir(n.Mode, n.UID, n.GID, n.Mtime)
		d.Nsec, d.Xattrs = n.Nsec, n.Xattrs
		return d, nil
	case sIFREG:
		n.Kind = tree.Regular
		if raw.size > 1<<62 {
			return nil, fmt.Errorf("inode %d: size %d is too large", raw.ino, raw.size)
		}
		n.Size = int64(raw.size)
		if isInline {
			data, err := inlineData(raw, inline)
			if err != nil {
				return nil, err
			}
			if n.Size > 0 {
				n.Content = inlineContent(data)
			}
			return n, nil
		}
		m, err := rd.blockMap(raw)
		if err != nil {
			return nil, err
		}
		if n.Size > 0 {
			n.Content = &fileContent{img: rd.img, size: n.Size, maps: m}
		}
	case sIFLNK:
		n.Kind = tree.Symlink
		t, err := rd.symlinkTarget(raw, isInline, inline)
		if err != nil {
			return nil, err
		}
		n.Target, n.Size = t, int64(len(t))
	case sIFCHR, sIFBLK:
		n.Kind = tree.CharDev
		if raw.kind() == sIFBLK {
			n.Kind = tree.BlockDev
		}
		if old := le.Uint32(raw.iblock[0:]); old != 0 {
			n.Major, n.Minor = old>>8&0xFF, old&0xFF
		} else {
			v := le.Uint32(raw.iblock[4:])
			n.Major, n.Minor = v&0xFFF00>>8, v&0xFF|v>>12&0xFFF00
		}
	case sIFIFO:
		n.Kind = tree.FIFO
	default:
		return nil, fmt.Errorf("inode %d: mode %#o has no file type ext4 knows", raw.ino, raw.mode)
	}
	return n, nil
}

// inlineData returns an inline inode's size bytes: i_block, then the
// system.data value.
func inlineData(raw *rawInode, ea []byte) ([]byte, error) {
	if raw.size > uint64(len(raw.iblock)+len(ea)) {
		return nil, fmt.Errorf("inode %d: %d bytes of inline data, but the inode holds %d", raw.ino, raw.size, len(raw.iblock)+len(ea))
	}
	data := append(slices.Clone(raw.iblock[:]), ea...)
	return data[:raw.size], nil
}

// symlinkTarget reads a symlink's target: in i_block (fast), inline, or
// in its one data block (slow).
func (rd *fsReader) symlinkTarget(raw *rawInode, isInline bool, ea []byte) (string, error) {
	if raw.size == 0 || raw.size > maxSymlinkLen {
		return "", fmt.Errorf("inode %d: symlink target of %d bytes is not in 1..%d", raw.ino, raw.size, maxSymlinkLen)
	}
	var target []byte
	eaBlocks := uint64(0)
	if raw.fileACL != 0 {
		eaBlocks = uint64(rd.clusterSize / 512) // the xattr block's cluster
	}
	switch {
	case isInline:
		b, err := inlineData(raw, ea)
		if err != nil {
			return "", err
		}
		target = b
	case raw.blocks512 == eaBlocks: // the kernel's ext4_inode_is_fast_symlink
		if raw.size >= uint64(len(raw.iblock)) {
			return "", fmt.Errorf("inode %d: fast symlink of %d bytes, more than i_block holds", raw.ino, raw.size)
		}
		target = raw.iblock[:raw.size]
	default:
		if raw.size > uint64(rd.img.bs) {
			return "", fmt.Errorf("inode %d: symlink target of %d bytes is longer than a block", raw.ino, raw.size)
		}
		m, err := rd.blockMap(raw)
		if err != nil {
			return "", err
		}
		if len(m) == 0 || m[0].lblk != 0 || m[0].zero {
			return "", fmt.Errorf("inode %d: symlink has no data block", raw.ino)
		}
		b, err := rd.metaBlock(m[0].pblk, raw.ino, "symlink block")
		if err != nil {
			return "", err
		}
		defer rd.release(b)
		target = b[:raw.size]
	}
	if bytes.IndexByte(target, 0) >= 0 {
		return "", fmt.Errorf("inode %d: symlink target contains NUL", raw.ino)
	}
	return string(target), nil
}

// dirEntries reads a directory's entries in on-disk order, without "."
// and "..".
func (rd *fsReader) dirEntries(raw *rawInode) ([]dirent, error) {
	var out []dirent
	if raw.flags&flagInlineData != 0 {
		ea := raw.inline // checked by newInode
		if err := rd.parseDirBlock(raw, raw.iblock[inlineDirHeader:], &out); err != nil {
			return nil, fmt.Errorf("inode %d: inline entries: %w", raw.ino, err)
		}
		if len(ea) > 0 {
			if err := rd.parseDirBlock(raw, ea, &out); err != nil {
				return nil, fmt.Errorf("inode %d: inline entries: %w", raw.ino, err)
			}
		}
		return out, nil
	}
	bs := uint64(rd.img.bs)
	if raw.size%bs != 0 {
		return nil, fmt.Errorf("inode %d: directory size %d is not a multiple of the %d-byte block", raw.ino, raw.size, bs)
	}
	nb := raw.size / bs
	if nb == 0 || nb > rd.blocks {
		return nil, fmt.Errorf("inode %d: directory of %d blocks, want 1..%d", raw.ino, nb, rd.blocks)
	}
	m, err := rd.blockMap(raw)
	if err != nil {
		return nil, err
	}
	dx := raw.flags&flagIndex != 0 && rd.compat&compatDirIndex != 0
	lblk := uint64(0)
	for _, e := range m {
		if lblk >= nb {
			break
		}
		if e.lblk != lblk || e.zero {
			return nil, fmt.Errorf("inode %d: directory block %d is a hole", raw.ino, lblk)
		}
		for i := uint64(0); i < e.n && lblk < nb; i, lblk = i+1, lblk+1 {
			b, err := rd.metaBlock(e.pblk+i, raw.ino, "directory block")
			if err != nil {
				return nil, fmt.Errorf("%w (logical block %d)", err, lblk)
			}
			err = rd.checkDirBlock(raw, b, lblk, dx)
			if err == nil {
				if err = rd.parseDirBlock(raw, b, &out); err != nil {
					err = fmt.Errorf("inode %d: directory block %d: %w", raw.ino, lblk, err)
				}
			}
			rd.release(b)
			if err != nil {
				return nil, err
			}
		}
	}
	if lblk < nb {
		return nil, fmt.Errorf("inode %d: directory block %d is a hole", raw.ino, lblk)
	}
	return out, nil
}

// recLen decodes a dirent's rec_len (ext4_rec_len_from_disk).
func recLenFromDisk(v uint16, bs int) int {
	if bs < 65536 {
		return int(v)
	}
	if v == 0xFFFF || v == 0 {
		return bs
	}
	return int(v&0xFFFC) | int(v&3)<<16
}

// checkDirBlock verifies a directory block's checksum: the leaf tail's,
// or the dx tail's for htree index blocks.
func (rd *fsReader) checkDirBlock(raw *rawInode, b []byte, lblk uint64, dx bool) error {
	if !rd.csum {
		return nil
	}
	bs := len(b)
	first := recLenFromDisk(le.Uint16(b[4:]), bs)
	if dx && (lblk == 0 || (first == bs && le.Uint32(b[0:]) == 0)) {
		countOff := dxNodeCountOff
		if lblk == 0 {
			dot := recLenFromDisk(le.Uint16(b[16:]), bs)
			if first != 12 || dot != bs-12 || le.Uint32(b[24:]) != 0 || b[29] != 8 {
				return fmt.Errorf("inode %d: htree root block is malformed", raw.ino)
			}
			countOff = dxRootCountOff
		}
		limit, count := int(le.Uint16(b[countOff:])), int(le.Uint16(b[countOff+2:]))
		tail := countOff + 8*limit
		if tail+8 > bs || count > limit {
			return fmt.Errorf("inode %d: htree block %d: %d of %d index entries do not fit", raw.ino, lblk, count, limit)
		}
		c := crc32c(raw.seed, b[:countOff+8*count])
		c = crc32c(c, b[tail:tail+4])
		c = crc32c(c, []byte{0, 0, 0, 0})
		if want := le.Uint32(b[tail+4:]); c != want {
			return rd.problem("inode %d: htree block %d: checksum %#08x, want %#08x", raw.ino, lblk, c, want)
		}
		return nil
	}
	t := b[bs-dirTailSize:]
	if le.Uint32(t[0:]) != 0 || le.Uint16(t[4:]) != dirTailSize || t[6] != 0 || t[7] != 0xDE {
		return fmt.Errorf("inode %d: directory block %d has no checksum tail", raw.ino, lblk)
	}
	if got, want := crc32c(raw.seed, b[:bs-dirTailSize]), le.Uint32(t[8:]); got != want {
		return rd.problem("inode %d: directory block %d: checksum %#08x, want %#08x", raw.ino, lblk, got, want)
	}
	return nil
}

// parseDirBlock appends the entries of one block (or inline area) of
// linear directory entries.
func (rd *fsReader) parseDirBlock(raw *rawInode, b []byte, out *[]dirent) error {
	bs := int(rd.img.bs)
	for off := 0; off < len(b); {
		if off+8 > len(b) {
			return fmt.Errorf("entry at %d runs past the end", off)
		}
		ino := le.Uint32(b[off:])
		rec := recLenFromDisk(le.Uint16(b[off+4:]), bs)
		nameLen, ftype := int(b[off+6]), b[off+7]
		if rd.incompat&incompatFiletype == 0 {
			ftype = 0 // the high byte of a 16-bit name_len that is never above 255
		}
		if rec < dirRecMin || rec%4 != 0 || rec > len(b)-off || 8+nameLen > rec {
			return fmt.Errorf("entry at %d: record length %d for a %d-byte name is invalid", off, rec, nameLen)
		}
		if ino != 0 {
			if ino > rd.inodes {
				return fmt.Errorf("entry at %d: inode %d is not in 1..%d", off, ino, rd.inodes)
			}
			name := string(b[off+8 : off+8+nameLen])
			switch {
			case name == "." || name == "..":
			case name == "" || strings.ContainsAny(name, "/\x00"):
				return fmt.Errorf("entry at %d: invalid name %q", off, name)
			default:
				if ftype > ftSymlink {
					return fmt.Errorf("entry %q: unknown file type %d", name, ftype)
				}
				if rd.entries+len(*out) >= rd.o.MaxEntries {
					return fmt.Errorf("more than %d directory entries", rd.o.MaxEntries)
				}
				*out = append(*out, dirent{name: name, ino: ino, ftype: ftype})
			}
		}
		off += rec
	}
	return nil
}

// Xattr name indexes beyond the writer's.
const (
	xattrIndexRichACL = 8
	// xattrIndexVerity held fs-verity's metadata in its first ext4
	// version (e2fsprogs' f_verity test image): no getxattr name shows
	// it, and a tree cannot hold it.
	xattrIndexVerity = 11
)

// xattrs reads an inode's extended attributes, in-inode and in its block,
// sorted by name. The system.data attribute (inline data) is returned
// apart: nil if the inode has none.
func (rd *fsReader) xattrs(raw *rawInode) ([]tree.Xattr, []byte, error) {
	var out []tree.Xattr
	var inline []byte
	rd.verity = false
	defer func() {
		if rd.verity {
			rd.problems = append(rd.problems, fmt.Errorf("inode %d: fs-verity metadata (xattr index %d) left out", raw.ino, xattrIndexVerity))
		}
	}()
	if raw.xattrArea != nil {
		xs, err := rd.parseXattrs(raw.xattrArea, 0, 0, &inline)
		if err != nil {
			return nil, nil, fmt.Errorf("inode %d: in-inode xattrs: %w", raw.ino, err)
		}
		out = xs
	}
	if raw.fileACL != 0 {
		xs, ok := rd.xblocks[raw.fileACL]
		if !ok {
			b, err := rd.metaBlock(raw.fileACL, raw.ino, "xattr block")
			if err != nil {
				return nil, nil, err
			}
			defer rd.release(b)
			if m := le.Uint32(b[0:]); m != xattrMagic {
				return nil, nil, fmt.Errorf("inode %d: xattr block %d: magic %#08x, want %#08x", raw.ino, raw.fileACL, m, uint32(xattrMagic))
			}
			if nb := le.Uint32(b[8:]); nb != 1 {
				return nil, nil, fmt.Errorf("inode %d: xattr block %d says it has %d blocks, want 1", raw.ino, raw.fileACL, nb)
			}
			if rd.csum {
				c := bytes.Clone(b)
				le.PutUint32(c[xattrBlockCsumOf:], 0)
				got, want := crc32c(crc32cU64(rd.fsSeed, raw.fileACL), c), le.Uint32(b[xattrBlockCsumOf:])
				if got != want {
					if err := rd.problem("inode %d: xattr block %d: checksum %#08x, want %#08x", raw.ino, raw.fileACL, got, want); err != nil {
						return nil, nil, err
					}
				}
			}
			var none []byte
			xs, err = rd.parseXattrs(b, xattrBlockHdr, 0, &none)
			if err != nil {
				return nil, nil, fmt.Errorf("inode %d: xattr block %d: %w", raw.ino, raw.fileACL, err)
			}
			if none != nil {
				return nil, nil, fmt.Errorf("inode %d: xattr block %d holds system.data", raw.ino, raw.fileACL)
			}
			rd.xblocks[raw.fileACL] = xs
		}
		out = append(slices.Clone(out), xs...)
	}
	slices.SortFunc(out, func(a, b tree.Xattr) int { return cmp.Compare(a.Name, b.Name) })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, nil, fmt.Errorf("inode %d: xattr %q twice", raw.ino, out[i].Name)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, inline, nil
}

// parseXattrs decodes the entries of an xattr area b from entOff; value
// offsets count from b[base] (the first entry in an inode, the block's
// start in a block). The system.data value goes to *inline.
func (rd *fsReader) parseXattrs(b []byte, entOff, base int, inline *[]byte) ([]tree.Xattr, error) {
	var out []tree.Xattr
	for off := entOff; ; {
		if off+4 > len(b) {
			return nil, errors.New("entries run past the end of the area")
		}
		if le.Uint32(b[off:]) == 0 {
			break
		}
		if off+xattrEntryHdr > len(b) {
			return nil, errors.New("entries run past the end of the area")
		}
		nameLen, index := int(b[off]), b[off+1]
		valOff, valInum, valSize := int(le.Uint16(b[off+2:])), le.Uint32(b[off+4:]), le.Uint32(b[off+8:])
		if off+xattrEntryHdr+nameLen > len(b) {
			return nil, errors.New("entry name runs past the end of the area")
		}
		name := string(b[off+xattrEntryHdr : off+xattrEntryHdr+nameLen])
		off += xattrEntryHdr + pad4(nameLen)
		var value []byte
		if valInum != 0 {
			v, err := rd.eaInodeValue(valInum, valSize)
			if err != nil {
				return nil, fmt.Errorf("xattr %q: %w", name, err)
			}
			value = v
		} else {
			if valSize > maxXattrValue || base+valOff+int(valSize) > len(b) || base+valOff < 0 {
				return nil, fmt.Errorf("xattr %q: value of %d bytes at %d is outside the area", name, valSize, valOff)
			}
			if err := rd.countXattr(int(valSize)); err != nil {
				return nil, fmt.Errorf("xattr %q: %w", name, err)
			}
			value = bytes.Clone(b[base+valOff : base+valOff+int(valSize)])
		}
		if index == xattrIndexVerity {
			rd.verity = true
			continue
		}
		full, err := xattrName(index, name)
		if err != nil {
			return nil, err
		}
		switch {
		case full == "system.data":
			if *inline != nil {
				return nil, errors.New("system.data twice")
			}
			*inline = value
			continue
		case index == 2 || index == 3:
			v, err := aclFromDisk(value)
			if err != nil {
				return nil, fmt.Errorf("xattr %q: %w", full, err)
			}
			value = v
		}
		out = append(out, tree.Xattr{Name: full, Value: value})
	}
	return out, nil
}

// xattrName restores an attribute's full name from its index and suffix.
func xattrName(index uint8, name string) (string, error) {
	switch index {
	case 2, 3:
		if name != "" {
			return "", fmt.Errorf("POSIX ACL xattr with name %q", name)
		}
	case xattrIndexRichACL:
		if name != "" {
			return "", fmt.Errorf("richacl xattr with name %q", name)
		}
		return "system.richacl", nil
	}
	for _, p := range xattrPrefixes {
		if p.index == index {
			if name == "" && index != 2 && index != 3 {
				return "", fmt.Errorf("xattr of index %d with an empty name", index)
			}
			return p.prefix + name, nil
		}
	}
	return "", fmt.Errorf("xattr %q with unknown name index %d", name, index)
}

// aclFromDisk converts a POSIX ACL from ext4's on-disk form back to the
// form getxattr returns (ext4_acl_from_disk, posix_acl_to_xattr): entries
// without an id get ACL_UNDEFINED_ID.
func aclFromDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || le.Uint32(v) != 1 {
		return nil, fmt.Errorf("not a version 1 ext4 ACL (%d bytes)", len(v))
	}
	out := make([]byte, 4, 4+2*len(v))
	le.PutUint32(out, 2)
	for p := v[4:]; len(p) > 0; {
		if len(p) < 4 {
			return nil, errors.New("truncated ACL entry")
		}
		var e [8]byte
		copy(e[:4], p[:4])
		switch tag := le.Uint16(p); tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			le.PutUint32(e[4:], 0xFFFFFFFF)
			p = p[4:]
		case aclUser, aclGroup:
			if len(p) < 8 {
				return nil, errors.New("truncated ACL entry")
			}
			copy(e[4:], p[4:8])
			p = p[8:]
		default:
			return nil, fmt.Errorf("ACL entry with unknown tag %#x", tag)
		}
		out = append(out, e[:]...)
	}
	return out, nil
}

// eaInodeValue reads an xattr value stored in inode ino (ea_inode).
func (rd *fsReader) eaInodeValue(ino, size uint32) ([]byte, error) {
	if rd.incompat&incompatEAInode == 0 {
		return nil, fmt.Errorf("value in inode %d, but the filesystem has no ea_inode feature", ino)
	}
	if size > maxXattrValue {
		return nil, fmt.Errorf("value of %d bytes is more than %d", size, maxXattrValue)
	}
	if v, ok := rd.eaVals[ino]; ok {
		if len(v) != int(size) {
			return nil, fmt.Errorf("value inode %d holds %d bytes, not %d", ino, len(v), size)
		}
		return v, nil
	}
	raw, err := rd.readInode(ino)
	if err != nil {
		return nil, err
	}
	if raw.flags&flagEAInode == 0 || raw.kind() != sIFREG || raw.size != uint64(size) {
		return nil, fmt.Errorf("inode %d is not a %d-byte xattr value inode", ino, size)
	}
	m, err := rd.blockMap(raw)
	if err != nil {
		return nil, err
	}
	rd.budget -= int64(rd.fileBlocks(uint64(size)))
	if rd.budget < 0 {
		return nil, fmt.Errorf("value in inode %d: more metadata blocks read than the filesystem has", ino)
	}
	if err := rd.countXattr(int(size)); err != nil {
		return nil, fmt.Errorf("value in inode %d: %w", ino, err)
	}
	out := make([]byte, size)
	if _, err := io.ReadFull(&contentReader{c: &fileContent{img: rd.img, size: int64(size), maps: m}}, out); err != nil {
		return nil, fmt.Errorf("value in inode %d: %w", ino, err)
	}
	rd.eaVals[ino] = out
	return out, nil
}

// inlineContent is the content of a file with inline data.
type inlineContent []byte

// Open returns a reader of the content.
func (c inlineContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c)), nil
}

// fileContent is a regular file's content in the image.
type fileContent struct {
	img  *image
	size int64
	maps []mapping // sorted, disjoint
}

// Open returns a reader of the content; each has its own offset.
func (c *fileContent) Open() (io.ReadCloser, error) {
	return &contentReader{c: c}, nil
}

// contentReader reads a fileContent from the start.
type contentReader struct {
	c   *fileContent
	off int64
}

const contentChunk = 1 << 20

// Read reads from the blocks the current offset maps to, or zeros in a
// hole or unwritten extent.
func (r *contentReader) Read(p []byte) (int, error) {
	c := r.c
	if r.off >= c.size {
		return 0, io.EOF
	}
	bs := c.img.bs
	n := min(int64(len(p)), c.size-r.off, contentChunk)
	lblk := uint64(r.off / bs)
	i := sort.Search(len(c.maps), func(i int) bool { return c.maps[i].lblk+c.maps[i].n > lblk })
	if i == len(c.maps) || c.maps[i].lblk > lblk {
		// A hole up to the next mapping.
		if i < len(c.maps) {
			n = min(n, int64(c.maps[i].lblk)*bs-r.off)
		}
		clear(p[:n])
	} else {
		m := c.maps[i]
		n = min(n, int64(m.lblk+m.n)*bs-r.off)
		if m.zero {
			clear(p[:n])
		} else if err := c.img.readAt(p[:n], int64(m.pblk)*bs+r.off-int64(m.lblk)*bs); err != nil {
			return 0, fmt.Errorf("ext4: content at offset %d: %w", r.off, err)
		}
	}
	r.off += n
	return int(n), nil
}

// Close does nothing.
func (r *contentReader) Close() error { return nil }
