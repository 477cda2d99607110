package imgfmt

import (
	"bytes"
	"io"
	"slices"
	"syscall"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

func newTestStore(t *testing.T, size int64) *store {
	t.Helper()
	st, err := newStore(t.TempDir(), "disk.img", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	return st
}

// TestStoreSlots checks what takes space in the staging store: a chunk
// gets a slot on its first non-zero write, zeros written to untouched
// chunks take nothing, and reads give back the disk.
func TestStoreSlots(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []write
		slots  uint32
	}{
		{"nothing", nil, 0},
		{"zeros", []write{{0, make([]byte, 3*chunkSize)}, {5 * chunkSize, make([]byte, 10)}}, 0},
		{"one sector", []write{{chunkSize + 512, fill(7, 512)}}, 1},
		{"across a boundary", []write{{chunkSize - 1, []byte{1, 2}}}, 2},
		{"zeros then data", []write{{0, make([]byte, chunkSize)}, {100, []byte{9}}}, 1},
		{"zeros over data", []write{{100, []byte{9}}, {0, make([]byte, chunkSize)}}, 1},
		{"the last sector", []write{{8*chunkSize - 512, fill(3, 512)}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 8 * chunkSize
			st := newTestStore(t, size)
			want := make([]byte, size)
			for _, w := range tc.writes {
				if _, err := st.WriteAt(w.data, w.off); err != nil {
					t.Fatal(err)
				}
				copy(want[w.off:], w.data)
			}
			if st.slots != tc.slots {
				t.Fatalf("%d slots, want %d", st.slots, tc.slots)
			}
			got := make([]byte, size)
			if n, err := st.ReadAt(got, 0); n != size || err != nil {
				t.Fatalf("ReadAt: %d, %v", n, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read back: %s", firstDiff(got, want))
			}
			if n, err := st.ReadAt(got[:10], size-5); n != 5 || err != io.EOF {
				t.Fatalf("read across the end: %d, %v", n, err)
			}
			if _, err := st.WriteAt(got[:10], size-5); err == nil {
				t.Fatal("write across the end succeeded")
			}
		})
	}
}

// TestStoreTouchedUnits checks the units Commit visits, for units smaller
// than, equal to and larger than a chunk.
func TestStoreTouchedUnits(t *testing.T) {
	const size = 5*mib + 1536
	st := newTestStore(t, size)
	for _, off := range []int64{0, 3*chunkSize + 7, 2*mib + chunkSize, size - 1} {
		if _, err := st.WriteAt([]byte{1}, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		unit int64
		want []int64
	}{
		{chunkSize, []int64{0, 3, 33, 80}},
		{2 * mib, []int64{0, 1, 2}},
		// 16 units per chunk; the last chunk has 3 sectors of disk.
		{4 * kib, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
			48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
			528, 529, 530, 531, 532, 533, 534, 535, 536, 537, 538, 539, 540, 541, 542, 543,
			1280}},
	} {
		var got []int64
		st.touchedUnits(tc.unit, func(u int64) bool { got = append(got, u); return true })
		if !slices.Equal(got, tc.want) {
			t.Errorf("units of %d bytes: %v, want %v", tc.unit, got, tc.want)
		}
	}
	var first []int64
	st.touchedUnits(chunkSize, func(u int64) bool { first = append(first, u); return len(first) < 2 })
	if !slices.Equal(first, []int64{0, 3}) {
		t.Errorf("stopping after two units: %v", first)
	}
}

// TestStoreRelease checks that consumed chunks give their space back.
func TestStoreRelease(t *testing.T) {
	const size = 16 * mib
	st := newTestStore(t, size)
	data := textBytesFixed(size)
	if _, err := st.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	blocks := func() int64 {
		var s syscall.Stat_t
		if err := syscall.Fstat(int(st.f.Fd()), &s); err != nil {
			t.Fatal(err)
		}
		return s.Blocks * 512
	}
	if b := blocks(); b < size {
		t.Fatalf("%d bytes staged for %d written", b, size)
	}
	st.releaseBelow(8 * mib)
	if st.noPunch {
		testkit.Missing(t, "a temporary folder on a filesystem that punches holes")
	}
	if b := blocks(); b > 8*mib+punchRun {
		t.Fatalf("%d bytes staged after releasing half of %d", b, size)
	}
	st.releaseBelow(size)
	st.flushPunch()
	if b := blocks(); b != 0 {
		t.Fatalf("%d bytes staged after releasing everything", b)
	}
}
