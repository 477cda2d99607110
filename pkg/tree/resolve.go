package tree

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// maxLinkHops bounds the symlinks one resolution follows, like the
// kernel's MAXSYMLINKS.
const maxLinkHops = 40

// The errors of Resolve, for errors.Is.
var (
	ErrNotExist = errors.New("no such file or directory")
	ErrNotDir   = errors.New("not a directory")
	ErrLoop     = errors.New("too many levels of symbolic links")
)

// Resolve looks p up in the tree as the kernel would with the tree's root
// as "/" (a chroot): symlinks are followed, absolute targets from the
// tree's root and relative ones from the symlink's directory; ".." climbs
// the directories actually walked through (after a followed symlink, the
// target's parents) and never above the root. The last element is
// followed only with followLast (or when p ends in "/"). At most
// maxLinkHops symlinks are followed, as Linux's MAXSYMLINKS.
//
// It returns the inode and its canonical path: "/" or "/a/b", without
// symlinks, "." or "..". Errors wrap ErrNotExist, ErrNotDir or ErrLoop and
// name where the walk stopped. Nothing on the host is ever consulted.
//
// This is the one resolver of kiln: the merge resolves entries' parents
// with it, the boot stage its kernel and loaders, the initramfs its
// modules.
func (t *Tree) Resolve(p string, followLast bool) (*Inode, string, error) {
	return t.resolve(p, followLast, nil)
}

// resolve is Resolve, and with mkdir set it makes the path a directory
// path: every missing element, or one that is not a directory (after
// symlinks), is replaced by mkdir(dir, name), which must add it to dir
// and return it. The merge creates its implicit directories so.
func (t *Tree) resolve(p string, followLast bool, mkdir func(dir *Inode, name string) *Inode) (*Inode, string, error) {
	inodes := []*Inode{t.Root} // the directories walked through, root first
	var names []string         // names[i] leads from inodes[i] to inodes[i+1]
	where := func() string { return "/" + strings.Join(names, "/") }
	comps := strings.Split(p, "/")
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(names) > 0 {
				inodes, names = inodes[:len(inodes)-1], names[:len(names)-1]
			}
			continue
		}
		dir := inodes[len(inodes)-1]
		if dir.Kind != Dir {
			return nil, "", fmt.Errorf("%s: %w", where(), ErrNotDir)
		}
		child := dir.Child(c)
		if child != nil && child.Kind == Symlink && (len(comps) > 0 || followLast) {
			if hops++; hops > maxLinkHops {
				return nil, "", fmt.Errorf("%s: %w", p, ErrLoop)
			}
			if child.Target == "" {
				// Linux: an empty target names nothing.
				return nil, "", fmt.Errorf("%s: empty symlink: %w", path.Join(where(), c), ErrNotExist)
			}
			if strings.HasPrefix(child.Target, "/") {
				inodes, names = inodes[:1], names[:0]
			}
			comps = append(strings.Split(child.Target, "/"), comps...)
			continue
		}
		if mkdir != nil && (child == nil || child.Kind != Dir) {
			child = mkdir(dir, c)
		}
		if child == nil {
			return nil, "", fmt.Errorf("%s: %w", path.Join(where(), c), ErrNotExist)
		}
		inodes, names = append(inodes, child), append(names, c)
	}
	return inodes[len(inodes)-1], where(), nil
}

// Glob returns the paths of the tree that pattern matches, sorted: the
// pattern is absolute and split at "/", each element matched against the
// names of a directory with path.Match. Every directory on the way is
// resolved as Resolve does, so a symlink in the middle (/boot -> efi/boot,
// /lib -> usr/lib) is followed; the paths returned are the ones the
// pattern names, their last element not followed (Resolve it). No match
// is not an error; a malformed pattern is.
func (t *Tree) Glob(pattern string) ([]string, error) {
	els := strings.Split(strings.Trim(pattern, "/"), "/")
	for _, el := range els {
		if _, err := path.Match(el, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
		}
	}
	matches := []string{"/"}
	for _, el := range els {
		var next []string
		for _, m := range matches {
			d, _, err := t.Resolve(m, true)
			if err != nil || d.Kind != Dir {
				continue
			}
			for _, c := range d.Children() {
				if ok, _ := path.Match(el, c.Name); ok {
					next = append(next, path.Join(m, c.Name))
				}
			}
		}
		matches = next
	}
	sort.Strings(matches)
	return matches, nil
}
