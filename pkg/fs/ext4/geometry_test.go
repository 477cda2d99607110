package ext4

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// smallTree is a few files and directories, enough to put inodes and
// data in the first groups.
func smallTree(t *testing.T) *tree.Tree {
	t.Helper()
	tr := tree.New(t0)
	for i := 0; i < 20; i++ {
		put(t, tr, fmt.Sprintf("/d%d/f", i), file(0o644, pseudoRandom(10000*i+1, uint64(i))))
	}
	return tr
}

// Layouts at the edges: the smallest filesystem, a partial last group,
// a runt last group that is dropped, flex groups past the first, inode
// tables that spill past group 0 over group 1's backup superblock, and a
// filesystem big enough for a 1 GiB journal in several extents' worth of
// blocks.
func TestGeometries(t *testing.T) {
	judge.Need(t, "e2fsck", "dumpe2fs")
	for _, tc := range []struct {
		name       string
		size       int64
		ratio      int
		wantBlocks string
		wantJBlks  string
		slow       bool
	}{
		{"minimum", 8 << 20, 0, "2048", "1024", false},
		{"partial last group", 200<<20 + 4096, 0, "51201", "4096", false},
		{"runt group dropped", (2*32768 + 40) * 4096, 0, "65536", "4096", false},
		{"three flex groups", 5 << 30, 0, "1310720", "16384", false},
		{"inode tables spill", 4 << 30, 4096, "1048576", "16384", false}, // 16 full tables > group 0
		{"1 GiB journal", 130 << 30, 0, "34078720", "262144", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.slow && testing.Short() {
				t.Skip("slow: a 130 GiB sparse filesystem")
			}
			o := testOptions()
			o.InodeRatio = tc.ratio
			img := writeImage(t, smallTree(t), tc.size, o)
			fsck(t, img)
			out, err := exec.Command("dumpe2fs", "-h", img).Output()
			if err != nil {
				t.Fatal(err)
			}
			d := dumpe2fsFields(string(out))
			if d["Block count"] != tc.wantBlocks || d["Total journal blocks"] != tc.wantJBlks {
				t.Errorf("blocks %s journal %s, want %s %s", d["Block count"], d["Total journal blocks"], tc.wantBlocks, tc.wantJBlks)
			}
		})
	}
}

// recorder is a WriterAt over a file that checks every write: inside the
// window, whole aligned blocks, never an all-zero block, never twice.
type recorder struct {
	f       *os.File
	size    int64
	mu      sync.Mutex
	written map[int64]bool
	err     error
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fail := func(format string, args ...any) {
		if r.err == nil {
			r.err = fmt.Errorf(format, args...)
		}
	}
	if off < 0 || off+int64(len(p)) > r.size {
		fail("write of %d bytes at %d outside [0,%d)", len(p), off, r.size)
	}
	if off%blockSize != 0 || len(p)%blockSize != 0 {
		fail("write of %d bytes at %d is not whole blocks", len(p), off)
	}
	for i := 0; i+blockSize <= len(p); i += blockSize {
		b := off/blockSize + int64(i/blockSize)
		if isZero(p[i : i+blockSize]) {
			fail("block %d written as zeros", b)
		}
		if r.written[b] {
			fail("block %d written twice", b)
		}
		r.written[b] = true
	}
	return r.f.WriteAt(p, off)
}

func TestWritesOnlyNonZeroBlocks(t *testing.T) {
	judge.Need(t, "e2fsck")
	tr, _ := featureTree(t)
	o := testOptions()
	size, err := MinSize(tr, o)
	if err != nil {
		t.Fatal(err)
	}
	if size%(1<<20) != 0 {
		t.Errorf("MinSize %d is not a multiple of 1 MiB", size)
	}
	f := testkit.SparseFile(t, "fs.img", size)
	img := f.Name()
	r := &recorder{f: f, size: size, written: map[int64]bool{}}
	if err := Write(r, size, tr, o); err != nil {
		t.Fatal(err)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.written) == 0 || int64(len(r.written)) >= size/blockSize {
		t.Fatalf("%d of %d blocks written", len(r.written), size/blockSize)
	}
	fsck(t, img)
}

// MinSize is enough, and not wildly more than needed: the tree fills a
// good part of it.
func TestMinSizeFits(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   func() *tree.Tree
	}{
		{"empty", func() *tree.Tree { return tree.New(t0) }},
		{"small", func() *tree.Tree { return smallTree(t) }},
		{"100 MiB file", func() *tree.Tree {
			tr := tree.New(t0)
			put(t, tr, "/f", file(0o644, pseudoRandom(100<<20, 3)))
			return tr
		}},
		{"many inodes", func() *tree.Tree {
			tr := tree.New(t0)
			d := mkdirAll(t, tr, "/d")
			for i := 0; i < 30000; i++ {
				d.SetChild(fmt.Sprint(i), file(0o644, nil))
			}
			return tr
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.tr()
			size, err := MinSize(tr, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(discard{}, size, tr, testOptions()); err != nil {
				t.Fatalf("Write at MinSize %d: %v", size, err)
			}
			if tc.name == "100 MiB file" && size > 120<<20 {
				t.Errorf("MinSize %d MiB for 100 MiB of data", size>>20)
			}
		})
	}
}
