package judge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// Need makes sure the named tools are on PATH (sbin included).
func Need(t testing.TB, tools ...string) {
	t.Helper()
	addSbin()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testkit.Missing(t, "judge %s (make deps installs it)", tool)
		}
	}
}

func addSbin() {
	p := os.Getenv("PATH")
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if !strings.Contains(":"+p+":", ":"+d+":") {
			p += ":" + d
		}
	}
	os.Setenv("PATH", p)
}

// Run runs a judge and returns its combined output and exit code.
func Run(t testing.TB, env []string, name string, args ...string) (string, int) {
	t.Helper()
	return RunInput(t, "", env, name, args...)
}

// RunInput is Run with stdin as the judge's standard input ("" gives it
// none).
func RunInput(t testing.TB, stdin string, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// Extract copies [start, start+size) of img into a new sparse file in a
// temporary folder (the tools that judge filesystems want a file).
func Extract(t testing.TB, img string, start, size int64) string {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), "part.img")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := int64(len(buf))
		if size-off < n {
			n = size - off
		}
		if _, err := in.ReadAt(buf[:n], start+off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := out.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// E2fsck runs `e2fsck -fn` on an ext4 image file and fails on any problem.
func E2fsck(t testing.TB, fsimg string) {
	t.Helper()
	Need(t, "e2fsck")
	out, code := Run(t, nil, "e2fsck", "-fn", fsimg)
	if code != 0 {
		t.Fatalf("e2fsck -fn exited %d:\n%s", code, out)
	}
	// A clean run prints the five passes and a summary line, nothing else.
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "Pass ") || strings.HasPrefix(l, "e2fsck ") || strings.Contains(l, " files (") || strings.HasPrefix(l, "Warning: skipping journal recovery") {
			continue
		}
		t.Fatalf("e2fsck -fn complained: %q\n%s", l, out)
	}
}

// FsckVfat runs `fsck.vfat -n` on a FAT image file and fails on any problem.
func FsckVfat(t testing.TB, fsimg string) {
	t.Helper()
	Need(t, "fsck.vfat")
	out, code := Run(t, nil, "fsck.vfat", "-n", fsimg)
	if code != 0 {
		t.Fatalf("fsck.vfat -n exited %d:\n%s", code, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "fsck.fat ") || strings.Contains(l, " files, ") {
			continue
		}
		t.Fatalf("fsck.vfat -n complained: %q\n%s", l, out)
	}
}

// SgdiskVerify runs `sgdisk -v` and requires "No problems found".
func SgdiskVerify(t testing.TB, img string) {
	t.Helper()
	Need(t, "sgdisk")
	out, code := Run(t, nil, "sgdisk", "-v", img)
	if code != 0 || !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v (exit %d):\n%s", code, out)
	}
}

// SfdiskVerify runs `sfdisk --verify` and requires "No errors detected"
// and no warning.
func SfdiskVerify(t testing.TB, img string) {
	t.Helper()
	Need(t, "sfdisk")
	out, code := Run(t, nil, "sfdisk", "--verify", img)
	low := strings.ToLower(out)
	if code != 0 || !strings.Contains(out, "No errors detected") || strings.Contains(low, "warning") || strings.Contains(low, "overlap") {
		t.Fatalf("sfdisk --verify (exit %d):\n%s", code, out)
	}
}

// SHA256File is the hex sha256 of a file's content.
func SHA256File(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is the hex sha256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Node is a file as a judge read it back out of an image.
type Node struct {
	Path     string
	Type     string // file, dir, symlink, char, block, fifo, socket
	Mode     uint32 // permissions plus setuid/setgid/sticky
	UID, GID uint32
	Size     int64
	SHA256   string // regular files
	Target   string // symlinks
	Major    uint32
	Minor    uint32
	Mtime    int64
	Inode    uint64            // ext4: identity for hardlinks
	Xattrs   map[string]string // name -> hex of value
}

func (n Node) String() string {
	s := fmt.Sprintf("%s %s %04o %d:%d size=%d mtime=%d", n.Path, n.Type, n.Mode, n.UID, n.GID, n.Size, n.Mtime)
	switch n.Type {
	case "file":
		s += " sha256=" + n.SHA256
	case "symlink":
		s += " -> " + n.Target
	case "char", "block":
		s += fmt.Sprintf(" dev=%d:%d", n.Major, n.Minor)
	}
	for _, k := range sortedKeys(n.Xattrs) {
		s += fmt.Sprintf(" xattr:%s=%s", k, n.Xattrs[k])
	}
	return s
}

// FsckErofs runs fsck.erofs on an EROFS image file and fails on any
// problem: erofs-utils 1.5 exits 0 even on a bad superblock checksum, so an
// error ("<E>") or warning ("<W>") line fails too.
func FsckErofs(t testing.TB, fsimg string) {
	t.Helper()
	Need(t, "fsck.erofs")
	out, code := Run(t, nil, "fsck.erofs", fsimg)
	if code != 0 || strings.Contains(out, "<E>") || strings.Contains(out, "<W>") {
		t.Fatalf("fsck.erofs %s exited %d:\n%s", fsimg, code, out)
	}
}

// VeritysetupVerify runs `veritysetup verify DATA HASH ROOTHASH`, which
// checks every data block against the hash tree in user space (no device
// mapper, no root), and reports whether it accepted them.
func VeritysetupVerify(t testing.TB, data, hash, rootHash string) (string, bool) {
	t.Helper()
	Need(t, "veritysetup")
	out, code := Run(t, nil, "veritysetup", "verify", data, hash, rootHash)
	return out, code == 0
}
