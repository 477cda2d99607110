package ext4

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
)

// hostFile is content read from a file on the host, as a directory layer
// provides it.
type hostFile string

func (h hostFile) Open() (io.ReadCloser, error) { return os.Open(string(h)) }

// TestPerfVsMke2fs times Write against `mke2fs -t ext4 -d` on the same
// 50,000 small files materialised in a temp dir. It is a measurement, not
// a default test: set KILN_EXT4_PERF=1 to run it.
func TestPerfVsMke2fs(t *testing.T) {
	if os.Getenv("KILN_EXT4_PERF") == "" {
		t.Skip("set KILN_EXT4_PERF=1 to measure Write against mke2fs -d")
	}
	judge.Need(t, "mke2fs", "e2fsck")
	src := filepath.Join(t.TempDir(), "src")
	tr := tree.New(t0)
	const files = 50000
	var total int64
	for i := 0; i < files; i++ {
		dir := fmt.Sprintf("d%03d/s%02d", i/500, i%500/50)
		name := fmt.Sprintf("f%05d", i)
		size := int(uint32(i*2654435761) % 16384) // 0..16 KiB
		data := pseudoRandom(size, uint64(i+1))
		hp := filepath.Join(src, dir, name)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		n := &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: t0, Size: int64(size)}
		if size > 0 {
			n.Content = hostFile(hp)
		}
		put(t, tr, "/"+dir+"/"+name, n)
		total += int64(size)
	}
	size, err := MinSize(tr, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	size += 64 << 20 // the same size for both, with room for mke2fs's choices
	dir := t.TempDir()

	kiln := filepath.Join(dir, "kiln.img")
	start := time.Now()
	f, err := os.Create(kiln)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, size, tr, testOptions()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	kilnTime := time.Since(start)
	start = time.Now()
	if err := Write(discard{}, size, tr, testOptions()); err != nil {
		t.Fatal(err)
	}
	t.Logf("kiln Write to a discarding writer (reading and encoding only): %v", time.Since(start))

	mk := filepath.Join(dir, "mke2fs.img")
	start = time.Now()
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", src, mk, fmt.Sprint(size/1024)).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	mkTime := time.Since(start)
	t.Logf("%d files, %d MiB of data, %d MiB image: kiln Write %v, mke2fs -d %v", files, total>>20, size>>20, kilnTime, mkTime)
	fsck(t, kiln)
}
