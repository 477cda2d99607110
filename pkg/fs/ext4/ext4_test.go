package ext4

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

const t0 = 1700000000

// pseudoRandom returns n deterministic bytes that are never a zero block.
func pseudoRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x) | 1
	}
	return b
}

// mkdirAll returns the directory at p, creating it (and its parents).
func mkdirAll(t *testing.T, tr *tree.Tree, p string) *tree.Inode { return trees.MkdirAll(tr, t0, p) }

// put sets n at p, creating the parent directories, and returns n.
func put(t *testing.T, tr *tree.Tree, p string, n *tree.Inode) *tree.Inode {
	return trees.Put(tr, t0, p, n)
}

func file(mode uint32, data []byte) *tree.Inode {
	n := &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: t0, Size: int64(len(data))}
	if len(data) > 0 {
		n.Content = testkit.Bytes(data)
	}
	return n
}

func symlink(target string) *tree.Inode {
	return &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: t0, Target: target, Size: int64(len(target))}
}

// fragmented returns a file of n data blocks each followed by a hole.
func fragmented(n int) (*tree.Inode, []byte) {
	sc := &sparseContent{size: int64(2*n) * blockSize, parts: map[int64][]byte{}}
	full := make([]byte, sc.size)
	for i := 0; i < n; i++ {
		d := pseudoRandom(blockSize, uint64(i+7))
		sc.parts[int64(2*i)*blockSize] = d
		copy(full[2*i*blockSize:], d)
	}
	return &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: t0, Size: sc.size, Content: sc}, full
}

// capability is a VFS_CAP_REVISION_2 security.capability value granting
// cap_net_raw (13) permitted and effective.
var capability = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// posixACL is a POSIX ACL in xattr form: user::rwx user:1000:r-x
// group::r-x mask::r-x other::---.
var posixACL = func() []byte {
	b := []byte{2, 0, 0, 0}
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 7, 0xffffffff}, {2, 5, 1000}, {4, 5, 0xffffffff}, {0x10, 5, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		b = le.AppendUint16(b, e.tag)
		b = le.AppendUint16(b, e.perm)
		b = le.AppendUint32(b, e.id)
	}
	return b
}()

// featureTree builds a tree with every kind of inode and attribute Write
// supports; contents maps regular files' paths to their bytes.
func featureTree(t *testing.T) (*tree.Tree, map[string][]byte) {
	t.Helper()
	tr := tree.New(t0)
	contents := map[string][]byte{}
	addFile := func(p string, mode uint32, data []byte) *tree.Inode {
		contents[p] = data
		return put(t, tr, p, file(mode, data))
	}
	addFile("/bin/sh", 0o755, pseudoRandom(100_000, 1))
	ping := addFile("/bin/ping", 0o4755, pseudoRandom(5000, 2))
	ping.Xattrs = []tree.Xattr{{Name: "security.capability", Value: capability}}
	addFile("/usr/bin/sudo", 0o4711, pseudoRandom(3000, 3))
	addFile("/usr/bin/wall", 0o2755, pseudoRandom(3000, 4)).GID = 5
	mkdirAll(t, tr, "/tmp").Mode = 0o1777
	mail := mkdirAll(t, tr, "/var/mail")
	mail.Mode, mail.GID = 0o2775, 8
	home := mkdirAll(t, tr, "/home/user")
	home.UID, home.GID, home.Mode = 100000, 100001, 0o700
	f := addFile("/home/user/future", 0o600, []byte("from 2100\n"))
	f.UID, f.GID, f.Mtime, f.Nsec = 100000, 100001, 4102444800, 123456789
	old := addFile("/old", 0o644, []byte("before 1970\n"))
	old.Mtime, old.Nsec = -1000000, 5
	addFile("/sizes/empty", 0o644, nil)
	addFile("/sizes/one", 0o644, []byte{'x'})
	addFile("/sizes/4095", 0o644, pseudoRandom(4095, 5))
	addFile("/sizes/4096", 0o644, pseudoRandom(4096, 6))
	addFile("/sizes/4097", 0o644, pseudoRandom(4097, 7))
	addFile("/sizes/2M", 0o644, pseudoRandom(2<<20, 8))

	sparse := make([]byte, 1<<20)
	copy(sparse, "head")
	copy(sparse[512<<10:], "middle")
	addFile("/sparse/holes", 0o644, sparse) // 2 blocks allocated, hole at the end
	addFile("/sparse/allzero", 0o644, make([]byte, 64<<10))
	for _, n := range []int{4, 5, 2000} {
		in, full := fragmented(n)
		p := fmt.Sprintf("/sparse/frag%d", n)
		put(t, tr, p, in)
		contents[p] = full
	}

	shared := addFile("/links/a", 0o644, []byte("shared\n"))
	put(t, tr, "/links/b", shared)
	put(t, tr, "/links/c", shared)
	put(t, tr, "/hardlink-elsewhere", shared)

	put(t, tr, "/sym/fast59", symlink(strings.Repeat("f", 59)))
	put(t, tr, "/sym/slow60", symlink(strings.Repeat("s", 60)))
	put(t, tr, "/sym/slow4095", symlink(strings.Repeat("l", 4095)))
	put(t, tr, "/sym/rel", symlink("../bin/sh"))

	dev := func(k tree.Kind, mode, major, minor uint32) *tree.Inode {
		return &tree.Inode{Kind: k, Mode: mode, Mtime: t0, Major: major, Minor: minor}
	}
	put(t, tr, "/dev/null", dev(tree.CharDev, 0o666, 1, 3))
	put(t, tr, "/dev/bigminor", dev(tree.CharDev, 0o620, 4, 300))
	put(t, tr, "/dev/bigmajor", dev(tree.CharDev, 0o600, 300, 5))
	put(t, tr, "/dev/sda", dev(tree.BlockDev, 0o660, 8, 0))
	put(t, tr, "/dev/initctl", dev(tree.FIFO, 0o600, 0, 0))

	put(t, tr, "/xattr/inode", file(0o644, nil)).Xattrs = []tree.Xattr{
		{Name: "trusted.t", Value: []byte("t")}, {Name: "user.a", Value: []byte("1")}, {Name: "user.b", Value: []byte("22")}}
	contents["/xattr/inode"] = nil
	put(t, tr, "/xattr/block", file(0o644, nil)).Xattrs = []tree.Xattr{
		{Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0\x00")},
		{Name: "user.big", Value: pseudoRandom(500, 9)},
		{Name: "user.empty", Value: []byte{}}}
	contents["/xattr/block"] = nil
	acl := mkdirAll(t, tr, "/xattr/acl")
	acl.Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: posixACL}, {Name: "system.posix_acl_default", Value: posixACL}}
	put(t, tr, "/xattr/symlink", symlink("target")).Xattrs = []tree.Xattr{{Name: "trusted.big", Value: pseudoRandom(200, 10)}} // user.* is for files and directories only

	many := mkdirAll(t, tr, "/many")
	for i := 0; i < 300; i++ {
		many.SetChild(fmt.Sprintf("file-%04d", i), file(0o644, nil))
	}
	sub := mkdirAll(t, tr, "/subdirs")
	for i := 0; i < 50; i++ {
		sub.SetChild(fmt.Sprintf("d%02d", i), tree.NewDir(0o755, 0, 0, t0))
	}
	mkdirAll(t, tr, "/emptydir")
	return tr, contents
}

var (
	reInode = regexp.MustCompile(`Inode: (\d+)\s+Type: (.+?)\s+Mode:\s+(\d+)\s+Flags: (0x[0-9a-f]+)`)
	reUser  = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+).*Size: (\d+)`)
	reLinks = regexp.MustCompile(`Links: (\d+)\s+Blockcount: (\d+)`)
	reMtime = regexp.MustCompile(`(?m)^ mtime: (0x[0-9a-f]+):([0-9a-f]+)`)
	reDev   = regexp.MustCompile(`Device major/minor number: (\d+):(\d+)`)
	reACL   = regexp.MustCompile(`File ACL: (\d+)`)
)

type stat struct {
	ino, links             int
	typ, mode, flags, acl  string
	uid, gid, size, blocks int64
	mtime, mtimeExtra      string
	major, minor           int
}

func debugStat(t *testing.T, img, p string) stat {
	t.Helper()
	out := debugfs(t, img, "stat "+p)
	m := reInode.FindStringSubmatch(out)
	u := reUser.FindStringSubmatch(out)
	l := reLinks.FindStringSubmatch(out)
	mt := reMtime.FindStringSubmatch(out)
	if m == nil || u == nil || l == nil || mt == nil {
		t.Fatalf("debugfs stat %s: cannot parse:\n%s", p, out)
	}
	atoi := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := stat{ino: int(atoi(m[1])), typ: m[2], mode: m[3], flags: m[4],
		uid: atoi(u[1]), gid: atoi(u[2]), size: atoi(u[3]),
		links: int(atoi(l[1])), blocks: atoi(l[2]), mtime: mt[1], mtimeExtra: mt[2]}
	if d := reDev.FindStringSubmatch(out); d != nil {
		s.major, s.minor = int(atoi(d[1])), int(atoi(d[2]))
	}
	if a := reACL.FindStringSubmatch(out); a != nil {
		s.acl = a[1]
	}
	return s
}

func TestFeatures(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	tr, contents := featureTree(t)
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)

	// Metadata of every inode, as debugfs reads it; inode numbers follow
	// the walk (first name of a hardlinked inode), from 12 on.
	inos := map[*tree.Inode]int{}
	lastIno := 11
	err := tr.Walk(func(p string, d tree.Dirent) error {
		n := d.Inode
		s := debugStat(t, img, p)
		if ino, ok := inos[n]; ok {
			if s.ino != ino {
				t.Errorf("%s: inode %d, want %d (hardlink)", p, s.ino, ino)
			}
		} else if p != "/" && p != "/lost+found" {
			if s.ino != lastIno+1 {
				t.Errorf("%s: inode %d, want %d (walk order)", p, s.ino, lastIno+1)
			}
			lastIno = s.ino
		}
		inos[n] = s.ino
		wantType := map[tree.Kind]string{tree.Regular: "regular", tree.Dir: "directory", tree.Symlink: "symlink",
			tree.CharDev: "character special", tree.BlockDev: "block special", tree.FIFO: "FIFO"}[n.Kind]
		if s.typ != wantType {
			t.Errorf("%s: type %q, want %q", p, s.typ, wantType)
		}
		if want := fmt.Sprintf("0%03o", n.Mode); s.mode != want { // debugfs's format
			t.Errorf("%s: mode %s, want %s", p, s.mode, want)
		}
		if s.uid != int64(n.UID) || s.gid != int64(n.GID) {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, s.uid, s.gid, n.UID, n.GID)
		}
		switch n.Kind {
		case tree.Regular, tree.Symlink:
			if s.size != n.Size {
				t.Errorf("%s: size %d, want %d", p, s.size, n.Size)
			}
		case tree.Dir:
			if s.size%blockSize != 0 || s.size == 0 {
				t.Errorf("%s: directory size %d", p, s.size)
			}
		case tree.CharDev, tree.BlockDev:
			if s.major != int(n.Major) || s.minor != int(n.Minor) {
				t.Errorf("%s: device %d:%d, want %d:%d", p, s.major, s.minor, n.Major, n.Minor)
			}
		}
		// Times as the kernel encodes them (worked out by hand for the
		// two times outside 1970..2038).
		wantMtime := map[string][2]string{
			"/home/user/future": {"0xf4865700", "1d6f3455"}, // 2100-01-01, 123456789 ns, epoch bits 01
			"/old":              {"0xfff0bdc0", "00000014"}, // -1000000 s, 5 ns
		}[p]
		if wantMtime[0] == "" {
			wantMtime = [2]string{fmt.Sprintf("0x%08x", n.Mtime), fmt.Sprintf("%08x", n.Nsec<<2)}
		}
		if s.mtime != wantMtime[0] || s.mtimeExtra != wantMtime[1] {
			t.Errorf("%s: mtime %s:%s, want %s:%s", p, s.mtime, s.mtimeExtra, wantMtime[0], wantMtime[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Link counts and hardlink identity.
	a := debugStat(t, img, "/links/a")
	for _, p := range []string{"/links/b", "/links/c", "/hardlink-elsewhere"} {
		if s := debugStat(t, img, p); s.ino != a.ino {
			t.Errorf("%s: inode %d, want %d (same as /links/a)", p, s.ino, a.ino)
		}
	}
	if a.links != 4 {
		t.Errorf("/links/a: %d links, want 4", a.links)
	}
	for p, want := range map[string]int{"/": 17, "/subdirs": 52, "/emptydir": 2, "/lost+found": 2, "/bin/sh": 1} {
		if s := debugStat(t, img, p); s.links != want {
			t.Errorf("%s: %d links, want %d", p, s.links, want)
		}
	}
	// lost+found is inode 11, 16 KiB, 0700, as mke2fs makes it.
	if s := debugStat(t, img, "/lost+found"); s.ino != 11 || s.size != 16384 || s.mode != "0700" {
		t.Errorf("/lost+found: inode %d size %d mode %s, want 11 16384 0700", s.ino, s.size, s.mode)
	}

	// Allocation: holes are not allocated; extent trees where needed.
	for p, want := range map[string]int64{
		"/sparse/holes":    2 * 8,
		"/sparse/allzero":  0,
		"/sparse/frag4":    4 * 8,
		"/sparse/frag5":    (5 + 1) * 8,        // one leaf block
		"/sparse/frag2000": (2000 + 6 + 1) * 8, // six leaves, one index block
		"/sizes/empty":     0,
		"/sym/fast59":      0,
		"/sym/slow60":      8,
		"/xattr/block":     8, // the xattr block
		"/xattr/inode":     0, // attributes in the inode
	} {
		if s := debugStat(t, img, p); s.blocks != want {
			t.Errorf("%s: %d sectors, want %d", p, s.blocks, want)
		}
	}
	if s := debugStat(t, img, "/many"); s.flags != "0x81000" {
		t.Errorf("/many: flags %s, want 0x81000 (extents, htree index)", s.flags)
	}
	if s := debugStat(t, img, "/xattr/inode"); s.acl != "0" {
		t.Errorf("/xattr/inode: xattr block %s, want none", s.acl)
	}

	// Contents and symlink targets, through rdump.
	out := filepath.Join(t.TempDir(), "rdump")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	debugfs(t, img, "rdump / "+out)
	for p, want := range contents {
		got, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s: content differs (%d bytes, want %d)", p, len(got), len(want))
		}
	}
	err = tr.Walk(func(p string, d tree.Dirent) error {
		if d.Inode.Kind != tree.Symlink {
			return nil
		}
		got, err := os.Readlink(filepath.Join(out, p))
		if err != nil || got != d.Inode.Target {
			t.Errorf("%s: target %q (%v), want %q", p, got, err, d.Inode.Target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Extended attributes, byte for byte (debugfs converts ACLs back to
	// their xattr form).
	err = tr.Walk(func(p string, d tree.Dirent) error {
		for _, x := range d.Inode.Xattrs {
			f := filepath.Join(t.TempDir(), "xattr")
			debugfs(t, img, fmt.Sprintf("ea_get -f %s %s %s", f, p, x.Name))
			got, err := os.ReadFile(f)
			if err != nil {
				t.Errorf("%s: xattr %s: %v", p, x.Name, err)
				continue
			}
			want := x.Value
			if strings.HasPrefix(x.Name, "system.posix_acl_") {
				got, want = aclIDs(got), aclIDs(want)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: xattr %s = %x, want %x", p, x.Name, got, x.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDumpe2fs(t *testing.T) {
	judge.Need(t, "dumpe2fs")
	tr, _ := featureTree(t)
	o := testOptions()
	img := writeImage(t, tr, 300<<20, o)
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h: %v", err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	for k, want := range map[string]string{
		"Filesystem features":    "has_journal ext_attr dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum",
		"Filesystem volume name": "kiln-root",
		"Filesystem UUID":        o.UUID.String(),
		"Directory Hash Seed":    o.seedUUID().String(),
		"Default directory hash": "half_md4",
		"Filesystem flags":       "signed_directory_hash",
		"Filesystem state":       "clean",
		"Block size":             "4096",
		"Inode size":             "256",
		"Required extra isize":   "32",
		"Flex block group size":  "16",
		"Journal inode":          "8",
		"Journal backup":         "inode blocks",
		"Checksum type":          "crc32c",
		"Reserved block count":   "0",
		"Block count":            "76800",
		"Total journal blocks":   "4096", // ext2fs_default_journal_size for 300 MiB
		"Filesystem created":     "Tue Nov 14 22:13:20 2023",
	} {
		if fields[k] != want {
			t.Errorf("dumpe2fs %s: %q, want %q", k, fields[k], want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	sum := func() [32]byte {
		tr, _ := featureTree(t)
		img := writeImage(t, tr, 0, testOptions())
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	if a, b := sum(), sum(); a != b {
		t.Fatalf("two writes of the same tree differ: %x vs %x", a, b)
	}
}

func TestNoSpace(t *testing.T) {
	tr := tree.New(t0)
	put(t, tr, "/usr/lib/big.bin", file(0o644, pseudoRandom(20<<20, 1)))
	err := Write(&discard{}, 16<<20, tr, testOptions())
	if err == nil {
		t.Fatal("Write of 20 MiB into 16 MiB succeeded")
	}
	if !errors.Is(err, ErrNoSpace) || !strings.HasPrefix(err.Error(), "ext4: /usr/lib/big.bin: no space left") {
		t.Fatalf("error %q: want ext4: /usr/lib/big.bin: no space left...", err)
	}
}

// discard is a WriterAt that keeps nothing.
type discard struct{}

func (discard) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// aclIDs zeroes the ids of ACL xattr entries that have none (the kernel
// reports them as -1, e2fsprogs as 0).
func aclIDs(v []byte) []byte {
	v = bytes.Clone(v)
	for i := 4; i+8 <= len(v); i += 8 {
		if tag := le.Uint16(v[i:]); tag != aclUser && tag != aclGroup {
			le.PutUint32(v[i+4:], 0)
		}
	}
	return v
}
