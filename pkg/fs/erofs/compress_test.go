package erofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	kfs "github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/tree"
)

// zOpts compresses; files of zeros (zTree's /z/zeros-3MiB) stay in the
// compressed layout under test rather than chunk based (sparse_test.go
// has chunks with lz4).
var zOpts = func() Options { o := testOpts; o.Compression = "lz4"; o.noChunks = true; return o }()

// text is n bytes of text-like content (words from a small vocabulary,
// seeded): it compresses, not trivially.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := strings.Fields("the quick brown fox jumps over a lazy dog kiln erofs image block cluster " +
		"compress static const return func struct if else for range nil error package import " +
		"0 1 2 3 4 5 6 7 8 9 = { } ( ) ; , . \n \n\t")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(4) != 0 {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// noise is n seeded random bytes: they do not compress.
func noise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// zFiles adds to tr the files compression has to get right: text,
// noise and zeros at sizes around the block boundaries, 1 MiB + 1, a
// 20 MiB file, text and noise mixed (extents of both kinds in one file),
// a mostly-zero file, and compressible files with xattrs and extended
// inodes.
func zFiles(tr *tree.Tree) {
	put := func(p string, data []byte) *tree.Inode {
		return trees.Put(tr, epoch, p, trees.File(0o644, epoch, data))
	}
	for _, n := range []int{0, 1, 4095, 4096, 4097, 4200, 8191, 8192, 8193, 12288 + 5, 65536} {
		put(fmt.Sprintf("/z/text-%d", n), text(uint64(n), n))
		put(fmt.Sprintf("/z/noise-%d", n), noise(uint64(n), n))
		put(fmt.Sprintf("/z/zeros-%d", n), make([]byte, n))
	}
	put("/z/text-1MiB+1", text(7, 1<<20+1))
	put("/z/big-20MiB", text(20, 20<<20))
	var mixed []byte
	for i := 0; i < 40; i++ {
		mixed = append(mixed, text(uint64(100+i), 3000+i*977)...)
		mixed = append(mixed, noise(uint64(200+i), 5000+i*131)...)
	}
	put("/z/mixed", mixed)
	sparse := make([]byte, 5<<20+123)
	copy(sparse[1<<20:], text(9, 10000))
	copy(sparse[3<<20+77:], noise(9, 7000))
	put("/z/sparse-ish", sparse)
	trees.Put(tr, epoch, "/z/zeros-3MiB", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: 3 << 20, Content: zeros(3 << 20)})
	x := put("/z/xattrs-text", text(11, 30000))
	x.Xattrs = []tree.Xattr{{Name: "user.a", Value: []byte(strings.Repeat("v", 300))}, {Name: "user.b", Value: []byte("w")}}
	hi := put("/z/owners-text", text(12, 50000))
	hi.UID, hi.GID = 100000, 200000
	hl := put("/z/hard-a", text(13, 20000))
	trees.Put(tr, epoch, "/z/hard-b", hl)
	// Many small compressed files: their indexes share metadata blocks.
	for i := 0; i < 200; i++ {
		put(fmt.Sprintf("/z/many/%03d", i), text(uint64(1000+i), 8192+i*61))
	}
}

func zTree() *tree.Tree {
	tr := everyKind()
	zFiles(tr)
	return tr
}

// blockRules checks what the kernel's LZ4_decompress_safe requires of
// a block that decodes to n bytes: its last sequence is literals only,
// at least 5 of them, and the last match starts 12 bytes or more before
// the end.
func blockRules(t *testing.T, blk []byte, n int) {
	t.Helper()
	ip, op, lastMatch := 0, 0, -1
	readLen := func(v int) int {
		for {
			b := blk[ip]
			ip++
			v += int(b)
			if b != 255 {
				return v
			}
		}
	}
	for {
		tok := blk[ip]
		ip++
		lit := int(tok >> 4)
		if lit == 15 {
			lit = readLen(lit)
		}
		ip += lit
		op += lit
		if ip == len(blk) {
			if lit < lz4LastLiterals && n >= lz4LastLiterals {
				t.Fatalf("last sequence has %d literals", lit)
			}
			if lastMatch >= 0 && lastMatch > n-lz4MFLimit {
				t.Fatalf("last match starts at %d of %d", lastMatch, n)
			}
			if op != n {
				t.Fatalf("block decodes to %d bytes, want %d", op, n)
			}
			return
		}
		ip += 2
		ml := int(tok & 15)
		if ml == 15 {
			ml = readLen(ml)
		}
		lastMatch = op
		op += ml + lz4MinMatch
	}
}

// TestLZ4DestSize: destSize fills at most its output, decodes back to
// the prefix it says it took, keeps the kernel's end-of-block rules, and
// takes more than a block of what compresses.
func TestLZ4DestSize(t *testing.T) {
	var e lz4Encoder
	for _, c := range []struct {
		name      string
		src       []byte
		compresse bool
	}{
		{"text", text(1, 1<<20), true},
		{"noise", noise(1, 100000), false},
		{"zeros", make([]byte, 1<<20), true},
		{"short", []byte("abcabcabcabcabcabcabc"), false},
		{"tiny", []byte("a"), false},
		{"mixed", append(text(2, 3000), noise(2, 9000)...), true},
		{"repeat", bytes.Repeat([]byte("0123456789abcdef"), 20000), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, budget := range []int{4096, 100, 16} {
				dst := make([]byte, budget)
				used, w := e.destSize(c.src, dst)
				if w > budget || used > len(c.src) || used <= 0 {
					t.Fatalf("budget %d: took %d of %d bytes into %d", budget, used, len(c.src), w)
				}
				blockRules(t, dst[:w], used)
				got := make([]byte, used)
				if err := lz4Decode(got, dst[:w]); err != nil {
					t.Fatalf("budget %d: %v", budget, err)
				}
				if !bytes.Equal(got, c.src[:used]) {
					t.Fatalf("budget %d: decodes to other bytes", budget)
				}
				if budget == 4096 && c.compresse != (used > 4096) {
					t.Errorf("took %d bytes into %d", used, w)
				}
				if budget == 4096 && !c.compresse && len(c.src) > 4096 && used < 4000 {
					t.Errorf("incompressible: took only %d bytes into %d", used, w)
				}
				t.Logf("budget %d: %d bytes into %d", budget, used, w)
			}
		})
	}
}

// TestLZ4DecodeRefuses: a truncated or corrupted block is an error, not
// a panic or a wrong length.
func TestLZ4DecodeRefuses(t *testing.T) {
	var e lz4Encoder
	src := text(3, 50000)
	dst := make([]byte, 4096)
	used, w := e.destSize(src, dst)
	blk := dst[:w]
	out := make([]byte, used)
	if err := lz4Decode(out, blk); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		blk  []byte
		n    int
	}{
		{"truncated", blk[:w-1], used},
		{"short output", blk, used - 1},
		{"long output", blk, used + 1},
		{"offset zero", append([]byte{0x10, 'a', 0, 0}, 0x50, 1, 2, 3, 4, 5), 10},
		{"offset before start", append([]byte{0x10, 'a', 2, 0}, 0x50, 1, 2, 3, 4, 5), 10},
		{"empty", nil, 1},
	} {
		if err := lz4Decode(make([]byte, c.n), c.blk); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// TestCompressedFsck: fsck.erofs passes a compressed image of every kind
// of entry and of the compression edge cases, and extracts the files
// byte for byte; dump.erofs shows the zero-padding feature and which
// files are compressed (layout 1) or not (0 and 2: small,
// incompressible).
func TestCompressedFsck(t *testing.T) {
	judge.Need(t, "fsck.erofs", "dump.erofs")
	tr := zTree()
	img := writeImage(t, tr, zOpts)
	if out, ok := fsckErofs(t, img); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
	out, rc := judge.Run(t, nil, "dump.erofs", "-s", img)
	if rc != 0 || !strings.Contains(dumpField(t, out, "Filesystem features"), "0padding") {
		t.Errorf("dump.erofs -s: no 0padding (exit %d):\n%s", rc, out)
	}
	for p, layout := range map[string]string{
		"/z/zeros-8192": "1", "/z/text-65536": "1", "/z/big-20MiB": "1", "/z/zeros-3MiB": "1", "/z/mixed": "1",
		"/z/xattrs-text": "1", "/z/zeros-4097": "1",
		"/z/zeros-4096": "0", "/z/noise-65536": "0", "/z/noise-8193": "2", "/z/text-1": "2", "/small": "2", "/many": "2",
	} {
		out, rc := judge.Run(t, nil, "dump.erofs", "--path="+p, img)
		if rc != 0 || !strings.Contains(out, "Layout: "+layout+" ") {
			t.Errorf("dump.erofs %s: want layout %s (exit %d):\n%s", p, layout, rc, out)
		}
	}
	// fsck.erofs 1.5 decompresses only when it extracts: the files
	// alone (no devices or owners: no root needed), compared byte for
	// byte.
	files := tree.New(epoch)
	zFiles(files)
	dir := filepath.Join(t.TempDir(), "x")
	if out, ok := fsckErofs(t, "--extract="+dir, writeImage(t, files, zOpts)); !ok {
		t.Fatalf("fsck.erofs --extract:\n%s", out)
	}
	checked := 0
	if err := files.Walk(func(p string, d tree.Dirent) error {
		if d.Inode.Kind != tree.Regular {
			return nil
		}
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, trees.Read(t, d.Inode)) {
			t.Errorf("%s: fsck.erofs --extract gives other bytes", p)
		}
		checked++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if checked < 200 {
		t.Fatalf("only %d files compared", checked)
	}
	// The judge can fail: a broken pcluster.
	l, err := plan(tr, zOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range l.nodes {
		if n.path == "/z/text-65536" {
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			blk := b[int64(n.blkaddr)*blockSize : int64(n.blkaddr+1)*blockSize]
			i := bytes.IndexFunc(blk, func(r rune) bool { return r != 0 })
			blk[i+1] ^= 0x55
			bad := filepath.Join(t.TempDir(), "bad.img")
			if err := os.WriteFile(bad, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, ok := fsckErofs(t, "--extract="+filepath.Join(t.TempDir(), "x"), bad); ok {
				t.Errorf("fsck.erofs accepts a corrupt pcluster:\n%s", out)
			}
			return
		}
	}
	t.Fatal("/z/text-65536 not laid out")
}

// TestCompressedExtract: fsck.erofs --extract gives back every file of a
// compressed image, contents compared byte for byte (by sha256).
func TestCompressedExtract(t *testing.T) {
	extractMatches(t, zTree(), zOpts)
}

// TestCompressedKernelMount: the running kernel mounts a compressed image
// and reads every file back as it was (opt-in, as TestKernelMount).
func TestCompressedKernelMount(t *testing.T) {
	if os.Getenv("KILN_EROFS_MOUNT") == "" {
		t.Skip("set KILN_EROFS_MOUNT=1 (as root) to loop-mount images")
	}
	tr := zTree()
	dir := mountMatches(t, tr, zOpts)
	// Reads that start inside extents (the page cache is cold for
	// these offsets: the file was not read whole before).
	f, err := os.Open(filepath.Join(dir, "z/mixed"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := trees.Read(t, tr.Lookup("/z/mixed"))
	for _, off := range []int64{int64(len(want)) - 1, 123457, 4095, 8191 * 3} {
		b := make([]byte, 5000)
		n, _ := f.ReadAt(b, off)
		if !bytes.Equal(b[:n], want[off:min(int64(len(want)), off+5000)]) {
			t.Errorf("/z/mixed at %d: other bytes", off)
		}
	}
}

// TestCompressedReproducible: two compressed writes of one tree are
// byte-identical, and differ from the uncompressed write.
func TestCompressedReproducible(t *testing.T) {
	a, err := os.ReadFile(writeImage(t, zTree(), zOpts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeImage(t, zTree(), zOpts))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two compressed writes of one tree differ")
	}
	c, err := os.ReadFile(writeImage(t, zTree(), testOpts))
	if err != nil {
		t.Fatal(err)
	}
	if len(c) <= len(a) {
		t.Fatalf("uncompressed image %d bytes, compressed %d", len(c), len(a))
	}
	t.Logf("uncompressed %d bytes, lz4 %d", len(c), len(a))
}

// TestCompressedReadTree: kiln's reader reads a compressed image back as
// the tree it was, and refuses a corrupt pcluster and broken indexes.
func TestCompressedReadTree(t *testing.T) {
	tr := zTree()
	img := writeImage(t, tr, zOpts)
	f, size := testkit.Open(t, img)
	got, err := ReadTree(f, size)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, got, tr)

	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	l, err := plan(tr, zOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n *node
	for _, c := range l.nodes {
		if c.path == "/z/text-65536" {
			n = c
		}
	}
	if n == nil || n.zblocks == 0 {
		t.Fatal("/z/text-65536 is not compressed")
	}
	idx := n.pos + (n.isize()+7)/8*8 + zMapHeaderSize
	for _, c := range []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"pcluster", func(b []byte) {
			blk := b[int64(n.blkaddr)*blockSize:]
			blk[bytes.IndexFunc(blk, func(r rune) bool { return r != 0 })+1] ^= 0x55
		}, "corrupt lz4 block"},
		{"nonhead distance", func(b []byte) {
			for i := idx; ; i += zIndexSize {
				if b[i] == zNonhead {
					b[i+4] = 9
					return
				}
			}
		}, "NONHEAD"},
		{"head beyond", func(b []byte) { b[idx+3*zIndexSize] = zHead1; b[idx+3*zIndexSize+3] = 0x20 }, "head at offset"},
		{"more heads than blocks", func(b []byte) {
			for i := idx; ; i += zIndexSize {
				if b[i] == zNonhead {
					b[i], b[i+2], b[i+3] = zHead1, 0, 0
					copy(b[i+4:i+8], b[idx+4:idx+8]) // the first pcluster's block
					return
				}
			}
		}, "more pclusters than the inode's"},
		{"blocks beyond", func(b []byte) { binary.LittleEndian.PutUint32(b[n.pos+16:], 1<<30) }, "compressed blocks in a partition"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(good)
			c.edit(b)
			binary.LittleEndian.PutUint32(b[superOffset+4:], superChecksum(b[superOffset:blockSize]))
			got, err := ReadTree(bytes.NewReader(b), int64(len(b)))
			if err == nil {
				r, _ := got.Lookup("/z/text-65536").Content.Open()
				_, err = io.Copy(io.Discard, r)
			}
			testkit.ErrContains(t, err, "erofs: read: ", c.want)
		})
	}
}

// TestReadMkfsCompressed: ReadTree reads what mkfs.erofs -zlz4 makes,
// with -E legacy-compress (COMPRESSED_FULL, the layout kiln writes, no
// zero padding) and by default (COMPRESSED_COMPACT, zero padding), so
// reader and writer do not merely agree with each other.
func TestReadMkfsCompressed(t *testing.T) {
	judge.Need(t, "mkfs.erofs", "dump.erofs")
	src := t.TempDir()
	want := tree.New(0)
	files := map[string][]byte{
		"text": text(1, 300000), "noise": noise(1, 50000), "zeros": make([]byte, 3<<20+5), "t8192": text(2, 8192),
		"mixed": append(append(text(3, 20000), noise(3, 20000)...), text(4, 20000)...), "small": []byte("small"),
	}
	// Sizes that put the 2-byte compact entries in and out of play.
	for _, n := range []int{70000, 131072, 200001, 4 << 20} {
		files[fmt.Sprintf("t%d", n)] = append(text(uint64(n), n/2), noise(uint64(n), n-n/2)...)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		trees.Put(want, 0, "/"+name, trees.File(0o644, 0, data))
	}
	if err := os.Chmod(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		layout string
	}{{[]string{"-Elegacy-compress"}, "1"}, {nil, "3"}} {
		img := filepath.Join(t.TempDir(), "ref.img")
		args := append(append([]string{"-zlz4", "-T0"}, c.args...), img, src)
		if out, rc := judge.Run(t, nil, "mkfs.erofs", args...); rc != 0 {
			t.Fatalf("mkfs.erofs: exit %d\n%s", rc, out)
		}
		if out, rc := judge.Run(t, nil, "dump.erofs", "--path=/mixed", img); rc != 0 || !strings.Contains(out, "Layout: "+c.layout+" ") {
			t.Fatalf("mkfs.erofs %v did not compress /mixed in layout %s (exit %d):\n%s", c.args, c.layout, rc, out)
		}
		f, size := testkit.Open(t, img)
		got, err := ReadTree(f, size)
		if err != nil {
			t.Fatalf("layout %s: %v", c.layout, err)
		}
		for name := range files {
			g := got.Lookup("/" + name)
			if g == nil || !bytes.Equal(trees.Read(t, g), files[name]) {
				t.Errorf("layout %s: /%s: content differs", c.layout, name)
			}
		}
	}

	// Hostile: seeded mutations of a small compact image's metadata
	// (FuzzReadTree's check).
	small := t.TempDir()
	for name, data := range map[string][]byte{"t": text(5, 70000), "z": make([]byte, 300000), "m": append(text(6, 9000), noise(6, 9000)...)} {
		if err := os.WriteFile(filepath.Join(small, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "small.img")
	if out, rc := judge.Run(t, nil, "mkfs.erofs", "-zlz4", "-T0", img, small); rc != 0 {
		t.Fatalf("mkfs.erofs: exit %d\n%s", rc, out)
	}
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	for i := 0; i < 1000; i++ {
		b := bytes.Clone(good)
		for k := 1 + r.IntN(3); k > 0; k-- {
			b[superOffset+superSize+r.IntN(blockSize-superOffset-superSize)] = byte(r.Uint32())
		}
		binary.LittleEndian.PutUint32(b[superOffset+4:], superChecksum(b[superOffset:blockSize]))
		fuzzOne(t, b)
	}
}

// TestCompressionOption: New takes fs.Params.Compression: "" and "none"
// write the uncompressed layout, byte for byte the same; "lz4"
// compresses; any other value is an error naming it. A compressed file
// has no extents to locate; an uncompressed one in an lz4 filesystem
// has.
func TestCompressionOption(t *testing.T) {
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/text", trees.File(0o644, epoch, text(1, 100000)))
	trees.Put(tr, epoch, "/small", trees.File(0o644, epoch, []byte("small")))
	params := func(c string) kfs.Params {
		return kfs.Params{Name: "root", Epoch: epoch, UUID: func(string) [16]byte { return testOpts.UUID }, Compression: c}
	}
	_, err := Kind.New(params("zstd"))
	testkit.ErrContains(t, err, `compression "zstd"`)
	_, err = MinSize(tr, Options{Compression: "LZ4"})
	testkit.ErrContains(t, err, `compression "LZ4"`)

	images := map[string][]byte{}
	for _, c := range []string{"", "none", "lz4"} {
		f, err := Kind.New(params(c))
		if err != nil {
			t.Fatal(err)
		}
		size, err := f.MinSize(tr)
		if err != nil {
			t.Fatal(err)
		}
		img := testkit.SparseFile(t, "img", size)
		rep, err := f.Write(img, kfs.Region{Size: size, Locate: []string{"/small"}}, tr)
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		if len(rep.Extents["/small"]) != 1 {
			t.Errorf("%q: /small extents %v", c, rep.Extents["/small"])
		}
		b, err := os.ReadFile(img.Name())
		if err != nil {
			t.Fatal(err)
		}
		images[c] = b
		if c == "lz4" {
			_, err := f.Write(testkit.SparseFile(t, "img2", size), kfs.Region{Size: size, Locate: []string{"/text"}}, tr)
			testkit.ErrContains(t, err, "/text is compressed")
		}
	}
	if !bytes.Equal(images[""], images["none"]) {
		t.Error(`compression "" and "none" write different images`)
	}
	if bytes.Equal(images[""], images["lz4"]) {
		t.Error(`compression "lz4" writes the uncompressed image`)
	}
	if got := binary.LittleEndian.Uint32(images["lz4"][superOffset+80:]); got != featureIncompatZeroPadding {
		t.Errorf("lz4: feature_incompat %#x", got)
	}
	if got := binary.LittleEndian.Uint32(images[""][superOffset+80:]); got != 0 {
		t.Errorf("none: feature_incompat %#x", got)
	}
}

// TestCompressedContentChanged: when Write compresses a file again (no
// spill file for what the plan compressed), content that changed since
// the plan (a file source that is not stable) is an error, never an
// image whose indexes do not match its data; a file compressed ahead
// (small) and one compressed by the writer (over zAheadFile).
func TestCompressedContentChanged(t *testing.T) {
	for _, n := range []int{100000, zAheadFile * 3} {
		tr := tree.New(epoch)
		c := &flipContent{a: bytes.Repeat(text(1, 100000), n/100000+1)[:n], b: noise(1, n)}
		trees.Put(tr, epoch, "/f", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: int64(n), Content: c})
		zc := &zcache{m: map[*tree.Inode]*zent{}} // no spill
		_, err := write(testkit.SparseFile(t, "img", 64<<20), 64<<20, tr, zOpts, zc)
		testkit.ErrContains(t, err, "/f: content changed since it was planned")
	}
}

// TestCompressedSpill: the pclusters the plan keeps in spill files and
// copies (Write, and MinSize then Write through New) give the same
// bytes as compressing again in the write (no spill); released, the
// cache still sizes, and a second Write compresses again, alike.
func TestCompressedSpill(t *testing.T) {
	tr := tree.New(epoch)
	zFiles(tr)
	zOpts := zOpts
	zOpts.noChunks = false // as Kind.New: /z/zeros-3MiB chunk based
	size, err := MinSize(tr, zOpts)
	if err != nil {
		t.Fatal(err)
	}
	read := func(f *os.File) []byte {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := testkit.SparseFile(t, "plain", size)
	zc := &zcache{m: map[*tree.Inode]*zent{}}
	if _, err := write(plain, size, tr, zOpts, zc); err != nil {
		t.Fatal(err)
	}
	want := read(plain)
	spilled := testkit.SparseFile(t, "spilled", size)
	if err := Write(spilled, size, tr, zOpts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(spilled), want) {
		t.Error("Write (spill) and write without spill differ")
	}
	f, err := Kind.New(kfs.Params{Name: "root", Label: "kiln-root", Epoch: epoch, UUID: func(string) [16]byte { return testOpts.UUID }, Compression: "lz4"})
	if err != nil {
		t.Fatal(err)
	}
	fs := f.(*filesystem)
	if got, err := fs.MinSize(tr); err != nil || got != size {
		t.Fatalf("MinSize %d (%v), want %d", got, err, size)
	}
	if len(fs.zc.files) == 0 {
		t.Fatal("MinSize kept no spill file")
	}
	for i := 0; i < 2; i++ {
		img := testkit.SparseFile(t, "img", size)
		if _, err := fs.Write(img, kfs.Region{Size: size}, tr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(read(img), want) {
			t.Errorf("Write %d through New differs", i+1)
		}
		if len(fs.zc.files) != 0 {
			t.Errorf("Write %d left %d spill files open", i+1, len(fs.zc.files))
		}
	}
}

// flipContent gives a on its first Open, b after.
type flipContent struct {
	a, b   []byte
	opened bool
}

func (f *flipContent) Open() (io.ReadCloser, error) {
	if f.opened {
		return io.NopCloser(bytes.NewReader(f.b)), nil
	}
	f.opened = true
	return io.NopCloser(bytes.NewReader(f.a)), nil
}

// TestCompressedLargeFile: a compressed file of 4 GiB and more (an
// extended inode; over a million indexes, written through the metadata
// window in chunks) passes fsck.erofs and reads back whole, with
// ReadTree and (KILN_EROFS_MOUNT=1) the kernel.
func TestCompressedLargeFile(t *testing.T) {
	judge.Need(t, "fsck.erofs")
	const n = 4<<30 + 4097
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/large", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: n, Content: zeros(n)})
	trees.Put(tr, epoch, "/after", trees.File(0o644, epoch, text(1, 50000)))
	l, err := plan(tr, zOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if large := l.nodes[2]; large.path != "/large" || !large.extended || large.zblocks == 0 || large.zblocks > n/(1<<19) {
		t.Fatalf("/large laid out as %+v", large)
	}
	img := writeImage(t, tr, zOpts)
	if out, ok := fsckErofs(t, img); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
	f, size := testkit.Open(t, img)
	got, err := ReadTree(f, size)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Lookup("/large")
	if g == nil || g.Size != n {
		t.Fatalf("/large read back as %+v", g)
	}
	r, err := g.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	var z zeroCheck
	if m, err := io.Copy(&z, r); err != nil || m != n || z.nonzero {
		t.Errorf("/large: %d bytes read (%v), non-zero bytes: %v", m, err, z.nonzero)
	}
	if !bytes.Equal(trees.Read(t, got.Lookup("/after")), trees.Read(t, tr.Lookup("/after"))) {
		t.Error("/after: content differs")
	}
	if os.Getenv("KILN_EROFS_MOUNT") == "" {
		return
	}
	// The kernel reads it too.
	dir := mountImage(t, img)
	h, err := os.Open(filepath.Join(dir, "large"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var k zeroCheck
	if m, err := io.Copy(&k, h); err != nil || m != n || k.nonzero {
		t.Errorf("kernel: /large: %d bytes read (%v), non-zero bytes: %v", m, err, k.nonzero)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "after")); err != nil || !bytes.Equal(b, trees.Read(t, tr.Lookup("/after"))) {
		t.Errorf("kernel: /after: content differs (%v)", err)
	}
}

// zeroCheck is a writer that notes a non-zero byte.
type zeroCheck struct{ nonzero bool }

func (z *zeroCheck) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), len(zeroBlock))
		if !bytes.Equal(p[:k], zeroBlock[:k]) {
			z.nonzero = true
		}
		p = p[k:]
	}
	return n, nil
}

var zeroBlock = make([]byte, 64<<10)

// TestCompressedRefuses: with lz4, content shorter or longer than its
// size is an error naming the file, as without compression.
func TestCompressedRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		size int64
		want string
	}{
		{"short", text(1, 10000), 20000, "/f: content is 10000 bytes, want 20000"},
		{"long", text(1, 30000), 20000, "/f: content is longer than its size 20000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := tree.New(epoch)
			f := trees.Put(tr, epoch, "/f", trees.File(0o644, epoch, c.data))
			f.Size = c.size
			_, err := MinSize(tr, zOpts)
			testkit.ErrContains(t, err, c.want)
			err = Write(testkit.SparseFile(t, "img", 8<<20), 8<<20, tr, zOpts)
			testkit.ErrContains(t, err, c.want)
		})
	}
}

// TestCompressedReadHostile is FuzzReadTree's check on seeded mutations
// of a compressed image (the fuzzing engine is slow here): bytes of the
// compressed inodes, their indexes and their pclusters changed at
// random, the superblock checksum fixed; ReadTree and reading every file
// never panic, stay within testkit.ReadBound and fail with the package's
// errors.
func TestCompressedReadHostile(t *testing.T) {
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/t", trees.File(0o644, epoch, text(1, 20000)))
	trees.Put(tr, epoch, "/z", trees.File(0o644, epoch, make([]byte, 300000)))
	trees.Put(tr, epoch, "/m", trees.File(0o644, epoch, append(text(2, 9000), noise(2, 9000)...)))
	l, err := plan(tr, zOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	var w bytesWriterAt
	if err := Write(&w, 1<<20, tr, zOpts); err != nil {
		t.Fatal(err)
	}
	good := []byte(w[:l.blocks*blockSize])
	r := rand.New(rand.NewPCG(1, 3))
	failed := 0
	for i := 0; i < 3000; i++ {
		b := bytes.Clone(good)
		for k := 1 + r.IntN(4); k > 0; k-- {
			var at int
			if r.IntN(2) == 0 { // the metadata: inodes, headers, indexes
				at = superOffset + superSize + r.IntN(int(l.metaEnd)-superOffset-superSize)
			} else { // the data: pclusters
				at = int(l.dataStart)*blockSize + r.IntN(len(b)-int(l.dataStart)*blockSize)
			}
			b[at] = byte(r.Uint32())
		}
		binary.LittleEndian.PutUint32(b[superOffset+4:], superChecksum(b[superOffset:blockSize]))
		fuzzOne(t, b)
		if _, err := ReadTree(bytes.NewReader(b), int64(len(b))); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Error("no mutation made ReadTree fail: the mutations do not reach the compressed files")
	}
	t.Logf("%d of 3000 mutations refused by ReadTree", failed)
}
