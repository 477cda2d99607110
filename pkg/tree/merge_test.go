package tree

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// sliceLayer is a layer made in test code.
type sliceLayer struct {
	name    string
	entries []Entry
}

func (l sliceLayer) Name() string { return l.name }
func (l sliceLayer) Walk(fn func(*Entry) error) error {
	for i := range l.entries {
		e := l.entries[i]
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

func file(p, data string) Entry {
	return Entry{Path: p, Type: TypeReg, Mode: 0o644, Size: int64(len(data)), Content: testkit.String(data), Mtime: 100}
}
func dir(p string) Entry {
	return Entry{Path: p, Type: TypeDir, Mode: 0o755, Mtime: 100}
}
func symlink(p, target string) Entry {
	return Entry{Path: p, Type: TypeSymlink, Linkname: target, Mode: 0o777, Mtime: 100}
}
func hardlink(p, target string) Entry {
	return Entry{Path: p, Type: TypeHardlink, Linkname: target}
}
func wh(p string) Entry { return Entry{Path: p, Type: TypeReg, Mode: 0o644} }

// render lists the tree as "path kind [content|target]" lines, in walk order.
func render(t *testing.T, tr *Tree) string {
	t.Helper()
	var lines []string
	err := tr.Walk(func(p string, d Dirent) error {
		n := d.Inode
		s := p + " " + n.Kind.String()
		switch n.Kind {
		case Regular:
			if n.Content != nil {
				r, _ := n.Content.Open()
				b, _ := io.ReadAll(r)
				r.Close()
				s += " " + string(b)
			}
		case Symlink:
			s += " ->" + n.Target
		}
		lines = append(lines, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func merge(t *testing.T, layers ...[]Entry) (*Tree, error) {
	t.Helper()
	m := NewMerger(1000)
	for i, es := range layers {
		if err := m.Apply(sliceLayer{fmt.Sprintf("L%d", i+1), es}); err != nil {
			return nil, err
		}
	}
	return m.Tree(), nil
}

func TestMerge(t *testing.T) {
	base := []Entry{
		dir("etc"), file("etc/passwd", "root"), file("etc/hosts", "h1"),
		dir("var"), dir("var/cache"), file("var/cache/a", "A"), file("var/cache/b", "B"),
		dir("opt"), dir("opt/d"), file("opt/d/x", "X"),
		dir("usr"), dir("usr/bin"), symlink("bin", "usr/bin"),
		file("data", "D"),
	}
	tests := []struct {
		name  string
		upper []Entry
		want  []string // lines that must be present
		gone  []string // paths that must be absent
	}{
		{"later file wins", []Entry{file("etc/hosts", "h2")}, []string{"/etc/hosts file h2", "/etc/passwd file root"}, nil},
		{"whiteout file", []Entry{wh("etc/.wh.hosts")}, []string{"/etc/passwd file root"}, []string{"/etc/hosts"}},
		{"whiteout dir subtree", []Entry{wh("var/.wh.cache")}, []string{"/var dir"}, []string{"/var/cache", "/var/cache/a"}},
		{"whiteout of missing is a no-op", []Entry{wh("nope/.wh.x"), wh(".wh.nothing")}, []string{"/data file D"}, []string{"/nope"}},
		{"whiteout spares same-layer entry after it", []Entry{wh("etc/.wh.hosts"), file("etc/hosts", "new")}, []string{"/etc/hosts file new"}, nil},
		{"whiteout spares same-layer entry before it", []Entry{file("etc/hosts", "new"), wh("etc/.wh.hosts")}, []string{"/etc/hosts file new"}, nil},
		{"whiteout of a dir keeps this layer's children", []Entry{file("var/cache/c", "C"), wh("var/.wh.cache")}, []string{"/var/cache/c file C"}, []string{"/var/cache/a", "/var/cache/b"}},
		{"opaque dir", []Entry{dir("var/cache"), wh("var/cache/.wh..wh..opq"), file("var/cache/n", "N")}, []string{"/var/cache/n file N"}, []string{"/var/cache/a", "/var/cache/b"}},
		{"opaque marker after entries", []Entry{file("var/cache/n", "N"), wh("var/cache/.wh..wh..opq")}, []string{"/var/cache/n file N"}, []string{"/var/cache/a"}},
		{"file replaces dir", []Entry{file("opt/d", "now a file")}, []string{"/opt/d file now a file"}, []string{"/opt/d/x"}},
		{"dir replaces file", []Entry{dir("data"), file("data/in", "I")}, []string{"/data dir", "/data/in file I"}, nil},
		{"dir over dir keeps children", []Entry{dir("etc")}, []string{"/etc/passwd file root"}, nil},
		{"write through in-tree symlink", []Entry{file("bin/sh", "SH")}, []string{"/usr/bin/sh file SH", "/bin symlink ->usr/bin"}, []string{"/bin/sh"}},
		{"symlink replaced by file", []Entry{file("bin", "F")}, []string{"/bin file F", "/usr/bin dir"}, nil},
		{"hostile symlink clamps to root", []Entry{symlink("evil", "../../../../etc"), file("evil/shadow", "S")}, []string{"/etc/shadow file S"}, nil},
		{"absolute symlink resolves in tree", []Entry{symlink("abs", "/opt/d"), file("abs/y", "Y")}, []string{"/opt/d/y file Y"}, nil},
		{"hardlink to lower layer", []Entry{hardlink("etc/pw2", "etc/passwd")}, []string{"/etc/pw2 file root"}, nil},
		{"hardlink survives target whiteout", []Entry{hardlink("keep", "data"), wh(".wh.data")}, []string{"/keep file D"}, []string{"/data"}},
		{"implicit parents", []Entry{file("new/deep/f", "F")}, []string{"/new dir", "/new/deep dir", "/new/deep/f file F"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := merge(t, base, tc.upper)
			if err != nil {
				t.Fatal(err)
			}
			out := render(t, tr)
			have := map[string]bool{}
			paths := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				have[l] = true
				paths[strings.SplitN(l, " ", 2)[0]] = true
			}
			for _, w := range tc.want {
				if !have[w] {
					t.Errorf("missing %q in\n%s", w, out)
				}
			}
			for _, g := range tc.gone {
				if paths[g] {
					t.Errorf("%s should be gone:\n%s", g, out)
				}
			}
			if strings.Contains(out, ".wh.") {
				t.Errorf("a whiteout leaked into the tree:\n%s", out)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	base := []Entry{dir("d"), file("d/f", "x")}
	tests := []struct {
		name  string
		upper []Entry
		want  string
		entry string
	}{
		{"bare whiteout prefix", []Entry{wh("d/.wh.")}, "malformed whiteout", "d/.wh."},
		{"whiteout of dot", []Entry{wh("d/.wh..")}, "malformed whiteout", "d/.wh.."},
		{"whiteout of dotdot", []Entry{wh("d/.wh...")}, "malformed whiteout", "d/.wh..."},
		{"other .wh..wh. name", []Entry{wh("d/.wh..wh.foo")}, "malformed whiteout", "d/.wh..wh.foo"},
		{"whiteout as a directory", []Entry{file("d/.wh.x/y", "y")}, "malformed whiteout", "d/.wh.x/y"},
		{"hardlink to missing", []Entry{hardlink("l", "nope")}, "does not exist", "l"},
		{"hardlink to dir", []Entry{hardlink("l", "d")}, "is a directory", "l"},
		{"root as a file", []Entry{{Path: ".", Type: TypeReg}}, "root must be a directory", "."},
		{"symlink loop", []Entry{symlink("a", "b"), symlink("b", "a"), file("a/x", "")}, "too many levels", "a/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := merge(t, base, tc.upper)
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("want *Error, got %v", err)
			}
			if me.Layer != "L2" || me.Entry != tc.entry || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (layer %q entry %q), want %q on entry %q of L2", err, me.Layer, me.Entry, tc.want, tc.entry)
			}
		})
	}
}

func TestMergeMetadataAndClamp(t *testing.T) {
	e := file("f", "x")
	e.Mode = 0o4755
	e.UID, e.GID = 70000, 70001
	e.Mtime = 5000 // later than the epoch (1000): clamped
	e.Nsec = 7
	e.Xattrs = []Xattr{{Name: "security.capability", Value: []byte{1, 2}}, {Name: "user.a", Value: []byte("b")}}
	old := file("old", "o")
	old.Mtime, old.Nsec = 10, 5 // earlier than the epoch: kept
	dev := Entry{Path: "null", Type: TypeChar, Mode: 0o666, Major: 1, Minor: 3}
	tr, err := merge(t, []Entry{e, old, dev, {Path: ".", Type: TypeDir, Mode: 0o700, Mtime: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f := tr.Lookup("/f")
	if f.Mode != 0o4755 || f.UID != 70000 || f.GID != 70001 || f.Mtime != 1000 || f.Nsec != 0 || len(f.Xattrs) != 2 {
		t.Fatalf("metadata: %+v", f)
	}
	if o := tr.Lookup("old"); o.Mtime != 10 || o.Nsec != 5 {
		t.Fatalf("old mtime changed: %d.%d", o.Mtime, o.Nsec)
	}
	if d := tr.Lookup("null"); d.Kind != CharDev || d.Major != 1 || d.Minor != 3 {
		t.Fatalf("device: %+v", d)
	}
	if tr.Root.Mode != 0o700 || tr.Root.Mtime != 1 {
		t.Fatalf("root metadata not applied: %o %d", tr.Root.Mode, tr.Root.Mtime)
	}
}

func TestHardlinkIdentity(t *testing.T) {
	tr, err := merge(t,
		[]Entry{file("a", "1"), hardlink("b", "a")},
		[]Entry{hardlink("c", "a"), file("a", "2")},
	)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := tr.Lookup("a"), tr.Lookup("b"), tr.Lookup("c")
	if b != c || a == b {
		t.Fatalf("b and c must share the first inode, a must be new: a=%p b=%p c=%p", a, b, c)
	}
}

func TestWalkIsSorted(t *testing.T) {
	// Entries in reverse order must still walk in byte order.
	var es []Entry
	for _, n := range []string{"z", "b", "a", "B", "a0", "_"} {
		es = append(es, file(n, n))
	}
	tr, err := merge(t, es)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr.Walk(func(p string, d Dirent) error { got = append(got, p); return nil })
	if !sort.StringsAreSorted(got) || len(got) != 7 {
		t.Fatalf("walk order %v", got)
	}
}

func TestDetach(t *testing.T) {
	tr, err := merge(t, []Entry{dir("boot"), dir("boot/efi"), file("boot/efi/EFI", "e"), file("boot/vmlinuz", "k"), file("f", "")})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tr.Detach("/boot/efi", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Lookup("EFI") == nil || tr.Lookup("boot/efi/EFI") != nil || tr.Lookup("boot/efi").Kind != Dir || tr.Lookup("boot/vmlinuz") == nil {
		t.Fatalf("detach: root\n%s\nsub\n%s", render(t, tr), render(t, sub))
	}
	if _, err := tr.Detach("/f", 0); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("detaching a file: %v", err)
	}
	if s, err := tr.Detach("/srv/data", 0); err != nil || s.Root.NumChildren() != 0 || tr.Lookup("srv/data") == nil {
		t.Fatalf("detaching a missing path: %v", err)
	}
}
