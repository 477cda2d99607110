package ext4

import (
	"io"

	"github.com/kiln-build/kiln/pkg/fs"
)

// Kind is ext4 as kiln's filesystems list it (pkg/fs/all): its writer,
// how inspect and diff recognise and read it, and the superblock fields
// diff compares.
var Kind = fs.Kind{
	Name:         "ext4",
	New:          New,
	Probe:        probeInfo,
	ReadTree:     ReadTree,
	HeaderOffset: 1024,
	Fields:       superblockFields,
}

// probeInfo is Probe as inspect shows it: the type as blkid names it.
func probeInfo(r io.ReaderAt, _ int64) (*fs.Info, error) {
	i, err := Probe(r)
	if err != nil {
		return nil, err
	}
	bs := int64(i.BlockSize)
	typ := i.Type // as blkid names it: jbd, ext4dev, ext4, ext3, ext2
	if typ == "" {
		typ = "ext2 (needs recovery)"
	}
	return &fs.Info{Type: typ, Label: i.Label, UUID: i.UUID.String(), Size: int64(i.Blocks) * bs, Used: int64(i.Blocks-i.FreeBlocks) * bs,
		Inodes: int64(i.Inodes) - int64(min(i.FreeInodes, i.Inodes))}, nil
}

// superblockFields are the superblock's fields (offsets from the superblock's
// start, which is at byte 1024), as the kernel's ext4.h names them.
var superblockFields = []fs.HeaderField{
	fs.Field("s_inodes_count", 0x0, 4, "u"), fs.Field("s_blocks_count_lo", 0x4, 4, "u"), fs.Field("s_r_blocks_count_lo", 0x8, 4, "u"),
	fs.Field("s_free_blocks_count_lo", 0xC, 4, "u"), fs.Field("s_free_inodes_count", 0x10, 4, "u"), fs.Field("s_first_data_block", 0x14, 4, "u"),
	fs.Field("s_log_block_size", 0x18, 4, "u"), fs.Field("s_blocks_per_group", 0x20, 4, "u"), fs.Field("s_inodes_per_group", 0x28, 4, "u"),
	fs.Field("s_mtime", 0x2C, 4, "u"), fs.Field("s_wtime", 0x30, 4, "u"), fs.Field("s_mnt_count", 0x34, 2, "u"), fs.Field("s_max_mnt_count", 0x36, 2, "u"),
	fs.Field("s_state", 0x3A, 2, "u"), fs.Field("s_errors", 0x3C, 2, "u"), fs.Field("s_lastcheck", 0x40, 4, "u"), fs.Field("s_checkinterval", 0x44, 4, "u"),
	fs.Field("s_creator_os", 0x48, 4, "u"), fs.Field("s_rev_level", 0x4C, 4, "u"), fs.Field("s_def_resuid", 0x50, 2, "u"), fs.Field("s_def_resgid", 0x52, 2, "u"),
	fs.Field("s_first_ino", 0x54, 4, "u"), fs.Field("s_inode_size", 0x58, 2, "u"), fs.Field("s_feature_compat", 0x5C, 4, "hex"),
	fs.Field("s_feature_incompat", 0x60, 4, "hex"), fs.Field("s_feature_ro_compat", 0x64, 4, "hex"), fs.Field("s_uuid", 0x68, 16, "uuid"),
	fs.Field("s_volume_name", 0x78, 16, "str"), fs.Field("s_last_mounted", 0x88, 64, "str"), fs.Field("s_journal_uuid", 0xD0, 16, "uuid"),
	fs.Field("s_journal_inum", 0xE0, 4, "u"), fs.Field("s_hash_seed", 0xEC, 16, "uuid"), fs.Field("s_def_hash_version", 0xFC, 1, "u"),
	fs.Field("s_desc_size", 0xFE, 2, "u"), fs.Field("s_default_mount_opts", 0x100, 4, "hex"), fs.Field("s_first_meta_bg", 0x104, 4, "u"),
	fs.Field("s_mkfs_time", 0x108, 4, "u"), fs.Field("s_blocks_count_hi", 0x150, 4, "u"), fs.Field("s_free_blocks_count_hi", 0x158, 4, "u"),
	fs.Field("s_min_extra_isize", 0x15C, 2, "u"), fs.Field("s_want_extra_isize", 0x15E, 2, "u"), fs.Field("s_flags", 0x160, 4, "hex"),
	fs.Field("s_log_groups_per_flex", 0x174, 1, "u"), fs.Field("s_kbytes_written", 0x178, 8, "u"), fs.Field("s_checksum_seed", 0x270, 4, "hex"),
	fs.Field("s_checksum", 0x3FC, 4, "hex"),
}
