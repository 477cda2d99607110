package all

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestProbe: filesystems made by mke2fs, mkfs.vfat and mkfs.erofs are recognised as
// blkid names them, zeros as none; every Kind is whole.
func TestProbe(t *testing.T) {
	judge.Need(t, "mke2fs", "mkfs.vfat", "mkfs.erofs")
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext.img")
	judge.Run(t, nil, "truncate", "-s", "16M", ext)
	if out, code := judge.Run(t, nil, "mke2fs", "-q", "-F", "-t", "ext3", "-L", "lbl", "-U", "0e2d01fe-d015-54f8-bacf-0062cbdd5c20", ext); code != 0 {
		t.Fatal(out)
	}
	vfat := filepath.Join(dir, "fat.img")
	if out, code := judge.Run(t, nil, "mkfs.vfat", "-i", "1a88398a", "-n", "ESP", "-C", vfat, "16384"); code != 0 {
		t.Fatal(out)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	erofs := filepath.Join(dir, "erofs.img")
	if out, code := judge.Run(t, nil, "mkfs.erofs", "-T", "1000", "-U", "5c4a0d9e-61b3-4bd6-8a49-2f1e0c6f7a11", erofs, src); code != 0 {
		t.Fatal(out)
	}
	for _, c := range []struct {
		img, kind, typ, uuid, label string
	}{
		{ext, "ext4", "ext3", "0e2d01fe-d015-54f8-bacf-0062cbdd5c20", "lbl"},
		{vfat, "vfat", "vfat", "1A88-398A", "ESP"},
		{erofs, "erofs", "erofs", "5c4a0d9e-61b3-4bd6-8a49-2f1e0c6f7a11", ""}, // mkfs.erofs 1.5 sets no label
	} {
		f, err := os.Open(c.img)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		k, info, err := Probe(f, fi.Size())
		f.Close()
		if err != nil || k.Name != c.kind || info.Type != c.typ || info.UUID != c.uuid || info.Label != c.label {
			t.Errorf("%s: kind %q, info %+v, err %v; want %s %s %s %s", filepath.Base(c.img), k.Name, info, err, c.kind, c.typ, c.uuid, c.label)
		}
	}
	zeros := make([]byte, 1<<20)
	if _, _, err := Probe(sliceReader(zeros), int64(len(zeros))); !errors.Is(err, ErrUnknown) {
		t.Errorf("zeros: %v, want ErrUnknown", err)
	}
	for _, k := range Kinds {
		if k.Name == "" || k.Probe == nil || k.ReadTree == nil || len(k.Fields) == 0 {
			t.Errorf("kind %+v is incomplete", k.Name)
		}
	}
	if names := Writers().Names(); !slices.Equal(names, []string{"erofs", "ext4", "vfat"}) {
		t.Errorf("writers %v", names)
	}
}

type sliceReader []byte

func (s sliceReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s)) {
		return 0, io.EOF
	}
	return copy(p, s[off:]), nil
}
