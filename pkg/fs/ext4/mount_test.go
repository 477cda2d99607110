package ext4

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestKernelMount has the kernel judge too: it loop-mounts images (root
// only), looks every name of a two-level htree up through the kernel's
// index, reads attributes and contents, then mounts read-write, changes
// things and runs e2fsck again. Loop devices are a machine-wide resource,
// so it is opt-in: set KILN_EXT4_MOUNT=1.
func TestKernelMount(t *testing.T) {
	if os.Getenv("KILN_EXT4_MOUNT") == "" {
		t.Skip("set KILN_EXT4_MOUNT=1 (as root) to loop-mount images")
	}
	judge.Need(t, "mount", "umount", "e2fsck")
	mount := func(img string, opts string) string {
		t.Helper()
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-o", "loop,"+opts, img, dir).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", img, err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		return dir
	}
	umount := func(dir string) {
		t.Helper()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v\n%s", err, out)
		}
	}

	tr, names := bigDir(12000, func(i int) string { return fmt.Sprintf("%0200d-%d", i, i%7) })
	tr.Root.Child("dir").Xattrs = nil
	put(t, tr, "/f", file(0o644, pseudoRandom(50000, 1))).Xattrs = []layerXattr{
		{Name: "security.capability", Value: capability}, {Name: "user.big", Value: pseudoRandom(600, 2)}}
	put(t, tr, "/acl", file(0o644, nil)).Xattrs = []layerXattr{{Name: "system.posix_acl_access", Value: posixACL}}
	img := writeImage(t, tr, 64<<20, testOptions())

	dir := mount(img, "ro")
	for _, n := range names { // fresh mount: lookups go through the htree index
		if _, err := os.Lstat(filepath.Join(dir, "dir", n)); err != nil {
			t.Fatalf("lookup: %v", err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || !bytes.Equal(got, pseudoRandom(50000, 1)) {
		t.Errorf("/f: content differs (%v)", err)
	}
	for p, xs := range map[string][]layerXattr{
		"f":   {{Name: "security.capability", Value: capability}, {Name: "user.big", Value: pseudoRandom(600, 2)}},
		"acl": {{Name: "system.posix_acl_access", Value: posixACL}},
	} {
		for _, x := range xs {
			buf := make([]byte, 4096)
			n, err := syscall.Getxattr(filepath.Join(dir, p), x.Name, buf)
			if err != nil || !bytes.Equal(buf[:n], x.Value) {
				t.Errorf("/%s: xattr %s = %x (%v), want %x", p, x.Name, buf[:max(n, 0)], err, x.Value)
			}
		}
	}
	umount(dir)

	dir = mount(img, "rw")
	for i := 0; i < 1000; i++ {
		if err := os.WriteFile(filepath.Join(dir, "dir", fmt.Sprintf("new%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names[:3000] {
		if err := os.Remove(filepath.Join(dir, "dir", n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), pseudoRandom(200000, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	umount(dir)
	fsck(t, img)
}
