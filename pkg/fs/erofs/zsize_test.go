package erofs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

// cpuTime is the user and system time of who (RUSAGE_SELF or
// RUSAGE_CHILDREN) so far: timings on a shared machine mean more in CPU
// than in wall time.
func cpuTime(who int) time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(who, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// fileSize is the size in bytes of the file at p.
func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// mkfsSizes runs mkfs.erofs on dir with each of the compressors and
// returns the image sizes (blocks used, as kiln's MinSize counts them
// before rounding), the time each took and the images.
func mkfsSizes(t *testing.T, dir string, algs ...string) (map[string]int64, map[string]string, map[string]string) {
	t.Helper()
	sizes, times, imgs := map[string]int64{}, map[string]string{}, map[string]string{}
	for _, a := range algs {
		img := filepath.Join(t.TempDir(), a+".img")
		args := []string{"-T0", "-x-1"}
		if a != "none" {
			args = append(args, "-z"+a)
		}
		start, cpu := time.Now(), cpuTime(syscall.RUSAGE_CHILDREN)
		if out, err := exec.Command("mkfs.erofs", append(args, img, dir)...).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.erofs %v: %v\n%s", args, err, out)
		}
		times[a] = fmt.Sprintf("%.2fs wall, %.2fs CPU", time.Since(start).Seconds(), (cpuTime(syscall.RUSAGE_CHILDREN) - cpu).Seconds())
		sizes[a] = fileSize(t, img)
		imgs[a] = img
	}
	return sizes, times, imgs
}

// kilnSize writes tr with o as kiln build does (MinSize, then Write at
// that size) and returns the blocks it uses (in bytes) and the time
// both took.
func kilnSize(t *testing.T, tr *tree.Tree, o Options) (int64, string) {
	t.Helper()
	start, cpu := time.Now(), cpuTime(syscall.RUSAGE_SELF)
	zc := newZcache()
	size, err := minSize(tr, o, zc)
	if err != nil {
		t.Fatal(err)
	}
	f := testkit.SparseFile(t, "erofs.img", size)
	l, err := write(f, size, tr, o, zc)
	if err != nil {
		t.Fatal(err)
	}
	d := fmt.Sprintf("%.2fs wall, %.2fs CPU", time.Since(start).Seconds(), (cpuTime(syscall.RUSAGE_SELF) - cpu).Seconds())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return l.blocks * blockSize, d
}

// TestCompressedSizeVsMkfs compares the size of kiln's lz4 image of the
// compression test files with mkfs.erofs -zlz4's and -zlz4hc's of the
// same files: kiln's is not larger than -zlz4's (the goal).
func TestCompressedSizeVsMkfs(t *testing.T) {
	judge.Need(t, "mkfs.erofs")
	tr := tree.New(epoch)
	zFiles(tr)
	dir := t.TempDir()
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		full := filepath.Join(dir, p)
		switch d.Inode.Kind {
		case tree.Dir:
			return os.MkdirAll(full, 0o755)
		case tree.Regular:
			if _, err := os.Stat(full); err == nil {
				return nil // a hardlink's second name: a copy would count twice
			}
			return os.WriteFile(full, trees.Read(t, d.Inode), 0o644)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The hardlink as mkfs.erofs sees it.
	if err := os.Remove(filepath.Join(dir, "z/hard-b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "z/hard-a"), filepath.Join(dir, "z/hard-b")); err != nil {
		t.Fatal(err)
	}
	sizes, _, _ := mkfsSizes(t, dir, "none", "lz4", "lz4hc")
	none, _ := kilnSize(t, tr, testOpts)
	lz4, _ := kilnSize(t, tr, zOpts)
	t.Logf("uncompressed: kiln %d, mkfs.erofs %d", none, sizes["none"])
	t.Logf("lz4: kiln %d, mkfs.erofs -zlz4 %d (kiln/mkfs %.3f), -zlz4hc %d (kiln/mkfs %.3f)",
		lz4, sizes["lz4"], float64(lz4)/float64(sizes["lz4"]), sizes["lz4hc"], float64(lz4)/float64(sizes["lz4hc"]))
	if lz4 > sizes["lz4"] {
		t.Errorf("kiln's lz4 image is %d bytes, mkfs.erofs -zlz4's %d", lz4, sizes["lz4"])
	}
}

// TestCompressedRootfs measures kiln's lz4 against mkfs.erofs -zlz4 and
// -zlz4hc on a real root filesystem (a tar: KILN_EROFS_BENCH_TAR, e.g.
// .cache/minbase.tar or .cache/bench/rootfs.tar; root, since the tar is
// extracted for mkfs.erofs), logs sizes and times (reported, not
// asserted), and checks kiln's image with fsck.erofs (--extract too),
// ReadTree and, with KILN_EROFS_MOUNT=1, the kernel.
func TestCompressedRootfs(t *testing.T) {
	tarPath := os.Getenv("KILN_EROFS_BENCH_TAR")
	if tarPath == "" {
		t.Skip("set KILN_EROFS_BENCH_TAR to a root filesystem tar to measure on it") // skip-ok: an opt-in measurement on a real tree
	}
	judge.Need(t, "mkfs.erofs", "tar")
	tr := trees.Merge(t, epoch, tarPath)
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir, "-f", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	sizes, times, imgs := mkfsSizes(t, dir, "none", "lz4", "lz4hc")
	none, tNone := kilnSize(t, tr, testOpts)
	lz4, tLZ4 := kilnSize(t, tr, zOpts)
	t.Logf("uncompressed: kiln %d in %s, mkfs.erofs %d in %s", none, tNone, sizes["none"], times["none"])
	t.Logf("lz4: kiln %d in %s (MinSize and Write), mkfs.erofs -zlz4 %d in %s (kiln/mkfs size %.3f)",
		lz4, tLZ4, sizes["lz4"], times["lz4"], float64(lz4)/float64(sizes["lz4"]))
	t.Logf("lz4hc: mkfs.erofs -zlz4hc %d in %s (kiln lz4/mkfs lz4hc size %.3f)",
		sizes["lz4hc"], times["lz4hc"], float64(lz4)/float64(sizes["lz4hc"]))

	// The image is right: fsck.erofs, kiln's reader, and the kernel
	// when KILN_EROFS_MOUNT=1.
	img := writeImage(t, tr, zOpts)
	if out, ok := fsckErofs(t, img); !ok {
		t.Fatalf("fsck.erofs:\n%s", out)
	}
	f, size := testkit.Open(t, img)
	got, err := ReadTree(f, size)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, got, tr)
	extractMatches(t, tr, zOpts)

	// kiln's reader reads mkfs.erofs -zlz4's image (compact indexes)
	// of the same tree: every regular file's content.
	mf, msize := testkit.Open(t, imgs["lz4"])
	mtree, err := ReadTree(mf, msize)
	if err != nil {
		t.Fatalf("ReadTree of mkfs.erofs -zlz4's image: %v", err)
	}
	files := 0
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		if d.Inode.Kind != tree.Regular {
			return nil
		}
		files++
		g := mtree.Lookup(p)
		if g == nil || g.Kind != tree.Regular || !bytes.Equal(trees.Read(t, g), trees.Read(t, d.Inode)) {
			t.Errorf("mkfs.erofs -zlz4 image: %s: content differs", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("mkfs.erofs -zlz4 image: %d regular files read back by ReadTree", files)
	if os.Getenv("KILN_EROFS_MOUNT") != "" {
		mountMatches(t, tr, zOpts)
	}
}
