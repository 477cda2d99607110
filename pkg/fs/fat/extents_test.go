package fat

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// readExtents reads the first n bytes the extents cover.
func readExtents(t *testing.T, r io.ReaderAt, exts []Extent, n int64) []byte {
	t.Helper()
	var out []byte
	for _, e := range exts {
		b := make([]byte, e.Count*sectorSize)
		if _, err := r.ReadAt(b, int64(e.Sector)*sectorSize); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	if int64(len(out)) < n || int64(len(out)) >= n+sectorSize {
		t.Fatalf("extents cover %d bytes for a file of %d", len(out), n)
	}
	return out[:n]
}

func TestFileExtents(t *testing.T) {
	files := map[string]*tree.Inode{
		"/UPPER.TXT":                        newFile(0o644, testEpoch, []byte("upper\n")),
		"/lower.txt":                        newFile(0o644, testEpoch, []byte("lower\n")),
		"/empty":                            newFile(0o644, testEpoch, nil),
		"/a/b/A long name, with spaces.bin": genFile(1, 70_001),
		"/a/sector":                         genFile(2, 512),
		"/big":                              genFile(3, 300_000),
	}
	tr := tree.New(testEpoch)
	for p, n := range files {
		put(tr, p, n)
	}
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
			img := mustWriteImage(t, tc.size, tr, Options{FATType: tc.typ})
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for p, n := range files {
				for _, q := range []string{p, strings.ToUpper(p), strings.ToLower(p) + "/"} {
					exts, size, err := FileExtents(f, tc.size, q)
					if err != nil {
						t.Fatalf("FileExtents(%q): %v", q, err)
					}
					if size != n.Size {
						t.Fatalf("%s: size %d, want %d", q, size, n.Size)
					}
					if n.Size == 0 {
						if exts != nil {
							t.Fatalf("%s: empty file has extents %v", q, exts)
						}
						continue
					}
					// The writer allocates every file contiguously.
					if len(exts) != 1 {
						t.Fatalf("%s: %d extents, want 1: %v", q, len(exts), exts)
					}
					if got := readExtents(t, f, exts, size); !bytes.Equal(got, testkit.ReadAll(t, n.Content)) {
						t.Fatalf("%s: the extents do not hold the file's data", q)
					}
				}
			}
			// A long name is also found by its generated short name.
			if _, _, err := FileExtents(f, tc.size, "/A/B/ALONGN~1.BIN"); err != nil {
				t.Fatalf("short name: %v", err)
			}
			for _, e := range []struct{ path, want string }{
				{"/", "root directory"},
				{"/a", "is a directory"},
				{"/a/b/", "is a directory"},
				{"/nothere", "not found"},
				{"/a/nothere/x", "not found"},
				{"/upper.txt/x", "is not a directory"},
			} {
				_, _, err := FileExtents(f, tc.size, e.path)
				testkit.ErrContains(t, err, e.want)
			}
		})
	}
}

// TestFileExtentsFragmented reads a fragmented file that mtools wrote.
func TestFileExtentsFragmented(t *testing.T) {
	judge.Need(t, "mkfs.vfat", "mcopy", "mdel")
	dir := t.TempDir()
	img := filepath.Join(dir, "frag.img")
	const size = 8 * mib
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, code := judge.Run(t, toolEnv, "mkfs.vfat", "-F", "16", "-s", "1", "-i", "12345678", img); code != 0 {
		t.Fatalf("mkfs.vfat: exit %d\n%s", code, out)
	}
	put := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := judge.Run(t, toolEnv, "mcopy", "-i", img, p, "::/"+name); code != 0 {
			t.Fatalf("mcopy: exit %d\n%s", code, out)
		}
	}
	big := testkit.ReadAll(t, genFile(9, 20_000).Content)
	put("hole1", make([]byte, 3*512))
	put("keep1", []byte("keep"))
	put("hole2", make([]byte, 2*512))
	put("keep2", []byte("keep"))
	for _, h := range []string{"hole1", "hole2"} {
		if out, code := judge.Run(t, toolEnv, "mdel", "-i", img, "::/"+h); code != 0 {
			t.Fatalf("mdel: exit %d\n%s", code, out)
		}
	}
	put("Fragmented File.dat", big)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exts, n, err := FileExtents(f, size, "/fragmented file.DAT")
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) < 3 {
		t.Fatalf("mcopy filled the holes, yet the file has only %d extents: %v", len(exts), exts)
	}
	if n != int64(len(big)) || !bytes.Equal(readExtents(t, f, exts, n), big) {
		t.Fatalf("the %d extents do not hold the file's data", len(exts))
	}
}

// TestFileExtentsDamaged checks that broken cluster chains are errors.
func TestFileExtentsDamaged(t *testing.T) {
	tr := tree.New(testEpoch)
	put(tr, "/f", genFile(4, 10_000))
	const size = 40 * mib
	clean := fileBytes(t, mustWriteImage(t, size, tr, Options{}))
	in, err := Probe(bytes.NewReader(clean), size)
	if err != nil {
		t.Fatal(err)
	}
	// The root is cluster 2 and /f starts at cluster 3 (FAT32, walk order).
	fat := int(in.ReservedSectors) * sectorSize
	for _, tc := range []struct {
		name  string
		entry uint32 // FAT entry 3
		want  string
	}{
		{"short chain", 0x0FFFFFFF, "need"},
		{"out of range", in.TotalClusters + 2, "outside the volume"},
		{"free cluster", 0, "outside the volume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(clean)
			binary.LittleEndian.PutUint32(b[fat+3*4:], tc.entry)
			_, _, err := FileExtents(bytes.NewReader(b), size, "/f")
			testkit.ErrContains(t, err, tc.want)
		})
	}
	t.Run("long chain", func(t *testing.T) {
		// The chain goes on past the file's last cluster: ReadTree
		// refuses that, and so does FileExtents, which reads
		// directories and chains with ReadTree's code.
		b := bytes.Clone(clean)
		last := 3 + (10_000+in.ClusterSize-1)/in.ClusterSize - 1
		binary.LittleEndian.PutUint32(b[fat+last*4:], uint32(last+1))
		_, _, err := FileExtents(bytes.NewReader(b), size, "/f")
		testkit.ErrContains(t, err, "runs past")
		_, err = ReadTree(bytes.NewReader(b), size)
		testkit.ErrContains(t, err, "runs past")
	})
	t.Run("directory loop", func(t *testing.T) {
		b := bytes.Clone(clean)
		binary.LittleEndian.PutUint32(b[fat+2*4:], 2) // the root points to itself
		_, _, err := FileExtents(bytes.NewReader(b), size, "/f")
		testkit.ErrContains(t, err, "longer than")
	})
}
