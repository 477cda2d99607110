package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
)

// buildTimed runs kiln build and reports wall time and peak RSS (logged,
// never asserted: speed is measured by make bench, not by tests).
func buildTimed(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(kilnBin, append([]string{"build", "-q"}, args...)...)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kiln build: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("kiln build: %.2fs wall, %.2fs user, peak RSS %d MiB", time.Since(start).Seconds(), time.Duration(ru.Utime.Nano()).Seconds(), ru.Maxrss/1024)
}

// rootPartition finds the single partition of an image and extracts it.
func rootPartition(t *testing.T, img string) string {
	t.Helper()
	parts := partitions(t, img)
	if len(parts) != 1 {
		t.Fatalf("want one partition: %+v", parts)
	}
	return judge.Extract(t, img, parts[0].Start*512, parts[0].Size*512)
}

const oneRootSpec = `epoch: 1700000000
layers:
  - path: %s
disk:
  table: gpt
  size: auto
  free: 64MiB
  partitions:
    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}
output:
  path: out/root.img
`

// TestDebianRootfs builds a real Debian minbase rootfs (mmdebstrap, made by
// scripts/mkrootfs-debian.sh) and compares every entry of the tar with what
// debugfs reads back: type, mode, owner, size, content, link target, mtime.
func TestDebianRootfs(t *testing.T) {
	if testing.Short() {
		t.Skip("needs mmdebstrap and Debian's mirrors; not in -short")
	}
	judge.Need(t, "mmdebstrap", "e2fsck", "debugfs", "sfdisk")
	repo, _ := filepath.Abs("../..")
	rootfs := filepath.Join(repo, ".cache", "minbase.tar")
	if out, err := exec.Command(filepath.Join(repo, "scripts", "mkrootfs-debian.sh"), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("mkrootfs-debian.sh: %v\n%s", err, out)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(fmt.Sprintf(oneRootSpec, rootfs)))
	buildTimed(t, dir)
	fsimg := rootPartition(t, filepath.Join(dir, "out/root.img"))
	judge.E2fsck(t, fsimg)

	want := expectFromTar(t, rootfs, 1700000000)
	got := judge.ReadExt4(t, fsimg)
	for k, n := range got {
		n.Inode = 0
		got[k] = n
	}
	if len(want) < 5000 {
		t.Fatalf("the rootfs tar has only %d entries", len(want))
	}
	diffNodes(t, "debian rootfs", got, want)
	t.Logf("%d entries compared", len(want))
}

// expectFromTar reads a tar with the standard library (independently of
// pkg/layer) and returns what the image must hold.
func expectFromTar(t *testing.T, p string, epoch int64) map[string]judge.Node {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	nodes := map[string]judge.Node{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := path.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		mt := h.ModTime.Unix()
		if mt > epoch {
			mt = epoch
		}
		n := judge.Node{Path: name, Mode: uint32(h.Mode) & 0o7777, UID: uint32(h.Uid), GID: uint32(h.Gid), Mtime: mt}
		switch h.Typeflag {
		case tar.TypeReg:
			hs := sha256.New()
			if _, err := io.Copy(hs, tr); err != nil {
				t.Fatal(err)
			}
			n.Type, n.Size, n.SHA256 = "file", h.Size, hex.EncodeToString(hs.Sum(nil))
		case tar.TypeLink:
			n = nodes[path.Clean("/"+h.Linkname)]
			n.Path = name
		case tar.TypeDir:
			n.Type = "dir"
		case tar.TypeSymlink:
			n.Type, n.Target, n.Size, n.Mode = "symlink", h.Linkname, int64(len(h.Linkname)), 0o777
		case tar.TypeChar, tar.TypeBlock:
			n.Type = map[byte]string{tar.TypeChar: "char", tar.TypeBlock: "block"}[h.Typeflag]
			n.Major, n.Minor = uint32(h.Devmajor), uint32(h.Devminor)
		case tar.TypeFifo:
			n.Type = "fifo"
		default:
			t.Fatalf("%s: unexpected tar type %c", h.Name, h.Typeflag)
		}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				if n.Xattrs == nil {
					n.Xattrs = map[string]string{}
				}
				n.Xattrs[strings.TrimPrefix(k, "SCHILY.xattr.")] = hex.EncodeToString([]byte(v))
			}
		}
		nodes[name] = n
	}
	return nodes
}

// TestLargeTree builds a generated tree of 50,000 files, 20,000 of them in
// one directory (so that it must be hashed), and lets e2fsck and debugfs
// judge it.
func TestLargeTree(t *testing.T) {
	if testing.Short() {
		t.Skip("large tree: not in -short")
	}
	judge.Need(t, "e2fsck", "debugfs", "sfdisk")
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big.tar"))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1600000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	for i := 0; i < 20000; i++ {
		add(fmt.Sprintf("big/entry-%05d-with-a-longer-name", i), []byte(fmt.Sprintf("big %d\n", i)))
	}
	for d := 0; d < 300; d++ {
		for i := 0; i < 100; i++ {
			add(fmt.Sprintf("tree/d%03d/f%03d", d, i), pseudo(uint64(d*1000+i), (d*i)%3000))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(fmt.Sprintf(oneRootSpec, "big.tar")))
	buildTimed(t, dir)
	fsimg := rootPartition(t, filepath.Join(dir, "out/root.img"))
	judge.E2fsck(t, fsimg)

	out, code := judge.Run(t, nil, "debugfs", "-R", "htree /big", fsimg)
	if code != 0 || !strings.Contains(out, "Root node dump") || !strings.Contains(out, "Number of entries (count):") {
		t.Fatalf("/big is not a hashed directory:\n%.2000s", out)
	}
	out, _ = judge.Run(t, nil, "debugfs", "-R", "ls -p /big", fsimg)
	if n := strings.Count(out, "-with-a-longer-name/"); n != 20000 {
		t.Fatalf("/big lists %d entries, want 20000", n)
	}
	dump := filepath.Join(t.TempDir(), "f")
	for _, i := range []int{0, 1, 9999, 19999} {
		p := fmt.Sprintf("/big/entry-%05d-with-a-longer-name", i)
		if o, code := judge.Run(t, nil, "debugfs", "-R", fmt.Sprintf("dump %s %s", p, dump), fsimg); code != 0 {
			t.Fatal(o)
		}
		b, _ := os.ReadFile(dump)
		if string(b) != fmt.Sprintf("big %d\n", i) {
			t.Fatalf("%s holds %q", p, b)
		}
	}
}
