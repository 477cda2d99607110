package imgfmt

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary files to Open, the reader kiln inspect, diff
// and convert use: it must return an error or an image whose every byte
// reads, never panic, hang or allocate beyond what the file justifies.
// Seeds are small images of every format written by this package.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	data := bytes.Repeat([]byte("kiln fuzz seed "), 300)
	for _, c := range []struct {
		format string
		o      Options
	}{
		{"qcow2", Options{}}, {"qcow2", Options{Compression: "zlib", ClusterSize: 4096}}, {"qcow2", Options{Compression: "zstd", ClusterSize: 4096}},
		{"vmdk", Options{}}, {"vhd", Options{}}, {"vhd", Options{Subformat: "fixed"}},
	} {
		p := filepath.Join(dir, "seed."+c.format)
		out, err := Create(p, c.format, 1<<20, c.o)
		if err != nil {
			f.Fatal(err)
		}
		out.WriteAt(data, 8192)
		if err := out.Commit(); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 1<<20+1024 { // keep seeds small
			f.Add(b)
		}
	}
	f.Add([]byte("QFI\xfb"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		img, err := Open(p)
		if err != nil {
			return
		}
		defer img.Close()
		size := img.Size()
		if size < 0 {
			t.Fatalf("negative size %d", size)
		}
		// Read up to 4 MiB of the virtual disk, a chunk at a time.
		buf := make([]byte, 64<<10)
		for off := int64(0); off < min(size, 4<<20); off += int64(len(buf)) {
			n := min(int64(len(buf)), size-off)
			if _, err := img.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				return // a corrupt image may fail to read; it must not panic
			}
		}
	})
}
