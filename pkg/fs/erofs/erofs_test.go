package erofs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	kfs "github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

const epoch = 1700000000

var testOpts = Options{UUID: repro.Derive("erofs-test", "fs-uuid"), Label: "kiln-root", Epoch: epoch}

// pattern is n bytes of a content that differs per file and per block.
func pattern(seed string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/4096*13) ^ seed[i%len(seed)]
	}
	return b
}

// everyKind is a tree with every entry kind and the edge cases of the
// layout: files empty, under a block, one block, blocks and a tail, 2 MiB;
// a directory of 3000 names (its dirents span blocks); names of 255
// bytes; symlinks short and of 4095 bytes; hardlinks; devices; a fifo;
// xattrs; setuid/setgid/sticky; owners above 65535 (extended inodes);
// mtimes before the epoch (extended inodes).
func everyKind() *tree.Tree {
	t := tree.New(epoch)
	put := func(p string, n *tree.Inode) *tree.Inode { return trees.Put(t, epoch, p, n) }
	put("/empty", trees.File(0o644, epoch, nil))
	put("/small", trees.File(0o644, epoch, pattern("small", 100)))
	put("/oneblock", trees.File(0o600, epoch, pattern("one", 4096)))
	put("/blocks-tail", trees.File(0o644, epoch, pattern("bt", 3*4096+1234)))
	put("/big", trees.File(0o644, epoch, pattern("big", 2<<20)))
	put("/bigtail", trees.File(0o644, epoch, pattern("bigtail", 4096+4000)))
	for i := 0; i < 3000; i++ {
		put(fmt.Sprintf("/many/entry-%05d-%s", i, strings.Repeat("x", i%40)), trees.File(0o644, epoch, []byte(strconv.Itoa(i))))
	}
	put("/many/sub", tree.NewDir(0o700, 0, 0, epoch))
	put("/long/"+strings.Repeat("n", 255), trees.File(0o644, epoch, []byte("long name")))
	put("/long/"+strings.Repeat("d", 255)+"/"+strings.Repeat("e", 255), trees.File(0o644, epoch, []byte("deep")))
	put("/link-short", &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: epoch, Target: "small", Size: 5})
	long := strings.Repeat("abcdefgh/", 455)
	put("/link-long", &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: epoch, Target: long, Size: int64(len(long))})
	hl := put("/hard/a", trees.File(0o640, epoch, pattern("hard", 5000)))
	hl.UID, hl.GID = 33, 44
	put("/hard/b", hl)
	put("/hard/c", hl)
	put("/dev/null", &tree.Inode{Kind: tree.CharDev, Mode: 0o666, Mtime: epoch, Major: 1, Minor: 3})
	put("/dev/big", &tree.Inode{Kind: tree.CharDev, Mode: 0o600, Mtime: epoch, Major: 259, Minor: 70000})
	put("/dev/sda", &tree.Inode{Kind: tree.BlockDev, Mode: 0o660, GID: 6, Mtime: epoch, Major: 8, Minor: 0})
	put("/dev/fifo", &tree.Inode{Kind: tree.FIFO, Mode: 0o644, Mtime: epoch})
	x := put("/xattrs", trees.File(0o755, epoch, pattern("x", 3000)))
	x.Xattrs = []tree.Xattr{
		{Name: "security.capability", Value: []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "trusted.overlay.opaque", Value: []byte("y")},
		{Name: "user.comment", Value: []byte("hello, erofs")},
	}
	put("/modes/setuid", trees.File(0o4755, epoch, []byte("su")))
	put("/modes/setgid", trees.File(0o2755, epoch, []byte("sg")))
	put("/modes/sticky", tree.NewDir(0o1777, 0, 0, epoch))
	hi := put("/owners/high", trees.File(0o644, epoch, []byte("high ids")))
	hi.UID, hi.GID = 100000, 200000
	old := put("/times/old", trees.File(0o644, epoch-86400, []byte("old")))
	old.Nsec = 5
	return t
}

// writeImage writes tr at its MinSize into a file and returns its path.
func writeImage(t *testing.T, tr *tree.Tree, o Options) string {
	t.Helper()
	size, err := MinSize(tr, o)
	if err != nil {
		t.Fatal(err)
	}
	if size%(1<<20) != 0 || size == 0 {
		t.Fatalf("MinSize %d is not a positive multiple of 1 MiB", size)
	}
	f := testkit.SparseFile(t, "erofs.img", size)
	if err := Write(f, size, tr, o); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// fsckErofs runs fsck.erofs and returns its verdict: erofs-utils 1.5
// exits 0 even when the superblock's checksum is wrong, so an error
// ("<E>") or warning ("<W>") line also fails it.
func fsckErofs(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	out, rc := judge.Run(t, nil, "fsck.erofs", args...)
	return out, rc == 0 && !strings.Contains(out, "<E>") && !strings.Contains(out, "<W>")
}

func TestFsckErofs(t *testing.T) {
	judge.Need(t, "fsck.erofs")
	img := writeImage(t, everyKind(), testOpts)
	if out, ok := fsckErofs(t, img); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
	// The judge can fail: a wrong checksum, a dirent's nid out of range.
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		off  int
		val  byte
	}{{"checksum", 1028, 0x5a}, {"root's first dirent nid", 0, 0xff}} {
		bad := bytes.Clone(b)
		off := c.off
		if off == 0 { // the root directory is inline after its inode (nid 36)
			off = 36*32 + 32
			for i := 0; i < 8; i++ {
				bad[off+i] = c.val
			}
			le := bad[1024+4 : 1024+8]
			copy(le, []byte{0, 0, 0, 0})
			sum := superChecksum(bad[1024:4096])
			le[0], le[1], le[2], le[3] = byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24)
		} else {
			bad[off] ^= c.val
		}
		p := filepath.Join(t.TempDir(), "bad.img")
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, ok := fsckErofs(t, p); ok {
			t.Errorf("fsck.erofs accepts a broken %s:\n%s", c.name, out)
		}
	}
}

// TestExtract compares what fsck.erofs --extract gives back with the
// tree: names, types, modes (less setuid/setgid, which erofs-utils 1.5
// drops), owners, symlink targets, device numbers and contents.
func TestExtract(t *testing.T) {
	extractMatches(t, everyKind(), testOpts)
}

// extractMatches writes tr with o and compares what fsck.erofs --extract
// gives back with it.
func extractMatches(t *testing.T, tr *tree.Tree, o Options) {
	t.Helper()
	judge.Need(t, "fsck.erofs")
	testkit.NeedRoot(t, "fsck.erofs --extract makes devices and sets owners")
	img := writeImage(t, tr, o)
	dir := filepath.Join(t.TempDir(), "x")
	if out, ok := fsckErofs(t, "--extract="+dir, img); !ok {
		t.Fatalf("fsck.erofs --extract:\n%s", out)
	}
	want := map[string]string{}
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		want[p] = describeTree(t, d.Inode)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	if err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		got[rel] = describeHost(t, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) < 3000 {
		t.Fatalf("the tree has only %d entries", len(want))
	}
	for _, p := range sortedKeys(want) {
		if got[p] != want[p] {
			t.Errorf("%s:\n got %s\nwant %s", p, got[p], want[p])
		}
	}
	for _, p := range sortedKeys(got) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: extracted, not in the tree", p)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// describeTree is an inode as describeHost shows an extracted file.
func describeTree(t *testing.T, n *tree.Inode) string {
	mode := n.Mode &^ 0o6000
	s := fmt.Sprintf("%s %04o %d:%d", n.Kind, mode, n.UID, n.GID)
	switch n.Kind {
	case tree.Regular:
		s += " " + judge.SHA256(trees.Read(t, n))
	case tree.Symlink:
		s += " -> " + n.Target
	case tree.CharDev, tree.BlockDev:
		s += fmt.Sprintf(" %d,%d", n.Major, n.Minor)
	}
	return s
}

func describeHost(t *testing.T, p string) string {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	kinds := map[uint32]tree.Kind{syscall.S_IFREG: tree.Regular, syscall.S_IFDIR: tree.Dir, syscall.S_IFLNK: tree.Symlink,
		syscall.S_IFCHR: tree.CharDev, syscall.S_IFBLK: tree.BlockDev, syscall.S_IFIFO: tree.FIFO}
	k := kinds[st.Mode&syscall.S_IFMT]
	s := fmt.Sprintf("%s %04o %d:%d", k, st.Mode&0o1777, st.Uid, st.Gid)
	switch k {
	case tree.Regular:
		s += " " + judge.SHA256File(t, p)
	case tree.Symlink:
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		s += " -> " + target
	case tree.CharDev, tree.BlockDev:
		maj := (st.Rdev>>8)&0xfff | (st.Rdev>>32)&^0xfff
		min := st.Rdev&0xff | (st.Rdev>>12)&^0xff
		s += fmt.Sprintf(" %d,%d", maj, min)
	}
	return s
}

// dumpField returns the value dump.erofs shows after label.
func dumpField(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `:?\s+(\S.*?)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dump.erofs shows no %q:\n%s", label, out)
	}
	return m[1]
}

// TestDumpErofs: dump.erofs agrees on the superblock (blocks, inodes,
// UUID, root), on an inode's links, size and owner, and on the xattrs'
// size of a file; Probe agrees with it and reads the label back.
func TestDumpErofs(t *testing.T) {
	judge.Need(t, "dump.erofs")
	tr := everyKind()
	img := writeImage(t, tr, testOpts)
	l, err := plan(tr, testOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, rc := judge.Run(t, nil, "dump.erofs", "-s", img)
	if rc != 0 {
		t.Fatalf("dump.erofs -s: exit %d\n%s", rc, out)
	}
	inodes := 0
	seen := map[*tree.Inode]bool{}
	_ = tr.Walk(func(_ string, d tree.Dirent) error {
		if !seen[d.Inode] {
			seen[d.Inode] = true
			inodes++
		}
		return nil
	})
	for _, c := range []struct{ label, want string }{
		{"Filesystem magic number", "0xE0F5E1E2"},
		{"Filesystem blocks", strconv.FormatInt(l.blocks, 10)},
		{"Filesystem inode count", strconv.Itoa(inodes)},
		{"Filesystem root nid", "36"},
		{"Filesystem UUID", testOpts.UUID.String()},
		{"Filesystem features", "sb_csum"},
	} {
		if got := dumpField(t, out, c.label); got != c.want {
			t.Errorf("dump.erofs %s: %q, want %q", c.label, got, c.want)
		}
	}
	f, size := testkit.Open(t, img)
	info, err := Probe(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != "erofs" || info.Label != "kiln-root" || info.UUID != testOpts.UUID.String() || info.Size != l.blocks*4096 {
		t.Errorf("Probe: %+v", info)
	}

	out, rc = judge.Run(t, nil, "dump.erofs", "--path=/hard/b", img)
	if rc != 0 {
		t.Fatalf("dump.erofs --path: exit %d\n%s", rc, out)
	}
	if !strings.Contains(out, "Links: 3") || !strings.Contains(out, "Size: 5000") || !strings.Contains(out, "Uid: 33   Gid: 44") {
		t.Errorf("dump.erofs /hard/b: want 3 links, 5000 bytes, 33:44:\n%s", out)
	}
	out, rc = judge.Run(t, nil, "dump.erofs", "--path=/owners/high", img)
	if rc != 0 || !strings.Contains(out, "Inode size: 64") || !strings.Contains(out, "Uid: 100000   Gid: 200000") {
		t.Errorf("dump.erofs /owners/high: want an extended inode, 100000:200000 (exit %d):\n%s", rc, out)
	}
	// security.capability: 4+10+20 = 34 → 36; trusted.overlay.opaque:
	// 4+14+1 = 19 → 20; user.comment: 4+7+12 = 23 → 24; the header 12.
	out, rc = judge.Run(t, nil, "dump.erofs", "--path=/xattrs", img)
	if rc != 0 || !strings.Contains(out, "Xattr size: 92") {
		t.Errorf("dump.erofs /xattrs: want 92 bytes of xattrs (exit %d):\n%s", rc, out)
	}
}

// TestReproducible: two writes of one tree are byte-identical, and a
// different UUID changes the bytes (the comparison can fail).
func TestReproducible(t *testing.T) {
	a, err := os.ReadFile(writeImage(t, everyKind(), testOpts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeImage(t, everyKind(), testOpts))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two writes of one tree differ")
	}
	o := testOpts
	o.UUID = repro.Derive("other", "fs-uuid")
	c, err := os.ReadFile(writeImage(t, everyKind(), o))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("a different UUID gave the same bytes")
	}
}

// TestProbeMkfsErofs: Probe accepts what mkfs.erofs writes, so the
// superblock checksum kiln computes is erofs-utils'.
func TestProbeMkfsErofs(t *testing.T) {
	judge.Need(t, "mkfs.erofs")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "ref.img")
	if out, rc := judge.Run(t, nil, "mkfs.erofs", "-T", "1000", "-U", "11111111-2222-3333-4444-555555555555", img, src); rc != 0 {
		t.Fatalf("mkfs.erofs: exit %d\n%s", rc, out)
	}
	f, size := testkit.Open(t, img)
	info, err := Probe(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if info.UUID != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("Probe: %+v", info)
	}
	b := testkit.ReadAt(t, img, 1024, 3072)
	b[4]++
	if _, err := Probe(bytes.NewReader(append(make([]byte, 1024), b...)), 4096); err == nil {
		t.Error("Probe accepts a wrong checksum")
	}
}

func TestRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*tree.Tree)
		want string
	}{
		{"xattr namespace", func(tr *tree.Tree) {
			trees.Put(tr, epoch, "/f", trees.File(0o644, epoch, nil)).Xattrs = []tree.Xattr{{Name: "system.foo", Value: []byte("x")}}
		}, `/f: xattr "system.foo"`},
		{"short content", func(tr *tree.Tree) {
			f := trees.Put(tr, epoch, "/f", trees.File(0o644, epoch, []byte("abc")))
			f.Size = 5000
		}, "/f: content is 3 bytes, want 5000"},
		{"long content", func(tr *tree.Tree) {
			f := trees.Put(tr, epoch, "/f", trees.File(0o644, epoch, []byte("abcdef")))
			f.Size = 2
		}, "/f: content is longer"},
		{"long symlink", func(tr *tree.Tree) {
			trees.Put(tr, epoch, "/l", &tree.Inode{Kind: tree.Symlink, Target: strings.Repeat("a", 4096), Size: 4096})
		}, "/l: symlink target of 4096 bytes"},
		{"symlink with a NUL", func(tr *tree.Tree) {
			trees.Put(tr, epoch, "/l", &tree.Inode{Kind: tree.Symlink, Target: "a\x00b", Size: 3})
		}, "/l: symlink target \"a\\x00b\" holds a NUL byte"},
		{"device", func(tr *tree.Tree) {
			trees.Put(tr, epoch, "/d", &tree.Inode{Kind: tree.CharDev, Major: 4096})
		}, "/d: device 4096:0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := tree.New(epoch)
			c.edit(tr)
			err := Write(testkit.SparseFile(t, "img", 64<<20), 64<<20, tr, testOpts)
			testkit.ErrContains(t, err, c.want)
		})
	}
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/f", trees.File(0o644, epoch, pattern("f", 2<<20)))
	err := Write(testkit.SparseFile(t, "img", 1<<20), 1<<20, tr, testOpts)
	testkit.ErrContains(t, err, "needs", "has 1048576")
	_, err = MinSize(tr, Options{Label: strings.Repeat("l", 17)})
	testkit.ErrContains(t, err, "longer than 16 bytes")
}

// TestLocate: the extents Write reports for Region.Locate hold each
// file's bytes (whole blocks, then an inline tail), and a path that is
// not a regular file is an error.
func TestLocate(t *testing.T) {
	tr := everyKind()
	f, err := Kind.New(kfs.Params{Name: "root", Epoch: epoch, UUID: func(string) [16]byte { return testOpts.UUID }})
	if err != nil {
		t.Fatal(err)
	}
	size, err := f.MinSize(tr)
	if err != nil {
		t.Fatal(err)
	}
	img := testkit.SparseFile(t, "img", size)
	paths := []string{"/small", "/oneblock", "/blocks-tail", "/big", "/xattrs", "/hard/b"}
	rep, err := f.Write(img, kfs.Region{Size: size, Locate: paths}, tr)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UUID != testOpts.UUID.String() || rep.Label != "root" {
		t.Errorf("report %+v", rep)
	}
	for _, p := range paths {
		var got []byte
		for _, e := range rep.Extents[p] {
			b := make([]byte, e.Length)
			if _, err := img.ReadAt(b, e.Offset); err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, trees.Read(t, tr.Lookup(p))) {
			t.Errorf("%s: extents %v do not hold its content", p, rep.Extents[p])
		}
	}
	if len(rep.Extents["/blocks-tail"]) != 2 || len(rep.Extents["/oneblock"]) != 1 {
		t.Errorf("extents: /blocks-tail %v (want blocks and a tail), /oneblock %v (one block)", rep.Extents["/blocks-tail"], rep.Extents["/oneblock"])
	}
	_, err = f.Write(testkit.SparseFile(t, "img2", size), kfs.Region{Size: size, Locate: []string{"/dev"}}, tr)
	testkit.ErrContains(t, err, "/dev is not a regular file")
}

// TestHugeDirectory: a directory of 60,000 names (more than 65535 links
// with its subdirectories would need an extended inode: 70,000 of them
// here) passes fsck.erofs and reads back.
func TestHugeDirectory(t *testing.T) {
	judge.Need(t, "fsck.erofs")
	tr := tree.New(epoch)
	for i := 0; i < 60000; i++ {
		trees.Put(tr, epoch, fmt.Sprintf("/files/%06d", i), trees.File(0o644, epoch, nil))
	}
	for i := 0; i < 70000; i++ {
		trees.Put(tr, epoch, fmt.Sprintf("/dirs/%06d", i), tree.NewDir(0o755, 0, 0, epoch))
	}
	img := writeImage(t, tr, testOpts)
	if out, ok := fsckErofs(t, img); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
	out, rc := judge.Run(t, nil, "dump.erofs", "--path=/dirs", img)
	if rc != 0 || !strings.Contains(out, "Links: 70002") || !strings.Contains(out, "Inode size: 64") {
		t.Errorf("dump.erofs /dirs: want 70002 links in an extended inode (exit %d):\n%s", rc, out)
	}
	fh, size := testkit.Open(t, img)
	got, err := ReadTree(fh, size)
	if err != nil {
		t.Fatal(err)
	}
	if n := got.Lookup("/files").NumChildren(); n != 60000 {
		t.Errorf("/files: %d names read back", n)
	}
	if got.Lookup("/files/059999") == nil || got.Lookup("/dirs/069999") == nil {
		t.Error("the last names are missing")
	}
}

// TestMetadataMemory: the metadata (here 20,000 inline tails of 3000
// bytes, about 60 MB) is written through a window, not held whole.
func TestMetadataMemory(t *testing.T) {
	judge.Need(t, "fsck.erofs")
	tr := tree.New(epoch)
	data := pattern("tail", 3000)
	for i := 0; i < 20000; i++ {
		trees.Put(tr, epoch, fmt.Sprintf("/d%02d/f%05d", i/1000, i), trees.File(0o644, epoch, data))
	}
	l, err := plan(tr, testOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.metaEnd < 55<<20 {
		t.Fatalf("only %d bytes of metadata: the test needs more than the bound", l.metaEnd)
	}
	size := (l.blocks*blockSize + 1<<20 - 1) &^ (1<<20 - 1)
	f := testkit.SparseFile(t, "img", size)
	got := testkit.AllocatedBy(func() {
		if err := Write(f, size, tr, testOpts); err != nil {
			t.Fatal(err)
		}
	})
	if got > 30<<20 {
		t.Errorf("Write allocated %d bytes for %d bytes of metadata", got, l.metaEnd)
	}
	if out, ok := fsckErofs(t, f.Name()); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
}

// TestBlkid: blkid recognises what Write wrote as Probe does: type,
// label and UUID.
func TestBlkid(t *testing.T) {
	judge.Need(t, "blkid")
	tr := tree.New(epoch)
	trees.Put(tr, epoch, "/f", trees.File(0o644, epoch, []byte("f")))
	img := writeImage(t, tr, testOpts)
	out, rc := judge.Run(t, nil, "blkid", "-p", "-o", "export", img)
	if rc != 0 {
		t.Fatalf("blkid -p: exit %d\n%s", rc, out)
	}
	f, size := testkit.Open(t, img)
	info, err := Probe(f, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TYPE=" + info.Type, "LABEL=" + info.Label, "UUID=" + info.UUID} {
		if !strings.Contains("\n"+out, "\n"+want+"\n") {
			t.Errorf("blkid does not show %s:\n%s", want, out)
		}
	}
	if info.Label != "kiln-root" || info.Type != "erofs" {
		t.Errorf("Probe: %+v", info)
	}
}
