package testkit

import (
	"runtime/metrics"
	"testing"

	"github.com/kiln-build/kiln/internal/size"
)

// ReadBound is what reading one image, hostile or not, may allocate in
// all: the hardening rule that peak memory while reading any image stays
// under 256 MiB, checked as the total a reader allocates (an upper bound
// on its peak).
const ReadBound = 256 << 20

// allocated is the heap bytes allocated by the process so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// AllocatedBy runs fn and returns the heap bytes the process allocated
// meanwhile.
func AllocatedBy(fn func()) uint64 {
	before := allocated()
	fn()
	return allocated() - before
}

// BoundAlloc runs fn and fails t if it allocated more than limit bytes in
// total on the heap: the fuzz harnesses of the image readers wrap each
// input in it, so a header that makes a reader allocate gigabytes is a
// finding, not an out-of-memory crash on some user's machine. It counts
// the whole process, so fn should not run beside other tests (fuzz
// targets and t.Parallel-free tests are fine).
func BoundAlloc(t testing.TB, limit uint64, fn func()) {
	t.Helper()
	if got := AllocatedBy(fn); got > limit {
		t.Fatalf("allocated %s reading one input, over the bound of %s", size.String(int64(got)), size.String(int64(limit)))
	}
}
