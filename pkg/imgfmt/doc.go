// Package imgfmt owns the image file formats kiln writes and reads: how
// the assembled disk becomes a file, and how a file becomes a disk again.
//
// It does not know about partitions or filesystems: it is handed a virtual
// disk size and offered writes at disk offsets (Create), or it opens an
// image and serves reads of its virtual disk (Open).
//
// # Writing
//
// Create returns an Output for one of:
//
//   - raw: a sparse file; ranges never written are holes.
//   - qcow2: version 3, 16-bit refcounts, clusters of 512 bytes to 2 MiB
//     (64 KiB by default), data clusters stored as they are or compressed
//     with zlib (raw deflate with a 4 KiB window, as qemu inflates it) or
//     zstd (compression_type 1, incompatible feature bit 3).
//   - vmdk: streamOptimized (version 3, deflated grains with markers, the
//     grain directory after the grains and found through the footer, an
//     end-of-stream marker), 64 KiB grains, the descriptor embedded.
//   - vhd: dynamic (2 MiB blocks) or fixed, optionally as Azure wants it
//     (fixed, a whole number of MiB).
//
// Every Output takes WriteAt and ReadAt in any order until Commit, which
// writes the image to a temporary file beside the destination and renames
// it into place; Abort removes everything. The destination is either the
// whole new image or untouched.
//
// raw and fixed VHD are the disk itself: writes go straight to a sparse
// temporary file, and a fixed VHD gets its footer at Commit. The other
// formats stage the disk in a store (store.go): an unlinked temporary file
// beside the destination that holds only the 64 KiB chunks that were
// written with something other than zeros, each in the slot it got when
// first written, and an in-memory index of 4 bytes per touched chunk.
// Commit walks the disk in increasing order (pipeline.go): workers, one
// per GOMAXPROCS, read each cluster, grain or block, skip it if it is all
// zero and compress it if the format says so; the emitter places the
// results strictly in disk order and builds the tables (qcow2 L1, L2 and
// refcounts; VMDK grain tables and directory; VHD BAT) as it goes. As
// chunks are consumed their space in the store is given back (hole
// punching), so staging and image are not both on disk in full.
//
// Peak disk use, with S the space the written data takes: raw and fixed
// VHD, S; qcow2, VMDK and dynamic VHD, about the larger of S and the
// image, plus up to 4 MiB consumed but not yet punched (where the
// filesystem cannot punch holes, S plus the image). Peak memory does not
// grow with the disk beyond the indexes: 4 bytes per touched 64 KiB chunk,
// 2 bytes per qcow2 host cluster (refcounts), 8 bytes per L2 table, 4
// bytes per VMDK grain table and per VHD block; units in flight are
// bounded to 64 MiB whatever the number of CPUs.
//
// # Determinism
//
// The same disk gives the same image, byte for byte, for every format and
// option: whatever the order the writes came in (only the content counts:
// layouts follow disk order, not write order), however many CPUs compress
// (units are compressed independently and written in disk order), and
// whenever it runs. No field comes from the clock or a random source:
//
//   - the VHD time stamp is Options.Epoch (zero: 2000-01-01, the VHD
//     epoch);
//   - the VHD unique ID and the VMDK CID are Options.ID, or when it is
//     zero a hash of the content (id.go);
//   - the VMDK descriptor names the extent by the destination's file name,
//     as a monolithic VMDK must: renaming the file changes those bytes.
//
// Fields that other tools fill in from the host are fixed: the VHD
// creator application is "kiln" and the host OS "Wi2k"; the VMDK
// descriptor has the IDE geometry (16 heads, 63 sectors) and qemu's
// virtualHWVersion and toolsVersion.
//
// The VHD geometry is the specification's CHS when that covers the disk
// exactly, else the maximum 65535/16/255: readers that size a disk by its
// geometry for unknown creators (qemu) then take CurrentSize, as Hyper-V,
// Azure and VirtualBox always do. qemu-img writes the same with
// force_size.
//
// # Reading
//
// Open detects the format by content and returns an Image, an io.ReaderAt
// of the virtual disk: raw; qcow2 versions 2 and 3 with standard, zero and
// compressed (zlib, zstd) clusters; VMDK hosted sparse extents
// (streamOptimized as kiln and qemu write it, monolithicSparse); VHD fixed
// and dynamic (honouring sector bitmaps). Backing files, encryption,
// external data files, qcow2 extended L2 entries, VMDK descriptor files
// with separate extents and differencing VHDs are errors. Formats Open
// recognises by their signature but does not read (VHDX, VDI, QED,
// Parallels, COWD VMDK, Bochs, cloop, DMG, a VHD with the 511-byte footer
// of Virtual PC before 5.0) are refused with an *UnsupportedFormatError:
// a recognised container is never read as raw bytes.
//
// Every image says which ranges of its disk are allocated (Extents): raw
// and fixed VHD from SEEK_DATA/SEEK_HOLE, qcow2 from its L2 tables, VMDK
// from its grain tables, dynamic VHD from its BAT; the rest reads as
// zeros. Copy writes an Image to an Output visiting only those ranges, so
// a 16 TiB qcow2 with one cluster written converts in the time of one
// cluster and its holes stay holes; kiln diff compares only the union of
// both images' ranges. This is the one path from an image to a disk:
// inspect, diff, convert and run all open images with Open.
//
// Readers treat every file as hostile. Every table a header sizes (the
// qcow2 L1 table, the VMDK grain directory, the VHD BAT) is checked
// against the file size and against maxTableBytes (32 MiB) before it is
// allocated; L2 and grain tables are at most 2 MiB and 2 KiB and only the
// last 16 are kept; a VMDK grain is at most 16 MiB (64 KiB is what VMware
// and qemu write), so a compressed grain needs at most 48 MiB of buffers.
// Reading any image, hostile or not, stays far under 256 MiB (the fuzz
// targets FuzzQcow2, FuzzVMDK and FuzzVHD check each input against
// testkit.ReadBound). Errors name the file (Open wraps them with the
// path) and the header field or table at fault.
//
// References: QEMU docs/interop/qcow2.txt and block/qcow2*.c, vmdk.c,
// vpc.c; VMware Virtual Disk Format 5.0; Microsoft Virtual Hard Disk Image
// Format Specification 1.0.
//
// It imports only pkg/repro: an image format holds a virtual disk and knows
// nothing of what is on it.
package imgfmt
