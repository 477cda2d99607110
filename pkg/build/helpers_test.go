package build

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/spec"
)

// buildSpec writes spec text to dir/kiln.yaml, builds it to dir/out.img
// and returns the image's sha256 and the result.
func buildSpec(t *testing.T, dir, text string) (string, *Result) {
	t.Helper()
	p := filepath.Join(dir, "kiln.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.img")
	res, err := Build(context.Background(), s, Options{Output: out, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return judge.SHA256File(t, out), res
}

// checkoutTree writes files (slash path → content; a trailing "*" on the
// content marks an executable, stripped) under root as a git checkout
// made with umask mask would: files 0666 or 0777 less the umask,
// directories 0777 less the umask.
func checkoutTree(t *testing.T, root string, mask int, files map[string]string) {
	t.Helper()
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	for p, data := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o666)
		if n := len(data); n > 0 && data[n-1] == '*' {
			data, mode = data[:n-1], 0o777
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// imageSpec is a one-partition ext4 image of the layers given (YAML list
// items), with an optional seed.
func imageSpec(layers, seed string) string {
	s := "epoch: 1700000000\n"
	if seed != "" {
		s += "seed: " + seed + "\n"
	}
	return s + "layers:\n" + layers + "disk:\n  size: 16MiB\n  partitions:\n    - {name: root, type: linux, filesystem: ext4, size: rest, mount: /}\n"
}

func sha256Hex(b []byte) string { return judge.SHA256(b) }
