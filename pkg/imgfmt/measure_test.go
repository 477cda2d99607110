package imgfmt

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestMeasure reports, for a mostly-data disk of about 1 GiB, the time,
// size, peak disk use and peak RSS of kiln's writers, next to qemu-img
// convert from the same disk as raw. It is slow, so it runs only with
// KILN_IMGFMT_MEASURE=1 (KILN_IMGFMT_MEASURE_MIB sets the size); it
// reports figures and asserts only that every image is the disk.
func TestMeasure(t *testing.T) {
	if os.Getenv("KILN_IMGFMT_MEASURE") == "" {
		t.Skip("set KILN_IMGFMT_MEASURE=1 to measure")
	}
	judge.Need(t, "qemu-img")
	mibs := int64(1024)
	if s := os.Getenv("KILN_IMGFMT_MEASURE_MIB"); s != "" {
		mibs, _ = strconv.ParseInt(s, 10, 64)
	}
	size := mibs * mib
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	src := newMeasureDisk(size)
	measureBuild(t, raw, "raw", Options{}, src)

	for _, c := range []struct {
		name, format string
		o            Options
		qemu         string
	}{
		{"qcow2", "qcow2", Options{}, "qcow2"},
		{"qcow2-zlib", "qcow2", Options{Compression: "zlib"}, "qcow2"},
		{"qcow2-zstd", "qcow2", Options{Compression: "zstd"}, "qcow2"},
		{"vmdk", "vmdk", Options{}, "vmdk"},
		{"vhd-dynamic", "vhd", Options{}, "vpc"},
		{"vhd-fixed", "vhd", Options{Subformat: "fixed"}, "vpc"},
	} {
		path := filepath.Join(dir, c.name)
		m := measureBuild(t, path, c.format, c.o, src)
		qemuImgCompare(t, c.qemu, path, raw)
		t.Logf("kiln %-12s write %6.2fs commit %6.2fs  size %5d MiB  peak disk %5d MiB (staged %5d MiB)  peak RSS %4d MiB",
			c.name, m.write.Seconds(), m.commit.Seconds(), m.size>>20, m.peakDisk>>20, m.staged>>20, m.peakRSS>>20)
		os.Remove(path)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"qcow2", []string{"-O", "qcow2"}},
		{"qcow2 -c", []string{"-O", "qcow2", "-c"}},
		{"qcow2 -c zstd", []string{"-O", "qcow2", "-c", "-o", "compression_type=zstd"}},
		{"vmdk stream", []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}},
	} {
		path := filepath.Join(dir, "qemu.img")
		start := time.Now()
		if out, code := judge.Run(t, nil, "qemu-img", append(append([]string{"convert", "-f", "raw"}, c.args...), raw, path)...); code != 0 {
			t.Fatalf("qemu-img convert: %s", out)
		}
		el := time.Since(start)
		fi, _ := os.Stat(path)
		t.Logf("qemu-img convert %-14s %6.2fs  size %5d MiB", c.name, el.Seconds(), fi.Size()>>20)
		os.Remove(path)
	}
}

// measureDisk generates a mostly-data disk region by region, the same on
// every call, without keeping it in memory: per 20 MiB, 10 MiB of
// text-like data, 7 MiB of random data, 1 MiB of one repeated byte, 1 MiB
// half text, 1 MiB never written.
type measureDisk struct {
	size int64
	text []byte
}

func newMeasureDisk(size int64) *measureDisk {
	r := rand.New(rand.NewPCG(3, 4))
	return &measureDisk{size: size, text: textBytes(r, 16*mib)}
}

func (m *measureDisk) region(i int64, buf []byte) []byte {
	r := rand.New(rand.NewPCG(5, uint64(i)))
	switch k := i % 20; {
	case k < 10:
		o := r.Int64N(int64(len(m.text)) - mib)
		return append(buf[:0], m.text[o:o+mib]...)
	case k < 17:
		return append(buf[:0], randomBytes(r, mib)...)
	case k == 17:
		return append(buf[:0], fill(byte(i), mib)...)
	case k == 18:
		o := r.Int64N(int64(len(m.text)) - mib)
		return append(buf[:0], m.text[o:o+mib/2]...)
	}
	return nil
}

type measurement struct {
	write, commit          time.Duration
	size, staged, peakDisk int64
	peakRSS                int64
}

// measureBuild writes the disk in 4 KiB blocks, as filesystems do, then
// commits, sampling disk and memory use meanwhile.
func measureBuild(t *testing.T, path, format string, o Options, src *measureDisk) measurement {
	t.Helper()
	var m measurement
	start := time.Now()
	out, err := Create(path, format, src.size, o)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Abort()
	buf := make([]byte, mib)
	for i := int64(0); i < src.size/mib; i++ {
		data := src.region(i, buf)
		for _, w := range blocks(i*mib, data) {
			if _, err := out.WriteAt(w.data, w.off); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.write = time.Since(start)
	files := outputFiles(out)
	m.staged = allocated(files)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			m.peakDisk = max(m.peakDisk, allocated(files))
			m.peakRSS = max(m.peakRSS, rss())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start = time.Now()
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
	m.commit = time.Since(start)
	close(stop)
	wg.Wait()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	m.size = fi.Size()
	return m
}

// outputFiles are the descriptors of the files an Output has open: the
// staging store and the temporary image.
func outputFiles(out Output) []int {
	var fs []*os.File
	switch o := out.(type) {
	case *staged:
		fs = []*os.File{o.st.f, o.out}
	case *vhdFixedOut:
		fs = []*os.File{o.f}
	case *raw:
		fs = []*os.File{o.f}
	}
	var fds []int
	for _, f := range fs {
		fds = append(fds, int(f.Fd()))
	}
	return fds
}

// allocated is the disk space the files take (closed files count 0).
func allocated(fds []int) int64 {
	var n int64
	for _, fd := range fds {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// rss is the process's resident set size.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
