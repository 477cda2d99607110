package erofs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

// materialize writes tr into dir as mkfs.erofs would read it: contents,
// hardlinks, symlinks, devices, fifos, modes, owners, xattrs and mtimes
// (root: owners and devices).
func materialize(t *testing.T, tr *tree.Tree, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	first := map[*tree.Inode]string{}
	var dirs []string
	var times []func()
	must(tr.Walk(func(p string, d tree.Dirent) error {
		in := d.Inode
		full := filepath.Join(dir, p)
		if prev, ok := first[in]; ok && in.Kind != tree.Dir {
			return os.Link(prev, full)
		}
		first[in] = full
		switch in.Kind {
		case tree.Dir:
			if p != "/" {
				must(os.Mkdir(full, 0o700))
			}
			dirs = append(dirs, full)
		case tree.Regular:
			must(os.WriteFile(full, trees.Read(t, in), 0o600))
		case tree.Symlink:
			must(os.Symlink(in.Target, full))
		case tree.CharDev, tree.BlockDev:
			typ := uint32(syscall.S_IFCHR)
			if in.Kind == tree.BlockDev {
				typ = syscall.S_IFBLK
			}
			must(unix.Mknod(full, typ|0o600, int(unix.Mkdev(in.Major, in.Minor))))
		case tree.FIFO:
			must(unix.Mkfifo(full, 0o600))
		}
		must(os.Lchown(full, int(in.UID), int(in.GID)))
		if in.Kind != tree.Symlink {
			must(os.Chmod(full, os.FileMode(in.Mode&0o777)|modeBits(in.Mode)))
		}
		for _, x := range in.Xattrs {
			must(unix.Lsetxattr(full, x.Name, x.Value, 0))
		}
		ts := []unix.Timespec{{Sec: in.Mtime, Nsec: int64(in.Nsec)}, {Sec: in.Mtime, Nsec: int64(in.Nsec)}}
		times = append(times, func() { must(unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW)) })
		return nil
	}))
	for i := len(times) - 1; i >= 0; i-- {
		times[i]()
	}
}

func modeBits(m uint32) os.FileMode {
	var f os.FileMode
	if m&0o4000 != 0 {
		f |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		f |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		f |= os.ModeSticky
	}
	return f
}

// mkfsDefault runs mkfs.erofs with its default options on dir, as the
// bench (scripts/bench-sealed.sh) does: SOURCE_DATE_EPOCH the epoch, so
// that the build time is the epoch and mtimes are clamped to it, as in
// kiln's trees. It returns the image's size and path.
func mkfsDefault(t *testing.T, dir string) (int64, string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "mkfs.img")
	cmd := exec.Command("mkfs.erofs", "--quiet", img, dir)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.Itoa(epoch))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, out)
	}
	return fileSize(t, img), img
}

// sizeTree is a tree of many small and mid-sized files whose tails do
// not fit the blocks their inodes start, in directories of a few to a
// few hundred entries (where packing inodes in walk order wastes most),
// a directory of 3000 entries, hardlinks, a device, a fifo, extended
// inodes and an xattr. (everyKind's 255-byte names nested twice make
// mkfs.erofs 1.5 fail.)
func sizeTree() *tree.Tree {
	tr := tree.New(epoch)
	put := func(p string, n *tree.Inode) *tree.Inode { return trees.Put(tr, epoch, p, n) }
	seed := uint64(0x9e3779b97f4a7c15)
	rnd := func(n int) int {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	for d := 0; d < 40; d++ {
		dir := fmt.Sprintf("/d%02d", d)
		n := 3 + rnd(200)
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s/%s-%d", dir, strings.Repeat("f", 1+rnd(30)), i)
			switch rnd(10) {
			case 0:
				put(name, &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: epoch, Target: strings.Repeat("t", 1+rnd(200))})
			case 1:
				put(name, trees.File(0o644, epoch, pattern(name, rnd(5)*4096+rnd(4096))))
			case 2:
				put(name+".d/x", trees.File(0o644, epoch, pattern(name, rnd(64))))
			default:
				put(name, trees.File(0o644, epoch, pattern(name, 1+rnd(3500))))
			}
		}
	}
	for i := 0; i < 3000; i++ {
		put(fmt.Sprintf("/many/entry-%05d-%s", i, strings.Repeat("x", i%40)), trees.File(0o644, epoch, []byte(strconv.Itoa(i))))
	}
	hl := put("/hard/a", trees.File(0o640, epoch, pattern("hard", 5000)))
	put("/hard/b", hl)
	put("/dev/null", &tree.Inode{Kind: tree.CharDev, Mode: 0o666, Mtime: epoch, Major: 1, Minor: 3})
	put("/dev/fifo", &tree.Inode{Kind: tree.FIFO, Mode: 0o644, Mtime: epoch})
	hi := put("/owners/high", trees.File(0o644, epoch, []byte("high ids")))
	hi.UID, hi.GID = 100000, 200000
	put("/times/old", trees.File(0o644, epoch-86400, []byte("old")))
	x := put("/caps/ping", trees.File(0o755, epoch, pattern("ping", 3000)))
	x.Xattrs = []tree.Xattr{{Name: "security.capability", Value: []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}
	return tr
}

// TestSizeVsMkfs: kiln's uncompressed image of a varied tree is no
// larger than mkfs.erofs's (default options) of the same tree: the
// issue's goal. (Packing inodes in walk order made it 19.5% larger.)
func TestSizeVsMkfs(t *testing.T) {
	judge.Need(t, "mkfs.erofs")
	testkit.NeedRoot(t, "the tree is materialised with its owners and devices for mkfs.erofs")
	tr := sizeTree()
	dir := t.TempDir()
	materialize(t, tr, dir)
	m, _ := mkfsDefault(t, dir)
	k, _ := kilnSize(t, tr, testOpts)
	t.Logf("kiln %d bytes, mkfs.erofs %d (kiln/mkfs %.4f)", k, m, float64(k)/float64(m))
	if k > m {
		t.Errorf("kiln's image is %d bytes, mkfs.erofs's %d", k, m)
	}
}

// TestRootfsSizeVsMkfs is TestSizeVsMkfs on a real root filesystem (a
// tar: KILN_EROFS_BENCH_TAR, e.g. .cache/minbase.tar), extracted for
// mkfs.erofs as the bench extracts it.
func TestRootfsSizeVsMkfs(t *testing.T) {
	tarPath := os.Getenv("KILN_EROFS_BENCH_TAR")
	if tarPath == "" {
		t.Skip("set KILN_EROFS_BENCH_TAR to a root filesystem tar to measure on it") // skip-ok: an opt-in measurement on a real tree
	}
	judge.Need(t, "mkfs.erofs", "tar")
	testkit.NeedRoot(t, "the tar is extracted with its owners and devices for mkfs.erofs")
	tr := trees.Merge(t, epoch, tarPath)
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir, "-f", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	m, _ := mkfsDefault(t, dir)
	k, d := kilnSize(t, tr, testOpts)
	t.Logf("uncompressed: kiln %d bytes in %s, mkfs.erofs %d (kiln/mkfs %.4f, %+d blocks)", k, d, m, float64(k)/float64(m), (k-m)/blockSize)
	if k > m {
		t.Errorf("kiln's image is %d bytes, mkfs.erofs's %d", k, m)
	}
	// The images are right, uncompressed and lz4 as kiln build writes
	// them (chunk-based files included): fsck.erofs, kiln's reader, and
	// the kernel when KILN_EROFS_MOUNT=1.
	zo := zOpts
	zo.noChunks = false
	for _, o := range []Options{testOpts, zo} {
		l, err := plan(tr, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("compression %q: %d chunk-based files, %d compressed, %d bytes of shared xattrs", o.Compression, l.chunked, l.zfiles, len(l.shared))
		img := writeImage(t, tr, o)
		if out, ok := fsckErofs(t, img); !ok {
			t.Fatalf("fsck.erofs:\n%s", out)
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
	}
}
