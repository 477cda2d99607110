// Package imgfmt owns the image file formats kiln writes: how the assembled
// disk becomes a file. Today that is raw (sparse, written atomically); qcow2,
// VMDK and VHD come later behind the same Output.
//
// It does not know about partitions or filesystems: it is handed a virtual
// disk size and offered writes at disk offsets.
package imgfmt
