package tree

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Whiteout names of the OCI image layer specification.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Error is a merge error: the layer and the entry it concerns.
type Error struct {
	Layer string
	Entry string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("layer %s: entry %q: %v", e.Layer, e.Entry, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Merger applies layers, in order, to a tree.
//
// Semantics (OCI image spec, layer.md, "Applying Changesets"):
//   - ".wh.NAME" deletes NAME, and everything below it, as lower layers
//     left it; names this same layer writes are not affected, whatever
//     the order of entries in the layer.
//   - "DIR/.wh..wh..opq" deletes every entry of DIR from lower layers.
//   - A whiteout is never itself part of the tree; malformed ones
//     (".wh." alone, ".wh..wh.x" other than the opaque marker, a whiteout
//     used as a directory) are errors.
//   - An entry replaces what its path held, except that a directory over
//     a directory only updates the metadata and keeps the children.
//   - A hardlink names an entry already in the tree (from this or a lower
//     layer); the new name shares that inode. Later changes to either
//     path replace the inode for that path only.
//   - Symlinks are stored verbatim. Parent directories of an entry are
//     resolved inside the tree, following symlinks as the kernel would
//     with the tree as root (".." never climbs above the root): this is
//     what containerd does when it extracts a layer and what dpkg does
//     for a .deb over a merged-/usr base. Nothing is resolved on the host.
//   - Every time later than the epoch is clamped to it; directories
//     created implicitly (a parent no entry described) are 0755 root:root
//     at the epoch.
type Merger struct {
	t     *Tree
	epoch int64
	n     int // index of the layer being applied, from 1; the root is 0
}

// NewMerger returns a merger onto an empty tree whose root is 0755
// root:root at the epoch.
func NewMerger(epoch int64) *Merger {
	return &Merger{t: New(epoch), epoch: epoch}
}

// Tree returns the merged tree.
func (m *Merger) Tree() *Tree { return m.t }

// Layer is what the merge needs of a layer (pkg/layer's layers are ones).
type Layer interface {
	Name() string
	Walk(fn func(e *Entry) error) error
}

// Apply merges one layer on top of the layers applied before it.
func (m *Merger) Apply(l Layer) error {
	m.n++
	return l.Walk(func(e *Entry) error {
		if err := m.apply(e); err != nil {
			var te *Error
			if errors.As(err, &te) {
				return err
			}
			return &Error{Layer: l.Name(), Entry: e.Path, Err: err}
		}
		return nil
	})
}

func (m *Merger) clamp(sec int64, nsec uint32) (int64, uint32) {
	if sec > m.epoch || (sec == m.epoch && nsec > 0) {
		return m.epoch, 0
	}
	return sec, nsec
}

func (m *Merger) apply(e *Entry) error {
	p := e.Path
	if p == "" || p == "." {
		// The layer describes the root directory itself.
		if e.Type != TypeDir {
			return fmt.Errorf("the root must be a directory, not a %s", e.Type)
		}
		m.setMeta(m.t.Root, e)
		return nil
	}
	if strings.HasPrefix(p, "/") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("BUG: layer reader passed an unclean path")
	}
	dir, base := path.Split(p)
	for _, el := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
		if strings.HasPrefix(el, whiteoutPrefix) {
			return fmt.Errorf("malformed whiteout: %q is used as a directory", el)
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return m.whiteout(dir, base)
	}
	parent, err := m.parentDir(dir, true)
	if err != nil {
		return err
	}
	old := parent.children[base]

	if e.Type == TypeHardlink {
		target, err := m.resolveLink(e.Linkname)
		if err != nil {
			return err
		}
		parent.children[base] = &link{inode: target, stamp: m.n}
		return nil
	}

	if e.Type == TypeDir && old != nil && old.inode.Kind == Dir {
		m.setMeta(old.inode, e)
		old.stamp = m.n
		return nil
	}
	n := &Inode{}
	switch e.Type {
	case TypeReg:
		n.Kind = Regular
		n.Size = e.Size
		n.Content = e.Content
		if e.Size > 0 && e.Content == nil {
			return fmt.Errorf("BUG: file of %d bytes without content", e.Size)
		}
	case TypeDir:
		n.Kind = Dir
		n.children = map[string]*link{}
	case TypeSymlink:
		n.Kind = Symlink
		n.Target = e.Linkname
		n.Size = int64(len(e.Linkname))
		if e.Linkname == "" {
			return fmt.Errorf("symlink with an empty target")
		}
	case TypeChar:
		n.Kind = CharDev
	case TypeBlock:
		n.Kind = BlockDev
	case TypeFIFO:
		n.Kind = FIFO
	default:
		return fmt.Errorf("unsupported entry type %d", e.Type)
	}
	m.setMeta(n, e)
	if n.Kind == Symlink {
		n.Mode = 0o777
	}
	parent.children[base] = &link{inode: n, stamp: m.n}
	return nil
}

func (m *Merger) setMeta(n *Inode, e *Entry) {
	n.Mode = e.Mode & 0o7777
	n.UID, n.GID = e.UID, e.GID
	n.Mtime, n.Nsec = m.clamp(e.Mtime, e.Nsec)
	n.Major, n.Minor = e.Major, e.Minor
	n.Xattrs = nil
	if len(e.Xattrs) > 0 {
		n.Xattrs = append([]Xattr(nil), e.Xattrs...)
	}
}

// whiteout applies ".wh.NAME" or the opaque marker found in directory dir.
func (m *Merger) whiteout(dir, base string) error {
	if base == opaqueMarker {
		d, err := m.parentDir(dir, true)
		if err != nil {
			return err
		}
		for name := range d.children {
			m.removeLower(d, name)
		}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, whiteoutPrefix) {
		return fmt.Errorf("malformed whiteout %q", base)
	}
	d, err := m.parentDir(dir, false)
	if err != nil {
		return err
	}
	if d != nil {
		m.removeLower(d, name)
	}
	return nil
}

// removeLower deletes what lower layers put at d/name, keeping whatever
// the current layer wrote there.
func (m *Merger) removeLower(d *Inode, name string) {
	c := d.children[name]
	if c == nil {
		return
	}
	if c.inode.Kind == Dir {
		for sub := range c.inode.children {
			m.removeLower(c.inode, sub)
		}
		if c.stamp == m.n || len(c.inode.children) > 0 {
			return
		}
	} else if c.stamp == m.n {
		return
	}
	delete(d.children, name)
}

// parentDir resolves the directory dir (a cleaned path with a trailing
// slash, or ""), following symlinks inside the tree (Tree.resolve). With
// create, missing directories are made (implicit) and a non-directory in
// the way is replaced by one; without, a missing directory gives nil.
func (m *Merger) parentDir(dir string, create bool) (*Inode, error) {
	var mkdir func(*Inode, string) *Inode
	if create {
		mkdir = func(d *Inode, name string) *Inode {
			n := NewDir(0o755, 0, 0, m.epoch)
			d.children[name] = &link{inode: n, stamp: m.n}
			return n
		}
	}
	n, _, err := m.t.resolve(strings.TrimSuffix(dir, "/"), true, mkdir)
	switch {
	case errors.Is(err, ErrLoop):
		return nil, err
	case err != nil:
		if create {
			return nil, fmt.Errorf("BUG: resolving %q to create it: %w", dir, err)
		}
		return nil, nil
	case n.Kind != Dir:
		if create {
			return nil, fmt.Errorf("BUG: %q is a %s after creating it", dir, n.Kind)
		}
		return nil, nil
	}
	return n, nil
}

// resolveLink finds the inode a hardlink names: parents resolved as for
// entries, the last element not followed. It must exist and not be a
// directory.
func (m *Merger) resolveLink(target string) (*Inode, error) {
	if target == "" || target == "." {
		return nil, fmt.Errorf("hardlink without a target")
	}
	dir, base := path.Split(target)
	d, err := m.parentDir(dir, false)
	if err != nil {
		return nil, err
	}
	var c *link
	if d != nil {
		c = d.children[base]
	}
	if c == nil {
		return nil, fmt.Errorf("hardlink target %q does not exist in this or a lower layer", target)
	}
	if c.inode.Kind == Dir {
		return nil, fmt.Errorf("hardlink target %q is a directory", target)
	}
	return c.inode, nil
}
