// Package ext4 writes an ext4 filesystem holding a merged tree
// (pkg/tree) into a window of a disk image, and probes ext2/3/4
// superblocks.
//
// It owns everything inside the filesystem: geometry (block groups,
// flex_bg metadata, sparse_super backups), allocation, inodes, extent
// trees, directories (linear and hashed, half_md4 htree up to two index
// levels), extended attributes (in-inode and one external block), the
// internal jbd2 journal, lost+found, and crc32c metadata checksums
// everywhere (metadata_csum). The result has the features `mke2fs -t
// ext4 -b 4096 -O ^resize_inode` gives, and e2fsck -fn finds nothing.
//
// It does not own the partition table or where the window sits in the
// image (pkg/disk), the merge of layers (pkg/tree), or identity and time:
// UUIDs, the hash seed and the epoch come in through Options. Write never
// reads the clock, draws random numbers or iterates a map into bytes: two
// Writes of the same tree and Options give the same bytes.
//
// Write streams file contents (4 MiB at a time, never a whole file; files
// up to 1 MiB are read ahead by one goroutine into at most 32 buffers, and
// full 4 MiB write buffers are written by another), allocates
// blocks with a single forward cursor in tree.Walk order, so data is
// contiguous and placed in walk order, and writes only blocks that are
// not all zero: the destination must read as zeros beforehand (a fresh
// sparse file). All-zero 4 KiB blocks of regular files become holes.
//
// Memory grows with the number of inodes and directory entries (and a
// block bitmap of 32 MiB per TiB of filesystem), never with file data.
//
// Defaults: 4 KiB blocks, 256-byte inodes, 16 groups per flex group,
// 0% reserved blocks (see Options.ReservedPercent), one inode per 16 KiB
// but always at least 1/8 more inodes than the tree needs, journal sized
// like mke2fs (ext2fs_default_journal_size). No resize_inode: images are
// grown with resize2fs, which handles that on its own for ext4.
//
// ReadTree reads an ext4 (or ext2/3) filesystem, kiln's or another maker's,
// back into a tree, for kiln diff and checks; the image is hostile input:
// every size is checked against the image and every walk is bounded.
//
// It imports pkg/tree (what it writes and reads back) and pkg/repro; it
// must not import pkg/layer, pkg/spec, pkg/disk or pkg/build: a filesystem
// writer takes a merged tree and a window of the image, whatever made them.
package ext4
