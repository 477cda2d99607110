package syslinux

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/tree"
)

const (
	testEpoch = 1700000000
	mib       = 1 << 20
)

// syslinuxSources is the merged tree of Debian's syslinux packages.
func syslinuxSources(t testing.TB) Sources {
	t.Helper()
	return Sources{Tree: trees.Debs(t, testEpoch, testkit.DebSyslinux, testkit.DebSyslinuxCommon)}
}

// treeFile reads the file at p of tr, following symlinks as the package
// does.
func treeFile(t testing.TB, tr *tree.Tree, p string) []byte {
	t.Helper()
	n, _, err := tr.Resolve(p, true)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return trees.Read(t, n)
}

// memFile returns a regular file inode holding b.
func memFile(b []byte) *tree.Inode { return trees.File(0o644, testEpoch, b) }

// writeFAT writes tr as a FAT of size bytes into a new sparse file.
func writeFAT(t testing.TB, size int64, tr *tree.Tree, o fat.Options) string {
	t.Helper()
	f := testkit.SparseFile(t, "fat.img", size)
	if err := fat.Write(f, size, tr, o); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// writeESP is writeFAT for a tree Prepare filled: it also returns the
// extents of /ldlinux.sys the FAT writer reports, for Install.
func writeESP(t testing.TB, size int64, tr *tree.Tree, o fat.Options) (string, []fs.Extent) {
	t.Helper()
	f := testkit.SparseFile(t, "fat.img", size)
	exts, err := fat.WriteLocate(f, size, tr, o, []string{LDLinuxPath})
	if err != nil {
		t.Fatal(err)
	}
	return f.Name(), exts[LDLinuxPath]
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

// fatFile returns the data of the file at p of the FAT image img, and the
// sectors holding it.
func fatFile(t testing.TB, img string, p string) ([]byte, []uint64) {
	t.Helper()
	f, fsize := testkit.Open(t, img)
	exts, size, err := fat.FileExtents(f, fsize, p)
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
		data = append(data, testkit.ReadAt(t, img, int64(e.Sector)*sectorSize, int(e.Count)*sectorSize)...)
	}
	return data[:size], sectors
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
