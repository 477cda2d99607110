// Package tree owns the merged root filesystem: layers applied in order with
// OCI whiteout semantics, metadata normalised (times clamped to the epoch),
// and a sorted, deterministic walk for the filesystem writers.
//
// File data is never held here: a regular file's Inode references its
// content (Content). Hardlinks are several directory entries that
// point to the same *Inode.
//
// The package also owns the types that describe a file on its way into
// the tree: Entry (a layer's record, which pkg/layer yields and Merger
// applies), Content and Xattr. It must not import pkg/layer, so that the
// filesystem writers, which take a Tree, do not depend on how layers are
// read.
//
// Resolve and Glob are kiln's one symlink resolver: paths are looked up
// inside the tree as in a chroot, never on the host.
//
// It imports nothing of kiln.
package tree
