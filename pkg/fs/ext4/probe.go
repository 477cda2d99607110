package ext4

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-build/kiln/pkg/repro"
)

// Info is what a superblock says about a filesystem.
type Info struct {
	// Type is what blkid calls the filesystem (libblkid's ext.c): "jbd"
	// for an external journal device; "ext4" when it has any feature
	// beyond ext3's (incompat filetype, needs_recovery and meta_bg,
	// ro_compat sparse_super, large_file and btree_dir), or "ext4dev"
	// with the test_fs flag; else "ext3" with a journal and "ext2"
	// without; "" for ext2 needing recovery, which blkid names nothing.
	Type            string
	Label           string
	UUID            repro.UUID
	BlockSize       uint32
	Blocks          uint64
	FreeBlocks      uint64
	Inodes          uint32
	FreeInodes      uint32
	FeatureCompat   uint32
	FeatureIncompat uint32
	FeatureROCompat uint32
	// Features names the feature bits as dumpe2fs does, compat, incompat,
	// ro_compat in bit order; unknown bits as FEATURE_C12 etc.
	Features []string
}

// Has reports whether the filesystem has the named feature.
func (i *Info) Has(feature string) bool {
	for _, f := range i.Features {
		if f == feature {
			return true
		}
	}
	return false
}

var (
	compatNames = map[uint]string{0: "dir_prealloc", 1: "imagic_inodes", 2: "has_journal", 3: "ext_attr",
		4: "resize_inode", 5: "dir_index", 6: "lazy_bg", 7: "snapshot_bitmap", 9: "sparse_super2",
		10: "fast_commit", 11: "stable_inodes", 12: "orphan_file"}
	incompatNames = map[uint]string{0: "compression", 1: "filetype", 2: "needs_recovery", 3: "journal_dev",
		4: "meta_bg", 6: "extent", 7: "64bit", 8: "mmp", 9: "flex_bg", 10: "ea_inode", 12: "dirdata",
		13: "metadata_csum_seed", 14: "large_dir", 15: "inline_data", 16: "encrypt", 17: "casefold"}
	roCompatNames = map[uint]string{0: "sparse_super", 1: "large_file", 2: "btree_dir", 3: "huge_file",
		4: "uninit_bg", 5: "dir_nlink", 6: "extra_isize", 7: "has_snapshot", 8: "quota", 9: "bigalloc",
		10: "metadata_csum", 11: "replica", 12: "read-only", 13: "project", 14: "shared_blocks",
		15: "verity", 16: "orphan_present"}
)

func featureNames(bits uint32, names map[uint]string, kind string) []string {
	var out []string
	for i := uint(0); i < 32; i++ {
		if bits&(1<<i) == 0 {
			continue
		}
		if n, ok := names[i]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("FEATURE_%s%d", kind, i))
		}
	}
	return out
}

// Probe reads an ext2/3/4 superblock at byte 1024 of r.
func Probe(r io.ReaderAt) (*Info, error) {
	b := make([]byte, sbSize)
	if _, err := r.ReadAt(b, sbOffset); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("ext4: probe: too short for a superblock: %w", err)
		}
		return nil, fmt.Errorf("ext4: probe: read superblock: %w", err)
	}
	if m := le.Uint16(b[sbMagic:]); m != sbMagicValue {
		return nil, fmt.Errorf("ext4: probe: no ext2/3/4 superblock (magic %#04x, want %#04x)", m, sbMagicValue)
	}
	i := &Info{
		Inodes:          le.Uint32(b[sbInodesCount:]),
		FreeInodes:      le.Uint32(b[sbFreeInodes:]),
		FeatureCompat:   le.Uint32(b[sbFeatureCompat:]),
		FeatureIncompat: le.Uint32(b[sbFeatureIncompat:]),
		FeatureROCompat: le.Uint32(b[sbFeatureRoCompat:]),
	}
	if i.FeatureROCompat&roCompatMetadataCsum != 0 {
		want := le.Uint32(b[sbChecksum:])
		if got := crc32c(^uint32(0), b[:sbChecksum]); got != want {
			return nil, fmt.Errorf("ext4: probe: superblock checksum %#08x, want %#08x", got, want)
		}
	}
	logBS := le.Uint32(b[sbLogBlockSize:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext4: probe: invalid block size log %d", logBS)
	}
	i.BlockSize = 1024 << logBS
	i.Blocks = uint64(le.Uint32(b[sbBlocksCountLo:]))
	i.FreeBlocks = uint64(le.Uint32(b[sbFreeBlocksLo:]))
	if i.FeatureIncompat&incompat64bit != 0 {
		i.Blocks |= uint64(le.Uint32(b[sbBlocksCountHi:])) << 32
		i.FreeBlocks |= uint64(le.Uint32(b[sbFreeBlocksHi:])) << 32
	}
	copy(i.UUID[:], b[sbUUID:sbUUID+16])
	label, _, _ := strings.Cut(string(b[sbVolumeName:sbVolumeName+16]), "\x00")
	i.Label = label
	i.Type = blkidType(i.FeatureCompat, i.FeatureIncompat, i.FeatureROCompat, le.Uint32(b[sbFlags:]))
	i.Features = append(i.Features, featureNames(i.FeatureCompat, compatNames, "C")...)
	i.Features = append(i.Features, featureNames(i.FeatureIncompat, incompatNames, "I")...)
	i.Features = append(i.Features, featureNames(i.FeatureROCompat, roCompatNames, "R")...)
	return i, nil
}

// The features ext3 knows (libblkid's EXT3_FEATURE_*_SUPP): any other
// makes a filesystem ext4 to blkid.
const (
	ext3Incompat = incompatFiletype | incompatRecover | incompatMetaBG
	ext3RoCompat = roCompatSparseSuper | roCompatLargeFile | 0x4 // btree_dir
	journalDev   = 0x8                                           // incompat journal_dev
	flagsTestFS  = 0x4                                           // s_flags EXT2_FLAGS_TEST_FILESYS
)

// blkidType names a filesystem as libblkid's probe_jbd, probe_ext4dev,
// probe_ext4, probe_ext3 and probe_ext2 do.
func blkidType(compat, incompat, roCompat, flags uint32) string {
	switch {
	case incompat&journalDev != 0:
		return "jbd"
	case incompat&^ext3Incompat != 0 || roCompat&^ext3RoCompat != 0:
		if flags&flagsTestFS != 0 {
			return "ext4dev"
		}
		return "ext4"
	case compat&compatHasJournal != 0:
		return "ext3"
	case incompat&incompatRecover != 0:
		return "" // ext2 knows no recovery, ext3 wants a journal
	}
	return "ext2"
}
