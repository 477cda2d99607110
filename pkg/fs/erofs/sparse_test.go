package erofs

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	goerofs "github.com/erofs/go-erofs"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	kfs "github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/tree"
)

// holey is a Content of size bytes, zeros but for data at some offsets
// (as a GNU sparse file of a tar reads), made on the fly.
type holey struct {
	size int64
	data map[int64][]byte
}

func (h holey) Open() (io.ReadCloser, error) {
	var offs []int64
	for o := range h.data {
		offs = append(offs, o)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	var rs []io.Reader
	var at int64
	for _, o := range offs {
		rs = append(rs, io.LimitReader(zeroReader{}, o-at), strings.NewReader(string(h.data[o])))
		at = o + int64(len(h.data[o]))
	}
	rs = append(rs, io.LimitReader(zeroReader{}, h.size-at))
	return io.NopCloser(io.MultiReader(rs...)), nil
}

func holeyFile(size int64, data map[int64][]byte) *tree.Inode {
	return &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: size, Content: holey{size, data}}
}

const gib = 1 << 30

// sparseFiles are files with holes and without: a file of 1 GiB and a
// bit holding 8 KiB of data (one block at the start, 4 KiB across two
// blocks in the middle, the end), one of 200 KiB with three zero blocks,
// one of 64 KiB of zeros, and files the flat layout keeps (dense, and
// below sparseMinSize).
func sparseFiles(tr *tree.Tree) {
	put := func(p string, n *tree.Inode) *tree.Inode { return trees.Put(tr, epoch, p, n) }
	put("/sparse/big", holeyFile(gib+12345, map[int64][]byte{
		0:                  pattern("head", 4096),
		512<<20 + 100:      pattern("middle", 4096),
		gib + 12345 - 1000: pattern("end", 1000),
	}))
	mid := pattern("mid", 200<<10)
	clear(mid[40<<10 : 52<<10])
	put("/sparse/mid", trees.File(0o644, epoch, mid))
	put("/sparse/zeros", trees.File(0o644, epoch, make([]byte, 64<<10)))
	put("/sparse/dense", trees.File(0o644, epoch, pattern("dense", 300<<10)))
	small := make([]byte, 60<<10)
	small[0] = 1
	put("/sparse/small", trees.File(0o644, epoch, small))
	x := put("/sparse/xattr", holeyFile(10<<20, map[int64][]byte{5 << 20: []byte("x")}))
	x.Xattrs = []tree.Xattr{{Name: "user.hole", Value: []byte("yes")}}
	put("/after", trees.File(0o644, epoch, []byte("after")))
}

// hashOf is the sha256 of a content, streamed.
func hashOf(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func contentHash(t *testing.T, in *tree.Inode) string {
	t.Helper()
	r, err := in.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return hashOf(t, r)
}

// TestSparseLayout: the files with holes are chunk based, with the chunk
// size that stores the least, and the others keep their layout; the
// image of a 1 GiB file is small.
func TestSparseLayout(t *testing.T) {
	tr := tree.New(epoch)
	sparseFiles(tr)
	l, err := plan(tr, testOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// 1 GiB+12345: 262148 blocks; data in blocks 0, 131072-131073
		// and 262146-262147: with 64 KiB chunks (bits 4), 3 chunks of
		// 16 blocks (the last one 4 blocks) and a 65 KiB map.
		"/sparse/big":   "chunk bits 4 blocks 36",
		"/sparse/mid":   "chunk bits 0 blocks 47",
		"/sparse/zeros": "chunk bits 4 blocks 0",
		"/sparse/xattr": "chunk bits 1 blocks 2",
		"/sparse/dense": "flat",
		"/sparse/small": "flat",
	}
	got := map[string]string{}
	for _, n := range l.nodes {
		if _, ok := want[n.path]; !ok {
			continue
		}
		if n.layout != layoutChunkBased {
			got[n.path] = "flat"
			continue
		}
		got[n.path] = "chunk bits " + itoa(n.sp.bits) + " blocks " + itoa(n.nblocks)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s, want %s", p, got[p], w)
		}
	}
	if l.blocks > 256 {
		t.Errorf("the image takes %d blocks", l.blocks)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// goErofsHashes reads the image at img with go-erofs and returns the
// sha256 of each regular file, streamed.
func goErofsHashes(t *testing.T, img string) map[string]string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := goerofs.Open(f)
	if err != nil {
		t.Fatalf("go-erofs: %v", err)
	}
	out := map[string]string{}
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		r, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		out["/"+p] = hashOf(t, r)
		return nil
	}); err != nil {
		t.Fatalf("go-erofs: %v", err)
	}
	return out
}

// TestSparse: an image with chunk-based files (uncompressed, and with
// lz4) is small, passes fsck.erofs, and reads back exact with kiln's
// reader, go-erofs, fsck.erofs --extract and (KILN_EROFS_MOUNT=1) the
// kernel.
func TestSparse(t *testing.T) {
	judge.Need(t, "fsck.erofs")
	tr := tree.New(epoch)
	sparseFiles(tr)
	want := map[string]string{}
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		if d.Inode.Kind == tree.Regular {
			want[p] = contentHash(t, d.Inode)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	zo := zOpts
	zo.noChunks = false
	for _, o := range []Options{testOpts, zo} {
		t.Run("compression="+o.Compression, func(t *testing.T) {
			img := writeImage(t, tr, o)
			if s := fileSize(t, img); s > 1<<20 {
				t.Errorf("the image is %d bytes", s)
			}
			if out, ok := fsckErofs(t, img); !ok {
				t.Fatalf("fsck.erofs:\n%s", out)
			}
			f, size := testkit.Open(t, img)
			got, err := ReadTree(f, size)
			if err != nil {
				t.Fatal(err)
			}
			for p, h := range want {
				g := got.Lookup(p)
				if g == nil || g.Size != tr.Lookup(p).Size || contentHash(t, g) != h {
					t.Errorf("ReadTree: %s differs", p)
				}
			}
			if x := got.Lookup("/sparse/xattr"); x == nil || len(x.Xattrs) != 1 || string(x.Xattrs[0].Value) != "yes" {
				t.Errorf("ReadTree: /sparse/xattr's xattrs: %+v", x)
			}
			if o.Compression == "" {
				// go-erofs 0.3.1 refuses compressed images
				// (TestGoErofsCompressed).
				gofs := goErofsHashes(t, img)
				for p, h := range want {
					if gofs[p] != h {
						t.Errorf("go-erofs: %s differs", p)
					}
				}
			}
			testkit.NeedRoot(t, "fsck.erofs --extract sets owners")
			dir := filepath.Join(t.TempDir(), "x")
			if out, ok := fsckErofs(t, "--extract="+dir, img); !ok {
				t.Fatalf("fsck.erofs --extract:\n%s", out)
			}
			// erofs-utils before 1.8 (commit b063ea3, "fsck: extract
			// chunk-based file with hole correctly") skips a hole
			// without seeking: what it writes is the chunks holding
			// data, one after another.
			old := fsckBefore18(t)
			l, err := plan(tr, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range l.nodes {
				if n.in.Kind != tree.Regular {
					continue
				}
				w := want[n.path]
				if old && n.layout == layoutChunkBased {
					w = dataChunksHash(t, n)
				}
				if g := judge.SHA256File(t, filepath.Join(dir, n.path)); g != w {
					t.Errorf("fsck.erofs --extract: %s differs (chunk based %v, erofs-utils before 1.8 %v)", n.path, n.layout == layoutChunkBased, old)
				}
			}
			if os.Getenv("KILN_EROFS_MOUNT") != "" {
				dir := mountImage(t, img)
				for p, h := range want {
					if g := judge.SHA256File(t, filepath.Join(dir, p)); g != h {
						t.Errorf("kernel: %s differs", p)
					}
				}
			}
		})
	}
}

// TestSparseChanged: a chunk planned as a hole that reads as data at
// write time is an error, not a wrong image.
func TestSparseChanged(t *testing.T) {
	tr := tree.New(epoch)
	h := holey{size: 1 << 20, data: map[int64][]byte{0: []byte("a")}}
	in := trees.Put(tr, epoch, "/f", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: h.size, Content: h})
	zc := newZcache()
	size, err := minSize(tr, testOpts, zc)
	if err != nil {
		t.Fatal(err)
	}
	h.data[512<<10] = []byte("b")
	in.Content = h
	_, err = write(testkit.SparseFile(t, "img", size), size, tr, testOpts, zc)
	testkit.ErrContains(t, err, "erofs: /f: content changed since it was planned")
}

// fsckBefore18 says whether fsck.erofs is older than 1.8 (-V prints
// "fsck.erofs 1.5").
func fsckBefore18(t *testing.T) bool {
	t.Helper()
	out, _ := judge.Run(t, nil, "fsck.erofs", "-V")
	m := regexp.MustCompile(`^fsck\.erofs (\d+)\.(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fsck.erofs printed no version:\n%s", out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major < 1 || major == 1 && minor < 8
}

// dataChunksHash is the sha256 of a chunk-based file's chunks holding
// data, one after another.
func dataChunksHash(t *testing.T, n *node) string {
	t.Helper()
	r, err := n.in.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	csize := int64(blockSize) << n.sp.bits
	for c, d := range n.sp.data() {
		k := min(csize, n.size-int64(c)*csize)
		w := io.Discard
		if d {
			w = h
		}
		if _, err := io.CopyN(w, r, k); err != nil {
			t.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestSparseLocate: a chunk-based file has no extents to report (its
// holes are nowhere in the image): Locate on it is an error.
func TestSparseLocate(t *testing.T) {
	tr := tree.New(epoch)
	sparseFiles(tr)
	f, err := Kind.New(kfs.Params{Name: "root", Epoch: epoch, UUID: func(string) [16]byte { return testOpts.UUID }})
	if err != nil {
		t.Fatal(err)
	}
	size, err := f.MinSize(tr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(testkit.SparseFile(t, "img", size), kfs.Region{Size: size, Locate: []string{"/sparse/mid"}}, tr)
	testkit.ErrContains(t, err, "erofs: /sparse/mid is stored in chunks with holes")
}
