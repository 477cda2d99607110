package imgfmt

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRawAtomicAndSparse(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "sub", "disk.img")
	out, err := Create(dst, "raw", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.WriteAt([]byte("hello"), 32<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("destination exists before Commit: %v", err)
	}
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	out.Abort() // no-op after Commit
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64<<20 || !bytes.Equal(b[32<<20:32<<20+5], []byte("hello")) {
		t.Fatalf("content wrong: len %d", len(b))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("image not sparse: %d bytes allocated", st.Blocks*512)
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestRawAbortLeavesDestinationUntouched(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(dst, []byte("old image"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Create(dst, "raw", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out.WriteAt([]byte("new"), 0)
	out.Abort()
	b, _ := os.ReadFile(dst)
	if string(b) != "old image" {
		t.Fatalf("destination changed: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}
