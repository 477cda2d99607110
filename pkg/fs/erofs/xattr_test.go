package erofs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

var (
	capNetRaw = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binLabel  = []byte("system_u:object_r:bin_t:s0\x00")
)

// xattrTree is a tree whose xattrs repeat: a SELinux label on most
// files and directories, one security.capability on three files (their
// hardlinks' names count once), ACLs shared and not, a value alone, and
// a file with 300 shared xattrs (more than h_shared_count's 255: the
// rest inline).
func xattrTree() *tree.Tree {
	tr := tree.New(epoch)
	put := func(p string, n *tree.Inode) *tree.Inode { return trees.Put(tr, epoch, p, n) }
	label := func(in *tree.Inode, more ...tree.Xattr) {
		in.Xattrs = append([]tree.Xattr{{Name: "security.selinux", Value: binLabel}}, more...)
		sortXattrs(in.Xattrs)
	}
	for i := 0; i < 40; i++ {
		label(put(fmt.Sprintf("/bin/tool%02d", i), trees.File(0o755, epoch, pattern(strconv.Itoa(i), 100+i*37))))
	}
	for _, p := range []string{"/bin/ping", "/bin/arping", "/bin/clockdiff"} {
		label(put(p, trees.File(0o755, epoch, pattern(p, 3000))), tree.Xattr{Name: "security.capability", Value: capNetRaw})
	}
	put("/bin/ping6", tr.Lookup("/bin/ping"))
	label(put("/bin/text", trees.File(0o755, epoch, text(7, 30000)))) // compressed with lz4
	label(tr.Lookup("/bin"))
	put("/acl/a", trees.File(0o644, epoch, nil)).Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: posixACL}}
	put("/acl/b", trees.File(0o644, epoch, nil)).Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: posixACL}, {Name: "user.only", Value: []byte("here")}}
	put("/alone", trees.File(0o644, epoch, []byte("x"))).Xattrs = []tree.Xattr{{Name: "user.alone", Value: []byte("value")}}
	var many []tree.Xattr
	for i := 0; i < 300; i++ {
		many = append(many, tree.Xattr{Name: fmt.Sprintf("user.k%03d", i), Value: []byte("v")})
	}
	put("/many/a", trees.File(0o644, epoch, nil)).Xattrs = many
	put("/many/b", trees.File(0o644, epoch, nil)).Xattrs = append([]tree.Xattr(nil), many...)
	return tr
}

func sortXattrs(xs []tree.Xattr) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j].Name < xs[j-1].Name; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// TestSharedXattrs: xattrs that several inodes carry are stored once in
// the shared area (xattr_blkaddr), the inodes listing their ids; the
// image passes fsck.erofs, dump.erofs agrees on the superblock and the
// inodes' xattr sizes, and kiln's reader, go-erofs and (with
// KILN_EROFS_MOUNT=1) the kernel give every xattr back.
func TestSharedXattrs(t *testing.T) {
	for _, o := range []Options{testOpts, zOpts} {
		t.Run("compression="+o.Compression, func(t *testing.T) { sharedXattrsWith(t, o) })
	}
}

func sharedXattrsWith(t *testing.T, o Options) {
	judge.Need(t, "fsck.erofs", "dump.erofs")
	tr := xattrTree()
	l, err := plan(tr, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The area: the label (4+7+27 → 40), the capability (4+10+20 →
	// 36), the ACL (4+0+28 → 32), user.k000..k299 (4+4+1 → 12 each).
	if want := 40 + 36 + 32 + 300*12; len(l.shared) != want {
		t.Errorf("shared area of %d bytes, want %d", len(l.shared), want)
	}
	shared := map[string]int{}
	for _, n := range l.nodes {
		if len(n.xattrs) > 0 {
			shared[n.path] = int(n.xattrs[4])
		}
	}
	for p, w := range map[string]int{"/bin": 1, "/bin/ping": 2, "/bin/tool07": 1, "/acl/a": 1, "/acl/b": 1, "/alone": 0, "/many/a": 255} {
		if shared[p] != w {
			t.Errorf("%s: %d shared xattrs, want %d", p, shared[p], w)
		}
	}
	if o.Compression == "lz4" && l.zfiles != 1 {
		t.Errorf("%d files compressed, want 1", l.zfiles)
	}
	img := writeImage(t, tr, o)
	if out, ok := fsckErofs(t, img); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
	out, rc := judge.Run(t, nil, "dump.erofs", "-s", img)
	if rc != 0 {
		t.Fatalf("dump.erofs -s: exit %d\n%s", rc, out)
	}
	if got := dumpField(t, out, "Filesystem shared xattr metadata start block"); got != strconv.FormatInt(l.xattrBlk, 10) || l.xattrBlk == 0 {
		t.Errorf("dump.erofs: shared xattrs at block %s, kiln put them at %d", got, l.xattrBlk)
	}
	// /bin/ping: the header and two ids.
	out, rc = judge.Run(t, nil, "dump.erofs", "--path=/bin/ping", img)
	if rc != 0 || !strings.Contains(out, "Xattr size: 20") {
		t.Errorf("dump.erofs /bin/ping: want 20 bytes of xattrs (exit %d):\n%s", rc, out)
	}
	f, size := testkit.Open(t, img)
	got, err := ReadTree(f, size)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, got, tr)
	if mountOK() {
		mountMatches(t, tr, o)
	}
	extractMatchesSmall(t, img, tr)
	if o.Compression != "" {
		return // go-erofs 0.3.1 refuses compressed images
	}
	gofs, err := readGoErofs(t, img)
	if err != nil {
		t.Fatalf("go-erofs: %v", err)
	}
	// go-erofs 0.3.1 names the ACLs with a trailing dot (its prefix
	// table: "system.posix_acl_access."), inline or shared.
	if err := gofs.Walk(func(_ string, d tree.Dirent) error {
		for i, x := range d.Inode.Xattrs {
			if x.Name == "system.posix_acl_access." || x.Name == "system.posix_acl_default." {
				d.Inode.Xattrs[i].Name = strings.TrimSuffix(x.Name, ".")
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, gofs, tr)
}

// TestSharedXattrsNone: without repeated xattrs there is no shared area
// (xattr_blkaddr 0) and the bytes are those of inline xattrs alone.
func TestSharedXattrsNone(t *testing.T) {
	tr := everyKind()
	l, err := plan(tr, testOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.shared != nil || l.xattrBlk != 0 {
		t.Errorf("shared area of %d bytes at block %d", len(l.shared), l.xattrBlk)
	}
	for _, n := range l.nodes {
		if len(n.xattrs) > 0 && n.xattrs[4] != 0 {
			t.Errorf("%s: %d shared xattrs", n.path, n.xattrs[4])
		}
	}
	var w bytesWriterAt
	if err := Write(&w, 1<<24, tr, testOpts); err != nil {
		t.Fatal(err)
	}
	if le := w[superOffset+44 : superOffset+48]; !bytes.Equal(le, []byte{0, 0, 0, 0}) {
		t.Errorf("xattr_blkaddr %v", le)
	}
}

func mountOK() bool { return os.Getenv("KILN_EROFS_MOUNT") != "" }

// extractMatchesSmall compares what fsck.erofs --extract gives back of
// img with tr, as extractMatches does, for a tree of any size.
func extractMatchesSmall(t *testing.T, img string, tr *tree.Tree) {
	t.Helper()
	testkit.NeedRoot(t, "fsck.erofs --extract sets owners")
	dir := filepath.Join(t.TempDir(), "x")
	if out, ok := fsckErofs(t, "--extract="+dir, img); !ok {
		t.Fatalf("fsck.erofs --extract:\n%s", out)
	}
	n := 0
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		n++
		if got, want := describeHost(t, filepath.Join(dir, p)), describeTree(t, d.Inode); got != want {
			t.Errorf("fsck.erofs --extract: %s:\n got %s\nwant %s", p, got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d entries compared", n)
	}
}
