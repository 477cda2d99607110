//go:build linux

package layer

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/tree"
)

// makeDirLayer builds a host tree, creating names in an order that is not
// the sorted one, and returns the entries a walk must give.
func makeDirLayer(t *testing.T, root string, epoch int64, uid, gid uint32) []want {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel, data string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		must(os.WriteFile(p, []byte(data), 0o600))
		must(os.Chmod(p, mode))
	}
	dir := func(rel string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		must(os.Mkdir(p, 0o700))
		must(os.Chmod(p, mode))
	}
	must(os.Chmod(root, 0o755))
	dir("c", 0o750)
	file("c/z", "zed", 0o600)
	file("b", "bee", 0o644)
	file("a", "aye", 0o755|os.ModeSetuid)
	must(os.Link(filepath.Join(root, "a"), filepath.Join(root, "c/y")))
	file("c/a", "ay", 0o644)
	dir("B", 0o777|os.ModeSticky)
	must(os.Symlink("../outside", filepath.Join(root, "l")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	must(os.Chmod(filepath.Join(root, "fifo"), 0o640))
	file("empty", "", 0o600)
	ln, err := net.Listen("unix", filepath.Join(root, "sock"))
	must(err)
	t.Cleanup(func() { ln.Close() })
	dir("dev", 0o755)
	// Devices need CAP_MKNOD; without it the walk is checked without one.
	devErr := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3)
	if devErr == nil {
		must(os.Chmod(filepath.Join(root, "dev/null"), 0o666))
	} else {
		t.Logf("no device node: %v", devErr)
	}

	e := func(path string, typ tree.EntryType, mode uint32) want {
		return want{path: path, typ: typ, mode: mode, uid: uid, gid: gid, mtime: epoch}
	}
	reg := func(path, data string, mode uint32) want {
		w := e(path, tree.TypeReg, mode)
		w.data = data
		return w
	}
	link := func(w want, target string) want { w.link = target; return w }
	ws := []want{
		e("B", tree.TypeDir, 0o1777),
		reg("a", "aye", 0o4755),
		reg("b", "bee", 0o644),
		e("c", tree.TypeDir, 0o750),
		reg("c/a", "ay", 0o644),
		link(e("c/y", tree.TypeHardlink, 0o4755), "a"),
		reg("c/z", "zed", 0o600),
		e("dev", tree.TypeDir, 0o755),
	}
	if devErr == nil {
		w := e("dev/null", tree.TypeChar, 0o666)
		w.major, w.minor = 1, 3
		ws = append(ws, w)
	}
	return append(ws,
		reg("empty", "", 0o600),
		e("fifo", tree.TypeFIFO, 0o640),
		link(e("l", tree.TypeSymlink, 0o777), "../outside"),
		// sock: skipped
	)
}

func TestDirLayer(t *testing.T) {
	root := t.TempDir()
	ws := makeDirLayer(t, root, 1234, 1000, 100)
	o := Options{Epoch: 1234, DirUID: 1000, DirGID: 100, DirModes: ModesPreserve}
	l := openOne(t, root, o)
	if l.Name() != root {
		t.Errorf("name %q", l.Name())
	}
	first := walkAll(t, l)
	compare(t, first, ws)

	// Host mtimes do not matter: change them all, walk again.
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().Type() != os.ModeSymlink {
			os.Chtimes(p, time.Unix(99, 0), time.Unix(42, 0))
		}
		return nil
	})
	second := walkAll(t, openOne(t, root, o))
	if !reflect.DeepEqual(first, second) {
		t.Errorf("walks differ after mtimes changed:\n%v\n%v", first, second)
	}

	// KeepRoot passes the root directory first.
	withRoot := walkAll(t, openOne(t, root, Options{Epoch: 1234, DirUID: 1000, DirGID: 100, KeepRoot: true, DirModes: ModesPreserve}))
	compare(t, withRoot, append([]want{{path: ".", typ: tree.TypeDir, mode: 0o755, uid: 1000, gid: 100, mtime: 1234}}, ws...))

	// A file that changed size since the walk cannot be read; nor can
	// one replaced by a symlink.
	var b, z tree.Content
	for _, g := range second {
		switch g.Path {
		case "b":
			b = g.Content
		case "c/z":
			z = g.Content
		}
	}
	if err := os.WriteFile(filepath.Join(root, "b"), []byte("longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := b.Open()
	wantError(t, err, root, "b", nil)
	if err := os.Remove(filepath.Join(root, "c/z")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(root, "c/z")); err != nil {
		t.Fatal(err)
	}
	_, err = z.Open()
	wantError(t, err, root, "c/z", nil)
}

func TestDevNumbers(t *testing.T) {
	mkdev := func(ma, mi uint64) uint64 {
		return mi&0xff | (ma&0xfff)<<8 | (mi&^0xff)<<12 | (ma&^0xfff)<<32
	}
	for _, d := range [][2]uint32{{1, 3}, {8, 0}, {259, 70000}, {4095, 255}, {4096, 1 << 20}, {1 << 31, 1<<32 - 1}} {
		dev := mkdev(uint64(d[0]), uint64(d[1]))
		if ma, mi := devMajor(dev), devMinor(dev); ma != d[0] || mi != d[1] {
			t.Errorf("device %d,%d decoded as %d,%d", d[0], d[1], ma, mi)
		}
	}
}
