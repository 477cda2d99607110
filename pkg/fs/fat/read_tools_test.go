package fat

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/tree"

	"github.com/kiln-build/kiln/internal/judge"
)

// rtHostFile is the content of a file on the host.
type rtHostFile string

func (h rtHostFile) Open() (io.ReadCloser, error) { return os.Open(string(h)) }

// rtToolEnv is the environment of mtools and mkfs.vfat here: UTC (FAT
// times are local), UTF-8 names, no geometry check.
var rtToolEnv = []string{"TZ=UTC", "LC_ALL=C.UTF-8", "MTOOLS_SKIP_CHECK=1"}

func rtRun(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), rtToolEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// rtHostDir makes a directory of files and directories with the names FAT
// tools store in every way, dated at even seconds. No name has characters
// beyond the BMP: mtools 4.0 stores them as one UTF-16 unit, cut to 16
// bits (TestReadTreeNames and the round trip cover surrogate pairs).
func rtHostDir(t *testing.T) (dir string, readOnly []string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"readme.txt":                 []byte("lower 8.3\n"),
		"UPPER.TXT":                  []byte("upper 8.3\n"),
		"MixedCase.Txt":              []byte("mixed\n"),
		"Long Name with spaces.conf": rtRandom(3000, 1),
		"ünïcödé 名前.txt":             []byte("BMP\n"),
		"empty":                      nil,
		"big.bin":                    rtRandom(3<<20, 2),
		"EFI/BOOT/BOOTX64.EFI":       rtRandom(70000, 3),
		"loader/entries/kiln.conf":   []byte("title kiln\n"),
		"ro.txt":                     []byte("read-only\n"),
		strings.Repeat("n", 200):     []byte("a 200-character name"),
	}
	// mcopy generates short names in quadratic time: the big directory
	// has 8.3 names, which need none (lower case: NT case bits).
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("many/e%04d.dat", i)] = []byte(fmt.Sprint(i))
	}
	for i := 0; i < 100; i++ {
		files[fmt.Sprintf("long/entry number %03d.data", i)] = []byte(fmt.Sprint(i))
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := len(paths) - 1; i >= 0; i-- { // deepest first
		tm := time.Unix(1600000000+int64(2*i), 0)
		if err := os.Chtimes(paths[i], tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	return dir, []string{"ro.txt"}
}

// rtScanHost is the tree FAT should hold of dir.
func rtScanHost(t *testing.T, dir string, readOnly []string) *tree.Tree {
	t.Helper()
	var scan func(p, rel string) *tree.Inode
	scan = func(p, rel string) *tree.Inode {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.IsDir() {
			d := tree.NewDir(0o755, 0, 0, fi.ModTime().Unix())
			ents, err := os.ReadDir(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				d.SetChild(e.Name(), scan(filepath.Join(p, e.Name()), filepath.Join(rel, e.Name())))
			}
			return d
		}
		mode := uint32(0o644)
		for _, r := range readOnly {
			if r == rel {
				mode = 0o444
			}
		}
		n := &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: fi.ModTime().Unix(), Size: fi.Size()}
		if n.Size > 0 {
			n.Content = rtHostFile(p)
		}
		return n
	}
	tr := &tree.Tree{Root: scan(dir, "")}
	tr.Root.Mtime = 0
	return tr
}

// TestReadTreeMtools reads volumes mkfs.vfat made and mcopy filled, and
// compares them with the directory they were filled from.
func TestReadTreeMtools(t *testing.T) {
	judge.Need(t, "mkfs.vfat", "mcopy", "mattrib")
	src, readOnly := rtHostDir(t)
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fatType int
		kib     int
		args    []string
	}{
		{12, 8 << 10, nil},
		{16, 32 << 10, nil},
		{32, 64 << 10, []string{"-n", "MYLABEL"}},
	} {
		t.Run(fmt.Sprintf("FAT%d", c.fatType), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			rtRun(t, "mkfs.vfat", append(append([]string{"-C", "-F", fmt.Sprint(c.fatType), "-i", "12345678"}, c.args...), img, fmt.Sprint(c.kib))...)
			args := []string{"-s", "-m", "-i", img}
			for _, e := range ents {
				args = append(args, filepath.Join(src, e.Name()))
			}
			rtRun(t, "mcopy", append(args, "::")...)
			for _, p := range readOnly {
				rtRun(t, "mattrib", "-i", img, "+r", "::/"+p)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			in, err := Probe(f, rtSize(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if in.FATType != c.fatType {
				t.Fatalf("mkfs.vfat made FAT%d, want FAT%d", in.FATType, c.fatType)
			}
			got, err := ReadTree(f, rtSize(t, f))
			if err != nil {
				t.Fatalf("ReadTree: %v", err)
			}
			rtCompare(t, rtScanHost(t, src, readOnly), got, true)
		})
	}
}
