// Package fs is the shape every filesystem writer has, seen from the
// orchestrator: a Filesystem sizes a merged tree (MinSize), writes it into
// its region of the image (Write) and reports what it wrote (Report: the
// UUID and label for the build summary, and the byte extents of the files
// a bootloader patches). Params is the neutral identity pkg/build fills for
// every filesystem alike (partition name, label, epoch, identifiers by
// purpose), and Registry maps the spec's filesystem: value to a
// constructor.
//
// The read side is Kind: a filesystem's name, its writer, and how kiln
// inspect and kiln diff recognise it (Probe, giving Info as blkid shows
// it), read it back (ReadTree) and compare its header (Fields).
//
// It owns those types and nothing else: no format, no ID derivation (the
// caller's Params.UUID and Params.ID32 derive them), no list of
// filesystems (that is pkg/fs/all). It imports only pkg/tree; it must not
// import pkg/layer, pkg/repro, pkg/spec, pkg/build or any filesystem under
// it (they import it, not the reverse).
//
// Adding a filesystem is a new package under pkg/fs that exports its Kind,
// and one line in pkg/fs/all's Kinds (plus its name in pkg/spec's
// Filesystems, the values the spec accepts, which a test keeps equal).
package fs
