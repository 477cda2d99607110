package fat

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// FuzzReadTree feeds ReadTree hostile volumes. An input is a sparse image
// (see testkit.DecodeSparse), so that seeds made from volumes of several MiB
// stay small and the fuzzer mutates what the reader reads. Whatever the
// input, ReadTree must return, without a panic, in bounded time and
// memory; a tree it returns must be well formed and its contents must
// read in full. Each read may allocate at most testkit.ReadBound in all.
func FuzzReadTree(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		img, ok := testkit.DecodeSparse(data)
		if !ok {
			return
		}
		testkit.BoundAlloc(t, testkit.ReadBound, func() {
			tr, err := ReadTreeOptions(img, img.Size, ReadOptions{MaxEntries: 5000, MaxDepth: 64})
			if err != nil {
				if tr != nil {
					t.Fatalf("a tree and an error: %v", err)
				}
				if !strings.HasPrefix(err.Error(), "fat: ") {
					t.Fatalf("error without the package's prefix: %v", err)
				}
				return
			}
			rtCheckTree(t, tr, 256<<10, 4<<20)
		})
		testkit.BoundAlloc(t, testkit.ReadBound, func() {
			if _, err := Probe(img, img.Size); err != nil && !strings.HasPrefix(err.Error(), "fat: ") {
				t.Fatalf("probe error without the package's prefix: %v", err)
			}
		})
	})
}

// rtCheckTree checks that a tree ReadTree returned is well formed, and
// reads up to perFile bytes of each file's content, total in all.
func rtCheckTree(t *testing.T, tr *tree.Tree, perFile, total int64) {
	t.Helper()
	if tr == nil || tr.Root == nil || tr.Root.Kind != tree.Dir {
		t.Fatal("no root directory")
	}
	err := tr.Walk(func(p string, d tree.Dirent) error {
		n := d.Inode
		if p != "/" && (d.Name == "" || d.Name == "." || d.Name == ".." || strings.ContainsAny(d.Name, "/\x00")) {
			return fmt.Errorf("%s: invalid name %q", p, d.Name)
		}
		if n.UID != 0 || n.GID != 0 || n.Nsec != 0 || n.Xattrs != nil {
			return fmt.Errorf("%s: owner %d:%d, nsec %d, xattrs %v", p, n.UID, n.GID, n.Nsec, n.Xattrs)
		}
		switch n.Kind {
		case tree.Dir:
			if n.Mode != 0o755 {
				return fmt.Errorf("%s: directory mode %#o", p, n.Mode)
			}
		case tree.Regular:
			if n.Mode != 0o644 && n.Mode != 0o444 {
				return fmt.Errorf("%s: file mode %#o", p, n.Mode)
			}
			if n.Size < 0 || n.Size > maxFileSize || (n.Size > 0) != (n.Content != nil) {
				return fmt.Errorf("%s: size %d, content %v", p, n.Size, n.Content != nil)
			}
			if n.Size == 0 || total <= 0 {
				break
			}
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
		default:
			return fmt.Errorf("%s: kind %s on FAT", p, n.Kind)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var rtUpdateSeeds = flag.Bool("readtree.seeds", false, "rewrite testdata/fuzz/FuzzReadTree from volumes made by Write and mkfs.vfat")

// rtSeedImages returns the volumes FuzzReadTree is seeded with, by name.
func rtSeedImages(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tree.New(rtEpoch)
	rtPut(tr, "/README.TXT", rtFile(0o644, rtEpoch, []byte("short\n")))
	rtPut(tr, "/readme.md", rtFile(0o444, rtEpoch, []byte("nt case\n")))
	rtPut(tr, "/Long name 😀.txt", rtFile(0o644, rtEpoch, bytes.Repeat([]byte("y"), 3000)))
	rtPut(tr, "/EFI/BOOT/BOOTX64.EFI", rtFile(0o644, rtEpoch, []byte("MZ")))
	rtPut(tr, "/empty", rtFile(0o644, rtEpoch, nil))
	d := rtMkdir(tr, "/dir")
	for i := 0; i < 40; i++ {
		d.SetChild(fmt.Sprintf("entry %d", i), rtFile(0o644, rtEpoch, nil))
	}
	for name, c := range map[string]struct {
		size int64
		o    Options
	}{
		"kiln-fat12": {1 << 20, Options{FATType: 12, Label: "KILN"}},
		"kiln-fat16": {16 << 20, Options{FATType: 16}},
		"kiln-fat32": {40 << 20, Options{FATType: 32, Label: "ESP"}},
	} {
		c.o.VolumeID, c.o.Epoch = 0xCAFE, rtEpoch
		out[name] = rtImageBytes(t, rtWrite(t, tr, c.size, c.o))
	}

	if _, err := exec.LookPath("mkfs.vfat"); err == nil {
		if _, err := exec.LookPath("mcopy"); err == nil {
			src := t.TempDir()
			for p, data := range map[string][]byte{"readme.txt": []byte("hello\n"), "Long File Name.txt": []byte("lfn"), "sub/UPPER.TXT": nil} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(src, p), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img := filepath.Join(t.TempDir(), "img")
			rtRun(t, "mkfs.vfat", "-C", "-F", "12", "-i", "1234ABCD", "-n", "MTOOLS", img, "256")
			rtRun(t, "mcopy", "-s", "-i", img, filepath.Join(src, "readme.txt"), filepath.Join(src, "Long File Name.txt"), filepath.Join(src, "sub"), "::")
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			out["mtools-fat12"] = b
		}
	}
	return out
}

const rtSeedDir = "testdata/fuzz/FuzzReadTree"

// TestReadTreeFuzzSeeds checks that every seed of FuzzReadTree is a
// volume ReadTree reads, so the fuzzer starts from sound volumes. With
// -readtree.seeds it first rewrites the seeds: each volume's bytes that
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
		tr, err := ReadTree(img, img.Size)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		rtCheckTree(t, tr, 1<<20, 1<<30)
	}
}
