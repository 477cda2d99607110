// Package fs is the shape every filesystem writer has, seen from the
// orchestrator: a Filesystem sizes a merged tree (MinSize), writes it into
// its region of the image (Write) and reports what it wrote (Report: the
// UUID and label for the build summary, and the byte extents of the files
// a bootloader patches). Params is the neutral identity pkg/build fills for
// every filesystem alike (partition name, label, epoch, identifiers by
// purpose), and Registry maps the spec's filesystem: value to a
// constructor.
//
// It owns those types and nothing else: no format, no ID derivation (the
// caller's Params.UUID and Params.ID32 derive them), no list of
// filesystems (the table is in pkg/build). It imports only pkg/tree; it
// must not import pkg/layer, pkg/repro, pkg/spec, pkg/build or any writer
// under it (pkg/fs/ext4 and pkg/fs/fat import it, not the reverse).
//
// Adding a filesystem is a new package under pkg/fs with a New(Params)
// that returns a Filesystem, and one line in pkg/build's filesystems table
// (plus its name in pkg/spec's Filesystems, the values the spec accepts).
package fs
