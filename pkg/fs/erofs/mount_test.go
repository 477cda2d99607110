package erofs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

// posixACL is a minimal access ACL in the kernel's xattr form (version
// 2; user::rw-, group::r--, other::r--).
var posixACL = []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}

// TestKernelMount has the kernel judge: it loop-mounts the image (root
// only) and compares everything the kernel shows with the tree: names,
// types, full modes (setuid/setgid included), owners, targets, devices,
// contents, mtimes, xattrs (user., trusted., security.capability, a POSIX
// ACL) and hardlinks (one inode, three links). Loop devices are a
// machine-wide resource, so it is opt-in: set KILN_EROFS_MOUNT=1.
func TestKernelMount(t *testing.T) {
	if os.Getenv("KILN_EROFS_MOUNT") == "" {
		t.Skip("set KILN_EROFS_MOUNT=1 (as root) to loop-mount images")
	}
	tr := everyKind()
	trees.Put(tr, epoch, "/acl", trees.File(0o644, epoch, nil)).Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: posixACL}}
	dir := mountMatches(t, tr, testOpts)
	var a, b syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "hard/a"), &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(dir, "hard/c"), &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Nlink != 3 {
		t.Errorf("hardlinks: inodes %d and %d, %d links; want one inode, 3 links", a.Ino, b.Ino, a.Nlink)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "many"))
	if err != nil || len(ents) != 3001 {
		t.Fatalf("/many: %d entries (%v), want 3001", len(ents), err)
	}
	if got := fmt.Sprint(ents[0].Name(), " ", ents[3000].Name()); got != "entry-00000- sub" {
		t.Errorf("/many: first and last %s", got)
	}
}

// mountMatches writes tr with o, loop-mounts it (unmounted at the test's
// end) and compares everything the kernel shows with tr; it returns the
// mount point.
func mountMatches(t *testing.T, tr *tree.Tree, o Options) string {
	t.Helper()
	dir := mountImage(t, writeImage(t, tr, o))
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		host := filepath.Join(dir, p)
		want := describeTree(t, d.Inode)
		// The kernel keeps setuid/setgid, which describe* leave out.
		var st syscall.Stat_t
		if err := syscall.Lstat(host, &st); err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if got := describeHost(t, host); got != want {
			t.Errorf("%s:\n got %s\nwant %s", p, got, want)
		}
		if st.Mode&0o7777 != d.Inode.Mode {
			t.Errorf("%s: mode %04o, want %04o", p, st.Mode&0o7777, d.Inode.Mode)
		}
		if st.Mtim.Sec != d.Inode.Mtime || st.Mtim.Nsec != int64(d.Inode.Nsec) {
			t.Errorf("%s: mtime %d.%d, want %d.%d", p, st.Mtim.Sec, st.Mtim.Nsec, d.Inode.Mtime, d.Inode.Nsec)
		}
		var names []string
		for _, x := range d.Inode.Xattrs {
			names = append(names, x.Name)
			v := make([]byte, 70000)
			n, err := syscall.Getxattr(host, x.Name, v)
			if err != nil || !bytes.Equal(v[:n], x.Value) {
				t.Errorf("%s: xattr %s: %q (%v), want %q", p, x.Name, v[:max(n, 0)], err, x.Value)
			}
		}
		if d.Inode.Kind != tree.Symlink {
			// The kernel lists inline xattrs, then shared ones.
			l := make([]byte, 1<<16)
			n, err := syscall.Listxattr(host, l)
			if err != nil {
				t.Errorf("%s: listxattr: %v", p, err)
			} else if got, want := strings.Join(sorted(strings.FieldsFunc(string(l[:n]), func(r rune) bool { return r == 0 })), ","), strings.Join(names, ","); got != want {
				t.Errorf("%s: xattrs %s, want %s", p, got, want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mountImage loop-mounts the EROFS image img read-only (unmounted at the
// test's end) and returns the mount point.
func mountImage(t *testing.T, img string) string {
	t.Helper()
	judge.Need(t, "mount", "umount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	return dir
}

func sorted(s []string) []string { sort.Strings(s); return s }
