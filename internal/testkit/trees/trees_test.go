package trees

import (
	"testing"

	"github.com/kiln-build/kiln/pkg/tree"
)

func TestPut(t *testing.T) {
	tr := tree.New(1)
	f := File(0o640, 5, []byte("data"))
	if Put(tr, 7, "/a/b/f", f) != f || tr.Lookup("/a/b/f") != f {
		t.Fatal("Put did not put the file at /a/b/f")
	}
	for _, p := range []string{"/a", "/a/b"} {
		if d := tr.Lookup(p); d == nil || d.Kind != tree.Dir || d.Mode != 0o755 || d.Mtime != 7 {
			t.Errorf("%s: %+v", p, d)
		}
	}
	if MkdirAll(tr, 9, "a/b/") != tr.Lookup("/a/b") || MkdirAll(tr, 9, "/") != tr.Root {
		t.Error("MkdirAll made anew what exists")
	}
	Put(tr, 7, "top", File(0o644, 5, nil))
	if n := Regular(t, tr, "/top"); n.Size != 0 {
		t.Errorf("/top: %+v", n)
	}
	if got := string(Read(t, f)); got != "data" || f.Mode != 0o640 || f.Mtime != 5 {
		t.Errorf("File: %q %+v", got, f)
	}
}
