package ext4

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

	"github.com/kiln-build/kiln/pkg/tree"
)

// Helpers of the ReadTree tests carry an rt prefix: the package's other
// test helpers change independently.

const rtEpoch = 1700000000

// rtBytes is file content held in memory.
type rtBytes []byte

func (b rtBytes) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }

// rtSparse is size bytes of zeros with data at some offsets, generated on
// the fly.
type rtSparse struct {
	size  int64
	parts map[int64][]byte // offset -> bytes; parts do not overlap
}

func (s *rtSparse) Open() (io.ReadCloser, error) { return io.NopCloser(&rtSparseReader{s: s}), nil }

type rtSparseReader struct {
	s   *rtSparse
	off int64
}

func (r *rtSparseReader) Read(p []byte) (int, error) {
	if r.off >= r.s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.s.size-r.off))
	p = p[:n]
	clear(p)
	for o, d := range r.s.parts {
		lo, hi := max(o, r.off), min(o+int64(len(d)), r.off+int64(n))
		if lo < hi {
			copy(p[lo-r.off:hi-r.off], d[lo-o:hi-o])
		}
	}
	r.off += int64(n)
	return n, nil
}

// rtRandom returns n deterministic bytes, none zero.
func rtRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x) | 1
	}
	return b
}

func rtFile(mode uint32, data []byte) *tree.Inode {
	n := &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: rtEpoch, Size: int64(len(data))}
	if len(data) > 0 {
		n.Content = rtBytes(data)
	}
	return n
}

func rtSymlink(target string) *tree.Inode {
	return &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: rtEpoch, Target: target, Size: int64(len(target))}
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

// rtACL is a POSIX ACL in getxattr's form; the entries without an id
// carry ACL_UNDEFINED_ID, as getxattr returns them.
var rtACL = func() []byte {
	b := le.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{aclUserObj, 7, 0xFFFFFFFF}, {aclUser, 5, 70000}, {aclGroupObj, 5, 0xFFFFFFFF}, {aclGroup, 4, 1234}, {aclMask, 5, 0xFFFFFFFF}, {aclOther, 0, 0xFFFFFFFF}} {
		b = le.AppendUint16(b, e.tag)
		b = le.AppendUint16(b, e.perm)
		b = le.AppendUint32(b, e.id)
	}
	return b
}()

// rtCapability is a version 2 security.capability value (cap_net_raw+ep).
var rtCapability = []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// rtFeatureTree has every kind of inode and attribute ext4 stores.
func rtFeatureTree() *tree.Tree {
	tr := tree.New(rtEpoch)
	tr.Root.Xattrs = []tree.Xattr{{Name: "user.root", Value: []byte("r")}}
	rtPut(tr, "/empty", rtFile(0o644, nil))
	rtPut(tr, "/small", rtFile(0o644, []byte("hello\n")))
	rtPut(tr, "/sizes/4095", rtFile(0o644, rtRandom(4095, 1)))
	rtPut(tr, "/sizes/4096", rtFile(0o644, rtRandom(4096, 2)))
	rtPut(tr, "/sizes/4097", rtFile(0o600, rtRandom(4097, 3)))
	rtPut(tr, "/sizes/3M", rtFile(0o644, rtRandom(3<<20, 4)))

	// Holes at the start, in the middle and at the end.
	rtPut(tr, "/sparse/holes", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch, Size: 10 << 20,
		Content: &rtSparse{size: 10 << 20, parts: map[int64][]byte{5<<20 + 7: rtRandom(9000, 5), 8 << 20: []byte("x")}}})
	rtPut(tr, "/sparse/allzero", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch, Size: 100000,
		Content: &rtSparse{size: 100000}})
	// 1400 extents: more than 4 leaves of 340, so an index level between
	// the inode and the leaves (depth 2).
	for _, n := range []int{3, 5, 1400} {
		s := &rtSparse{size: int64(2*n) * blockSize, parts: map[int64][]byte{}}
		for i := 0; i < n; i++ {
			s.parts[int64(2*i)*blockSize] = rtRandom(blockSize, uint64(100+i))
		}
		rtPut(tr, fmt.Sprintf("/sparse/frag%d", n), &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch, Size: s.size, Content: s})
	}

	shared := rtPut(tr, "/links/a", rtFile(0o640, []byte("shared\n")))
	rtPut(tr, "/links/b", shared)
	rtPut(tr, "/links/sub/c", shared)
	rtPut(tr, "/elsewhere", shared)
	dev := rtPut(tr, "/dev/null", &tree.Inode{Kind: tree.CharDev, Mode: 0o666, Mtime: rtEpoch, Major: 1, Minor: 3})
	rtPut(tr, "/dev/null-link", dev)

	rtPut(tr, "/sym/fast", rtSymlink("../small"))
	rtPut(tr, "/sym/fast59", rtSymlink(strings.Repeat("f", 59)))
	rtPut(tr, "/sym/slow60", rtSymlink(strings.Repeat("s", 60)))
	rtPut(tr, "/sym/slow4095", rtSymlink(strings.Repeat("l/", 2047)+"x"))

	rtPut(tr, "/dev/sda", &tree.Inode{Kind: tree.BlockDev, Mode: 0o660, GID: 6, Mtime: rtEpoch, Major: 8})
	rtPut(tr, "/dev/nvme", &tree.Inode{Kind: tree.BlockDev, Mode: 0o660, Mtime: rtEpoch, Major: 259, Minor: 70000})
	rtPut(tr, "/dev/bigmajor", &tree.Inode{Kind: tree.CharDev, Mode: 0o600, Mtime: rtEpoch, Major: 4095, Minor: 1<<20 - 1})
	rtPut(tr, "/dev/minor300", &tree.Inode{Kind: tree.CharDev, Mode: 0o600, Mtime: rtEpoch, Major: 4, Minor: 300})
	rtPut(tr, "/dev/fifo", &tree.Inode{Kind: tree.FIFO, Mode: 0o600, Mtime: rtEpoch})

	ping := rtPut(tr, "/bin/ping", rtFile(0o4755, rtRandom(5000, 6)))
	ping.Xattrs = []tree.Xattr{{Name: "security.capability", Value: rtCapability}}
	rtPut(tr, "/bin/wall", rtFile(0o2755, rtRandom(100, 7))).GID = 5
	rtMkdir(tr, "/tmp").Mode = 0o1777
	sg := rtMkdir(tr, "/var/mail")
	sg.Mode, sg.GID = 0o3775, 8
	home := rtMkdir(tr, "/home/big")
	home.UID, home.GID, home.Mode = 70000, 70001, 0o700
	own := rtPut(tr, "/home/big/file", rtFile(0o600, []byte("mine")))
	own.UID, own.GID = 70000, 4000000000

	for i, tm := range []struct {
		sec  int64
		nsec uint32
	}{{0, 0}, {-1000000, 5}, {1<<31 - 1, 999999999}, {1 << 31, 1}, {1 << 33, 123456789}, {4102444800, 500}} {
		f := rtPut(tr, fmt.Sprintf("/times/t%d", i), rtFile(0o644, nil))
		f.Mtime, f.Nsec = tm.sec, tm.nsec
	}
	d := rtMkdir(tr, "/times/dir")
	d.Mtime, d.Nsec = 1234567890, 987654321

	rtPut(tr, "/xattr/inode", rtFile(0o644, []byte("x"))).Xattrs = []tree.Xattr{
		{Name: "trusted.t", Value: []byte("t")}, {Name: "user.a", Value: []byte("1")}, {Name: "user.empty", Value: []byte{}}}
	rtPut(tr, "/xattr/block", rtFile(0o644, nil)).Xattrs = []tree.Xattr{
		{Name: "security.capability", Value: rtCapability},
		{Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0\x00")},
		{Name: "user.big", Value: rtRandom(1500, 8)}}
	acl := rtMkdir(tr, "/xattr/acl")
	acl.Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: rtACL}, {Name: "system.posix_acl_default", Value: rtACL}}
	rtPut(tr, "/xattr/symlink", rtSymlink("target")).Xattrs = []tree.Xattr{{Name: "trusted.big", Value: rtRandom(300, 9)}}

	// An htree directory, hardlinks among its entries.
	big := rtMkdir(tr, "/big")
	one := rtFile(0o644, []byte("one"))
	for i := 0; i < 3000; i++ {
		if i%10 == 0 {
			big.SetChild(fmt.Sprintf("link-%05d", i), one)
			continue
		}
		big.SetChild(fmt.Sprintf("entry-with-a-longer-name-%05d", i), rtFile(0o644, nil))
	}
	deep := rtMkdir(tr, "/deep")
	for i := 0; i < 40; i++ {
		c := tree.NewDir(0o755, 0, 0, rtEpoch)
		deep.SetChild(fmt.Sprintf("d%d", i), c)
		deep = c
	}
	deep.SetChild("bottom", rtFile(0o644, []byte("bottom")))
	rtMkdir(tr, "/emptydir")
	return tr
}

// rtSum returns the sha256 of content c, failing unless it has size bytes.
func rtSum(t *testing.T, p string, c tree.Content, size int64) string {
	t.Helper()
	h := sha256.New()
	if size > 0 {
		if c == nil {
			t.Errorf("%s: %d bytes but no content", p, size)
			return ""
		}
		rc, err := c.Open()
		if err != nil {
			t.Errorf("%s: open: %v", p, err)
			return ""
		}
		defer rc.Close()
		n, err := io.Copy(h, rc)
		if err != nil || n != size {
			t.Errorf("%s: read %d of %d bytes: %v", p, n, size, err)
			return ""
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rtCompare compares two trees field by field, content by sha256, and
// their hardlink structure: names share an inode in got exactly when
// they do in want.
func rtCompare(t *testing.T, want, got *tree.Tree) {
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
	var missing, extra []string
	for p := range wm {
		if gm[p] == nil {
			missing = append(missing, p)
		}
	}
	for p := range gm {
		if wm[p] == nil {
			extra = append(extra, p)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("missing %d paths %.10q, extra %d paths %.10q", len(missing), missing, len(extra), extra)
	}
	paths := make([]string, 0, len(wm))
	for p := range wm {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	same := map[*tree.Inode]*tree.Inode{}
	back := map[*tree.Inode]*tree.Inode{}
	sums := map[*tree.Inode]string{}
	errs := 0
	for _, p := range paths {
		w, g := wm[p], gm[p]
		if g == nil {
			continue
		}
		if s, ok := same[w]; ok && s != g {
			t.Errorf("%s: hardlinked in want, a different inode in got", p)
		}
		if s, ok := back[g]; ok && s != w {
			t.Errorf("%s: hardlinked in got, a different inode in want", p)
		}
		same[w], back[g] = g, w
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
		diff("mtime", w.Mtime, g.Mtime)
		diff("nsec", w.Nsec, g.Nsec)
		diff("target", w.Target, g.Target)
		diff("major", w.Major, g.Major)
		diff("minor", w.Minor, g.Minor)
		if w.Kind != tree.Dir {
			diff("size", w.Size, g.Size)
		}
		if len(w.Xattrs) != len(g.Xattrs) {
			diff("xattrs", rtXattrNames(w.Xattrs), rtXattrNames(g.Xattrs))
		} else {
			for i := range w.Xattrs {
				diff("xattr name", w.Xattrs[i].Name, g.Xattrs[i].Name)
				if !bytes.Equal(w.Xattrs[i].Value, g.Xattrs[i].Value) {
					diff("xattr "+w.Xattrs[i].Name, rtShort(w.Xattrs[i].Value), rtShort(g.Xattrs[i].Value))
				}
			}
		}
		if w.Kind == tree.Regular && w.Size == g.Size {
			if _, ok := sums[g]; !ok {
				sums[g] = rtSum(t, p, g.Content, g.Size)
				if ws := rtSum(t, p, w.Content, w.Size); ws != sums[g] {
					diff("content sha256", ws, sums[g])
				}
			}
		}
	}
}

// rtShort describes a value briefly: its length, and its bytes or their
// sha256.
func rtShort(v []byte) string {
	if len(v) <= 32 {
		return fmt.Sprintf("%d bytes %x", len(v), v)
	}
	return fmt.Sprintf("%d bytes sha256 %x", len(v), sha256.Sum256(v))
}

func rtXattrNames(xs []tree.Xattr) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.Name)
	}
	return out
}

// rtWrite writes tr with kiln's writer into a temporary file of MinSize
// (or size) bytes and returns it open.
func rtWrite(t *testing.T, tr *tree.Tree, size int64) *os.File {
	t.Helper()
	o := Options{Label: "read", UUID: [16]byte{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}, Epoch: rtEpoch}
	if size == 0 {
		var err error
		if size, err = MinSize(tr, o); err != nil {
			t.Fatalf("MinSize: %v", err)
		}
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "ext4.img"))
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

// rtWithLostFound returns tr with the lost+found Write creates when the
// tree has none.
func rtWithLostFound(tr *tree.Tree) *tree.Tree {
	if tr.Root.Child("lost+found") == nil {
		tr.Root.SetChild("lost+found", tree.NewDir(0o700, 0, 0, rtEpoch))
	}
	return tr
}

func TestReadTreeRoundTrip(t *testing.T) {
	src := rtFeatureTree()
	f := rtWrite(t, src, 0)
	got, problems, err := ReadTreeOptions(f, rtSize(t, f), ReadOptions{})
	if err != nil {
		t.Fatalf("ReadTree: %v", err)
	}
	if len(problems) > 0 {
		t.Errorf("problems in a sound image: %v", problems)
	}
	rtCompare(t, rtWithLostFound(rtFeatureTree()), got)

	// The image has the structures the tree is meant to exercise.
	rd := rtOpen(t, f, false)
	for _, c := range []struct {
		p    string
		what string
		ok   func(raw *rawInode) bool
	}{
		{"/sparse/frag1400", "an extent tree of depth 2", func(raw *rawInode) bool { return le.Uint16(raw.iblock[6:]) == 2 }},
		{"/sparse/frag5", "an extent tree of depth 1", func(raw *rawInode) bool { return le.Uint16(raw.iblock[6:]) == 1 }},
		{"/big", "an htree", func(raw *rawInode) bool { return raw.flags&flagIndex != 0 }},
		{"/sym/fast59", "a fast symlink", func(raw *rawInode) bool { return raw.blocks512 == 0 }},
		{"/sym/slow60", "a slow symlink", func(raw *rawInode) bool { return raw.blocks512 != 0 }},
		{"/xattr/block", "an xattr block", func(raw *rawInode) bool { return raw.fileACL != 0 }},
		{"/xattr/inode", "in-inode xattrs only", func(raw *rawInode) bool { return raw.fileACL == 0 && raw.xattrArea != nil }},
		{"/dev/nvme", "the new device encoding", func(raw *rawInode) bool { return le.Uint32(raw.iblock[0:]) == 0 }},
		{"/dev/null", "the old device encoding", func(raw *rawInode) bool { return le.Uint32(raw.iblock[0:]) != 0 }},
	} {
		raw, err := rd.readInode(rtLookup(t, rd, c.p))
		if err != nil {
			t.Fatal(err)
		}
		if !c.ok(raw) {
			t.Errorf("%s: not %s", c.p, c.what)
		}
	}

	// The tree read back, contents read from the first image, writes an
	// image that reads back the same.
	f2 := rtWrite(t, got, 0)
	again, err := ReadTree(f2, rtSize(t, f2))
	if err != nil {
		t.Fatalf("ReadTree of the rewritten image: %v", err)
	}
	rtCompare(t, got, again)
}

// TestReadTreeHtreeTwoLevels reads a directory with a two-level htree,
// whose dx_node blocks a linear scan must skip (and checksum as dx).
func TestReadTreeHtreeTwoLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("a directory of 110000 entries")
	}
	tr := tree.New(rtEpoch)
	d := rtMkdir(tr, "/d")
	var one *tree.Inode
	for i := 0; i < 110000; i++ {
		if i%50000 == 0 {
			one = rtFile(0o644, nil) // at most 65000 names per inode
		}
		d.SetChild(fmt.Sprintf("name-%07d", i), one)
	}
	f := rtWrite(t, tr, 0)
	rd := rtOpen(t, f, false)
	raw, err := rd.readInode(12)
	if err != nil {
		t.Fatal(err)
	}
	if raw.flags&flagIndex == 0 || raw.size/blockSize <= dxRootLimit {
		t.Fatalf("/d has flags %#x and %d blocks: not a two-level htree", raw.flags, raw.size/blockSize)
	}
	got, err := ReadTree(f, rtSize(t, f))
	if err != nil {
		t.Fatal(err)
	}
	rtCompare(t, rtWithLostFound(tr), got)
}

// rtOpen returns a reader of f past its superblock and group descriptors.
func rtOpen(t *testing.T, f io.ReaderAt, lenient bool) *fsReader {
	t.Helper()
	size := int64(1 << 62)
	if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok {
		fi, err := st.Stat()
		if err != nil {
			t.Fatal(err)
		}
		size = fi.Size()
	} else if b, ok := f.(*bytes.Reader); ok {
		size = b.Size()
	}
	rd := &fsReader{img: &image{r: f, size: size}, o: ReadOptions{MaxEntries: DefaultMaxEntries, MaxDepth: DefaultMaxDepth, Lenient: lenient}}
	if err := rd.readSuper(); err != nil {
		t.Fatal(err)
	}
	if err := rd.readGroups(); err != nil {
		t.Fatal(err)
	}
	return rd
}

// rtInodeOffset is where inode ino is in the image.
func rtInodeOffset(rd *fsReader, ino uint32) int64 {
	g, i := (ino-1)/rd.ipg, (ino-1)%rd.ipg
	return int64(rd.itable[g])*rd.img.bs + int64(i)*int64(rd.inodeSize)
}

// rtLookup returns the inode number of path p.
func rtLookup(t *testing.T, rd *fsReader, p string) uint32 {
	t.Helper()
	ino := uint32(rootIno)
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		raw, err := rd.readInode(ino)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := rd.xattrs(raw); err != nil {
			t.Fatal(err)
		}
		ents, err := rd.dirEntries(raw)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range ents {
			if e.name == el {
				ino, found = e.ino, true
				break
			}
		}
		if !found {
			t.Fatalf("%s: %s not found", p, el)
		}
	}
	return ino
}

// rtFirstBlock returns the physical block of logical block 0 of inode ino.
func rtFirstBlock(t *testing.T, rd *fsReader, ino uint32) uint64 {
	t.Helper()
	raw, err := rd.readInode(ino)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rd.blockMap(raw)
	if err != nil || len(m) == 0 {
		t.Fatalf("inode %d: %v, %d mappings", ino, err, len(m))
	}
	return m[0].pblk
}

// rtImage is an image in memory that tests damage.
type rtImage []byte

func (m rtImage) put16(off int64, v uint16) { le.PutUint16(m[off:], v) }
func (m rtImage) put32(off int64, v uint32) { le.PutUint32(m[off:], v) }

// rtSealer recomputes the checksums of a damaged image (metadata_csum),
// so that structural damage is what a reader finds, as in a hostile image
// whose maker computed every checksum.
type rtSealer struct {
	rd     *fsReader
	inodes []uint32 // inodes to reseal
	dirs   map[int64]uint32
	exts   map[int64]uint32 // extent tree blocks and their inodes
	xattrs []int64          // xattr blocks
}

func (s *rtSealer) seal(m rtImage) {
	rd := s.rd
	bs := rd.img.bs
	sb := m[sbOffset : sbOffset+sbSize]
	le.PutUint32(sb[sbChecksum:], crc32c(^uint32(0), sb[:sbChecksum]))
	for g := uint32(0); g < rd.groups; g++ {
		d := m[bs+int64(g)*int64(rd.descSize):][:rd.descSize]
		c := crc32cU32(rd.fsSeed, g)
		c = crc32c(c, d[:bgChecksum])
		c = crc32c(c, []byte{0, 0})
		c = crc32c(c, d[bgChecksum+2:])
		le.PutUint16(d[bgChecksum:], uint16(c))
	}
	for _, ino := range s.inodes {
		b := m[rtInodeOffset(rd, ino):][:rd.inodeSize]
		le.PutUint16(b[iChecksumLo:], 0)
		le.PutUint16(b[iChecksumHi:], 0)
		c := crc32c(inodeSeed(rd.fsSeed, ino, le.Uint32(b[iGeneration:])), b)
		le.PutUint16(b[iChecksumLo:], uint16(c))
		le.PutUint16(b[iChecksumHi:], uint16(c>>16))
	}
	for blk, ino := range s.dirs {
		b := m[blk*bs:][:bs]
		le.PutUint32(b[bs-4:], crc32c(inodeSeed(rd.fsSeed, ino, 0), b[:bs-dirTailSize]))
	}
	for blk, ino := range s.exts {
		b := m[blk*bs:][:bs]
		tail := 12 + 12*int(le.Uint16(b[4:]))
		le.PutUint32(b[tail:], crc32c(inodeSeed(rd.fsSeed, ino, 0), b[:tail]))
	}
	for _, blk := range s.xattrs {
		b := m[blk*bs:][:bs]
		le.PutUint32(b[xattrBlockCsumOf:], 0)
		le.PutUint32(b[xattrBlockCsumOf:], crc32c(crc32cU64(rd.fsSeed, uint64(blk)), b))
	}
}

// TestReadTreeCorrupt damages a sound image in one place each and checks
// that ReadTree fails saying why, or with Lenient reports the checksum as
// a problem.
func TestReadTreeCorrupt(t *testing.T) {
	tr := tree.New(rtEpoch)
	rtPut(tr, "/dir/file", rtFile(0o644, rtRandom(3*blockSize, 1)))
	rtPut(tr, "/dir/link", rtSymlink(strings.Repeat("t", 100)))
	rtPut(tr, "/x", rtFile(0o644, nil)).Xattrs = []tree.Xattr{{Name: "user.big", Value: rtRandom(300, 2)}}
	for i := 0; i < 6; i++ { // six extents: an extent tree block
		s := &rtSparse{size: 12 * blockSize, parts: map[int64][]byte{}}
		for j := 0; j < 6; j++ {
			s.parts[int64(2*j)*blockSize] = rtRandom(blockSize, uint64(10*i+j))
		}
		rtPut(tr, fmt.Sprintf("/frag%d", i), &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch, Size: s.size, Content: s})
	}
	f := rtWrite(t, tr, 0)
	orig, err := io.ReadAll(io.NewSectionReader(f, 0, rtSize(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	rd := rtOpen(t, bytes.NewReader(orig), false)
	bs := int64(blockSize)
	dirIno, fileIno := rtLookup(t, rd, "/dir"), rtLookup(t, rd, "/dir/file")
	fragIno, linkIno := rtLookup(t, rd, "/frag0"), rtLookup(t, rd, "/dir/link")
	xIno := rtLookup(t, rd, "/x")
	dirBlk := int64(rtFirstBlock(t, rd, dirIno))
	rawFrag, _ := rd.readInode(fragIno)
	extBlk := int64(le.Uint32(rawFrag.iblock[12+4:]))
	rawX, _ := rd.readInode(xIno)
	inodeOf := func(ino uint32) int64 { return rtInodeOffset(rd, ino) }
	sealer := &rtSealer{rd: rd, inodes: []uint32{dirIno, fileIno, fragIno, linkIno, xIno},
		dirs: map[int64]uint32{dirBlk: dirIno}, exts: map[int64]uint32{extBlk: fragIno}, xattrs: []int64{int64(rawX.fileACL)}}

	for _, c := range []struct {
		name     string
		damage   func(m rtImage)
		lenient  bool   // ReadTree with Lenient succeeds, reporting a problem with this text
		want     string // the error says this
		truncate int64  // read only this many bytes of the image
	}{
		{name: "superblock checksum", damage: func(m rtImage) { m[sbOffset+sbWtime]++ }, lenient: true, want: "superblock: checksum"},
		{name: "bad magic", damage: func(m rtImage) { m.put16(sbOffset+sbMagic, 0x1234) }, want: "not ext2/3/4"},
		{name: "descriptor checksum", damage: func(m rtImage) { m[bs+bgFreeBlocksLo]++ }, lenient: true, want: "group 0: descriptor checksum"},
		{name: "inode checksum", damage: func(m rtImage) { m[inodeOf(fileIno)+iMtime]++ }, lenient: true, want: "checksum"},
		{name: "directory block checksum", damage: func(m rtImage) { m[dirBlk*bs+100]++ }, lenient: true, want: "directory block 0: checksum"},
		{name: "extent block checksum", damage: func(m rtImage) { m[extBlk*bs+bs-100]++ }, lenient: true, want: "extent tree block"},
		{name: "xattr block checksum", damage: func(m rtImage) { m[int64(rawX.fileACL)*bs+200]++ }, lenient: true, want: "xattr block"},
		{name: "truncated image", truncate: 4 << 20, want: "do not fit"},
		{name: "blocks past the image", damage: func(m rtImage) { m.put32(sbOffset+sbBlocksCountLo, 1<<30) }, want: "do not fit"},
		{name: "inode count", damage: func(m rtImage) { m.put32(sbOffset+sbInodesCount, 7) }, want: "inodes, but"},
		{name: "block size", damage: func(m rtImage) { m.put32(sbOffset+sbLogBlockSize, 7) }, want: "block size log 7"},
		{name: "unknown incompat feature", damage: func(m rtImage) { m[sbOffset+sbFeatureIncompat+3] |= 0x80 }, want: "unsupported incompatible features FEATURE_I31"},
		{name: "record length zero", damage: func(m rtImage) { m.put16(dirBlk*bs+4, 0) }, want: "record length 0"},
		{name: "record length past the block", damage: func(m rtImage) { m.put16(dirBlk*bs+12+4, 8000) }, want: "record length 8000"},
		{name: "entry inode past the count", damage: func(m rtImage) { m.put32(dirBlk*bs+24, 1<<31) }, want: "inode 2147483648 is not in"},
		{name: "directory hardlinked", damage: func(m rtImage) {
			// /dir's first entry after "." and ".." points to /dir itself.
			m.put32(dirBlk*bs+24, dirIno)
			m[dirBlk*bs+24+7] = ftDir
		}, want: "has a second name"},
		{name: "entry for a reserved inode", damage: func(m rtImage) { m.put32(dirBlk*bs+24, journalIno) }, want: "reserved inode 8"},
		{name: "file type mismatch", damage: func(m rtImage) { m[dirBlk*bs+24+7] = ftChr }, want: "file type 3"},
		{name: "extent magic", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iBlock, 0) }, want: "node magic"},
		{name: "extent depth", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iBlock+6, 6) }, want: "depth 6"},
		{name: "extent entries over max", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iBlock+2, 5) }, want: "5 entries"},
		{name: "extent past the filesystem", damage: func(m rtImage) { m.put32(inodeOf(fileIno)+iBlock+12+8, 1<<30) }, want: "outside"},
		{name: "extent of length 0", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iBlock+12+4, 0) }, want: "length 0"},
		{name: "index loops to itself", damage: func(m rtImage) {
			// The leaf becomes an index node of depth 1 pointing to itself.
			m.put16(extBlk*bs+6, 1)
			m.put32(extBlk*bs+12+4, uint32(extBlk))
		}, want: "node at depth 0 says it is at depth 1"},
		{name: "extents overlap", damage: func(m rtImage) { m.put32(extBlk*bs+12+12, 0) }, want: "overlaps"},
		{name: "deleted inode", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iLinksCount, 0) }, want: "link count 0"},
		{name: "unknown file type", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iMode, 0o644) }, want: "no file type"},
		{name: "extra isize", damage: func(m rtImage) { m.put16(inodeOf(fileIno)+iExtraIsize, 200) }, want: "i_extra_isize 200"},
		{name: "nanoseconds", damage: func(m rtImage) { m.put32(inodeOf(fileIno)+iMtimeExtra, 0xFFFFFFFC) }, want: "nanoseconds"},
		{name: "slow symlink size", damage: func(m rtImage) { m.put32(inodeOf(linkIno)+iSizeLo, 5000) }, want: "5000 bytes is not in 1..4095"},
		{name: "directory size", damage: func(m rtImage) { m.put32(inodeOf(dirIno)+iSizeLo, 100) }, want: "not a multiple"},
		{name: "directory hole", damage: func(m rtImage) { m.put32(inodeOf(dirIno)+iSizeLo, 2*blockSize) }, want: "directory block 1 is a hole"},
		{name: "xattr block magic", damage: func(m rtImage) { m.put32(int64(rawX.fileACL)*bs, 0) }, want: "magic"},
		{name: "xattr value outside", damage: func(m rtImage) { m.put16(int64(rawX.fileACL)*bs+xattrBlockHdr+2, 5000) }, want: "outside the area"},
		{name: "xattr unknown index", damage: func(m rtImage) { m[int64(rawX.fileACL)*bs+xattrBlockHdr+1] = 5 }, want: "unknown name index 5"},
		{name: "inode table past the end", damage: func(m rtImage) { m.put32(bs+bgInodeTableLo, 1<<30) }, want: "inode table"},
		{name: "empty index node", damage: func(m rtImage) { m.put16(inodeOf(fragIno)+iBlock+2, 0) }, want: "index node without entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := rtImage(bytes.Clone(orig))
			if c.damage != nil {
				c.damage(m)
				if !c.lenient {
					sealer.seal(m)
				}
			}
			size := int64(len(m))
			if c.truncate > 0 {
				size = c.truncate
			}
			_, problems, err := ReadTreeOptions(bytes.NewReader(m[:size]), size, ReadOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one saying %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "ext4: read: ") {
				t.Errorf("error %q lacks the package's prefix", err)
			}
			if len(problems) > 0 {
				t.Errorf("problems without Lenient: %v", problems)
			}
			_, problems, err = ReadTreeOptions(bytes.NewReader(m[:size]), size, ReadOptions{Lenient: true})
			switch {
			case !c.lenient && err == nil:
				t.Errorf("Lenient: no error for structural damage")
			case c.lenient && err != nil:
				t.Errorf("Lenient: %v", err)
			case c.lenient && (len(problems) != 1 || !strings.Contains(problems[0].Error(), c.want)):
				t.Errorf("Lenient: problems %v, want one saying %q", problems, c.want)
			}
		})
	}
}

// TestReadTreeLimits checks the entry and depth limits.
func TestReadTreeLimits(t *testing.T) {
	tr := tree.New(rtEpoch)
	d := rtMkdir(tr, "/a/b/c/d")
	for i := 0; i < 20; i++ {
		d.SetChild(fmt.Sprint(i), rtFile(0o644, nil))
	}
	f := rtWrite(t, tr, 0)
	size := rtSize(t, f)
	for _, c := range []struct {
		o    ReadOptions
		want string
	}{
		{ReadOptions{MaxEntries: 10}, "more than 10 directory entries"},
		{ReadOptions{MaxDepth: 3}, "/a/b/c/d: directories nest deeper than 3"},
	} {
		if _, _, err := ReadTreeOptions(f, size, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error saying %q", c.o, err, c.want)
		}
	}
	if _, _, err := ReadTreeOptions(f, size, ReadOptions{MaxEntries: 25, MaxDepth: 4}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

// TestReadTreeSharedBlocks checks what keeps shared metadata blocks from
// multiplying the work: directories that share blocks give a second name
// to a directory, and the metadata budget bounds blocks read.
func TestReadTreeSharedBlocks(t *testing.T) {
	tr := tree.New(rtEpoch)
	for i := 0; i < 40; i++ {
		rtMkdir(tr, fmt.Sprintf("/d%02d", i))
	}
	for i := 0; i < 10; i++ { // six extents each: an extent tree block
		s := &rtSparse{size: 12 * blockSize, parts: map[int64][]byte{}}
		for j := 0; j < 6; j++ {
			s.parts[int64(2*j)*blockSize] = rtRandom(blockSize, uint64(10*i+j))
		}
		rtPut(tr, fmt.Sprintf("/frag%d", i), &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch, Size: s.size, Content: s})
	}
	f := rtWrite(t, tr, 0)
	m, err := io.ReadAll(io.NewSectionReader(f, 0, rtSize(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(m)
	rd := rtOpen(t, bytes.NewReader(m), false)
	// Every directory's extent points at the root's block: each lists
	// the root's entries again, which name directories already read, so
	// the walk ends in a "second name" error, not a loop.
	rootBlk := rtFirstBlock(t, rd, rootIno)
	for i := 0; i < 40; i++ {
		ino := rtLookup(t, rd, fmt.Sprintf("/d%02d", i))
		off := rtInodeOffset(rd, ino) + iBlock + 12 + 8
		le.PutUint32(m[off:], uint32(rootBlk))
	}
	_, _, err = ReadTreeOptions(bytes.NewReader(m), int64(len(m)), ReadOptions{Lenient: true})
	if err == nil || !strings.Contains(err.Error(), "second name") {
		t.Errorf("shared directory blocks: got %v, want a second-name error", err)
	}

	// Every file's extent index points at the first file's leaf: that
	// reads, but each file's read costs the budget again.
	m = bytes.Clone(orig)
	var leaf uint32
	for i := 0; i < 10; i++ {
		ino := rtLookup(t, rd, fmt.Sprintf("/frag%d", i))
		off := rtInodeOffset(rd, ino) + iBlock + 12 + 4
		if i == 0 {
			leaf = le.Uint32(m[off:])
		}
		le.PutUint32(m[off:], leaf)
	}
	if _, _, err := ReadTreeOptions(bytes.NewReader(m), int64(len(m)), ReadOptions{Lenient: true}); err != nil {
		t.Fatalf("shared extent leaves: %v", err)
	}
	rd = rtOpen(t, bytes.NewReader(m), true)
	rd.budget = 50 // the root and 40 directory blocks, then 9 of the 10 leaves
	_, err = rd.readTree()
	if err == nil || !strings.Contains(err.Error(), "more metadata blocks read than the filesystem has") {
		t.Errorf("got %v, want the budget's error", err)
	}
}

// TestReadTreeEAInode reads an xattr value kept in its own inode
// (ea_inode), made by hand from a kiln image: a file's inode becomes the
// value of another file's xattr.
func TestReadTreeEAInode(t *testing.T) {
	tr := tree.New(rtEpoch)
	value := rtRandom(6000, 1)
	rtPut(tr, "/value", rtFile(0o600, value))
	rtPut(tr, "/x", rtFile(0o644, nil)).Xattrs = []tree.Xattr{{Name: "user.big", Value: rtRandom(300, 2)}}
	f := rtWrite(t, tr, 0)
	m, err := io.ReadAll(io.NewSectionReader(f, 0, rtSize(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	rd := rtOpen(t, bytes.NewReader(m), false)
	valIno, xIno := rtLookup(t, rd, "/value"), rtLookup(t, rd, "/x")
	rawX, err := rd.readInode(xIno)
	if err != nil {
		t.Fatal(err)
	}
	bs := rd.img.bs
	rootBlk := int64(rtFirstBlock(t, rd, rootIno))
	xblk := int64(rawX.fileACL)

	// The value inode gets EA_INODE and leaves the root directory ("."
	// and ".." come first, then lost+found and "value").
	off := rtInodeOffset(rd, valIno) + iFlags
	le.PutUint32(m[off:], le.Uint32(m[off:])|flagEAInode)
	entry := int64(-1)
	for e := int64(0); e < bs-dirTailSize; e += int64(le.Uint16(m[rootBlk*bs+e+4:])) {
		if le.Uint32(m[rootBlk*bs+e:]) == valIno {
			entry = rootBlk*bs + e
		}
	}
	if entry < 0 {
		t.Fatal("no entry for /value in the root")
	}
	le.PutUint32(m[entry:], 0)
	// The block's one entry refers to the value inode.
	le.PutUint32(m[xblk*bs+xattrBlockHdr+4:], valIno)
	le.PutUint32(m[xblk*bs+xattrBlockHdr+8:], uint32(len(value)))
	le.PutUint32(m[sbOffset+sbFeatureIncompat:], le.Uint32(m[sbOffset+sbFeatureIncompat:])|incompatEAInode)
	(&rtSealer{rd: rd, inodes: []uint32{valIno}, dirs: map[int64]uint32{rootBlk: rootIno}, xattrs: []int64{xblk}}).seal(rtImage(m))

	got, err := ReadTree(bytes.NewReader(m), int64(len(m)))
	if err != nil {
		t.Fatal(err)
	}
	want := rtWithLostFound(tree.New(rtEpoch))
	rtPut(want, "/x", rtFile(0o644, nil)).Xattrs = []tree.Xattr{{Name: "user.big", Value: value}}
	rtCompare(t, want, got)

	// A value inode named in a directory is an error.
	named := bytes.Clone(m)
	le.PutUint32(named[entry:], valIno)
	(&rtSealer{rd: rd, dirs: map[int64]uint32{rootBlk: rootIno}}).seal(rtImage(named))
	if _, err := ReadTree(bytes.NewReader(named), int64(len(named))); err == nil || !strings.Contains(err.Error(), "holds an xattr value, it has no name") {
		t.Errorf("value inode with a name: got %v", err)
	}
	// So is a value in an inode without EA_INODE.
	le.PutUint32(m[xblk*bs+xattrBlockHdr+4:], xIno)
	(&rtSealer{rd: rd, xattrs: []int64{xblk}}).seal(rtImage(m))
	if _, err := ReadTree(bytes.NewReader(m), int64(len(m))); err == nil || !strings.Contains(err.Error(), "is not a 6000-byte xattr value inode") {
		t.Errorf("value in a plain file: got %v", err)
	}
}

// TestReadTreeRecovery reads a filesystem whose journal needs recovery:
// the tree is what the filesystem holds, and a problem says so.
func TestReadTreeRecovery(t *testing.T) {
	tr := tree.New(rtEpoch)
	rtPut(tr, "/f", rtFile(0o644, []byte("f")))
	f := rtWrite(t, tr, 0)
	m := rtImageBytes(t, f)
	rd := rtOpen(t, bytes.NewReader(m), false)
	le.PutUint32(m[sbOffset+sbFeatureIncompat:], le.Uint32(m[sbOffset+sbFeatureIncompat:])|incompatRecover)
	(&rtSealer{rd: rd}).seal(rtImage(m))
	got, problems, err := ReadTreeOptions(bytes.NewReader(m), int64(len(m)), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "journal needs recovery") {
		t.Errorf("problems %v, want one about the journal", problems)
	}
	rtCompare(t, rtWithLostFound(tr), got)
}

func TestReadTreeNotExt4(t *testing.T) {
	for _, c := range []struct {
		name string
		img  []byte
		want string
	}{
		{"empty", nil, "superblock"},
		{"zeros", make([]byte, 1<<20), "not ext2/3/4"},
	} {
		_, err := ReadTree(bytes.NewReader(c.img), int64(len(c.img)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestCrc16(t *testing.T) {
	// CRC-16/ARC check value.
	if got := crc16(0, []byte("123456789")); got != 0xBB3D {
		t.Errorf("crc16(123456789) = %#04x, want 0xbb3d", got)
	}
}

func TestACLFromDisk(t *testing.T) {
	disk, err := aclToDisk(rtACL)
	if err != nil {
		t.Fatal(err)
	}
	back, err := aclFromDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, rtACL) {
		t.Errorf("round trip: got %x, want %x", back, rtACL)
	}
	for _, c := range []struct {
		name string
		v    []byte
		want string
	}{
		{"short", []byte{1, 0}, "not a version 1"},
		{"version", []byte{2, 0, 0, 0}, "not a version 1"},
		{"truncated entry", []byte{1, 0, 0, 0, 1, 0}, "truncated"},
		{"truncated user entry", []byte{1, 0, 0, 0, 2, 0, 7, 0, 1}, "truncated"},
		{"unknown tag", []byte{1, 0, 0, 0, 0x40, 0, 7, 0}, "unknown tag"},
	} {
		if _, err := aclFromDisk(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
