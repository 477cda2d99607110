// Package fat writes FAT file systems (FAT32, and FAT16/FAT12 for small
// volumes) holding a merged tree, and probes existing FAT boot sectors.
//
// The writer is pure Go and deterministic: every byte follows from the tree,
// the volume size and Options. Times come from inode mtimes (treated as UTC)
// or Options.Epoch, the volume ID from Options.VolumeID; directories are
// laid out in tree.Walk order, each file and directory in one contiguous
// run of clusters, so two writes of the same tree give identical images.
//
// Layout follows mkfs.fat (dosfstools): 2 FATs, media 0xF8, 32 reserved
// sectors on FAT32 with the FSInfo sector at 1 and the backup boot sector at
// 6 (backup FSInfo at 7), the root directory at cluster 2, and the same
// cluster size and FAT length choices as "mkfs.fat -F 32" (or, for FAT12/16,
// as mkfs.fat without -F). With Options.FATType 0 the writer picks FAT32
// whenever the size gives the 65525 clusters FAT32 needs (unlike mkfs.fat,
// which only picks FAT32 by itself from 512 MiB on: an EFI system partition
// should be FAT32), else FAT16, else FAT12.
//
// Names follow VFAT: a name that is a valid upper-case 8.3 name is stored as
// a short entry only; a lower-case one also, with the Windows NT case bits;
// any other name gets long-name (LFN) entries in UTF-16 and a generated,
// unique short name (NAME~1.EXT and so on). FAT compares names without
// regard to case, so two names of one directory that differ only in case
// are an error, as are symlinks, devices and FIFOs, which FAT cannot store.
// Hardlinked files are stored as independent copies.
//
// ReadTree reads a FAT volume, kiln's or another maker's, back into a
// tree, for kiln diff and checks; the image is hostile input: cluster
// chains are bounded and loops are errors. FileExtents finds where one
// file of such a volume lies, with the same directory and long-name
// decoding (parseEntries: one LFN codec, with appendLFN its encoder).
//
// New adapts the writer to pkg/fs (fs.Filesystem, for pkg/build's table):
// its Write reports the volume ID, the label and, through WriteLocate,
// where the files a boot loader patches lie, so that nothing reads back the
// volume it just wrote.
//
// It imports pkg/tree (what it writes and reads back), pkg/fs and
// pkg/repro; it
// must not import pkg/layer, pkg/spec, pkg/disk or pkg/build: a filesystem
// writer takes a merged tree and a window of the image, whatever made them.
package fat
