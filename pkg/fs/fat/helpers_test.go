package fat

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

// genContent is size bytes of deterministic pseudo-random data made on
// the fly, so tests can have big files without holding them.
type genContent struct {
	seed uint64
	size int64
}

func (g genContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(&genReader{x: g.seed*0x9E3779B97F4A7C15 | 1}, g.size)), nil
}

type genReader struct{ x uint64 }

func (r *genReader) Read(p []byte) (int, error) {
	for i := range p {
		// xorshift64
		r.x ^= r.x << 13
		r.x ^= r.x >> 7
		r.x ^= r.x << 17
		p[i] = byte(r.x >> 32)
	}
	return len(p), nil
}

const testEpoch = 1700000000 // 2023-11-14 22:13:20 UTC

func newFile(mode uint32, mtime int64, data []byte) *tree.Inode {
	return trees.File(mode, mtime, data)
}

func genFile(seed uint64, size int64) *tree.Inode {
	return &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: testEpoch, Size: size, Content: genContent{seed, size}}
}

// mkdirAll returns the directory at p, creating it (and its parents).
func mkdirAll(t *tree.Tree, p string) *tree.Inode { return trees.MkdirAll(t, testEpoch, p) }

// put adds inode n at path p, creating parent directories.
func put(t *tree.Tree, p string, n *tree.Inode) { trees.Put(t, testEpoch, p, n) }

// toolEnv is the environment of the tools the tests run: UTC, a UTF-8
// C locale, and no mtools geometry check.
var toolEnv = []string{"TZ=UTC", "LC_ALL=C.UTF-8", "MTOOLS_SKIP_CHECK=1"}

// writeImage writes t to a fresh sparse file of size bytes.
func writeImage(t *testing.T, size int64, tr *tree.Tree, o Options) (string, error) {
	t.Helper()
	f := testkit.SparseFile(t, "fat.img", size)
	if err := Write(f, size, tr, o); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

func mustWriteImage(t *testing.T, size int64, tr *tree.Tree, o Options) string {
	t.Helper()
	img, err := writeImage(t, size, tr, o)
	if err != nil {
		t.Fatalf("Write(%d bytes): %v", size, err)
	}
	return img
}

var fsckSummary = regexp.MustCompile(`^(.*): (\d+) files, (\d+)/(\d+) clusters$`)

// fsckClean runs fsck.vfat -n on img and fails unless it exits 0 and prints
// nothing but its version and summary lines. It returns the used and total
// cluster counts of the summary.
func fsckClean(t *testing.T, img string) (used, total uint32) {
	t.Helper()
	out, code := judge.Run(t, toolEnv, "fsck.vfat", "-n", img)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	ok := code == 0 && len(lines) == 2 && strings.HasPrefix(lines[0], "fsck.fat ")
	var m []string
	if ok {
		m = fsckSummary.FindStringSubmatch(lines[1])
		ok = m != nil
	}
	if !ok {
		t.Fatalf("fsck.vfat -n %s: exit %d\n%s", img, code, out)
	}
	u, _ := strconv.ParseUint(m[3], 10, 32)
	n, _ := strconv.ParseUint(m[4], 10, 32)
	return uint32(u), uint32(n)
}

func probeFile(t *testing.T, img string) *Info {
	t.Helper()
	f, size := testkit.Open(t, img)
	in, err := Probe(f, size)
	if err != nil {
		t.Fatalf("Probe(%s): %v", img, err)
	}
	return in
}

// extract copies the whole volume out with mcopy and returns the directory.
func extract(t *testing.T, img string) string {
	t.Helper()
	dir := t.TempDir()
	if out, code := judge.Run(t, toolEnv, "mcopy", "-s", "-m", "-n", "-i", img, "::", dir+"/"); code != 0 {
		t.Fatalf("mcopy: exit %d\n%s", code, out)
	}
	return dir
}

// fatMtime is what FAT keeps of an mtime: UTC, 2-second resolution,
// clamped to 1980-2107.
func fatMtime(sec int64) int64 {
	d, tm, _ := fatTime(sec, 0)
	return fromFATTime(d, tm).Unix()
}

// mtoolsLeapBug is 2100-03-01 00:00:00 UTC.
var mtoolsLeapBug = time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC).Unix()

func contentSum(t *testing.T, n *tree.Inode) string {
	t.Helper()
	h := sha256.New()
	if n.Size > 0 {
		rc, err := n.Content.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.Copy(h, rc); err != nil {
			t.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// compareExtracted checks that dir, as mcopy extracted it, holds exactly
// the tree: the same names, kinds, sizes, contents and (files) mtimes.
func compareExtracted(t *testing.T, tr *tree.Tree, dir string) {
	t.Helper()
	want := map[string]*tree.Inode{}
	err := tr.Walk(func(p string, d tree.Dirent) error {
		if p != "/" {
			want[p] = d.Inode
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, dir)
		if rel == "" {
			return nil
		}
		n, ok := want[rel]
		if !ok {
			return fmt.Errorf("extracted %q is not in the tree", rel)
		}
		seen++
		if d.IsDir() != (n.Kind == tree.Dir) {
			return fmt.Errorf("%s: extracted as dir=%v, tree has a %v", rel, d.IsDir(), n.Kind)
		}
		if d.IsDir() {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if st.Size() != n.Size {
			return fmt.Errorf("%s: size %d, want %d", rel, st.Size(), n.Size)
		}
		// mtools takes 2100 for a leap year, so it reads later dates a
		// day late; TestTimesRaw checks those times as stored instead.
		if got, w := st.ModTime().Unix(), fatMtime(n.Mtime); got != w && w < mtoolsLeapBug {
			return fmt.Errorf("%s: mtime %s, want %s", rel, st.ModTime().UTC(), time.Unix(w, 0).UTC())
		}
		if got, w := judge.SHA256File(t, p), contentSum(t, n); got != w {
			return fmt.Errorf("%s: sha256 %s, want %s", rel, got, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Fatalf("extracted %d entries, the tree has %d", seen, len(want))
	}
}

func fileBytes(t *testing.T, img string) []byte {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
