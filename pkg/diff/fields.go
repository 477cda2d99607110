package diff

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode"
)

// rawField is a named field of an on-disk header: offset and size in
// bytes, and how to show it.
type rawField struct {
	name string
	off  int
	size int
	show string // "u" little-endian unsigned, "hex", "uuid", "str"
}

// ext4Fields are the superblock's fields (offsets from the superblock's
// start, which is at byte 1024), as the kernel's ext4.h names them.
var ext4Fields = []rawField{
	{"s_inodes_count", 0x0, 4, "u"}, {"s_blocks_count_lo", 0x4, 4, "u"}, {"s_r_blocks_count_lo", 0x8, 4, "u"},
	{"s_free_blocks_count_lo", 0xC, 4, "u"}, {"s_free_inodes_count", 0x10, 4, "u"}, {"s_first_data_block", 0x14, 4, "u"},
	{"s_log_block_size", 0x18, 4, "u"}, {"s_blocks_per_group", 0x20, 4, "u"}, {"s_inodes_per_group", 0x28, 4, "u"},
	{"s_mtime", 0x2C, 4, "u"}, {"s_wtime", 0x30, 4, "u"}, {"s_mnt_count", 0x34, 2, "u"}, {"s_max_mnt_count", 0x36, 2, "u"},
	{"s_state", 0x3A, 2, "u"}, {"s_errors", 0x3C, 2, "u"}, {"s_lastcheck", 0x40, 4, "u"}, {"s_checkinterval", 0x44, 4, "u"},
	{"s_creator_os", 0x48, 4, "u"}, {"s_rev_level", 0x4C, 4, "u"}, {"s_def_resuid", 0x50, 2, "u"}, {"s_def_resgid", 0x52, 2, "u"},
	{"s_first_ino", 0x54, 4, "u"}, {"s_inode_size", 0x58, 2, "u"}, {"s_feature_compat", 0x5C, 4, "hex"},
	{"s_feature_incompat", 0x60, 4, "hex"}, {"s_feature_ro_compat", 0x64, 4, "hex"}, {"s_uuid", 0x68, 16, "uuid"},
	{"s_volume_name", 0x78, 16, "str"}, {"s_last_mounted", 0x88, 64, "str"}, {"s_journal_uuid", 0xD0, 16, "uuid"},
	{"s_journal_inum", 0xE0, 4, "u"}, {"s_hash_seed", 0xEC, 16, "uuid"}, {"s_def_hash_version", 0xFC, 1, "u"},
	{"s_desc_size", 0xFE, 2, "u"}, {"s_default_mount_opts", 0x100, 4, "hex"}, {"s_first_meta_bg", 0x104, 4, "u"},
	{"s_mkfs_time", 0x108, 4, "u"}, {"s_blocks_count_hi", 0x150, 4, "u"}, {"s_free_blocks_count_hi", 0x158, 4, "u"},
	{"s_min_extra_isize", 0x15C, 2, "u"}, {"s_want_extra_isize", 0x15E, 2, "u"}, {"s_flags", 0x160, 4, "hex"},
	{"s_log_groups_per_flex", 0x174, 1, "u"}, {"s_kbytes_written", 0x178, 8, "u"}, {"s_checksum_seed", 0x270, 4, "hex"},
	{"s_checksum", 0x3FC, 4, "hex"},
}

// fatFields are the boot sector's BPB fields (FAT32 layout past 0x24;
// for FAT12/16 the extended fields sit elsewhere, but the shared part is
// what differs in practice).
var fatFields = []rawField{
	{"BS_OEMName", 0x3, 8, "str"}, {"BPB_BytsPerSec", 0xB, 2, "u"}, {"BPB_SecPerClus", 0xD, 1, "u"},
	{"BPB_RsvdSecCnt", 0xE, 2, "u"}, {"BPB_NumFATs", 0x10, 1, "u"}, {"BPB_RootEntCnt", 0x11, 2, "u"},
	{"BPB_TotSec16", 0x13, 2, "u"}, {"BPB_Media", 0x15, 1, "hex"}, {"BPB_FATSz16", 0x16, 2, "u"},
	{"BPB_HiddSec", 0x1C, 4, "u"}, {"BPB_TotSec32", 0x20, 4, "u"}, {"BPB_FATSz32", 0x24, 4, "u"},
	{"BPB_RootClus", 0x2C, 4, "u"}, {"BS_VolID (FAT32)", 0x43, 4, "hex"}, {"BS_VolLab (FAT32)", 0x47, 11, "str"},
	{"BS_VolID (FAT12/16)", 0x27, 4, "hex"}, {"BS_VolLab (FAT12/16)", 0x2B, 11, "str"},
	{"boot code", 0x5A, 0x1FE - 0x5A, "sha"},
}

// rawFields compares the named fields of two headers at off.
func rawFields(a, b io.ReaderAt, off int64, fields []rawField) []Field {
	ha, hb := make([]byte, 1024), make([]byte, 1024)
	if _, err := a.ReadAt(ha, off); err != nil {
		return []Field{{"header", "unreadable: " + err.Error(), ""}}
	}
	if _, err := b.ReadAt(hb, off); err != nil {
		return []Field{{"header", "", "unreadable: " + err.Error()}}
	}
	var out []Field
	for _, f := range fields {
		x, y := ha[f.off:f.off+f.size], hb[f.off:f.off+f.size]
		if string(x) == string(y) {
			continue
		}
		out = append(out, Field{f.name, showField(x, f.show), showField(y, f.show)})
	}
	return out
}

func showField(b []byte, how string) string {
	switch how {
	case "u":
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return fmt.Sprint(v)
	case "uuid":
		h := hex.EncodeToString(b)
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	case "str":
		return fmt.Sprintf("%q", strings.TrimRightFunc(strings.TrimRight(string(b), "\x00"), unicode.IsSpace))
	case "sha":
		return fmt.Sprintf("%d bytes, crc32 %08x", len(b), crc32.ChecksumIEEE(b))
	}
	if len(b) == 4 {
		return fmt.Sprintf("%#08x", binary.LittleEndian.Uint32(b))
	}
	return hex.EncodeToString(b)
}
