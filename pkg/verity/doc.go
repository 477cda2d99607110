// Package verity writes and checks dm-verity hash devices in Go: the
// 512-byte superblock exactly as `veritysetup format` (cryptsetup 2.x)
// writes it, followed by the hash tree of format (hash_type) 1, the one the
// kernel's dm-verity target and veritysetup use by default.
//
// It owns bytes only: data in (an io.ReaderAt), hash device out (an
// io.WriterAt), the root hash returned. It does not choose the salt or the
// UUID: they are parameters, and kiln derives both from the data's digest
// and the build seed (pkg/repro) so that two builds of the same content
// give the same hash device and root hash. It knows nothing of partitions,
// partition types or kernel command lines.
//
// The layout, from cryptsetup's on-disk format document and the kernel's
// Documentation/admin-guide/device-mapper/verity.rst:
//
//   - offset 0: the superblock (signature "verity\0\0", version 1,
//     hash_type 1, uuid, algorithm name, block sizes, data block count,
//     salt), zero-padded to the first hash block boundary;
//   - then the tree, its levels from the top (one block) down to level 0
//     (the digests of the data blocks), each level a whole number of hash
//     blocks, the last one zero-padded;
//   - each digest is H(salt || block), stored in a slot of the next power of
//     two at or above the digest size, as many slots per hash block as the
//     largest power of two that fits;
//   - the root hash is the digest of the single top block, or, for data of
//     one block (no tree), the digest of that block.
//
// Data is read block by block in batches and hashed on several goroutines;
// digests are consumed in block order, so the output does not depend on
// scheduling. Memory stays bounded (a batch plus one hash block per level)
// whatever the data size; all-zero data blocks are hashed once.
package verity
