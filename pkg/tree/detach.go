package tree

import (
	"fmt"
	"strings"
)

// Detach takes the subtree at p out of t and returns it as a tree of its
// own: the contents of a partition mounted at p. In t, an empty directory
// with the same metadata stays behind as the mount point. A missing p is
// created as an empty directory (0755 root:root at epoch); a p that is not
// a directory, or that has a non-directory or symlink on its way, is an
// error (mount points are never resolved through symlinks).
func (t *Tree) Detach(p string, epoch int64) (*Tree, error) {
	els := splitPath(p)
	if len(els) == 0 {
		return nil, fmt.Errorf("BUG: detaching the root")
	}
	cur := t.Root
	for i, el := range els {
		c := cur.children[el]
		if c == nil {
			c = &link{inode: NewDir(0o755, 0, 0, epoch)}
			cur.children[el] = c
		}
		if c.inode.Kind != Dir {
			return nil, fmt.Errorf("mount point %s: /%s is a %s, not a directory", p, strings.Join(els[:i+1], "/"), c.inode.Kind)
		}
		if i == len(els)-1 {
			sub := c.inode
			stub := *sub
			stub.children = map[string]*link{}
			c.inode = &stub
			return &Tree{Root: sub}, nil
		}
		cur = c.inode
	}
	panic("unreachable")
}
