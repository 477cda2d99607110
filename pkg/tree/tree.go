package tree

import (
	"sort"
	"strings"
)

// Kind is the type of an inode.
type Kind uint8

const (
	Regular Kind = iota + 1
	Dir
	Symlink
	CharDev
	BlockDev
	FIFO
)

// ModeType is the kind's file-type bits of a Linux st_mode (S_IFREG,
// S_IFDIR, ...), as ext4 and EROFS inodes store them; 0 for no kind.
func (k Kind) ModeType() uint32 {
	switch k {
	case Regular:
		return 0o100000
	case Dir:
		return 0o040000
	case Symlink:
		return 0o120000
	case CharDev:
		return 0o020000
	case BlockDev:
		return 0o060000
	case FIFO:
		return 0o010000
	}
	return 0
}

// DirentType is the kind's file type in a Linux directory entry, the
// numbering ext4 and EROFS dirents share (1 regular, 2 directory, 3 char,
// 4 block, 5 fifo, 7 symlink); 0 for no kind.
func (k Kind) DirentType() uint8 {
	switch k {
	case Regular:
		return 1
	case Dir:
		return 2
	case CharDev:
		return 3
	case BlockDev:
		return 4
	case FIFO:
		return 5
	case Symlink:
		return 7
	}
	return 0
}

func (k Kind) String() string {
	switch k {
	case Regular:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case CharDev:
		return "char"
	case BlockDev:
		return "block"
	case FIFO:
		return "fifo"
	}
	return "unknown"
}

// Inode is one file object of the merged tree.
type Inode struct {
	Kind     Kind
	Mode     uint32 // permission bits plus setuid/setgid/sticky (07777); no type bits
	UID, GID uint32
	Mtime    int64  // seconds since the Unix epoch, clamped to the build epoch
	Nsec     uint32 // nanoseconds of Mtime
	Size     int64  // regular files: content length; symlinks: len(Target)
	Content  Content
	Target   string // symlink target, verbatim
	Major    uint32 // device numbers
	Minor    uint32
	Xattrs   []Xattr // sorted by Name

	children map[string]*link // Dir only
}

// link is a directory entry as the merge keeps it: the inode, and the index
// of the layer that last wrote this name (whiteouts only remove names from
// lower layers).
type link struct {
	inode *Inode
	stamp int
}

// Dirent is a name in a directory and the inode it refers to.
type Dirent struct {
	Name  string
	Inode *Inode
}

// Children returns the entries of a directory, sorted by name in byte order.
// It returns nil for anything but a directory.
func (n *Inode) Children() []Dirent {
	if n.Kind != Dir || len(n.children) == 0 {
		return nil
	}
	out := make([]Dirent, 0, len(n.children))
	for name, c := range n.children {
		out = append(out, Dirent{name, c.inode})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NumChildren returns how many entries a directory has.
func (n *Inode) NumChildren() int { return len(n.children) }

// Child returns the named entry of a directory, or nil.
func (n *Inode) Child(name string) *Inode {
	if c := n.children[name]; c != nil {
		return c.inode
	}
	return nil
}

// SetChild adds or replaces a directory entry. It is for building trees by
// hand (tests, generated content such as a bootloader's files); layers go
// through Merger.
func (n *Inode) SetChild(name string, c *Inode) {
	if n.children == nil {
		n.children = map[string]*link{}
	}
	n.children[name] = &link{inode: c}
}

// RemoveChild deletes a directory entry.
func (n *Inode) RemoveChild(name string) { delete(n.children, name) }

// NewDir returns an empty directory inode.
func NewDir(mode, uid, gid uint32, mtime int64) *Inode {
	return &Inode{Kind: Dir, Mode: mode, UID: uid, GID: gid, Mtime: mtime, children: map[string]*link{}}
}

// Tree is a merged root filesystem.
type Tree struct {
	Root *Inode
}

// New returns a tree holding only a root directory (0755, root:root, mtime).
func New(mtime int64) *Tree { return &Tree{Root: NewDir(0o755, 0, 0, mtime)} }

// Lookup returns the inode at a slash-separated path ("" or "/" is the root),
// without following symlinks, or nil. Resolve follows them.
func (t *Tree) Lookup(p string) *Inode {
	n := t.Root
	for _, el := range splitPath(p) {
		if n == nil || n.Kind != Dir {
			return nil
		}
		n = n.Child(el)
	}
	return n
}

// WalkFunc is called for every inode of a walk; p is "/" for the root and
// "/a/b" below it. Hardlinked inodes are visited once per name.
type WalkFunc func(p string, d Dirent) error

// Walk visits the tree depth-first, parents before children, each
// directory's entries in byte order of their names. The order never
// depends on map iteration or on the order layers stored entries in.
func (t *Tree) Walk(fn WalkFunc) error {
	return walk("/", Dirent{"", t.Root}, fn)
}

func walk(p string, d Dirent, fn WalkFunc) error {
	if err := fn(p, d); err != nil {
		return err
	}
	if d.Inode.Kind != Dir {
		return nil
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, c := range d.Inode.Children() {
		if err := walk(prefix+c.Name, c, fn); err != nil {
			return err
		}
	}
	return nil
}

func splitPath(p string) []string {
	var out []string
	for _, el := range strings.Split(p, "/") {
		if el != "" && el != "." {
			out = append(out, el)
		}
	}
	return out
}
