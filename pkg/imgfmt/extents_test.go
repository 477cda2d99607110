package imgfmt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/repro"
)

// checkExtents checks the extents img reports against the disk it must
// read as: in order, not overlapping, merged, inside the disk; every
// non-zero byte of want inside one; and, with most bound, no more than
// most bytes in all (the disk's allocation, not its size).
func checkExtents(t *testing.T, img Image, want []byte, most int64) {
	t.Helper()
	var exts []Extent
	if err := img.Extents(context.Background(), func(e Extent) error {
		if len(exts) > 0 && e.Off <= exts[len(exts)-1].End() {
			t.Fatalf("extent %+v after %+v: out of order, overlapping or not merged", e, exts[len(exts)-1])
		}
		if e.Off < 0 || e.Len <= 0 || e.End() > img.Size() {
			t.Fatalf("extent %+v outside the %d-byte disk", e, img.Size())
		}
		exts = append(exts, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	covered := make([]bool, len(want))
	var total int64
	for _, e := range exts {
		total += e.Len
		for o := e.Off; o < min(e.End(), int64(len(want))); o++ {
			covered[o] = true
		}
	}
	for o, c := range want {
		if c != 0 && !covered[o] {
			t.Fatalf("byte %d is %#x but in no extent of %v", o, c, exts)
		}
	}
	if most > 0 && total > most {
		t.Errorf("extents cover %d bytes of a %d-byte disk, want at most %d: %v", total, img.Size(), most, exts)
	}
	t.Logf("%d extents, %d bytes", len(exts), total)
}

// TestExtents: every image kiln writes reports as allocated only what was
// written (rounded to its clusters, grains or blocks), and all of it.
func TestExtents(t *testing.T) {
	d := testDisks()[1] // sparse: 4 writes in 48 MiB
	want := d.content()
	for _, c := range []struct {
		name, format string
		o            Options
		most         int64 // bytes the extents may cover
	}{
		{"raw", "raw", Options{}, 4 * mib}, // SEEK_DATA granularity: the filesystem's blocks
		{"qcow2", "qcow2", Options{}, 4 * 64 * kib},
		{"qcow2-zstd-4k", "qcow2", Options{Compression: "zstd", ClusterSize: 4 * kib}, 4 * 64 * kib},
		{"vmdk", "vmdk", Options{}, 4 * 64 * kib},
		{"vhd-dynamic", "vhd", Options{}, 4 * 2 * mib},
		{"vhd-fixed", "vhd", Options{Subformat: "fixed"}, 4 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := tempPath(t, "img")
			build(t, path, c.format, d, c.o, 2, false)
			img, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			checkExtents(t, img, want, c.most)
		})
	}
}

// TestExtentsOfQemuImages: the same of what qemu-img writes.
func TestExtentsOfQemuImages(t *testing.T) {
	judge.Need(t, "qemu-img")
	d := testDisks()[1]
	want := d.content()
	raw := tempPath(t, "disk.raw")
	writeRawFile(t, raw, want)
	for _, c := range []struct {
		name string
		args []string
		most int64
	}{
		{"qcow2", []string{"-O", "qcow2"}, 4 * 64 * kib},
		{"qcow2-zlib", []string{"-O", "qcow2", "-c"}, 4 * 64 * kib},
		{"vmdk-stream", []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}, 4 * 64 * kib},
		{"vmdk-sparse", []string{"-O", "vmdk"}, 4 * 64 * kib},
		{"vhd-dynamic", []string{"-O", "vpc", "-o", "subformat=dynamic"}, 4 * 2 * mib},
		{"vhd-fixed", []string{"-O", "vpc", "-o", "subformat=fixed"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := tempPath(t, "img")
			args := append([]string{"convert", "-f", "raw"}, c.args...)
			if out, code := judge.Run(t, nil, "qemu-img", append(args, raw, path)...); code != 0 {
				t.Fatalf("qemu-img convert: exit %d\n%s", code, out)
			}
			img, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			checkExtents(t, img, want, c.most)
		})
	}
}

// TestCopyKeepsHoles copies a 1 TiB qcow2 with two clusters written into
// every output format that holds 1 TiB: the copy reads and writes only
// those clusters (the output is small, and reads back the same).
func TestCopyKeepsHoles(t *testing.T) {
	const size = 1 << 40
	src := tempPath(t, "src.qcow2")
	out, err := Create(src, "qcow2", size)
	if err != nil {
		t.Fatal(err)
	}
	a, b := bytes.Repeat([]byte("first "), 1000), bytes.Repeat([]byte("last "), 1000)
	out.WriteAt(a, 3*mib)
	out.WriteAt(b, size-64*kib)
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	in, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, c := range []struct {
		format string
		o      Options
	}{{"raw", Options{}}, {"qcow2", Options{Compression: "zstd"}}, {"vhd", Options{}}} {
		t.Run(c.format, func(t *testing.T) {
			path := tempPath(t, "out")
			size := int64(size)
			if c.format == "vhd" {
				size = vhdMaxSize // VHD stops at 2040 GiB: a larger disk
			}
			dst, err := Create(path, c.format, max(size, in.Size()), c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Abort()
			counted := &countingImage{Image: in}
			if err := Copy(context.Background(), dst, counted); err != nil {
				t.Fatal(err)
			}
			if counted.n > 4*mib {
				t.Errorf("Copy read %d bytes of a disk with 128 KiB allocated", counted.n)
			}
			if err := dst.Commit(); err != nil {
				t.Fatal(err)
			}
			var st syscallStat
			if err := stat(path, &st); err != nil {
				t.Fatal(err)
			}
			if st.allocated > 8*mib {
				t.Errorf("the %s copy takes %d bytes on disk", c.format, st.allocated)
			}
			got, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			for _, w := range []struct {
				off  int64
				data []byte
			}{{3 * mib, a}, {in.Size() - 64*kib, b}, {0, make([]byte, 4096)}, {mib << 10, make([]byte, 4096)}} {
				p := make([]byte, len(w.data))
				if _, err := got.ReadAt(p, w.off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p, w.data) {
					t.Errorf("at %d the copy reads something else", w.off)
				}
			}
		})
	}
}

// TestCopyCancelled: a cancelled context stops Copy and CommitContext,
// and the destination is left as it was.
func TestCopyCancelled(t *testing.T) {
	src := tempPath(t, "src.raw")
	writeRawFile(t, src, bytes.Repeat([]byte("data"), 4*mib/4))
	in, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, format := range []string{"raw", "qcow2", "vmdk", "vhd"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			if err := os.WriteFile(path, []byte("previous"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			dst, err := Create(path, format, in.Size())
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Abort()
			if err := Copy(ctx, dst, in); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := dst.CommitContext(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("CommitContext after cancel: %v", err)
			}
			if err := Copy(ctx, dst, in); !errors.Is(err, context.Canceled) {
				t.Fatalf("Copy after cancel: %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "previous" {
				t.Errorf("the destination changed")
			}
			if ents := dirEntries(t, dir); len(ents) != 1 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

// TestOpenRefusesForeignFormats: the formats Open recognises but does
// not read are refused by name, never read as raw bytes (before, each
// was "raw" and kiln convert copied it as a disk).
func TestOpenRefusesForeignFormats(t *testing.T) {
	judge.Need(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	writeRawFile(t, raw, append(bytes.Repeat([]byte("some data "), 1000), make([]byte, 4*mib)...))
	cases := []struct {
		name, want string
		make       func(path string)
	}{
		{"vhdx", "VHDX", nil}, {"vdi", "VDI", nil}, {"qed", "QED", nil}, {"parallels", "Parallels", nil},
		{"vpc-511", "511-byte footer", func(path string) {
			// Virtual PC before 5.0: the footer's last byte is missing.
			f := (&vhdParams{size: 4 * mib}).footer(vhdTypeFixed, repro.UUID{})
			b := append(make([]byte, 4*mib), encodeBE(&f)[:511]...)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		for _, how := range []string{"create", "convert"} {
			if c.make != nil && how == "convert" {
				continue
			}
			t.Run(c.name+"-"+how, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "img")
				switch {
				case c.make != nil:
					c.make(path)
				case how == "create":
					if out, code := judge.Run(t, nil, "qemu-img", "create", "-f", c.name, path, "64M"); code != 0 {
						t.Fatal(out)
					}
				default:
					if out, code := judge.Run(t, nil, "qemu-img", "convert", "-f", "raw", "-O", c.name, raw, path); code != 0 {
						t.Fatal(out)
					}
				}
				img, err := Open(path)
				if err == nil {
					img.Close()
					t.Fatalf("opened as %s", img.Format())
				}
				var ue *UnsupportedFormatError
				if !errors.As(err, &ue) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
					t.Fatalf("error %q does not name the file and %s", err, c.want)
				}
			})
		}
	}
}

// countingImage counts the bytes read of an Image.
type countingImage struct {
	Image
	n int64
}

func (c *countingImage) ReadAt(p []byte, off int64) (int, error) {
	c.n += int64(len(p))
	return c.Image.ReadAt(p, off)
}
