package judge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadExt4OfMke2fs checks the reader itself against an image mke2fs
// made, so that the judge is not judged by kiln.
func TestReadExt4OfMke2fs(t *testing.T) {
	Need(t, "mke2fs", "debugfs")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("hello"), 0o640)
	os.Link(filepath.Join(src, "d", "f"), filepath.Join(src, "hl"))
	os.Symlink("d/f", filepath.Join(src, "sl"))
	long := strings.Repeat("t", 100)
	os.Symlink(long, filepath.Join(src, "slow"))
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, code := Run(t, []string{"E2FSPROGS_FAKE_TIME=1000000"}, "mke2fs", "-q", "-t", "ext4", "-d", src, img, "8M"); code != 0 {
		t.Fatal(out)
	}
	if out, code := Run(t, nil, "debugfs", "-w", "-R", "ea_set /d/f user.k vv", img); code != 0 {
		t.Fatal(out)
	}
	nodes := ReadExt4(t, img)
	f, hl := nodes["/d/f"], nodes["/hl"]
	if f.Type != "file" || f.Size != 5 || f.Mode != 0o640 || f.SHA256 != SHA256([]byte("hello")) || f.Inode != hl.Inode {
		t.Fatalf("file read back wrong: %v / %v", f, hl)
	}
	if f.Xattrs["user.k"] != "7676" {
		t.Fatalf("xattr: %v", f.Xattrs)
	}
	if nodes["/sl"].Target != "d/f" || nodes["/slow"].Target != long {
		t.Fatalf("symlinks: %v %v", nodes["/sl"], nodes["/slow"])
	}
	if nodes["/d"].Type != "dir" || len(nodes) != 5 {
		t.Fatalf("nodes: %v", Lines(nodes))
	}
	E2fsck(t, img)
}

// TestRunInput checks that the judge gets stdin and env, and that its
// output and exit code come back.
func TestRunInput(t *testing.T) {
	Need(t, "sh")
	out, code := RunInput(t, "from stdin\n", []string{"KILN_JUDGE_TEST=from env"}, "sh", "-c", `cat; echo "$KILN_JUDGE_TEST"; echo to stderr >&2; exit 3`)
	if out != "from stdin\nfrom env\nto stderr\n" || code != 3 {
		t.Fatalf("output %q, exit %d", out, code)
	}
	if out, code := Run(t, nil, "sh", "-c", "cat; echo done"); out != "done\n" || code != 0 {
		t.Fatalf("Run: output %q, exit %d", out, code)
	}
}
