package syslinux

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/tree"
)

const (
	testEpoch = 1700000000
	mib       = 1 << 20

	debSyslinux = "syslinux_*.deb"
	debCommon   = "syslinux-common_*.deb"
	debKernel   = "linux-image-6.1.0-*-amd64_*.deb"
	debBusybox  = "busybox-static_*.deb"
)

// missing skips the test, or fails it under CI, where every input must be
// there.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// findDeb returns the newest .deb matching pattern in $KILN_DEBS, /tmp/debs
// or the repository's .cache/debs (make demo-debs).
func findDeb(t testing.TB, pattern string) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("KILN_DEBS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range append(dirs, "/tmp/debs", "../../../.cache/debs") {
		m, _ := filepath.Glob(filepath.Join(d, pattern))
		sort.Strings(m)
		if len(m) > 0 {
			return m[len(m)-1]
		}
	}
	missing(t, "no %s in $KILN_DEBS, /tmp/debs or .cache/debs (apt-get download it there)", pattern)
	return ""
}

var (
	debTreesMu sync.Mutex
	debTrees   = map[string]*tree.Tree{} // by the joined patterns
)

// debTree merges the .debs matching patterns, in order, with kiln's own
// layer reader, once per test binary.
func debTree(t testing.TB, patterns ...string) *tree.Tree {
	t.Helper()
	var paths []string
	for _, p := range patterns {
		paths = append(paths, findDeb(t, p))
	}
	key := strings.Join(patterns, "+")
	debTreesMu.Lock()
	defer debTreesMu.Unlock()
	if tr := debTrees[key]; tr != nil {
		return tr
	}
	m := tree.NewMerger(testEpoch)
	for _, p := range paths {
		ls, err := layer.Open(p, layer.Options{Epoch: testEpoch})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if err := m.Apply(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	debTrees[key] = m.Tree()
	return m.Tree()
}

// syslinuxSources is the merged tree of Debian's syslinux packages.
func syslinuxSources(t testing.TB) Sources {
	t.Helper()
	return Sources{Tree: debTree(t, debSyslinux, debCommon)}
}

// inodeBytes reads a file of a tree.
func inodeBytes(t testing.TB, n *tree.Inode) []byte {
	t.Helper()
	if n == nil || n.Kind != tree.Regular {
		t.Fatalf("not a regular file: %+v", n)
	}
	rc, err := n.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeFile reads the file at p of tr.
func treeFile(t testing.TB, tr *tree.Tree, p string) []byte {
	t.Helper()
	n, err := resolve(tr, p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return inodeBytes(t, n)
}

// memFile returns a regular file inode holding b.
func memFile(b []byte) *tree.Inode {
	return &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: testEpoch, Size: int64(len(b)), Content: bytesContent(b)}
}

// writeFAT writes tr as a FAT of size bytes into a new sparse file.
func writeFAT(t testing.TB, size int64, tr *tree.Tree, o fat.Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fat.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := fat.Write(f, size, tr, o); err != nil {
		t.Fatal(err)
	}
	return p
}

// copyFile copies src to a new file in a temporary folder.
func copyFile(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// readAt reads n bytes at off of the file p.
func readAt(t testing.TB, p string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// fatFile returns the data of the file at p of the FAT image img, and the
// sectors holding it.
func fatFile(t testing.TB, img string, p string) ([]byte, []uint64) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	exts, size, err := fat.FileExtents(f, fi.Size(), p)
	if err != nil {
		t.Fatal(err)
	}
	var (
		data    []byte
		sectors []uint64
	)
	for _, e := range exts {
		for i := uint64(0); i < e.Count; i++ {
			sectors = append(sectors, e.Sector+i)
		}
		data = append(data, readAt(t, img, int64(e.Sector)*sectorSize, int(e.Count)*sectorSize)...)
	}
	return data[:size], sectors
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha(b)
}

func errContains(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
}

// equalBytes fails with the first difference of two byte strings.
func equalBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	var diffs []int
	for i := range got {
		if got[i] != want[i] {
			diffs = append(diffs, i)
		}
	}
	t.Fatalf("%s: %d bytes differ, the first at %#x (%#02x, want %#02x); offsets %#x", what, len(diffs), diffs[0], got[diffs[0]], want[diffs[0]], diffs[:min(len(diffs), 16)])
}
