package ext4

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
)

// bigDir returns a tree whose /dir holds n empty files named by name(i).
func bigDir(n int, name func(int) string) (*tree.Tree, []string) {
	tr := tree.New(t0)
	d := tree.NewDir(0o755, 0, 0, t0)
	tr.Root.SetChild("dir", d)
	names := make([]string, n)
	shared := &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: t0}
	for i := range names {
		names[i] = name(i)
		f := shared
		if i%1000 != 0 { // most get their own inode, some share one
			f = &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: t0}
		}
		d.SetChild(names[i], f)
	}
	sort.Strings(names)
	return tr, names
}

var reLevels = regexp.MustCompile(`Indirect levels: (\d+)`)

// checkHtree checks that /dir is indexed with the given levels and that
// debugfs lists exactly names in it.
func checkHtree(t *testing.T, img string, levels int, names []string) {
	t.Helper()
	s := debugStat(t, img, "/dir")
	if s.flags != "0x81000" {
		t.Errorf("/dir: flags %s, want 0x81000 (extents, htree index)", s.flags)
	}
	out := debugfs(t, img, "htree /dir")
	m := reLevels.FindStringSubmatch(out)
	if m == nil || m[1] != fmt.Sprint(levels) {
		t.Errorf("htree /dir: indirect levels %v, want %d\n%.2000s", m, levels, out)
	}
	ls := debugfs(t, img, "ls -p /dir")
	var got []string
	for _, line := range strings.Split(ls, "\n") {
		// /ino/mode/uid/gid/name/size/
		f := strings.Split(line, "/")
		// Inode 0: empty dirents (the fake ones heading dx_node blocks).
		if len(f) < 7 || f[1] == "0" || f[5] == "." || f[5] == ".." {
			continue
		}
		got = append(got, f[5])
	}
	sort.Strings(got)
	if len(got) != len(names) {
		t.Fatalf("ls /dir: %d entries, want %d", len(got), len(names))
	}
	for i := range got {
		if got[i] != names[i] {
			t.Fatalf("ls /dir: entry %q, want %q", got[i], names[i])
		}
	}
}

func TestHtree20000(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	tr, names := bigDir(20000, func(i int) string { return fmt.Sprintf("file-%06d.txt", i*7919%1000003) })
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)
	checkHtree(t, img, 0, names)
}

// Long names fill leaves fast: two index levels with few entries.
func TestHtreeTwoLevels(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	tr, names := bigDir(12000, func(i int) string { return fmt.Sprintf("%0200d-%d", i, i%7) })
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)
	checkHtree(t, img, 1, names)
}

// Hash collisions: names whose hashes collide would need the continuation
// bit; force many equal hashes by using a seed-independent check instead:
// non-ASCII names exercise the signed-char hashing.
func TestHtreeNonASCII(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	tr, names := bigDir(3000, func(i int) string { return fmt.Sprintf("Ä-ñ-%d-\xff\x80", i) })
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)
	checkHtree(t, img, 0, names)
}

func TestHtreeMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a directory of 1,000,000 files")
	}
	judge.Need(t, "e2fsck", "debugfs")
	tr, _ := bigDir(1_000_000, func(i int) string { return fmt.Sprintf("f%07d", i) })
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)
	out := debugfs(t, img, "htree /dir")
	if m := reLevels.FindStringSubmatch(out); m == nil || m[1] != "1" {
		t.Errorf("htree /dir: indirect levels %v, want 1", m)
	}
}

func TestDirNlinkOverflow(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 65,001 subdirectories")
	}
	judge.Need(t, "e2fsck", "debugfs")
	tr := tree.New(t0)
	d := tree.NewDir(0o755, 0, 0, t0)
	tr.Root.SetChild("dir", d)
	for i := 0; i < linkMax-1; i++ {
		d.SetChild(fmt.Sprintf("d%05d", i), tree.NewDir(0o755, 0, 0, t0))
	}
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)
	if s := debugStat(t, img, "/dir"); s.links != 1 {
		t.Errorf("/dir with %d subdirectories: %d links, want 1", linkMax-1, s.links)
	}
}
