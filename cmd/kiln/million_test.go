package main

import (
	"archive/tar"
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
)

// millionRSSBound is the most memory kiln may take for a million entries:
// about 1.5 KiB each, for the merged tree, the ext4 writer's inodes and
// the runtime. It measured 555 to 611 MiB; a leak of a block (4 KiB) per
// entry would go far past it.
const millionRSSBound = 1536 << 20

// TestMillionEntries builds a tar of a million empty files (and a
// thousand directories): the build succeeds, within memory.
func TestMillionEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("a million entries: not in -short")
	}
	judge.Need(t, "debugfs", "sfdisk")
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "million.tar"))
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	mt := time.Unix(1600000000, 0)
	for d := range 1000 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%03d/", d), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatGNU}); err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%03d/f%03d", d, i), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt, Format: tar.FormatGNU}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A fixed size, which spares the sizing pass: 5 GiB hold 1.3 million
	// inodes.
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(`epoch: 1700000000
layers: [{path: million.tar}]
disk:
  size: 5GiB
  partitions: [{name: root, type: root, filesystem: ext4, size: rest, mount: /}]
output: {path: out/root.img}
`))

	cmd := exec.Command(kilnBin, "build", "-q")
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kiln build: %v\n%s", err, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("a million entries: %.1fs, peak RSS %d MiB", time.Since(start).Seconds(), rss>>20)
	if rss > millionRSSBound {
		t.Errorf("peak RSS %d MiB, more than %d MiB", rss>>20, millionRSSBound>>20)
	}

	// debugfs reads the partition in place (io option offset=): no copy
	// of 5 GiB.
	img := filepath.Join(dir, "out/root.img")
	parts := partitions(t, img)
	if len(parts) != 1 {
		t.Fatalf("want one partition: %+v", parts)
	}
	fsimg := fmt.Sprintf("%s?offset=%d", img, parts[0].Start*512)
	stats, _ := judge.Run(t, nil, "debugfs", "-R", "stats", fsimg)
	var inodes, free int64
	for _, l := range strings.Split(stats, "\n") {
		if v, ok := strings.CutPrefix(l, "Inode count:"); ok {
			inodes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "Free inodes:"); ok {
			free, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	// 1,001,000 entries, the root, lost+found and the reserved inodes.
	if used := inodes - free; used < 1001000 {
		t.Errorf("the filesystem has %d inodes in use, want over 1001000:\n%s", used, stats)
	}
	ls, _ := judge.Run(t, nil, "debugfs", "-R", "ls -p /d999", fsimg)
	if n := strings.Count(ls, "/100644/"); n != 1000 {
		t.Errorf("/d999 lists %d files, want 1000", n)
	}
}
