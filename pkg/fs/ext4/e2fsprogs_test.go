package ext4

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// TestE2fsprogsTestImages reads the test images of e2fsprogs' source
// (tests/*/image.gz with expect.1; a git clone of https://github.com/tytso/e2fsprogs or
// `apt-get source e2fsprogs`, given as KILN_E2FSPROGS_TESTS=.../tests).
// For each image e2fsprogs' test and e2fsck -fn call clean, Probe must agree with blkid -p
// on TYPE, LABEL and UUID, and ReadTree must read it, holding every name
// debugfs's rdump writes out with the same kind, and the same bytes for
// regular files and symlinks.
func TestE2fsprogsTestImages(t *testing.T) {
	dir := os.Getenv("KILN_E2FSPROGS_TESTS")
	if dir == "" {
		testkit.Missing(t, "e2fsprogs' test images: set KILN_E2FSPROGS_TESTS to the folder scripts/fetch-e2fsprogs-tests.sh prints (make test does)")
	}
	judge.Need(t, "e2fsck", "debugfs", "blkid")
	imgs, err := filepath.Glob(filepath.Join(dir, "*", "image.gz"))
	if err != nil || len(imgs) == 0 {
		t.Fatalf("no */image.gz in %s: %v", dir, err)
	}
	clean := 0
	for _, gz := range imgs {
		name := filepath.Base(filepath.Dir(gz))
		t.Run(name, func(t *testing.T) {
			// Only images whose first e2fsck run the test expects to be
			// clean: exit 0 with no question asked (e2fsck -n exits 0 on
			// some it fixes, and does not end on some broken ones).
			exp, err := os.ReadFile(filepath.Join(filepath.Dir(gz), "expect.1"))
			if err != nil || !strings.HasSuffix(strings.TrimSpace(string(exp)), "Exit status is 0") || strings.Contains(string(exp), "?") {
				return
			}
			img := filepath.Join(t.TempDir(), "image")
			gunzipTo(t, gz, img)
			if out, code := judge.Run(t, nil, "e2fsck", "-fn", img); code != 0 {
				t.Logf("e2fsck -fn here does not call it clean (exit %d):\n%s", code, out)
				return
			}
			want := blkidExport(t, img)
			if want["TYPE"] == "" {
				return // blkid sees no filesystem (e2fsck reads more than blkid accepts)
			}
			clean++
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info, err := Probe(f)
			if err != nil {
				t.Fatalf("Probe: %v; blkid: %v", err, want)
			}
			if info.Type != want["TYPE"] || info.Label != want["LABEL"] || (want["UUID"] != "" && info.UUID.String() != want["UUID"]) {
				t.Errorf("Probe: type %q label %q UUID %s; blkid: %v", info.Type, info.Label, info.UUID, want)
			}
			if info.Type == "jbd" {
				return
			}
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			got, problems, err := ReadTreeOptions(f, st.Size(), ReadOptions{})
			if err != nil {
				t.Fatalf("ReadTree: %v", err)
			}
			if len(problems) > 0 {
				t.Logf("problems: %v", problems)
			}
			dump := filepath.Join(t.TempDir(), "dump")
			if err := os.Mkdir(dump, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, code := judge.Run(t, nil, "debugfs", "-R", "rdump / "+dump, img); code != 0 {
				t.Fatalf("debugfs rdump: exit %d\n%s", code, out)
			}
			compareDump(t, got, dump)
		})
	}
	if clean == 0 {
		t.Fatal("no image was clean and recognised by blkid: nothing compared")
	}
	t.Logf("%d of %d images compared", clean, len(imgs))
}

func gunzipTo(t *testing.T, gz, dst string) {
	t.Helper()
	in, err := os.Open(gz)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// compareDump checks that every name under dump (what debugfs rdump
// wrote) is in tr with the same kind and content.
func compareDump(t *testing.T, tr *tree.Tree, dump string) {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dump, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dump, p)
		if rel == "." {
			return nil
		}
		names = append(names, rel)
		n := tr.Lookup("/" + rel)
		if n == nil {
			t.Errorf("/%s: debugfs has it, ReadTree does not", rel)
			return nil
		}
		switch m := d.Type(); {
		case m.IsDir():
			if n.Kind != tree.Dir {
				t.Errorf("/%s: a directory to debugfs, a %s to ReadTree", rel, n.Kind)
			}
		case m&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			if n.Kind != tree.Symlink || n.Target != target {
				t.Errorf("/%s: symlink to %q to debugfs; ReadTree: %s %q", rel, target, n.Kind, n.Target)
			}
		case m.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind != tree.Regular || n.Size != int64(len(b)) {
				t.Errorf("/%s: %d-byte file to debugfs; ReadTree: %s of %d bytes", rel, len(b), n.Kind, n.Size)
				return nil
			}
			if n.Size > 0 {
				rc, err := n.Content.Open()
				if err != nil {
					t.Fatal(err)
				}
				c, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(b, c) {
					t.Errorf("/%s: content differs from debugfs's (%v)", rel, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And the other way: what ReadTree has, debugfs has (rdump writes
	// every kind as root).
	var mine []string
	if err := tr.Walk(func(p string, d tree.Dirent) error {
		if p != "/" {
			mine = append(mine, strings.TrimPrefix(p, "/"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	sort.Strings(mine)
	if strings.Join(names, "\n") != strings.Join(mine, "\n") {
		t.Errorf("ReadTree has %d names, debugfs %d", len(mine), len(names))
	}
}

// TestReadBigallocSymlinkWithXattr reads a fast symlink whose xattr block
// takes a 16 KiB cluster (e2fsprogs' f_bigalloc_symlink_with_xattr): its
// i_blocks count the cluster, not one block, and it is still a fast
// symlink (ext4_inode_is_fast_symlink).
func TestReadBigallocSymlinkWithXattr(t *testing.T) {
	judge.Need(t, "mke2fs", "debugfs")
	src := t.TempDir()
	if err := os.Symlink("target/of/the/link", filepath.Join(src, "s")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "img")
	if out, code := judge.Run(t, []string{"E2FSPROGS_FAKE_TIME=1700000000"}, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096",
		"-O", "bigalloc", "-C", "16384", "-d", src, img, "64M"); code != 0 {
		t.Fatalf("mke2fs: exit %d\n%s", code, out)
	}
	val := filepath.Join(t.TempDir(), "val")
	big := bytes.Repeat([]byte("x"), 1000) // too big for the inode: a block
	if err := os.WriteFile(val, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := judge.Run(t, nil, "debugfs", "-w", "-R", "ea_set -f "+val+" /s trusted.big", img); code != 0 {
		t.Fatalf("debugfs ea_set: exit %d\n%s", code, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTree(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	n := tr.Lookup("/s")
	if n == nil || n.Kind != tree.Symlink || n.Target != "target/of/the/link" || len(n.Xattrs) != 1 || !bytes.Equal(n.Xattrs[0].Value, big) {
		t.Fatalf("/s: %+v", n)
	}
	rd := rtOpen(t, f, false)
	raw, err := rd.readInode(rtLookup(t, rd, "/s"))
	if err != nil {
		t.Fatal(err)
	}
	if raw.fileACL == 0 || raw.blocks512 != 16384/512 {
		t.Fatalf("/s: xattr block %d, %d sectors: want an xattr block taking one 16 KiB cluster", raw.fileACL, raw.blocks512)
	}
}

// TestReadVerityXattr reads a file carrying fs-verity's metadata as an
// xattr of name index 11 (e2fsprogs' f_verity image, from fs-verity's
// first ext4 version): no getxattr name shows it, so the file is read
// without it, and the problems say so.
func TestReadVerityXattr(t *testing.T) {
	tr := tree.New(rtEpoch)
	rtPut(tr, "/file", rtFile(0o644, []byte("verity data\n"))).Xattrs = []tree.Xattr{{Name: "user.v", Value: []byte("0123456789abcdef")}}
	f := rtWrite(t, tr, 0)
	rd := rtOpen(t, f, true)
	ino := rtLookup(t, rd, "/file")
	raw, err := rd.readInode(ino)
	if err != nil {
		t.Fatal(err)
	}
	if raw.xattrArea == nil || raw.xattrArea[1] != 1 || raw.xattrArea[0] != 1 {
		t.Fatalf("/file: no in-inode user xattr named \"v\" first: %x", raw.xattrArea)
	}
	// Make the entry's name index 11, in the image.
	g, idx := (ino-1)/rd.ipg, (ino-1)%rd.ipg
	off := int64(rd.itable[g])*rd.img.bs + int64(idx)*int64(rd.inodeSize) + int64(rd.inodeSize-len(raw.xattrArea)) + 1
	if _, err := f.WriteAt([]byte{xattrIndexVerity}, off); err != nil {
		t.Fatal(err)
	}
	got, problems, err := ReadTreeOptions(f, rtSize(t, f), ReadOptions{Lenient: true})
	if err != nil {
		t.Fatalf("ReadTree: %v", err)
	}
	n := got.Root.Child("file")
	if n == nil || n.Xattrs != nil || n.Size != 12 {
		t.Fatalf("/file: %+v", n)
	}
	found := false
	for _, p := range problems {
		found = found || strings.Contains(p.Error(), "fs-verity metadata")
	}
	if !found {
		t.Errorf("problems %v, want one about the fs-verity metadata", problems)
	}
}
