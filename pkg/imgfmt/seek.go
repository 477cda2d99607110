package imgfmt

import (
	"errors"
	"os"
	"syscall"
)

// NextData finds the first data extent of f at or after off, clipped to
// size: [start, end). ok is false when there is none. Where SEEK_DATA is
// not supported, the rest of the file is data.
func NextData(f *os.File, off, size int64) (start, end int64, ok bool) {
	start, err := f.Seek(off, seekData)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) { // no data after off
			return 0, 0, false
		}
		start = off
	}
	if start >= size {
		return 0, 0, false
	}
	end, err = f.Seek(start, seekHole)
	if err != nil || end <= start {
		end = size
	}
	return start, min(end, size), true
}
