// Package build is the orchestrator: spec → layers → merged tree →
// partition plan → filesystems → image file. Each step is a function of
// its inputs and the epoch; the step order is the order of this file.
//
// It owns no format: it calls pkg/layer, pkg/tree, pkg/disk, pkg/fs/* and
// pkg/imgfmt, and derives every identifier through pkg/repro.
//
// It is the only library package that may import every stage (pkg/spec,
// pkg/layer, pkg/tree, pkg/fs and pkg/fs/all, pkg/disk, pkg/boot/*,
// pkg/initramfs, pkg/imgfmt, pkg/repro); no library package imports it.
// The filesystem writers are those of pkg/fs/all, by the spec's value.
package build
