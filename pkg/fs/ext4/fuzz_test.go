package ext4

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// FuzzReadTree feeds ReadTree hostile images. An input is a sparse image
// (testkit.SparseImage), so that seeds made from real filesystems of several
// MiB stay small and the fuzzer mutates what the reader reads. Whatever
// the input, ReadTree must return, without a panic, in bounded time and
// memory; a tree it returns must be well formed and its contents must
// read in full. Each read may allocate at most testkit.ReadBound in all.
func FuzzReadTree(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		img, ok := testkit.DecodeSparse(data)
		if !ok {
			return
		}
		for _, lenient := range []bool{false, true} {
			testkit.BoundAlloc(t, testkit.ReadBound, func() {
				tr, _, err := ReadTreeOptions(img, img.Size, ReadOptions{MaxEntries: 5000, MaxDepth: 64, Lenient: lenient})
				if err != nil {
					if tr != nil {
						t.Fatalf("a tree and an error: %v", err)
					}
					if !strings.HasPrefix(err.Error(), "ext4: read: ") {
						t.Fatalf("error without the package's prefix: %v", err)
					}
					return
				}
				rtCheckTree(t, tr, 256<<10, 4<<20)
			})
			if _, err := Probe(img); err != nil && !strings.HasPrefix(err.Error(), "ext4: ") {
				t.Fatalf("probe error without the package's prefix: %v", err)
			}
		}
	})
}

// rtCheckTree checks that a tree ReadTree returned is well formed, and
// reads up to perFile bytes of each file's content, total in all.
func rtCheckTree(t *testing.T, tr *tree.Tree, perFile, total int64) {
	t.Helper()
	if tr == nil || tr.Root == nil || tr.Root.Kind != tree.Dir {
		t.Fatal("no root directory")
	}
	read := map[*tree.Inode]bool{}
	err := tr.Walk(func(p string, d tree.Dirent) error {
		n := d.Inode
		if p != "/" && (d.Name == "" || d.Name == "." || d.Name == ".." || strings.ContainsAny(d.Name, "/\x00") || len(d.Name) > 255) {
			return fmt.Errorf("%s: invalid name %q", p, d.Name)
		}
		if n.Mode&^0o7777 != 0 {
			return fmt.Errorf("%s: mode %#o has more than permission bits", p, n.Mode)
		}
		if n.Nsec > 999999999 {
			return fmt.Errorf("%s: nsec %d", p, n.Nsec)
		}
		if !slices.IsSortedFunc(n.Xattrs, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) }) {
			return fmt.Errorf("%s: xattrs not sorted", p)
		}
		for i := 1; i < len(n.Xattrs); i++ {
			if n.Xattrs[i].Name == n.Xattrs[i-1].Name {
				return fmt.Errorf("%s: xattr %q twice", p, n.Xattrs[i].Name)
			}
		}
		switch n.Kind {
		case tree.Dir:
		case tree.Regular:
			if n.Size < 0 || (n.Size > 0) != (n.Content != nil) {
				return fmt.Errorf("%s: size %d, content %v", p, n.Size, n.Content != nil)
			}
			if n.Size == 0 || read[n] || total <= 0 {
				break
			}
			read[n] = true
			want := min(n.Size, perFile, total)
			total -= want
			rc, err := n.Content.Open()
			if err != nil {
				return fmt.Errorf("%s: open: %w", p, err)
			}
			got, err := io.CopyN(io.Discard, rc, want)
			rc.Close()
			if err != nil || got != want {
				return fmt.Errorf("%s: read %d of %d bytes: %v", p, got, want, err)
			}
		case tree.Symlink:
			if n.Target == "" || strings.IndexByte(n.Target, 0) >= 0 || n.Size != int64(len(n.Target)) {
				return fmt.Errorf("%s: symlink target %q, size %d", p, n.Target, n.Size)
			}
		case tree.CharDev, tree.BlockDev, tree.FIFO:
		default:
			return fmt.Errorf("%s: kind %d", p, n.Kind)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var rtUpdateSeeds = flag.Bool("readtree.seeds", false, "rewrite testdata/fuzz/FuzzReadTree from images made by Write and mke2fs")

// rtSeedImages returns the images FuzzReadTree is seeded with, by name.
func rtSeedImages(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tree.New(rtEpoch)
	tr.Root.Xattrs = []tree.Xattr{{Name: "user.r", Value: []byte("1")}}
	rtPut(tr, "/f", rtFile(0o4755, []byte("data\n"))).Xattrs = []tree.Xattr{{Name: "security.capability", Value: rtCapability}}
	rtPut(tr, "/x", rtFile(0o644, nil)).Xattrs = []tree.Xattr{{Name: "user.big", Value: bytes.Repeat([]byte("v"), 200)}}
	rtPut(tr, "/acl", tree.NewDir(0o755, 70000, 5, rtEpoch)).Xattrs = []tree.Xattr{{Name: "system.posix_acl_access", Value: rtACL}}
	rtPut(tr, "/d/h", rtPut(tr, "/d/g", rtFile(0o600, []byte("linked"))))
	rtPut(tr, "/s", rtSymlink("f"))
	rtPut(tr, "/slow", rtSymlink(strings.Repeat("p/", 40)))
	rtPut(tr, "/c", &tree.Inode{Kind: tree.CharDev, Mode: 0o600, Mtime: rtEpoch, Major: 259, Minor: 70000})
	rtPut(tr, "/p", &tree.Inode{Kind: tree.FIFO, Mode: 0o600, Mtime: rtEpoch, Nsec: 5})
	frag := &rtSparse{size: 12 * blockSize, parts: map[int64][]byte{}}
	for j := 0; j < 6; j++ {
		frag.parts[int64(2*j)*blockSize] = []byte(fmt.Sprint("block ", j))
	}
	rtPut(tr, "/frag", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: rtEpoch, Size: frag.size, Content: frag})
	big := rtMkdir(tr, "/big")
	for i := 0; i < 250; i++ {
		big.SetChild(fmt.Sprintf("n%d", i), tr.Lookup("/f"))
	}
	out["kiln-features"] = rtImageBytes(t, rtWrite(t, tr, 0))

	if _, err := exec.LookPath("mke2fs"); err == nil && os.Geteuid() == 0 {
		src := t.TempDir()
		for p, data := range map[string][]byte{"a": []byte("hello\n"), "dir/b": rtRandom(20000, 1), "dir/inline": rtRandom(90, 2)} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, p), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("a", filepath.Join(src, "l")); err != nil {
			t.Fatal(err)
		}
		for name, args := range map[string][]string{
			"mke2fs-ext2":     {"-t", "ext2", "-b", "1024", "-N", "32"},
			"mke2fs-inline":   {"-t", "ext4", "-b", "1024", "-N", "32", "-O", "inline_data,^has_journal"},
			"mke2fs-gdt-csum": {"-t", "ext4", "-b", "1024", "-N", "32", "-O", "^metadata_csum,uninit_bg,^has_journal"},
			"mke2fs-64k":      {"-t", "ext4", "-b", "65536", "-N", "32", "-O", "^has_journal,^resize_inode"},
		} {
			img := filepath.Join(t.TempDir(), "img")
			size := "256K"
			if name == "mke2fs-64k" {
				size = "4M"
			}
			cmd := exec.Command("mke2fs", append(append([]string{"-q", "-F"}, args...), "-d", src, img, size)...)
			cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", rtEpoch))
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mke2fs %s: %v\n%s", name, err, b)
			}
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = b
		}
	}
	return out
}

func rtImageBytes(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, rtSize(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const rtSeedDir = "testdata/fuzz/FuzzReadTree"

// TestReadTreeFuzzSeeds checks that every seed of FuzzReadTree is an
// image ReadTree reads, so the fuzzer starts from sound filesystems. With
// -readtree.seeds it first rewrites the seeds: each image's bytes that
// ReadTree reads, nothing else (file contents read as zeros).
func TestReadTreeFuzzSeeds(t *testing.T) {
	if *rtUpdateSeeds {
		if err := os.MkdirAll(rtSeedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, img := range rtSeedImages(t) {
			rec := &testkit.Recorder{Img: img}
			if _, err := ReadTree(rec, int64(len(img))); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sort.Slice(rec.Ranges(), func(i, j int) bool { return rec.Ranges()[i][0] < rec.Ranges()[j][0] })
			enc := testkit.EncodeSparse(img, rec.Ranges())
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(enc)))
			if err := os.WriteFile(filepath.Join(rtSeedDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ents, err := os.ReadDir(rtSeedDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) == 0 {
		t.Fatal("no seeds")
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(rtSeedDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		data, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: not a fuzz corpus file of one []byte: %v", e.Name(), err)
		}
		img, ok := testkit.DecodeSparse([]byte(data))
		if !ok {
			t.Fatalf("%s: not a sparse image", e.Name())
		}
		tr, problems, err := ReadTreeOptions(img, img.Size, ReadOptions{})
		if err != nil || len(problems) > 0 {
			t.Fatalf("%s: %v, problems %v", e.Name(), err, problems)
		}
		rtCheckTree(t, tr, 1<<20, 1<<30)
	}
}
