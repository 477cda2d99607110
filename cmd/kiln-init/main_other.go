//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kiln-init: runs only on Linux, as PID 1 of an initramfs")
	os.Exit(2)
}
