package ext4

import (
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// sparseContent is size bytes of zeros with data at given offsets,
// generated on the fly (so a 5 GiB file costs no memory).
type sparseContent struct {
	size  int64
	parts map[int64][]byte // offset -> bytes; parts must not overlap
}

func (s *sparseContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(&sparseReader{s: s}), nil
}

type sparseReader struct {
	s   *sparseContent
	off int64
}

func (r *sparseReader) Read(p []byte) (int, error) {
	if r.off >= r.s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.s.size-r.off))
	p = p[:n]
	clear(p)
	for o, d := range r.s.parts {
		lo, hi := max(o, r.off), min(o+int64(len(d)), r.off+int64(n))
		if lo < hi {
			copy(p[lo-r.off:hi-r.off], d[lo-o:hi-o])
		}
	}
	r.off += int64(n)
	return n, nil
}

var testUUID = repro.UUID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x47, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}

func testOptions() Options {
	return Options{Label: "kiln-root", UUID: testUUID, Epoch: 1700000000}
}

// writeImage writes t into a fresh sparse file of size bytes (MinSize when
// size is 0) and returns its path.
func writeImage(t *testing.T, tr *tree.Tree, size int64, o Options) string {
	t.Helper()
	if size == 0 {
		var err error
		size, err = MinSize(tr, o)
		if err != nil {
			t.Fatalf("MinSize: %v", err)
		}
	}
	f := testkit.SparseFile(t, "fs.img", size)
	if err := Write(f, size, tr, o); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

var fsckSummary = regexp.MustCompile(`^\S*: \d+/\d+ files \([0-9.]+% non-contiguous\), \d+/\d+ blocks$`)

// fsck runs e2fsck -fn and fails the test unless it exits 0 having said
// nothing but its pass headers and summary.
func fsck(t *testing.T, img string) {
	t.Helper()
	out, code := judge.Run(t, nil, "e2fsck", "-fn", img)
	if code != 0 {
		t.Fatalf("e2fsck -fn: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(line, "e2fsck "), strings.HasPrefix(line, "Pass "), fsckSummary.MatchString(line):
		default:
			t.Fatalf("e2fsck -fn complained: %q\n%s", line, out)
		}
	}
}

// debugfs runs one debugfs request against img and returns its output.
func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", req, img).Output()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v", req, err)
	}
	return string(out)
}
