package imgfmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// write is one WriteAt a test disk receives.
type write struct {
	off  int64
	data []byte
}

// testDisk is a synthetic disk: writes that do not overlap (so that any
// order of them gives the same disk), then patches applied last, in order,
// as a bootloader stage patches sectors of a filesystem already written.
type testDisk struct {
	name    string
	size    int64
	writes  []write
	patches []write
}

// content is what the disk reads as.
func (d *testDisk) content() []byte {
	b := make([]byte, d.size)
	for _, w := range d.writes {
		copy(b[w.off:], w.data)
	}
	for _, w := range d.patches {
		copy(b[w.off:], w.data)
	}
	return b
}

// order is the order the writes are issued in: as listed, or a fixed
// shuffle of it.
func (d *testDisk) order(shuffled bool) []int {
	idx := make([]int, len(d.writes))
	for i := range idx {
		idx[i] = i
	}
	if shuffled {
		r := rand.New(rand.NewPCG(7, 11))
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	return idx
}

// Generators of data with known compressibility.

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

var words = strings.Fields("the quick brown fox jumps over lazy dog kiln image cluster grain block sector table refcount zstd deflate qemu vmware azure hyper-v disk partition root esp boot loader kernel initramfs")

// textBytes is text-like data: it compresses to about a third.
func textBytes(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			fmt.Fprintf(&b, " %d\n", r.IntN(100000))
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// blocks splits data written at off into 4 KiB writes, as filesystems
// write.
func blocks(off int64, data []byte) []write {
	var ws []write
	for i := 0; i < len(data); i += 4096 {
		ws = append(ws, write{off + int64(i), data[i:min(i+4096, len(data))]})
	}
	return ws
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

// testDisks are the synthetic disks every format is judged on.
func testDisks() []*testDisk {
	r := rand.New(rand.NewPCG(1, 2))
	sparse := &testDisk{name: "sparse", size: 48 * mib}
	sparse.writes = append(sparse.writes, blocks(0, randomBytes(r, 4*kib))...)
	sparse.writes = append(sparse.writes, blocks(5*mib+12*kib, textBytes(r, 4*kib))...)
	sparse.writes = append(sparse.writes, write{17 * mib, textBytes(r, 64*kib)})
	sparse.writes = append(sparse.writes, blocks(48*mib-4*kib, randomBytes(r, 4*kib))...)

	// 10 MiB + 3 sectors: not a multiple of any cluster, grain or block;
	// the last cluster is partly written.
	tail := &testDisk{name: "tail", size: 10*mib + 1536}
	tail.writes = append(tail.writes, write{512, textBytes(r, 1024)})
	tail.writes = append(tail.writes, write{10*mib - 64*kib, randomBytes(r, 64*kib)})
	tail.writes = append(tail.writes, write{10*mib + 512, textBytes(r, 512)})
	tail.patches = append(tail.patches, write{10*mib + 1024, []byte("end of disk")})

	// 64 MiB of 1 MiB regions of every kind, written in 4 KiB blocks or
	// in larger pieces; some regions are written with zeros, some never.
	mixed := &testDisk{name: "mixed", size: 64 * mib}
	for i := int64(0); i < 64; i++ {
		off := i * mib
		switch i % 8 {
		case 0:
			mixed.writes = append(mixed.writes, blocks(off, randomBytes(r, mib))...)
		case 1:
			mixed.writes = append(mixed.writes, blocks(off, textBytes(r, mib))...)
		case 2: // never written
		case 3:
			mixed.writes = append(mixed.writes, blocks(off, make([]byte, mib))...)
		case 4:
			mixed.writes = append(mixed.writes, write{off, fill(0x5a, mib)})
		case 5:
			for k := int64(0); k < 4; k++ {
				mixed.writes = append(mixed.writes, write{off + k*200*kib, randomBytes(r, 4*kib)})
			}
		case 6:
			mixed.writes = append(mixed.writes, write{off, textBytes(r, 256*kib)})
			mixed.writes = append(mixed.writes, write{off + 256*kib, randomBytes(r, 256*kib)})
		case 7:
			mixed.writes = append(mixed.writes, write{off + 4*kib, fill(1, 8*kib)})
		}
	}
	mixed.patches = append(mixed.patches, write{mib + 3*512, []byte("patched by a boot loader")})
	mixed.patches = append(mixed.patches, write{2*mib + 512, []byte("a patch in a region never written")})

	return []*testDisk{{name: "empty", size: 4 * mib}, sparse, tail, mixed}
}

// formatCase is a format and options to judge.
type formatCase struct {
	name   string
	format string
	opts   Options
	qemu   string // qemu's name of the format
	// notMixed skips the 64 MiB mixed disk, which takes seconds with
	// 512-byte clusters; the smaller disks cover the case.
	notMixed bool
}

var formatCases = []formatCase{
	{"qcow2", "qcow2", Options{}, "qcow2", false},
	{"qcow2-zlib", "qcow2", Options{Compression: "zlib"}, "qcow2", false},
	{"qcow2-zstd", "qcow2", Options{Compression: "zstd"}, "qcow2", false},
	{"qcow2-512-zlib", "qcow2", Options{Compression: "zlib", ClusterSize: 512}, "qcow2", true},
	{"qcow2-4k-zlib", "qcow2", Options{Compression: "zlib", ClusterSize: 4 * kib}, "qcow2", false},
	{"qcow2-2m-zstd", "qcow2", Options{Compression: "zstd", ClusterSize: 2 * mib}, "qcow2", false},
	{"vmdk", "vmdk", Options{}, "vmdk", false},
	{"vhd-dynamic", "vhd", Options{}, "vpc", false},
	{"vhd-fixed", "vhd", Options{Subformat: "fixed"}, "vpc", false},
}

// build writes disk d as an image at path with GOMAXPROCS set to procs
// for the whole build, issuing the writes in order or shuffled.
func build(t testing.TB, path, format string, d *testDisk, o Options, procs int, shuffled bool) {
	t.Helper()
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	out, err := Create(path, format, d.size, o)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Abort()
	for _, i := range d.order(shuffled) {
		w := d.writes[i]
		if _, err := out.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range d.patches {
		if _, err := out.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Commit(); err != nil {
		t.Fatal(err)
	}
}

// writeRawFile writes b as a sparse raw file: the reference qemu compares
// images with.
func writeRawFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(b))); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(b); off += 64 * kib {
		c := b[off:min(off+64*kib, len(b))]
		if !isZero(c) {
			if _, err := f.WriteAt(c, int64(off)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// qemuInfo is what the tests read of `qemu-img info --output=json`.
type qemuInfo struct {
	VirtualSize    int64  `json:"virtual-size"`
	Format         string `json:"format"`
	ClusterSize    int64  `json:"cluster-size"`
	FormatSpecific struct {
		Type string `json:"type"`
		Data struct {
			Compat          string `json:"compat"`
			CompressionType string `json:"compression-type"`
			RefcountBits    int    `json:"refcount-bits"`
			CreateType      string `json:"create-type"`
			CID             uint32 `json:"cid"`
			ParentCID       uint32 `json:"parent-cid"`
			Extents         []struct {
				Compressed  bool  `json:"compressed"`
				ClusterSize int64 `json:"cluster-size"`
			} `json:"extents"`
		} `json:"data"`
	} `json:"format-specific"`
}

func qemuImgInfo(t testing.TB, qfmt, path string) qemuInfo {
	t.Helper()
	out, code := judge.Run(t, nil, "qemu-img", "info", "-f", qfmt, "--output=json", path)
	if code != 0 {
		t.Fatalf("qemu-img info %s: exit %d\n%s", path, code, out)
	}
	var info qemuInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	return info
}

// qemuImgCheck runs qemu-img check, which must find nothing: no
// corruption, no leaked cluster (exit status 0).
func qemuImgCheck(t testing.TB, qfmt, path string) string {
	t.Helper()
	out, code := judge.Run(t, nil, "qemu-img", "check", "-f", qfmt, path)
	if code != 0 || !strings.Contains(out, "No errors were found on the image.") {
		t.Fatalf("qemu-img check %s: exit %d\n%s", path, code, out)
	}
	return out
}

// qemuImgCompare runs qemu-img compare against the raw reference.
func qemuImgCompare(t testing.TB, qfmt, path, raw string) {
	t.Helper()
	out, code := judge.Run(t, nil, "qemu-img", "compare", "-f", qfmt, "-F", "raw", path, raw)
	if code != 0 || !strings.Contains(out, "Images are identical.") {
		t.Fatalf("qemu-img compare %s %s: exit %d\n%s", path, raw, code, out)
	}
}

// readAll reads a whole Image.
func readAll(t testing.TB, img Image) []byte {
	t.Helper()
	b := make([]byte, img.Size())
	// Odd-sized reads cross clusters, grains and blocks.
	const step = 3*64*kib + 512
	for off := int64(0); off < img.Size(); off += step {
		n := min(step, img.Size()-off)
		if _, err := img.ReadAt(b[off:off+n], off); err != nil {
			t.Fatalf("reading %s at %d: %v", img.Format(), off, err)
		}
	}
	return b
}

// firstDiff describes where a and b first differ.
func firstDiff(a, b []byte) string {
	if len(a) != len(b) {
		return fmt.Sprintf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return "equal"
}

// dirEntries lists the names in dir.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func tempPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }
