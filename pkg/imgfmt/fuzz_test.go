package imgfmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
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

// The per-reader fuzz targets: each feeds its reader (not Open's
// detection) files seeded with that format's images and the crafted
// headers of TestCraftedHeaders, and runs each input under
// testkit.BoundAlloc: a header that makes the reader allocate more than
// testkit.ReadBound is a failure, as is a panic, an extent out of order or
// out of the disk, or a byte outside the extents that is not zero.

func FuzzQcow2(f *testing.F) { fuzzReader(f, "qcow2", "QFI\xfb", openQcow2AsImage) }
func FuzzVMDK(f *testing.F)  { fuzzReader(f, "vmdk", vmdkMagic, openVMDKAsImage) }
func FuzzVHD(f *testing.F)   { fuzzReader(f, "vhd", vhdCookie, openVHDAsImage) }

func openQcow2AsImage(f *os.File, n int64) (Image, error) { return openQcow2(f, n) }
func openVMDKAsImage(f *os.File, n int64) (Image, error)  { return openVMDK(f, n) }

func openVHDAsImage(f *os.File, n int64) (Image, error) {
	// A fixed VHD is found by its footer, the file's last 512 bytes.
	return openVHD(f, n)
}

func fuzzReader(f *testing.F, format, _ string, open func(*os.File, int64) (Image, error)) {
	dir := f.TempDir()
	data := bytes.Repeat([]byte("kiln fuzz seed "), 300)
	opts := map[string][]Options{
		"qcow2": {{}, {Compression: "zlib", ClusterSize: 4096}, {Compression: "zstd", ClusterSize: 4096}, {ClusterSize: 512}},
		"vmdk":  {{}},
		"vhd":   {{}, {Subformat: "fixed"}},
	}[format]
	for i, o := range opts {
		p := filepath.Join(dir, fmt.Sprintf("seed%d.%s", i, format))
		out, err := Create(p, format, 128<<10, o)
		if err != nil {
			f.Fatal(err)
		}
		out.WriteAt(data, 8192)
		out.WriteAt(data[:600], 70<<10)
		if err := out.Commit(); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range craftedHeaders() {
		if strings.HasPrefix(c.name, format+" ") {
			f.Add(c.data)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		testkit.BoundAlloc(t, testkit.ReadBound, func() { checkReader(t, fh, int64(len(b)), open) })
	})
}

// checkReader opens f with open and checks what it reads in its first
// 4 MiB: extents in order and inside the disk, zeros outside them.
func checkReader(t *testing.T, f *os.File, n int64, open func(*os.File, int64) (Image, error)) {
	img, err := open(f, n)
	if err != nil {
		return
	}
	size := img.Size()
	if size < 0 {
		t.Fatalf("negative size %d", size)
	}
	const window = 4 << 20
	var exts []Extent
	last := int64(0)
	errStop := errors.New("stop")
	err = img.Extents(context.Background(), func(e Extent) error {
		if e.Off < last || e.Len <= 0 || e.End() > size {
			t.Fatalf("extent %+v after %d on a %d-byte disk", e, last, size)
		}
		last = e.End()
		if e.Off >= window {
			return errStop
		}
		exts = append(exts, e)
		return nil
	})
	if err != nil && err != errStop {
		return // a corrupt table may fail to read; it must not panic
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < min(size, window); off += int64(len(buf)) {
		k := min(int64(len(buf)), size-off)
		if _, err := img.ReadAt(buf[:k], off); err != nil && err != io.EOF {
			return // a corrupt image may fail to read; it must not panic
		}
		for i, c := range buf[:k] {
			if c == 0 {
				continue
			}
			o := off + int64(i)
			in := false
			for _, e := range exts {
				in = in || (o >= e.Off && o < e.End())
			}
			if !in {
				t.Fatalf("byte %d reads %#x but is in no extent %v", o, c, exts)
			}
			break // one check per chunk is enough
		}
	}
}
