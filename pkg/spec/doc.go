// Package spec loads, defaults and validates kiln's YAML build spec.
//
// It owns the spec's syntax and the checks that need nothing but the spec
// (unknown keys, sizes, names, mounts, types); every error names the file
// and the line of the key it is about. Every value is parsed here, once,
// into the typed fields marked "parsed values" (SizeBytes, GUIDValue,
// VolumeIDValue, ...), which are what pkg/build reads; the YAML strings
// stay as written, for the spec's digest. It does not open layers or
// compute layouts.
//
// It imports pkg/disk (for partition types and table kinds, the disk's
// vocabulary) and pkg/repro; it must not import pkg/layer, pkg/tree, the
// writers or pkg/build.
package spec
