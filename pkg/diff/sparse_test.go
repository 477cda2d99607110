package diff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/pkg/imgfmt"
)

// sparseDisk is a virtual disk in memory: a few data ranges, zeros
// elsewhere, with the allocation an imgfmt.Image reports. It counts the
// bytes read and fails reads past budget: a diff that walks the whole
// virtual size instead of the allocation fails at once, not after hours.
type sparseDisk struct {
	size   int64
	data   map[int64][]byte // offset -> bytes
	read   atomic.Int64
	budget int64
}

func (d *sparseDisk) Size() int64 { return d.size }

func (d *sparseDisk) ReadAt(p []byte, off int64) (int, error) {
	if d.read.Add(int64(len(p))) > d.budget {
		return 0, fmt.Errorf("read %d bytes, over the budget of %d: the diff walks the virtual size", d.read.Load(), d.budget)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	clear(p[:n])
	for o, b := range d.data {
		s, e := max(o, off), min(o+int64(len(b)), off+int64(n))
		if s < e {
			copy(p[s-off:e-off], b[s-o:e-o])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *sparseDisk) Extents(ctx context.Context, fn func(imgfmt.Extent) error) error {
	// Sorted, as the contract wants: the tests use at most two ranges.
	var offs []int64
	for o := range d.data {
		offs = append(offs, o)
	}
	if len(offs) == 2 && offs[0] > offs[1] {
		offs[0], offs[1] = offs[1], offs[0]
	}
	for _, o := range offs {
		if err := fn(imgfmt.Extent{Off: o, Len: int64(len(d.data[o]))}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// TestSparseImagesCompareByAllocation: two 2 TiB disks with data in
// different places are compared by reading only what either has
// allocated. Before, byteRanges read both disks whole (4 TiB here).
func TestSparseImagesCompareByAllocation(t *testing.T) {
	const size = 2 << 40
	mk := func(data map[int64][]byte) *sparseDisk {
		return &sparseDisk{size: size, data: data, budget: 64 << 20}
	}
	a := mk(map[int64][]byte{1 << 20: []byte("same"), 1 << 40: []byte("only in a")})
	b := mk(map[int64][]byte{1 << 20: []byte("same")})
	rep, err := Images(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Identical || len(rep.Outside) != 1 || rep.Outside[0] != (Range{1 << 40, 1<<40 + 9}) {
		t.Fatalf("report: %+v", rep)
	}
	t.Logf("read %d and %d bytes of two 2 TiB disks", a.read.Load(), b.read.Load())

	c, d := mk(map[int64][]byte{5 << 30: []byte("x")}), mk(map[int64][]byte{5 << 30: []byte("x")})
	rep, err = Images(context.Background(), c, d)
	if err != nil || !rep.Identical {
		t.Fatalf("identical disks: %+v, %v", rep, err)
	}
}

// TestImagesCancelled: a cancelled context stops the comparison with an
// error that wraps context.Canceled.
func TestImagesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := &sparseDisk{size: 1 << 30, data: map[int64][]byte{0: []byte("a")}, budget: 1 << 30}
	b := &sparseDisk{size: 1 << 30, data: map[int64][]byte{0: []byte("b")}, budget: 1 << 30}
	if _, err := Images(ctx, a, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestManyDifferencesBounded: images that differ every 1 KiB give at most
// maxRanges ranges, the last one covering the rest, not one range per
// difference.
func TestManyDifferencesBounded(t *testing.T) {
	const n = maxRanges + 100
	a := &sparseDisk{size: n * 1024, data: map[int64][]byte{}, budget: 1 << 30}
	pattern := make([]byte, n*1024)
	for i := range n {
		pattern[i*1024] = 1
	}
	a.data[0] = pattern
	b := &sparseDisk{size: n * 1024, data: map[int64][]byte{}, budget: 1 << 30}
	ranges, err := byteRanges(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != maxRanges || ranges[0] != (Range{0, 1}) || ranges[len(ranges)-1].End != (n-1)*1024+1 {
		t.Fatalf("%d ranges, first %v, last %v", len(ranges), ranges[0], ranges[len(ranges)-1])
	}
}
