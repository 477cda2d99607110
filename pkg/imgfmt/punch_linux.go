package imgfmt

import (
	"os"
	"syscall"
)

// Fallocate modes (linux/falloc.h).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

// punchHole deallocates [off, off+n) of f; the range then reads as zeros.
func punchHole(f *os.File, off, n int64) error {
	return syscall.Fallocate(int(f.Fd()), fallocKeepSize|fallocPunchHole, off, n)
}
