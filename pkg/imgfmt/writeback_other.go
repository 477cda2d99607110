//go:build !linux

package imgfmt

import "os"

// startWriteback does nothing here: the fsync at Commit writes everything.
func startWriteback(f *os.File) {}
