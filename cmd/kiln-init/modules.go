//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// loadModules loads the modules listed in the file (one absolute path a
// line, dependencies first; blank lines and # comments skipped) with
// finit_module. A module that is already loaded counts as loaded; any
// other failure is reported and the next module tried: the wait for the
// root says later whether what failed mattered.
func loadModules(list string) {
	data, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		logf("no %s: loading no modules", list)
		return
	}
	if err != nil {
		logf("%s: %v: loading no modules", list, err)
		return
	}
	start := time.Now() // repro-ok: runs inside the booted machine, to report how long loading took
	var loaded, failed int
	for _, line := range strings.Split(string(data), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := loadModule(p); err != nil {
			logf("load module %s: %v", p, err)
			failed++
			continue
		}
		loaded++
	}
	logf("loaded %d modules (%d failed) in %d ms", loaded, failed, time.Since(start).Milliseconds())
}

// loadModule loads one uncompressed module file, with no parameters.
func loadModule(p string) error {
	if sysFinitModule == 0 {
		return fmt.Errorf("finit_module: no system call number for this architecture")
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	params := []byte{0}
	_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
	switch errno {
	case 0, syscall.EEXIST:
		return nil
	}
	return fmt.Errorf("finit_module: %w", errno)
}
