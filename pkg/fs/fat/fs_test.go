package fat

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/tree"
)

// TestWriteLocate checks that the extents the writer reports are where a
// read of the volume (FileExtents) finds each file, on every FAT type, and
// that the image is the one Write makes.
func TestWriteLocate(t *testing.T) {
	files := map[string]*tree.Inode{
		"/ldlinux.sys":                      genFile(1, 70_000),
		"/a/b/A long name, with spaces.bin": genFile(2, 1_001),
		"/a/sector":                         genFile(3, 512),
		"/empty":                            newFile(0o644, testEpoch, nil),
	}
	tr := tree.New(testEpoch)
	for p, n := range files {
		put(tr, p, n)
	}
	paths := []string{"/ldlinux.sys", "/a/b/A long name, with spaces.bin", "/a/sector", "/empty"}
	for _, tc := range []struct {
		name string
		size int64
		typ  int
	}{
		{"fat12", 2 * mib, 12},
		{"fat16", 16 * mib, 16},
		{"fat32", 40 * mib, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{FATType: tc.typ, HiddenSectors: 2048, Label: "ESP", VolumeID: 7, Epoch: testEpoch}
			f := testkit.SparseFile(t, "fat.img", tc.size)
			got, err := WriteLocate(f, tc.size, tr, o, paths)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fileBytes(t, f.Name()), fileBytes(t, mustWriteImage(t, tc.size, tr, o))) {
				t.Fatal("WriteLocate wrote other bytes than Write")
			}
			for _, p := range paths {
				exts, size, err := FileExtents(f, tc.size, p)
				if err != nil {
					t.Fatal(err)
				}
				var want []fs.Extent
				if len(exts) > 0 {
					if len(exts) != 1 {
						t.Fatalf("%s: %d extents; the writer allocates a file contiguously", p, len(exts))
					}
					want = []fs.Extent{{Offset: int64(exts[0].Sector) * sectorSize, Length: size}}
				}
				if g, ok := got[p]; !ok || !reflect.DeepEqual(g, want) {
					t.Errorf("%s: the writer reports %v (%v), the volume has %v", p, g, ok, want)
				}
			}
		})
	}
	for _, e := range []struct{ path, want string }{
		{"/nothere", "not in the tree"},
		{"/a", "not a regular file"},
	} {
		f := testkit.SparseFile(t, "fat.img", 2*mib)
		_, err := WriteLocate(f, 2*mib, tr, Options{}, []string{e.path})
		testkit.ErrContains(t, err, e.want)
	}
}
