// Package diff explains how two disk images differ: the partition tables
// field by field, then per partition the filesystem's superblock or boot
// sector fields by name and the file trees (added, removed, changed:
// type, mode, owner, size, content, xattrs, link target, times, device),
// and last the byte ranges that differ but none of these explain.
//
// It reads images; it owns no format. Partition tables come from pkg/disk,
// trees from the filesystems' readers.
//
// It must not import pkg/layer, pkg/spec or pkg/build: it judges finished
// images, whatever made them.
package diff
