package tree_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/tree"
)

const fuzzEpoch = 1700000000

// Names and link targets the decoder picks from: ordinary names, names
// that look like whiteouts, and targets that climb, loop and go absolute.
var (
	fuzzNames   = []string{"a", "b", "c", "l", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh.", ".wh..", ".wh...", ".wh..wh.a", "a.wh.", "-"}
	fuzzTargets = []string{"a", "b", "l", "/", ".", "..", "../..", "/a", "/a/b", "a/../b", "../../../a", "l/a", "/l/l", ".wh.a", "b/.wh.a", ""}
)

// FuzzMerge decodes bytes into layers of entries (the clean paths the
// layer reader gives, names and targets from small alphabets) and merges
// them. The merge must not panic or loop; its errors are *tree.Error; the
// tree it gives keeps its invariants and is the same when merged again.
func FuzzMerge(f *testing.F) {
	f.Add([]byte{1, 0, 1, 1, 0, 0, 2, 1, 0})
	f.Add([]byte{2, 0, 0, 1, 1, 0, 1, 0, 2, 5, 1, 4, 0})
	f.Add([]byte{3, 1, 3, 2, 1, 2, 3, 0, 1, 0, 4, 2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		layers := decodeLayers(data)
		first, err := mergeAndList(t, layers)
		if err != nil {
			var te *tree.Error
			if !errors.As(err, &te) || te.Layer == "" {
				t.Fatalf("error %T is not a *tree.Error naming a layer: %v", err, err)
			}
			return
		}
		again, err := mergeAndList(t, layers)
		if err != nil {
			t.Fatalf("the second merge failed: %v", err)
		}
		if first != again {
			t.Fatalf("two merges differ:\n%s\n---\n%s", first, again)
		}
	})
}

// fuzzLayer is a layer made of entries in memory.
type fuzzLayer struct {
	name    string
	entries []tree.Entry
}

func (l *fuzzLayer) Name() string { return l.name }

func (l *fuzzLayer) Walk(fn func(e *tree.Entry) error) error {
	for _, e := range l.entries {
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

type fuzzContent []byte

func (c fuzzContent) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(c)), nil }

// decodeLayers turns bytes into layers: each entry is an op byte, then
// the bytes its path, target and size need; a missing byte reads as 0.
func decodeLayers(data []byte) []*fuzzLayer {
	i := 0
	next := func() int {
		if i >= len(data) {
			i++
			return 0
		}
		i++
		return int(data[i-1])
	}
	pick := func(list []string) string { return list[next()%len(list)] }
	path := func() string {
		n := next()%3 + 1
		els := make([]string, n)
		for j := range els {
			els[j] = pick(fuzzNames)
		}
		return strings.Join(els, "/")
	}
	ls := []*fuzzLayer{{name: "layer1"}}
	for i < len(data) {
		op := next()
		e := tree.Entry{Mode: uint32(next()) << 4 & 0o7777, Mtime: fuzzEpoch - 100 + int64(next()), UID: uint32(op >> 4)}
		switch op % 10 {
		case 0:
			ls = append(ls, &fuzzLayer{name: fmt.Sprintf("layer%d", len(ls)+1)})
			continue
		case 1:
			e.Type, e.Path = tree.TypeReg, path()
			e.Size = int64(next() % 4)
			e.Content = fuzzContent(bytes.Repeat([]byte{byte(op)}, int(e.Size)))
		case 2:
			e.Type, e.Path = tree.TypeDir, path()
		case 3:
			e.Type, e.Path, e.Linkname = tree.TypeSymlink, path(), pick(fuzzTargets)
		case 4:
			e.Type, e.Path, e.Linkname = tree.TypeHardlink, path(), path()
		case 5:
			e.Type, e.Path = tree.TypeChar, path()
			e.Major, e.Minor = uint32(op), uint32(next())
		case 6:
			e.Type, e.Path = tree.TypeFIFO, path()
		case 7:
			e.Type, e.Path = tree.TypeReg, path()+"/.wh."+pick(fuzzNames)
		case 8:
			e.Type, e.Path = tree.TypeReg, path()+"/.wh..wh..opq"
		case 9:
			e.Type, e.Path = tree.TypeDir, "." // the layer's root
		}
		l := ls[len(ls)-1]
		l.entries = append(l.entries, e)
	}
	return ls
}

// mergeAndList merges the layers, checks the tree and lists it.
func mergeAndList(t *testing.T, layers []*fuzzLayer) (string, error) {
	m := tree.NewMerger(fuzzEpoch)
	for _, l := range layers {
		if err := m.Apply(l); err != nil {
			return "", err
		}
	}
	var list strings.Builder
	// Inodes are numbered in walk order: hardlinks share a number, and a
	// directory met twice (a loop) is an error.
	ids := map[*tree.Inode]int{}
	err := m.Tree().Walk(func(p string, d tree.Dirent) error {
		n := d.Inode
		id, seen := ids[n]
		if !seen {
			id = len(ids)
			ids[n] = id
		}
		if p != "/" {
			if d.Name == "" || d.Name == "." || d.Name == ".." || strings.ContainsAny(d.Name, "/\x00") {
				t.Fatalf("%s: bad name %q", p, d.Name)
			}
			if strings.HasPrefix(d.Name, ".wh.") && n.Kind != tree.Dir {
				// Only a directory made to resolve a symlink's target
				// may have such a name; whiteouts never enter the tree.
				t.Fatalf("%s: a whiteout is in the tree as a %s", p, n.Kind)
			}
		}
		if n.Mode&^0o7777 != 0 || n.Mtime > fuzzEpoch {
			t.Fatalf("%s: mode %o, mtime %d", p, n.Mode, n.Mtime)
		}
		switch n.Kind {
		case tree.Dir:
			if seen {
				t.Fatalf("directory %s is met twice in the walk", p)
			}
		case tree.Symlink:
			if n.Target == "" || n.Size != int64(len(n.Target)) || n.Mode != 0o777 {
				t.Fatalf("%s: symlink %q of size %d, mode %o", p, n.Target, n.Size, n.Mode)
			}
		case tree.Regular:
			var got int64
			if n.Content != nil {
				rc, err := n.Content.Open()
				if err != nil {
					t.Fatal(err)
				}
				got, _ = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if got != n.Size {
				t.Fatalf("%s: %d bytes of content, size %d", p, got, n.Size)
			}
		case tree.CharDev, tree.BlockDev, tree.FIFO:
		default:
			t.Fatalf("%s: kind %d", p, n.Kind)
		}
		fmt.Fprintf(&list, "%s #%d %s %o %d:%d %d %d %q %d:%d\n", p, id, n.Kind, n.Mode, n.UID, n.GID, n.Mtime, n.Size, n.Target, n.Major, n.Minor)
		return nil
	})
	return list.String(), err
}
