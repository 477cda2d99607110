package fat

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Helpers of the ReadTree tests carry an rt prefix: the package's other
// test helpers change independently.

const rtEpoch = 1700000000 // 2023-11-14 22:13:20 UTC, an even second

// rtBytes is file content held in memory.
type rtBytes []byte

func (b rtBytes) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }

// rtRandom returns n deterministic bytes.
func rtRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 24)
	}
	return b
}

func rtFile(mode uint32, mtime int64, data []byte) *tree.Inode {
	n := &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: mtime, Size: int64(len(data))}
	if len(data) > 0 {
		n.Content = rtBytes(data)
	}
	return n
}

// rtPut puts n at path p of tr, creating parent directories.
func rtPut(tr *tree.Tree, p string, n *tree.Inode) *tree.Inode {
	dir, name := filepath.Split(p)
	rtMkdir(tr, dir).SetChild(name, n)
	return n
}

func rtMkdir(tr *tree.Tree, p string) *tree.Inode {
	n := tr.Root
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		if el == "" {
			continue
		}
		c := n.Child(el)
		if c == nil {
			c = tree.NewDir(0o755, 0, 0, rtEpoch)
			n.SetChild(el, c)
		}
		n = c
	}
	return n
}

// rtFeatureTree has names of every kind FAT stores and files of sizes
// around the cluster size.
func rtFeatureTree(clusterSize int) *tree.Tree {
	tr := tree.New(rtEpoch)
	rtPut(tr, "/README.TXT", rtFile(0o644, rtEpoch, []byte("upper 8.3: a short entry only\n")))
	rtPut(tr, "/readme.md", rtFile(0o644, rtEpoch+1, []byte("lower 8.3: NT case bits\n"))) // odd second
	rtPut(tr, "/NAME.ext", rtFile(0o644, rtEpoch, []byte("base upper, ext lower")))
	rtPut(tr, "/MixedCase.Txt", rtFile(0o600, rtEpoch, []byte("mixed: a long name")))
	rtPut(tr, "/a long name with spaces.tar.gz", rtFile(0o644, rtEpoch, rtRandom(100, 1)))
	rtPut(tr, "/ünïcödé-名前.txt", rtFile(0o644, rtEpoch, []byte("BMP")))
	rtPut(tr, "/emoji-😀-𝄞.txt", rtFile(0o644, rtEpoch, []byte("surrogate pairs")))
	rtPut(tr, "/"+strings.Repeat("x", 240)+".long", rtFile(0o644, rtEpoch, nil)) // 245 units
	rtPut(tr, "/readonly", rtFile(0o444, rtEpoch, []byte("ro")))
	rtPut(tr, "/readonly-exec", rtFile(0o555, rtEpoch, []byte("ro too")))
	rtPut(tr, "/old", rtFile(0o644, 0, []byte("1970 clamps to 1980")))
	rtPut(tr, "/future", rtFile(0o644, 5000000000, []byte("2128 clamps to 2107")))
	rtPut(tr, "/nsec", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch + 3, Nsec: 999999999, Size: 1, Content: rtBytes("n")})
	for i, n := range []int{0, 1, clusterSize - 1, clusterSize, clusterSize + 1, 3 << 20} {
		rtPut(tr, fmt.Sprintf("/sizes/s%d", i), rtFile(0o644, rtEpoch, rtRandom(n, uint64(i+2))))
	}
	many := rtMkdir(tr, "/many")
	for i := 0; i < 1000; i++ {
		many.SetChild(fmt.Sprintf("File number %04d.data", i), rtFile(0o644, rtEpoch, []byte(fmt.Sprint(i))))
	}
	d := rtMkdir(tr, "/a/b/c/d/e/f")
	d.SetChild("deep.txt", rtFile(0o644, rtEpoch, []byte("deep")))
	rtMkdir(tr, "/empty dir").Mtime = rtEpoch - 7
	return tr
}

// rtFATView is what FAT keeps of a tree: dirs 0755, files 0644 or 0444,
// no owners, times in 1980..2107 to 2 seconds, the root at 0.
func rtFATView(src *tree.Tree) *tree.Tree {
	var conv func(n *tree.Inode) *tree.Inode
	conv = func(n *tree.Inode) *tree.Inode {
		d, tm, _ := fatTime(n.Mtime, n.Nsec)
		mtime := fromFATTime(d, tm).Unix()
		if n.Kind == tree.Dir {
			out := tree.NewDir(0o755, 0, 0, mtime)
			for _, c := range n.Children() {
				out.SetChild(c.Name, conv(c.Inode))
			}
			return out
		}
		mode := uint32(0o644)
		if n.Mode&0o200 == 0 {
			mode = 0o444
		}
		return &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: mtime, Size: n.Size, Content: n.Content}
	}
	out := &tree.Tree{Root: conv(src.Root)}
	out.Root.Mtime = 0
	return out
}

// rtCompare compares two trees field by field, and contents by sha256.
// With dirTimes false, directories' mtimes are not compared.
func rtCompare(t *testing.T, want, got *tree.Tree, dirTimes bool) {
	t.Helper()
	collect := func(tr *tree.Tree) map[string]*tree.Inode {
		m := map[string]*tree.Inode{}
		if err := tr.Walk(func(p string, d tree.Dirent) error {
			m[p] = d.Inode
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	wm, gm := collect(want), collect(got)
	var missing, extra, paths []string
	for p := range wm {
		if gm[p] == nil {
			missing = append(missing, p)
		}
		paths = append(paths, p)
	}
	for p := range gm {
		if wm[p] == nil {
			extra = append(extra, p)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(paths)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("missing %d paths %.10q, extra %d paths %.10q", len(missing), missing, len(extra), extra)
	}
	errs := 0
	for _, p := range paths {
		w, g := wm[p], gm[p]
		if g == nil {
			continue
		}
		diff := func(field string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				errs++
				if errs <= 40 {
					t.Errorf("%s: %s: want %v, got %v", p, field, a, b)
				}
			}
		}
		diff("kind", w.Kind, g.Kind)
		diff("mode", fmt.Sprintf("%#o", w.Mode), fmt.Sprintf("%#o", g.Mode))
		diff("uid", w.UID, g.UID)
		diff("gid", w.GID, g.GID)
		if w.Kind != tree.Dir || dirTimes {
			diff("mtime", time.Unix(w.Mtime, 0).UTC(), time.Unix(g.Mtime, 0).UTC())
		}
		diff("nsec", w.Nsec, g.Nsec)
		diff("xattrs", len(w.Xattrs), len(g.Xattrs))
		if w.Kind == tree.Regular {
			diff("size", w.Size, g.Size)
			if w.Size == g.Size {
				diff("content sha256", rtSum(t, p, w), rtSum(t, p, g))
			}
		}
	}
}

// rtSum returns the sha256 of a file's content, failing unless it has
// Size bytes.
func rtSum(t *testing.T, p string, n *tree.Inode) string {
	t.Helper()
	h := sha256.New()
	if n.Size > 0 {
		if n.Content == nil {
			t.Errorf("%s: %d bytes but no content", p, n.Size)
			return ""
		}
		rc, err := n.Content.Open()
		if err != nil {
			t.Errorf("%s: open: %v", p, err)
			return ""
		}
		defer rc.Close()
		k, err := io.Copy(h, rc)
		if err != nil || k != n.Size {
			t.Errorf("%s: read %d of %d bytes: %v", p, k, n.Size, err)
			return ""
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rtWrite writes tr with kiln's writer into a sparse file and returns it
// open.
func rtWrite(t *testing.T, tr *tree.Tree, size int64, o Options) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "fat.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, size, tr, o); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return f
}

func rtSize(t *testing.T, f *os.File) int64 {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestReadTreeRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
		o    Options
	}{
		{"FAT12", 8 << 20, Options{FATType: 12, Label: "SMALL"}},
		{"FAT16", 64 << 20, Options{FATType: 16}},
		{"FAT32", 64 << 20, Options{FATType: 32, Label: "ESP"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.VolumeID, c.o.Epoch = 0x1234ABCD, rtEpoch
			l, err := newLayout(uint32(c.size/sectorSize), c.o.FATType, defaultRootEnts)
			if err != nil {
				t.Fatal(err)
			}
			cs := int(l.clusterBytes())
			f := rtWrite(t, rtFeatureTree(cs), c.size, c.o)
			in, err := Probe(f, rtSize(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if in.FATType != c.o.FATType || in.ClusterSize != cs {
				t.Fatalf("FAT%d with %d-byte clusters, want FAT%d with %d", in.FATType, in.ClusterSize, c.o.FATType, cs)
			}
			got, err := ReadTree(f, rtSize(t, f))
			if err != nil {
				t.Fatalf("ReadTree: %v", err)
			}
			rtCompare(t, rtFATView(rtFeatureTree(cs)), got, true)

			// A tree as FAT keeps it is a fixed point: the image it
			// writes reads back as a tree that writes the same image.
			f2 := rtWrite(t, got, c.size, c.o)
			again, err := ReadTree(f2, rtSize(t, f2))
			if err != nil {
				t.Fatal(err)
			}
			rtCompare(t, got, again, true)
			f3 := rtWrite(t, again, c.size, c.o)
			if !bytes.Equal(rtImageBytes(t, f2), rtImageBytes(t, f3)) {
				t.Errorf("the tree read back writes a different image")
			}
		})
	}
}

func rtImageBytes(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, rtSize(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rtEntry returns the offset in img of the short entry of the file at
// path.
func rtEntry(t *testing.T, img []byte, path string) int64 {
	t.Helper()
	in, err := Probe(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(img)
	tr := newTreeReader(r, in, ReadOptions{})
	v := tr.v
	dir, name := filepath.Split(path)
	d := tr.rootRef()
	var dirOffs []int64 // byte offsets of the directory's clusters
	for _, el := range strings.Split(strings.Trim(dir, "/"), "/") {
		if el == "" {
			continue
		}
		e, err := tr.find(d, el)
		if err != nil {
			t.Fatal(err)
		}
		d = dirRef{cluster: e.cluster}
	}
	if d.root && in.FATType != 32 {
		dirOffs = []int64{int64(v.rootSector) * int64(in.SectorSize)}
	} else {
		runs, err := newTreeReader(r, in, ReadOptions{}).walkChain(d.cluster, 0, maxDirEntries)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range runs {
			for o := int64(0); o < run.n; o += int64(in.ClusterSize) {
				dirOffs = append(dirOffs, run.off+o)
			}
		}
	}
	b, err := newTreeReader(r, in, ReadOptions{}).dirData(d)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := parseEntries(b, in.FATType)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.name == name {
			i := int64(e.index * dirEntrySize)
			per := int64(len(b) / len(dirOffs))
			return dirOffs[i/per] + i%per
		}
	}
	t.Fatalf("%s: no entry", path)
	return 0
}

// TestReadTreeCorrupt damages a sound FAT16 volume in one place each.
func TestReadTreeCorrupt(t *testing.T) {
	tr := tree.New(rtEpoch)
	rtPut(tr, "/big.bin", rtFile(0o644, rtEpoch, rtRandom(5000, 1))) // 3 clusters of 2048
	rtPut(tr, "/other.bin", rtFile(0o644, rtEpoch, rtRandom(3000, 2)))
	rtPut(tr, "/empty", rtFile(0o644, rtEpoch, nil))
	rtMkdir(tr, "/sub/inner")
	rtPut(tr, "/sub/file.txt", rtFile(0o644, rtEpoch, []byte("x")))
	f := rtWrite(t, tr, 16<<20, Options{FATType: 16, VolumeID: 1})
	orig := rtImageBytes(t, f)
	in, err := Probe(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	if in.ClusterSize != 2048 {
		t.Fatalf("cluster size %d, the test assumes 2048", in.ClusterSize)
	}
	fat := int64(in.ReservedSectors) * int64(in.SectorSize)
	setFAT := func(m []byte, c, v uint32) {
		for i := 0; i < in.NumFATs; i++ {
			o := fat + int64(i)*int64(in.FATSectors)*int64(in.SectorSize) + 2*int64(c)
			m[o], m[o+1] = byte(v), byte(v>>8)
		}
	}
	bigE, otherE, emptyE := rtEntry(t, orig, "/big.bin"), rtEntry(t, orig, "/other.bin"), rtEntry(t, orig, "/empty")
	subE, innerE := rtEntry(t, orig, "/sub"), rtEntry(t, orig, "/sub/inner")
	first := func(m []byte, e int64) uint32 { return uint32(m[e+26]) | uint32(m[e+27])<<8 }
	big, sub := first(orig, bigE), first(orig, subE)

	for _, c := range []struct {
		name   string
		damage func(m []byte)
		want   string
	}{
		{"chain loops", func(m []byte) { setFAT(m, big+2, big) }, "runs past the file's 3 clusters"},
		{"chain too short", func(m []byte) { setFAT(m, big+1, 0xFFFF) }, "ends after 2 clusters, the file needs 3"},
		{"chain past the volume", func(m []byte) { setFAT(m, big, 0xFFF0) }, "outside the volume"},
		{"free cluster in a chain", func(m []byte) { setFAT(m, big, 0) }, "reaches cluster 0"},
		{"size past the chain", func(m []byte) { m[bigE+29] = 0x40 }, "ends after 3 clusters"},
		{"size past the volume", func(m []byte) { m[bigE+31] = 0xF0 }, "clusters, the volume has"},
		{"empty file with clusters", func(m []byte) { m[emptyE+26] = byte(big) }, "empty file with a cluster chain"},
		{"file without a cluster", func(m []byte) { m[bigE+26], m[bigE+27] = 0, 0 }, "no first cluster"},
		{"directory loops", func(m []byte) { m[innerE+26], m[innerE+27] = byte(sub), byte(sub>>8) }, "has a second name"},
		{"directory without a cluster", func(m []byte) { m[innerE+26], m[innerE+27] = 0, 0 }, "directory entry without a first cluster"},
		{"directory chain loops", func(m []byte) { setFAT(m, sub, sub) }, "longer than the 65536 entries"},
		{"same name twice", func(m []byte) { copy(m[otherE:otherE+11], m[bigE:bigE+11]) }, "in its directory twice"},
		{"slash in a short name", func(m []byte) { m[emptyE+1] = '/' }, "has the byte 0x2f"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := bytes.Clone(orig)
			c.damage(m)
			_, err := ReadTree(bytes.NewReader(m), int64(len(m)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "fat: ") {
				t.Errorf("error %q lacks the package's prefix", err)
			}
		})
	}
}

// TestReadTreeCrossLinked checks the chain budget: files whose chains
// share clusters cannot make ReadTree walk more clusters than the volume
// has.
func TestReadTreeCrossLinked(t *testing.T) {
	tr := tree.New(rtEpoch)
	data := rtRandom(400<<10, 1) // 200 of the 502 clusters of a 1 MiB FAT12 volume: three such chains do not fit
	rtPut(tr, "/big", rtFile(0o644, rtEpoch, data))
	rtPut(tr, "/a", rtFile(0o644, rtEpoch, []byte("a")))
	rtPut(tr, "/b", rtFile(0o644, rtEpoch, []byte("b")))
	f := rtWrite(t, tr, 1<<20, Options{FATType: 12})
	m := rtImageBytes(t, f)
	bigE := rtEntry(t, m, "/big")
	for _, p := range []string{"/a", "/b"} {
		e := rtEntry(t, m, p)
		copy(m[e+20:e+32], m[bigE+20:bigE+32]) // first cluster, size, times
	}
	_, err := ReadTree(bytes.NewReader(m), int64(len(m)))
	if err == nil || !strings.Contains(err.Error(), "loop or share clusters") {
		t.Fatalf("got %v, want the budget's error", err)
	}
	// One sharer fits the budget: the volume does not know it is shared,
	// and the contents read the same.
	e := rtEntry(t, m, "/b")
	copy(m[e+20:e+32], rtImageBytes(t, f)[e+20:e+32])
	got, err := ReadTree(bytes.NewReader(m), int64(len(m)))
	if err != nil {
		t.Fatal(err)
	}
	if rtSum(t, "/a", got.Lookup("/a")) != rtSum(t, "/big", got.Lookup("/big")) {
		t.Error("/a does not read as /big")
	}
}

// TestReadTreeNames checks name decoding: long names and their fallback to
// the short name, NT case bits, code page 437, labels and deleted entries.
func TestReadTreeNames(t *testing.T) {
	short := func(name string, attr, nt uint8) []byte {
		e := make([]byte, dirEntrySize)
		copy(e, name)
		e[11], e[12] = attr, nt
		e[24], e[25] = 0x21, 0 // 1980-01-01
		return e
	}
	lfn := func(name string, sn string) []byte {
		var s shortName
		copy(s[:], sn)
		return appendLFN(nil, utf16.Encode([]rune(name)), s.checksum())
	}
	lfnUnits := func(u []uint16, sn string) []byte {
		var s shortName
		copy(s[:], sn)
		return appendLFN(nil, u, s.checksum())
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name string
		dir  []byte
		want []string
	}{
		{"short", short("HELLO   TXT", 0, 0), []string{"HELLO.TXT"}},
		{"no extension", short("HELLO      ", 0, 0), []string{"HELLO"}},
		{"NT lower base", short("HELLO   TXT", 0, caseLowerBase), []string{"hello.TXT"}},
		{"NT lower both", short("HELLO   TXT", 0, caseLowerBase|caseLowerExt), []string{"hello.txt"}},
		{"0x05 is 0xE5", short("\x05BC     TXT", 0, 0), []string{"σBC.TXT"}},
		{"code page 437", short("\x80\x81\xE1     \xFB  ", 0, 0), []string{"Çüß.√"}},
		{"long", cat(lfn("Hello World.txt", "HELLOW~1TXT"), short("HELLOW~1TXT", 0, 0)), []string{"Hello World.txt"}},
		{"long surrogates", cat(lfn("a😀b", "A_B~1      "), short("A_B~1      ", 0, 0)), []string{"a😀b"}},
		{"long, wrong checksum", cat(lfn("Hello World.txt", "OTHER   TXT"), short("HELLOW~1TXT", 0, 0)), []string{"HELLOW~1.TXT"}},
		{"long, lone surrogate", cat(lfnUnits([]uint16{'a', 0xD800, 'b'}, "A_B~1      "), short("A_B~1      ", 0, 0)), []string{"A_B~1"}},
		{"long, slash", cat(lfn("a/b", "A_B~1      "), short("A_B~1      ", 0, 0)), []string{"A_B~1"}},
		{"long, dot dot", cat(lfn("..", "DOTDOT     "), short("DOTDOT     ", 0, 0)), []string{"DOTDOT"}},
		{"long, piece missing", cat(lfn(strings.Repeat("n", 30), "NNNNNN~1   ")[32:], short("NNNNNN~1   ", 0, 0)), []string{"NNNNNN~1"}},
		{"label", cat(short("MY LABEL   ", attrVolumeID, 0), short("A          ", 0, 0)), []string{"A"}},
		{"deleted", cat(short("\xE5ONE       ", 0, 0), short("TWO        ", 0, 0)), []string{"TWO"}},
		{"end", cat(short("ONE        ", 0, 0), make([]byte, dirEntrySize), short("TWO        ", 0, 0)), []string{"ONE"}},
		{"dot entries", cat(short(".          ", attrDir, 0), short("..         ", attrDir, 0), short("X          ", 0, 0)), []string{"X"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ents, err := parseEntries(c.dir, 16)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	if _, err := parseEntries(short("        TXT", 0, 0), 16); err == nil || !strings.Contains(err.Error(), "no base name") {
		t.Errorf("empty base: got %v", err)
	}
}

func TestReadTreeEntryTime(t *testing.T) {
	for _, c := range []struct {
		date, clock uint16
		want        string
	}{
		{0x5772, 0xB1AA, "2023-11-18T22:13:20Z"},
		{0, 0, "1980-01-01T00:00:00Z"},           // month and day 0
		{0xFFFF, 0xFFFF, "2108-01-01T08:04:02Z"}, // month 15 -> 12, day 31, 31:63:62 carried over
		{127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29, "2107-12-31T23:59:58Z"},
	} {
		if got := time.Unix(entryTime(c.date, c.clock), 0).UTC().Format(time.RFC3339); got != c.want {
			t.Errorf("%#04x %#04x: got %s, want %s", c.date, c.clock, got, c.want)
		}
	}
}

func TestReadTreeLimits(t *testing.T) {
	tr := tree.New(rtEpoch)
	d := rtMkdir(tr, "/a/b/c/d")
	for i := 0; i < 20; i++ {
		d.SetChild(fmt.Sprint(i), rtFile(0o644, rtEpoch, nil))
	}
	f := rtWrite(t, tr, 4<<20, Options{FATType: 12})
	size := rtSize(t, f)
	for _, c := range []struct {
		o    ReadOptions
		want string
	}{
		{ReadOptions{MaxEntries: 10}, "more than 10 directory entries"},
		{ReadOptions{MaxDepth: 3}, "/a/b/c/d: directories nest deeper than 3"},
	} {
		if _, err := ReadTreeOptions(f, size, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error saying %q", c.o, err, c.want)
		}
	}
	if _, err := ReadTreeOptions(f, size, ReadOptions{MaxEntries: 24, MaxDepth: 4}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}
