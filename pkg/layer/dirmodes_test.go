//go:build linux

package layer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/pkg/tree"
)

// checkout writes the same small tree under root as a git checkout made
// with umask mask would: git creates files 0666 or 0777 (executable) and
// directories 0777, less the umask.
func checkout(t *testing.T, root string, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/init.d"), 0o777))
	must(os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("kiln\n"), 0o666))
	must(os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("root:*:1::::::\n"), 0o666))
	must(os.WriteFile(filepath.Join(root, "etc/init.d/rcS"), []byte("#!/bin/sh\n"), 0o777))
	must(os.Symlink("init.d/rcS", filepath.Join(root, "etc/rc")))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o777))
}

// TestDirModesUmask: the same checkout under umask 022 and 002 (and 077,
// and Bazel's read-only 0555 staging) walks to identical entries with the
// default policy. Before, modes were the host's: 0664/0775 under umask 002.
func TestDirModesUmask(t *testing.T) {
	walk := func(mask int, chmodAll os.FileMode) []got {
		root := t.TempDir()
		checkout(t, root, mask)
		if chmodAll != 0 {
			filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().Type() != os.ModeSymlink {
					m := chmodAll
					if fi.Mode()&0o100 != 0 || fi.IsDir() {
						m |= 0o111
					}
					os.Chmod(p, m)
				}
				return nil
			})
			t.Cleanup(func() {
				filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.IsDir() {
						os.Chmod(p, 0o755)
					}
					return nil
				})
			})
		}
		return walkAll(t, openOne(t, root, Options{Epoch: 7, KeepRoot: true}))
	}
	ref := walk(0o022, 0)
	compare(t, ref, []want{
		{path: ".", typ: tree.TypeDir, mode: 0o755, mtime: 7},
		{path: "etc", typ: tree.TypeDir, mode: 0o755, mtime: 7},
		{path: "etc/hostname", typ: tree.TypeReg, mode: 0o644, mtime: 7, data: "kiln\n"},
		{path: "etc/init.d", typ: tree.TypeDir, mode: 0o755, mtime: 7},
		{path: "etc/init.d/rcS", typ: tree.TypeReg, mode: 0o755, mtime: 7, data: "#!/bin/sh\n"},
		{path: "etc/rc", typ: tree.TypeSymlink, mode: 0o777, mtime: 7, link: "init.d/rcS"},
		{path: "etc/shadow", typ: tree.TypeReg, mode: 0o644, mtime: 7, data: "root:*:1::::::\n"},
		{path: "tmp", typ: tree.TypeDir, mode: 0o755, mtime: 7},
	})
	for _, c := range []struct {
		name  string
		mask  int
		chmod os.FileMode
	}{{"umask 002", 0o002, 0}, {"umask 077", 0o077, 0}, {"bazel 0444/0555", 0o022, 0o444}} {
		if got := walk(c.mask, c.chmod); !sameWalk(ref, got) {
			t.Errorf("%s: walk differs from umask 022's:\n%v\n%v", c.name, got, ref)
		}
	}
}

// sameWalk compares walks by what ends up in an image.
func sameWalk(a, b []got) bool {
	strip := func(gs []got) []got {
		out := make([]got, len(gs))
		for i, g := range gs {
			g.Content = nil
			out[i] = g
		}
		return out
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// TestDirModesPreserveAndChmod: ModesPreserve keeps the host's modes
// (0664/0775 of a umask 002 checkout); DirChmod sets named entries' modes
// over either policy; a DirChmod path the layer lacks, and DirChmod or
// ModesPreserve on a layer that is not a directory, are errors.
func TestDirModesPreserveAndChmod(t *testing.T) {
	root := t.TempDir()
	checkout(t, root, 0o002)
	modes := func(o Options) map[string]uint32 {
		m := map[string]uint32{}
		for _, g := range walkAll(t, openOne(t, root, o)) {
			m[g.Path] = g.Mode
		}
		return m
	}
	pre := modes(Options{DirModes: ModesPreserve, KeepRoot: true})
	for p, want := range map[string]uint32{"etc": 0o775, "etc/hostname": 0o664, "etc/init.d/rcS": 0o775, "etc/rc": 0o777} {
		if pre[p] != want {
			t.Errorf("preserve: %s has mode %#o, want %#o", p, pre[p], want)
		}
	}
	chmod := map[string]uint32{"etc/shadow": 0o640, "tmp": 0o1777, ".": 0o700, "etc/init.d/rcS": 0o4750}
	for _, pol := range []DirModes{ModesGit, ModesPreserve} {
		got := modes(Options{DirModes: pol, DirChmod: chmod, KeepRoot: true})
		for p, want := range chmod {
			if got[p] != want {
				t.Errorf("policy %d: chmod %s: mode %#o, want %#o", pol, p, got[p], want)
			}
		}
		if pol == ModesGit && got["etc/hostname"] != 0o644 {
			t.Errorf("chmod changed an entry it does not name: etc/hostname %#o", got["etc/hostname"])
		}
	}

	err := openWalk(root, Options{DirChmod: map[string]uint32{"etc/passwd": 0o644}})
	wantError(t, err, root, "", nil)
	testErrContains(t, err, "chmod names /etc/passwd")

	tarPath := writeFile(t, t.TempDir(), "l.tar", tarOne(t))
	for _, o := range []Options{{DirChmod: map[string]uint32{"etc/one": 0o600}}, {DirModes: ModesPreserve}} {
		_, err := Open(tarPath, o)
		wantError(t, err, tarPath, "", nil)
		testErrContains(t, err, "for directory layers")
	}
}

func testErrContains(t *testing.T, err error, s string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), s) {
		t.Errorf("error %v does not contain %q", err, s)
	}
	var le *Error
	if !errors.As(err, &le) {
		t.Errorf("%T is not a *layer.Error", err)
	}
}
