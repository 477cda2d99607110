package trees

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/tree"
)

// File is a regular file of the given mode and mtime, owned by root,
// holding data in memory.
func File(mode uint32, mtime int64, data []byte) *tree.Inode {
	return &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: mtime, Size: int64(len(data)), Content: testkit.Bytes(data)}
}

// MkdirAll returns the directory at p of tr, making it and its missing
// parents 0755 root:root with the given mtime.
func MkdirAll(tr *tree.Tree, mtime int64, p string) *tree.Inode {
	n := tr.Root
	for _, el := range strings.Split(p, "/") {
		if el == "" {
			continue
		}
		c := n.Child(el)
		if c == nil {
			c = tree.NewDir(0o755, 0, 0, mtime)
			n.SetChild(el, c)
		}
		n = c
	}
	return n
}

// Put sets n at p of tr, making missing parents as MkdirAll does, and
// returns n.
func Put(tr *tree.Tree, mtime int64, p string, n *tree.Inode) *tree.Inode {
	p = strings.Trim(p, "/")
	dir, name := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, name = p[:i], p[i+1:]
	}
	MkdirAll(tr, mtime, dir).SetChild(name, n)
	return n
}

// Read returns the content of n, which must be a regular file whose
// content has n.Size bytes.
func Read(t testing.TB, n *tree.Inode) []byte {
	t.Helper()
	if n == nil || n.Kind != tree.Regular {
		t.Fatalf("not a regular file: %+v", n)
	}
	b := testkit.ReadAll(t, n.Content)
	if int64(len(b)) != n.Size {
		t.Fatalf("content of %d bytes, inode says %d", len(b), n.Size)
	}
	return b
}

// Regular returns the regular file at p of tr (no symlinks followed).
func Regular(t testing.TB, tr *tree.Tree, p string) *tree.Inode {
	t.Helper()
	n := tr.Lookup(p)
	if n == nil || n.Kind != tree.Regular {
		t.Fatalf("no regular file %s", p)
	}
	return n
}

// Kernel returns the /boot/vmlinuz-* regular file of tr, a kernel
// package's tree.
func Kernel(t testing.TB, tr *tree.Tree) *tree.Inode {
	t.Helper()
	if boot := tr.Lookup("/boot"); boot != nil {
		for _, c := range boot.Children() {
			if strings.HasPrefix(c.Name, "vmlinuz-") && c.Inode.Kind == tree.Regular {
				return c.Inode
			}
		}
	}
	t.Fatal("no /boot/vmlinuz-* in the tree")
	return nil
}

// Merge merges layer files (tarballs, directories, .debs...), in order,
// into a new tree as kiln build does, with epoch as the only time.
func Merge(t testing.TB, epoch int64, paths ...string) *tree.Tree {
	t.Helper()
	tr, err := merge(epoch, paths)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func merge(epoch int64, paths []string) (*tree.Tree, error) {
	m := tree.NewMerger(epoch)
	for _, p := range paths {
		ls, err := layer.Open(p, layer.Options{Epoch: epoch})
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			if err := m.Apply(l); err != nil {
				return nil, err
			}
		}
	}
	return m.Tree(), nil
}

var debs struct {
	sync.Mutex
	trees map[string]*tree.Tree
}

// Debs is the tree of the Debian packages matching patterns (see
// testkit.FindDeb), merged in order by Merge once per test binary, for
// each epoch and list of patterns: callers share it and must not change
// it.
func Debs(t testing.TB, epoch int64, patterns ...string) *tree.Tree {
	t.Helper()
	var paths []string
	for _, p := range patterns {
		paths = append(paths, testkit.FindDeb(t, p))
	}
	key := fmt.Sprint(epoch, paths)
	debs.Lock()
	defer debs.Unlock()
	if tr := debs.trees[key]; tr != nil {
		return tr
	}
	tr, err := merge(epoch, paths)
	if err != nil {
		t.Fatalf("merging %s: %v", strings.Join(paths, ", "), err)
	}
	if debs.trees == nil {
		debs.trees = map[string]*tree.Tree{}
	}
	debs.trees[key] = tr
	return tr
}
