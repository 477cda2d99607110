// Package build is the orchestrator: spec → layers → merged tree →
// partition plan → filesystems → image file. Each step is a function of
// its inputs and the epoch; the step order is the order of this file.
//
// It owns no format: it calls pkg/layer, pkg/tree, pkg/disk, pkg/fs/* and
// pkg/imgfmt, and derives every identifier through pkg/repro.
//
// A sealed partition (verity: true, seal.go) is written before the
// partition plan, into a temporary file, with pkg/verity's hash tree over
// it: its root hash goes on the kernel command line of the boot files
// (which an auto-sized ESP measures) and names the data and hash
// partitions (their GPT GUIDs), so it must exist first.
//
// It is the only library package that may import every stage (pkg/spec,
// pkg/layer, pkg/tree, pkg/fs and pkg/fs/all, pkg/disk, pkg/boot/*,
// pkg/initramfs, pkg/imgfmt, pkg/repro, pkg/verity); no library package imports it.
// The filesystem writers are those of pkg/fs/all, by the spec's value.
package build
