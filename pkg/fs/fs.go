package fs

import (
	"fmt"
	"io"
	"sort"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Filesystem writes one partition's filesystem. Its identity (labels, IDs,
// epoch) is fixed when it is made (a Registry's New), so that MinSize and
// Write agree.
type Filesystem interface {
	// MinSize returns a size in bytes, a multiple of 1 MiB, that holds
	// t: Write of the same tree at that size succeeds.
	MinSize(t *tree.Tree) (int64, error)
	// Write formats [0,r.Size) of w, a window of the image whose offset
	// 0 is the filesystem's first byte, as a filesystem holding t. w must
	// read as zeros beforehand. It reports what it wrote, with the
	// extents of every file r.Locate names.
	Write(w io.WriterAt, r Region, t *tree.Tree) (*Report, error)
}

// Region is where a filesystem is written.
type Region struct {
	// Size is the filesystem's size in bytes.
	Size int64
	// DiskOffset is where the region starts on its disk, in bytes (FAT
	// records it as its hidden sectors, for boot loaders).
	DiskOffset int64
	// Locate lists absolute paths of regular files whose extents the
	// Report must give (a boot loader's, such as /ldlinux.sys). A path
	// that is not a regular file of the tree is an error; a writer that
	// cannot report extents fails when Locate is not empty.
	Locate []string
}

// Report is what a Write wrote.
type Report struct {
	UUID  string // the filesystem's UUID as blkid shows it (FAT: the volume ID as XXXX-XXXX)
	Label string
	// Extents are the extents of the files of Region.Locate, by path:
	// the byte ranges holding each file's data, in file order, relative
	// to the filesystem's start; together exactly the file's size.
	Extents map[string][]Extent
}

// Extent is a run of a file's bytes in its filesystem.
type Extent struct {
	Offset int64 // from the filesystem's first byte
	Length int64
}

// Params are a filesystem's identity, which the orchestrator gives every
// filesystem alike: each writer takes what it stores.
type Params struct {
	// Name is the partition's name, which a writer shortens into its
	// default label.
	Name string
	// Label is the spec's label; "" means the writer's default from Name.
	Label string
	// Epoch (Unix seconds) is every timestamp the writer stores.
	Epoch int64
	// UUID returns the 16-byte identifier the writer stores for purpose
	// ("fs-uuid", "hash-seed", "journal-uuid", ...): the spec's value
	// when it gives one, else one derived from the build's seed, the
	// partition's name and purpose.
	UUID func(purpose string) [16]byte
	// ID32 is UUID for 32-bit identifiers ("volume-id").
	ID32 func(purpose string) uint32
	// Compression is the spec's compression: for the filesystem ("" or
	// "none" for none; "lz4" for erofs). A writer refuses a value it does
	// not know; pkg/spec lets through only what the filesystem takes.
	Compression string
}

// LabelOr is the label a writer stores: Label when the spec gives one,
// else the first max bytes of Name.
func (p Params) LabelOr(max int) string {
	if p.Label != "" {
		return p.Label
	}
	if len(p.Name) > max {
		return p.Name[:max]
	}
	return p.Name
}

// New makes a Filesystem from its Params.
type New func(Params) (Filesystem, error)

// Registry maps the spec's filesystem: values to their writers.
type Registry map[string]New

// Lookup returns the writer registered as name.
func (r Registry) Lookup(name string) (New, error) {
	if n, ok := r[name]; ok && n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("no filesystem writer %q (have %v)", name, r.Names())
}

// Names returns the registered names, sorted.
func (r Registry) Names() []string {
	out := make([]string, 0, len(r))
	for n := range r {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Kind is one filesystem kiln knows: the spec's filesystem: value, its
// writer, and how kiln inspect and kiln diff recognise it on a partition
// and read it back. pkg/fs/all lists them; a filesystem package exports
// its Kind, and that list is where it is registered.
type Kind struct {
	// Name is the spec's filesystem: value ("ext4", "vfat").
	Name string
	// New makes a writer; nil for a filesystem kiln only reads.
	New New
	// Probe says whether r (a partition of size bytes) holds this
	// filesystem, with what inspect shows of it; an error means it does
	// not. Hostile input: bounded, never a panic.
	Probe func(r io.ReaderAt, size int64) (*Info, error)
	// ReadTree reads the whole filesystem back as a tree, within the
	// reader's bounds.
	ReadTree func(r io.ReaderAt, size int64) (*tree.Tree, error)
	// HeaderOffset is where the header that Fields describe starts (the
	// ext4 superblock at 1024, the FAT boot sector at 0); kiln diff
	// compares the 1024 bytes there field by field.
	HeaderOffset int64
	Fields       []HeaderField
}

// Info is what a Probe found, as inspect shows it.
type Info struct {
	Type  string // as blkid's TYPE ("ext4", "ext3", "jbd", "vfat", ...)
	Label string // as blkid's LABEL
	UUID  string // as blkid's UUID
	Size  int64  // bytes the filesystem spans
	Used  int64  // bytes in use
	// Inodes in use (files, directories, links, ...), 0 when the
	// filesystem does not count them (FAT).
	Inodes int64
}

// HeaderField is a named field of a filesystem's header: Off and Size in
// bytes from HeaderOffset (within its first 1024 bytes), and how to show
// it: "u" (little-endian unsigned), "hex", "uuid", "str" or "sha" (the
// sha256 of the bytes, for code).
type HeaderField struct {
	Name      string
	Off, Size int
	Show      string
}

// Field is a HeaderField, for the tables a filesystem package keeps.
func Field(name string, off, size int, show string) HeaderField {
	return HeaderField{Name: name, Off: off, Size: size, Show: show}
}
