package erofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

// sameTree reports how got differs from want: every name, kind, mode,
// owner, time, size, target, device, xattr and content, and hardlinks
// (names of one inode in want are one inode in got).
func sameTree(t *testing.T, got, want *tree.Tree) {
	t.Helper()
	n := 0
	byInode := map[*tree.Inode]*tree.Inode{}
	if err := want.Walk(func(p string, d tree.Dirent) error {
		n++
		w, g := d.Inode, got.Lookup(p)
		if g == nil {
			t.Errorf("%s: missing", p)
			return nil
		}
		if prev, ok := byInode[w]; ok && prev != g {
			t.Errorf("%s: a hardlink read back as another inode", p)
		}
		byInode[w] = g
		ws := fmt.Sprintf("%v %04o %d:%d %d.%d size %d %q %d,%d %q", w.Kind, w.Mode, w.UID, w.GID, w.Mtime, w.Nsec, w.Size, w.Target, w.Major, w.Minor, w.Xattrs)
		gs := fmt.Sprintf("%v %04o %d:%d %d.%d size %d %q %d,%d %q", g.Kind, g.Mode, g.UID, g.GID, g.Mtime, g.Nsec, g.Size, g.Target, g.Major, g.Minor, g.Xattrs)
		if w.Kind == tree.Dir {
			ws, gs = strings.Replace(ws, fmt.Sprintf("size %d", w.Size), "", 1), strings.Replace(gs, fmt.Sprintf("size %d", g.Size), "", 1)
		}
		if gs != ws {
			t.Errorf("%s:\n got %s\nwant %s", p, gs, ws)
		}
		if w.Kind == tree.Regular && g.Kind == tree.Regular && !bytes.Equal(trees.Read(t, g), trees.Read(t, w)) {
			t.Errorf("%s: content differs", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := 0
	_ = got.Walk(func(string, tree.Dirent) error { m++; return nil })
	if m != n {
		t.Errorf("read back %d names, want %d", m, n)
	}
}

// TestReadTree: what Write wrote reads back as the tree it was.
func TestReadTree(t *testing.T) {
	tr := everyKind()
	trees.Put(tr, epoch, "/acl", trees.File(0o644, epoch, nil)).Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: posixACL}}
	img := writeImage(t, tr, testOpts)
	f, size := testkit.Open(t, img)
	got, err := ReadTree(f, size)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, got, tr)
}

// TestReadMkfsErofs: ReadTree reads what mkfs.erofs makes of a folder
// (shared xattrs included), so the reader does not only agree with
// kiln's own writer.
func TestReadMkfsErofs(t *testing.T) {
	judge.Need(t, "mkfs.erofs", "dump.erofs")
	testkit.NeedRoot(t, "the folder has owners, a fifo and trusted xattrs")
	src := t.TempDir()
	w := func(p string, data []byte, mode os.FileMode) string {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
		return full
	}
	want := tree.New(0)
	add := func(p string, data []byte, mode uint32) *tree.Inode {
		full := w(p, data, 0o644)
		if err := os.Chmod(full, os.FileMode(mode&0o777)|map[bool]os.FileMode{true: os.ModeSetuid}[mode&0o4000 != 0]); err != nil {
			t.Fatal(err)
		}
		return trees.Put(want, 0, p, trees.File(mode, 0, data))
	}
	add("a", []byte("hello"), 0o644)
	add("big", pattern("big", 3*4096+17), 0o755)
	add("suid", []byte("x"), 0o4755)
	for i := 0; i < 300; i++ {
		add(fmt.Sprintf("many/%03d-%s", i, strings.Repeat("y", i%50)), []byte(fmt.Sprint(i)), 0o600)
	}
	own := add("owned", []byte("owned"), 0o640)
	own.UID, own.GID = 1234, 5678
	if err := os.Chown(filepath.Join(src, "owned"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	trees.Put(want, 0, "link", &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Target: "a", Size: 1})
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	trees.Put(want, 0, "fifo", &tree.Inode{Kind: tree.FIFO, Mode: 0o600})
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "hard")); err != nil {
		t.Fatal(err)
	}
	want.Root.SetChild("hard", want.Lookup("/a"))
	// The same xattr on three files: mkfs.erofs shares it.
	for _, p := range []string{"a", "big", "owned"} {
		if err := syscall.Setxattr(filepath.Join(src, p), "trusted.shared", []byte("same value"), 0); err != nil {
			testkit.Missing(t, "trusted xattrs in %s: %v", src, err)
		}
		want.Lookup(p).Xattrs = []tree.Xattr{{Name: "trusted.shared", Value: []byte("same value")}}
	}
	for _, d := range []string{"", "many"} {
		if err := os.Chmod(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "ref.img")
	if out, rc := judge.Run(t, nil, "mkfs.erofs", "-T", "0", "-x", "1", img, src); rc != 0 {
		t.Fatalf("mkfs.erofs: exit %d\n%s", rc, out)
	}
	f, size := testkit.Open(t, img)
	got, err := ReadTree(f, size)
	if err != nil {
		t.Fatal(err)
	}
	// 16 bytes of xattrs: the header and one shared xattr's id (inline,
	// it would take 12+4+6+10 = 32).
	if out, rc := judge.Run(t, nil, "dump.erofs", "--path=/a", img); rc != 0 || !strings.Contains(out, "Xattr size: 16") {
		t.Fatalf("mkfs.erofs did not share the xattr of /a (exit %d):\n%s", rc, out)
	}
	sameTree(t, got, want)
}

// TestReadTreeRefuses: hostile images are errors naming what is wrong.
func TestReadTreeRefuses(t *testing.T) {
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/d/f", trees.File(0o644, epoch, []byte("data")))
	good, err := os.ReadFile(writeImage(t, tr, testOpts))
	if err != nil {
		t.Fatal(err)
	}
	l, err := plan(tr, testOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := l.nodes[1] // /d
	fix := func(b []byte) {
		copy(b[1028:1032], []byte{0, 0, 0, 0})
		s := superChecksum(b[1024:4096])
		b[1028], b[1029], b[1030], b[1031] = byte(s), byte(s>>8), byte(s>>16), byte(s>>24)
	}
	dirData := d.pos + 32 // /d's entries, inline after its inode
	for _, c := range []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"checksum", func(b []byte) { b[1024+20] ^= 1 }, "superblock checksum"},
		{"loop", func(b []byte) {
			// /d's entry for f points at the root.
			for i := 0; i < 4; i++ {
				e := b[dirData+int64(i)*direntSize:]
				if e[10] == ftReg {
					copy(e[:8], []byte{36, 0, 0, 0, 0, 0, 0, 0})
				}
			}
			fix(b)
		}, "reached twice"},
		{"nid beyond", func(b []byte) {
			for i := 0; i < 4; i++ {
				e := b[dirData+int64(i)*direntSize:]
				if e[10] == ftReg {
					copy(e[:8], []byte{0, 0, 0, 0, 0, 0, 0, 1})
				}
			}
			fix(b)
		}, "beyond the partition"},
		// f's 4 bytes read as its one chunk's block address.
		{"chunk beyond", func(b []byte) { b[l.nodes[2].pos] = 4 << 1; fix(b) }, "chunk 0: 4 bytes at 6697029877760 beyond the partition"},
		{"chunked directory", func(b []byte) { b[d.pos] = 4 << 1; fix(b) }, "a chunk-based file of type 040000"},
		{"chunk format", func(b []byte) { b[l.nodes[2].pos] = 4 << 1; b[l.nodes[2].pos+16] = 0x40; fix(b) }, "chunk format 0x40"},
		{"layout 5", func(b []byte) { b[l.nodes[2].pos] = 5 << 1; fix(b) }, "data layout 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(good)
			c.edit(b)
			_, err := ReadTree(bytes.NewReader(b), int64(len(b)))
			testkit.ErrContains(t, err, "erofs: read: ", c.want)
		})
	}
}

// FuzzReadTree feeds ReadTree hostile images: whatever the input, it
// returns without a panic, within testkit.ReadBound of allocation, and a
// tree it returns reads in full.
func FuzzReadTree(f *testing.F) {
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/d/f", trees.File(0o644, epoch, []byte("data")))
	trees.Put(tr, epoch, "/big", trees.File(0o644, epoch-1, pattern("b", 5000))).Xattrs = []tree.Xattr{{Name: "user.a", Value: []byte("v")}}
	trees.Put(tr, epoch, "/l", &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: epoch, Target: "d/f", Size: 3})
	l, err := plan(tr, testOpts, nil)
	if err != nil {
		f.Fatal(err)
	}
	var w bytesWriterAt
	if err := Write(&w, 1<<20, tr, testOpts); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(w[:l.blocks*blockSize]))
	// A compressed image: text (compressed pclusters and a tail), zeros
	// (long extents), noise and text mixed (PLAIN pclusters).
	zt := tree.New(epoch)
	trees.Put(zt, epoch, "/t", trees.File(0o644, epoch, text(1, 20000)))
	trees.Put(zt, epoch, "/z", trees.File(0o644, epoch, make([]byte, 300000)))
	trees.Put(zt, epoch, "/m", trees.File(0o644, epoch, append(text(2, 9000), noise(2, 9000)...)))
	zl, err := plan(zt, zOpts, nil)
	if err != nil {
		f.Fatal(err)
	}
	var zw bytesWriterAt
	if err := Write(&zw, 1<<20, zt, zOpts); err != nil {
		f.Fatal(err)
	}
	if zl.zfiles != 3 {
		f.Fatalf("%d files compressed, want 3", zl.zfiles)
	}
	f.Add([]byte(zw[:zl.blocks*blockSize]))
	// Chunk based: a hole, data, a hole.
	ct := tree.New(epoch)
	hole := make([]byte, 200<<10)
	copy(hole[100<<10:], "data")
	trees.Put(ct, epoch, "/h", trees.File(0o644, epoch, hole))
	cl, err := plan(ct, testOpts, nil)
	if err != nil {
		f.Fatal(err)
	}
	var cw bytesWriterAt
	if err := Write(&cw, 1<<20, ct, testOpts); err != nil {
		f.Fatal(err)
	}
	if cl.chunked != 1 {
		f.Fatalf("%d files chunk based, want 1", cl.chunked)
	}
	f.Add([]byte(cw[:cl.blocks*blockSize]))
	f.Fuzz(func(t *testing.T, data []byte) {
		// As given, and with the superblock's checksum made right, so
		// that mutations reach past it.
		fixed := bytes.Clone(data)
		if len(fixed) >= blockSize {
			binary.LittleEndian.PutUint32(fixed[superOffset+4:], superChecksum(fixed[superOffset:blockSize]))
		}
		for _, data := range [][]byte{data, fixed} {
			fuzzOne(t, data)
		}
	})
}

// fuzzOne reads one input: no panic, at most testkit.ReadBound
// allocated, errors with the package's prefix, and a tree that reads in
// full.
func fuzzOne(t *testing.T, data []byte) {
	testkit.BoundAlloc(t, testkit.ReadBound, func() {
		got, err := ReadTree(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "erofs: read: ") {
				t.Fatalf("error without the package's prefix: %v", err)
			}
			return
		}
		if got.Root == nil || got.Root.Kind != tree.Dir {
			t.Fatal("no root directory")
		}
		_ = got.Walk(func(p string, d tree.Dirent) error {
			if d.Inode.Kind == tree.Regular {
				// Counted, not kept: a compressed file may be far
				// larger than the image.
				r, err := d.Inode.Content.Open()
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				n, err := io.Copy(io.Discard, r)
				r.Close()
				if err != nil {
					if !strings.HasPrefix(err.Error(), "erofs: read: ") {
						t.Fatalf("%s: error without the package's prefix: %v", p, err)
					}
					return nil
				}
				if n != d.Inode.Size {
					t.Fatalf("%s: %d bytes, size %d", p, n, d.Inode.Size)
				}
			}
			return nil
		})
	})
}

// bytesWriterAt is an io.WriterAt into memory.
type bytesWriterAt []byte

func (b *bytesWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if need := off + int64(len(p)); need > int64(len(*b)) {
		*b = append(*b, make([]byte, need-int64(len(*b)))...)
	}
	return copy((*b)[off:], p), nil
}

// zeros is a Content of n zero bytes, made on the fly.
type zeros int64

func (z zeros) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(zeroReader{}, int64(z))), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// sparseMem is an io.WriterAt and io.ReaderAt in memory that keeps only
// the blocks holding something other than zeros.
type sparseMem map[int64][]byte

func (m sparseMem) WriteAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); {
		blk, o := (off+int64(i))/blockSize, (off+int64(i))%blockSize
		k := min(len(p)-i, int(blockSize-o))
		b := m[blk]
		if b == nil && bytes.Count(p[i:i+k], []byte{0}) == k {
			i += k
			continue
		}
		if b == nil {
			b = make([]byte, blockSize)
			m[blk] = b
		}
		copy(b[o:], p[i:i+k])
		i += k
	}
	return len(p), nil
}

func (m sparseMem) ReadAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); {
		blk, o := (off+int64(i))/blockSize, (off+int64(i))%blockSize
		k := min(len(p)-i, int(blockSize-o))
		if b := m[blk]; b != nil {
			copy(p[i:i+k], b[o:])
		} else {
			clear(p[i : i+k])
		}
		i += k
	}
	return len(p), nil
}

// TestLargeFile: a file of 4 GiB and more takes an extended inode (its
// size does not fit 32 bits) and reads back whole. Its zeros would make
// it chunk based (sparse_test.go): here it is kept flat.
func TestLargeFile(t *testing.T) {
	const n = 4<<30 + 4097
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/large", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: n, Content: zeros(n)})
	trees.Put(tr, epoch, "/after", trees.File(0o644, epoch, []byte("after")))
	o := testOpts
	o.noChunks = true
	size, err := MinSize(tr, o)
	if err != nil {
		t.Fatal(err)
	}
	m := sparseMem{}
	if err := Write(m, size, tr, o); err != nil {
		t.Fatal(err)
	}
	l, err := plan(tr, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if large := l.nodes[2]; large.path != "/large" || !large.extended || large.layout != layoutFlatInline || large.tail != 1 {
		t.Errorf("/large laid out as %+v", large)
	}
	got, err := ReadTree(m, size)
	if err != nil {
		t.Fatal(err)
	}
	if g := got.Lookup("/large"); g == nil || g.Size != n {
		t.Fatalf("/large read back as %+v", g)
	}
	if b := trees.Read(t, got.Lookup("/after")); string(b) != "after" {
		t.Errorf("/after: %q", b)
	}
}
