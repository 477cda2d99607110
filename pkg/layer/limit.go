package layer

import (
	"fmt"
	"io"
	"math"

	"github.com/kiln-build/kiln/internal/size"
)

// Limits on how far a tar layer may expand (see Options.MaxBytes and
// Options.MaxRatio): a few KiB of gzip, xz or zstd can decompress to
// terabytes, and a sparse entry of a plain tar can claim any size; both
// would fill the spill folder.
const (
	// DefaultMaxBytes is the default of Options.MaxBytes: 64 GiB.
	DefaultMaxBytes int64 = 64 << 30
	// DefaultMaxRatio is the default of Options.MaxRatio.
	DefaultMaxRatio int64 = 2000
	// RatioFloor is how far any layer may expand whatever its ratio:
	// 1 GiB.
	RatioFloor int64 = 1 << 30
)

// budget counts the uncompressed bytes of one walk of a tar layer: the
// bytes of its tar stream once decompressed, plus the whole size of each
// sparse entry (its holes are spilled as zeros).
type budget struct {
	left int64 // bytes still allowed
	err  error // the error for going past the limit
}

// budget returns the limit of one walk of l: the smaller of MaxBytes and,
// past RatioFloor, MaxRatio times the size of l's bytes as stored.
func (l *tarLayer) budget() *budget {
	maxBytes, ratio := l.maxBytes, l.maxRatio
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	if ratio == 0 {
		ratio = DefaultMaxRatio
	}
	stored := l.src.size
	if l.storedSize > 0 {
		stored = l.storedSize
	}
	b := &budget{left: math.MaxInt64}
	if maxBytes > 0 {
		b.left = maxBytes
		b.err = fmt.Errorf("%w: uncompressed, the layer is over its limit of %s", ErrTooLarge, size.String(maxBytes))
	}
	if ratio > 0 && stored <= (math.MaxInt64-1)/ratio {
		if r := max(RatioFloor, ratio*stored); r < b.left {
			b.left = r
			b.err = fmt.Errorf("%w: uncompressed, the layer is over %s, more than %d times its %s as stored (a decompression bomb?)",
				ErrTooLarge, size.String(r), ratio, size.String(stored))
		}
	}
	return b
}

// take counts n more bytes; past the limit it returns the budget's error.
func (b *budget) take(n int64) error {
	if n > b.left {
		b.left = -1
		return b.err
	}
	b.left -= n
	return nil
}

// budgetReader counts the bytes read from r against a budget.
type budgetReader struct {
	r io.Reader
	b *budget
}

func (r budgetReader) Read(p []byte) (int, error) {
	if r.b.left < 0 {
		return 0, r.b.err
	}
	// Never read more than one byte past the limit.
	if int64(len(p)) > r.b.left+1 {
		p = p[:r.b.left+1]
	}
	n, err := r.r.Read(p)
	if terr := r.b.take(int64(n)); terr != nil {
		return n, terr
	}
	return n, err
}
