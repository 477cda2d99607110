package imgfmt

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestOpenReadsQemuImages checks that Open reads what qemu-img convert
// writes from the same disks: qcow2 plain, compressed with zlib and with
// zstd, VMDK streamOptimized and monolithicSparse, VHD fixed and dynamic.
// qemu rounds a VHD up to a size its CHS geometry holds: the rest must
// read as zeros.
func TestOpenReadsQemuImages(t *testing.T) {
	judge.Need(t, "qemu-img")
	conversions := []struct {
		name, format string
		args         []string
	}{
		{"qcow2", "qcow2", []string{"-O", "qcow2"}},
		{"qcow2-zlib", "qcow2", []string{"-O", "qcow2", "-c"}},
		{"qcow2-zstd", "qcow2", []string{"-O", "qcow2", "-c", "-o", "compression_type=zstd"}},
		{"qcow2-v2-4k", "qcow2", []string{"-O", "qcow2", "-c", "-o", "compat=0.10,cluster_size=4096"}},
		{"vmdk-stream", "vmdk", []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}},
		{"vmdk-sparse", "vmdk", []string{"-O", "vmdk"}},
		{"vhd-fixed", "vhd", []string{"-O", "vpc", "-o", "subformat=fixed"}},
		{"vhd-dynamic", "vhd", []string{"-O", "vpc", "-o", "subformat=dynamic"}},
	}
	for _, d := range testDisks()[1:] {
		want := d.content()
		dir := t.TempDir()
		raw := filepath.Join(dir, d.name+".raw")
		writeRawFile(t, raw, want)
		for _, c := range conversions {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				path := filepath.Join(dir, c.name)
				args := append([]string{"convert", "-f", "raw"}, c.args...)
				if out, code := judge.Run(t, nil, "qemu-img", append(args, raw, path)...); code != 0 {
					t.Fatalf("qemu-img convert: exit %d\n%s", code, out)
				}
				img, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				if img.Format() != c.format || img.Size() < d.size || img.Size() > d.size+4*mib {
					t.Fatalf("%s of %d bytes, want %s of %d", img.Format(), img.Size(), c.format, d.size)
				}
				got := readAll(t, img)
				if !bytes.Equal(got[:d.size], want) || !isZero(got[d.size:]) {
					t.Fatalf("reads back something else: %s", firstDiff(got[:d.size], want))
				}
			})
		}
	}
}
