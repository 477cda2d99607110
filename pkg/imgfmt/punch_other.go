//go:build !linux

package imgfmt

import (
	"errors"
	"os"
)

// punchHole is not available here: staged data stays until Commit ends.
func punchHole(f *os.File, off, n int64) error {
	return errors.New("punching holes is not supported on this system")
}
