package tree

import "io"

// Xattr is one extended attribute. Lists of them are kept sorted by Name.
type Xattr struct {
	Name  string
	Value []byte
}

// Content is the data of a regular file. It is a reference, not a copy:
// a region of a spill file, of an uncompressed archive, or a host file of a
// directory layer. Open may be called any number of times, from any
// goroutine, and returns exactly the file's Size bytes.
type Content interface {
	Open() (io.ReadCloser, error)
}

// EntryType is the kind of a layer entry.
type EntryType uint8

const (
	TypeReg      EntryType = iota + 1 // regular file
	TypeDir                           // directory
	TypeSymlink                       // symbolic link; Linkname is the target, kept verbatim
	TypeHardlink                      // hard link; Linkname is the cleaned path of an earlier entry
	TypeChar                          // character device
	TypeBlock                         // block device
	TypeFIFO                          // named pipe
)

func (t EntryType) String() string {
	switch t {
	case TypeReg:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFIFO:
		return "fifo"
	}
	return "unknown"
}

// Entry is one record of a layer, as the layer stores it: what a Layer
// yields (pkg/layer reads them) and Merger applies. Whiteouts (".wh.NAME",
// ".wh..wh..opq") are entries of TypeReg with their literal names;
// interpreting them is the merge's job.
type Entry struct {
	// Path is cleaned, slash-separated and relative to the layer root:
	// no leading "/" or "./", no "." or ".." elements, never empty.
	// Absolute names of a layer ("/etc/x") are taken relative to its root
	// ("etc/x"), as GNU tar does; names that would climb above the root
	// are errors, never entries.
	// The root directory itself is not an entry, unless the layer was
	// opened with layer.Options.KeepRoot: then a layer's root directory,
	// when the layer stores one, is passed as a TypeDir entry with Path
	// "." (the only case of a Path that is not a name below the root).
	Path     string
	Type     EntryType
	Mode     uint32 // permission bits plus setuid/setgid/sticky (07777); no type bits
	UID, GID uint32
	Mtime    int64  // seconds since the Unix epoch (not yet clamped)
	Nsec     uint32 // nanoseconds of Mtime
	Linkname string // symlink target (verbatim) or hardlink target (cleaned path)
	Major    uint32 // device numbers for TypeChar/TypeBlock
	Minor    uint32
	Xattrs   []Xattr // sorted by Name
	Size     int64   // regular files: length of Content
	Content  Content // regular files only; nil for empty files is allowed
}
