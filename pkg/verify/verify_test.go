package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/spec"
)

// fakeKiln writes a script that plays kiln build: it writes the output
// file (-o) from what it sees of its environment.
func fakeKiln(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kiln")
	script := "#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in -o) out=$2; shift;; esac; shift; done\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func testSpec(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "layer", "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "layer", "etc", "hostname"), []byte("x\n"), 0o644)
	os.Symlink("hostname", filepath.Join(dir, "layer", "etc", "link"))
	os.Link(filepath.Join(dir, "layer", "etc", "hostname"), filepath.Join(dir, "layer", "hl"))
	p := filepath.Join(dir, "kiln.yaml")
	os.WriteFile(p, []byte("layers:\n  - path: layer/\ndisk:\n  size: 64MiB\n  partitions:\n    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\noutput: {path: x.img}\n"), 0o644)
	return p
}

func TestDetectsDifference(t *testing.T) {
	// A build that leaks the time zone into its output is caught.
	kiln := fakeKiln(t, `printf '%s' "${TZ:-none}" > "$out"`)
	res, err := Run(testSpec(t), Options{Kiln: kiln})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Cleanup()
	if res.Reproducible || res.SumA == res.SumB {
		t.Fatalf("a TZ-dependent build passed as reproducible: %+v", res)
	}
}

func TestVariesEnvironmentAndLayers(t *testing.T) {
	// The fake build records what it saw; the second build must see
	// another world, and the copied layer with the original's seed.
	kiln := fakeKiln(t, `spec=""; for a; do spec=$a; done
{ echo "TZ=$TZ LC_ALL=$LC_ALL GOMAXPROCS=$GOMAXPROCS KILN_CACHE=$KILN_CACHE umask=$(umask) pwd=$(pwd)"; } > "$out"`)
	spec := testSpec(t)
	keep := t.TempDir()
	res, err := Run(spec, Options{Kiln: kiln, KeepDir: keep})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Cleanup()
	a, _ := os.ReadFile(filepath.Join(keep, "a", "x.img"))
	b, _ := os.ReadFile(filepath.Join(keep, "b", "x.img"))
	if string(a) == string(b) {
		t.Fatalf("the second build saw the same environment: %s", a)
	}
	for _, want := range []string{"TZ=", "GOMAXPROCS=", "umask=0077", "KILN_CACHE=off"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("second build's environment lacks %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), "pwd="+filepath.Dir(spec)) {
		t.Errorf("second build ran in the spec's folder: %s", b)
	}
	// The rewritten spec points at a copy of the layer and keeps the seed.
	var copied string
	for _, v := range res.Variations {
		if strings.HasPrefix(v, "directory layer layer/") {
			copied = v
		}
	}
	if copied == "" {
		t.Fatalf("directory layer not varied: %v", res.Variations)
	}
}

func TestShuffledCopy(t *testing.T) {
	spec := testSpec(t)
	src := filepath.Join(filepath.Dir(spec), "layer")
	dst := filepath.Join(t.TempDir(), "copy")
	if err := shuffledCopy(src, dst, newRand(), false); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "etc", "hostname"))
	if err != nil || string(b) != "x\n" {
		t.Fatalf("content: %q %v", b, err)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "etc", "link")); l != "hostname" {
		t.Fatalf("symlink: %q", l)
	}
	a, _ := os.Stat(filepath.Join(dst, "etc", "hostname"))
	h, _ := os.Stat(filepath.Join(dst, "hl"))
	if !os.SameFile(a, h) {
		t.Fatal("hardlink not kept")
	}
	orig, _ := os.Stat(filepath.Join(src, "etc", "hostname"))
	if !a.ModTime().After(orig.ModTime()) {
		t.Fatal("mtime not changed")
	}
}

// TestVariesModes: the second build's copy of a directory layer has the
// modes of a checkout made with umask 002 (0664/0775), unless the layer
// preserves host modes, whose copy keeps them. Before, copies kept the
// modes, so a build that took them from the checkout passed verify.
func TestVariesModes(t *testing.T) {
	specPath := testSpec(t)
	dir := filepath.Dir(specPath)
	os.WriteFile(filepath.Join(dir, "layer", "run"), []byte("#!/bin/sh\n"), 0o755)
	os.Chmod(filepath.Join(dir, "layer", "run"), 0o755)
	os.Chmod(filepath.Join(dir, "layer", "etc", "hostname"), 0o644)
	os.Chmod(filepath.Join(dir, "layer", "etc"), 0o755)
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	for _, tc := range []struct {
		modes              string
		file, exe, dirMode os.FileMode
	}{{"", 0o664, 0o775, 0o775}, {"preserve", 0o644, 0o755, 0o755}} {
		src := "layers:\n  - path: layer/\n"
		if tc.modes != "" {
			src += "    modes: " + tc.modes + "\n"
		}
		src += "disk:\n  size: 64MiB\n  partitions:\n    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\noutput: {path: x.img}\n"
		if err := os.WriteFile(specPath, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := spec.Load(specPath)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		if _, copied, err := variedSpec(s, specPath, out, newRand()); err != nil || len(copied) != 1 {
			t.Fatalf("variedSpec: %v %v", copied, err)
		} else if want := tc.modes == ""; strings.Contains(copied[0], "umask 002") != want {
			t.Errorf("modes %q: variation %q", tc.modes, copied[0])
		}
		c := filepath.Join(out, "layer0")
		if got := mode(filepath.Join(c, "etc", "hostname")); got != tc.file {
			t.Errorf("modes %q: copied file %#o, want %#o", tc.modes, got, tc.file)
		}
		if got := mode(filepath.Join(c, "run")); got != tc.exe {
			t.Errorf("modes %q: copied executable %#o, want %#o", tc.modes, got, tc.exe)
		}
		if got := mode(filepath.Join(c, "etc")); got != tc.dirMode {
			t.Errorf("modes %q: copied directory %#o, want %#o", tc.modes, got, tc.dirMode)
		}
	}
}
