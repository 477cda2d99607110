package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestContents(t *testing.T) {
	if got := string(ReadAll(t, Bytes("abc"))); got != "abc" {
		t.Errorf("Bytes: %q", got)
	}
	if got := string(ReadAll(t, String("xyz"))); got != "xyz" {
		t.Errorf("String: %q", got)
	}
	if got := ReadAll(t, Zeros(3)); string(got) != "\x00\x00\x00" {
		t.Errorf("Zeros: %q", got)
	}
}

// TestDebDirs checks the order of the folders and that the last is the
// repository's .cache/debs, found from a package's folder.
func TestDebDirs(t *testing.T) {
	t.Setenv("KILN_DEBS", "/somewhere")
	ds := DebDirs()
	if len(ds) != 4 || ds[0] != "/somewhere" || ds[1] != "/tmp/debs" || filepath.Base(ds[2]) != "debs" || ds[3] != ds[2]+"-arm64" {
		t.Fatalf("DebDirs: %q", ds)
	}
	if _, err := os.Stat(filepath.Join(ds[2], "..", "..", "go.mod")); err != nil {
		t.Errorf("%s is not in the repository's root: %v", ds[2], err)
	}
}

func TestFiles(t *testing.T) {
	f := SparseFile(t, "x.img", 4096)
	if _, err := f.WriteAt([]byte("kiln"), 1000); err != nil {
		t.Fatal(err)
	}
	if got := string(ReadAt(t, f.Name(), 1000, 4)); got != "kiln" {
		t.Errorf("ReadAt: %q", got)
	}
	if _, size := Open(t, f.Name()); size != 4096 {
		t.Errorf("Open: size %d", size)
	}
}
