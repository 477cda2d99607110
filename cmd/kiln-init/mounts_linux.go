//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// stReadOnly is ST_RDONLY of statfs(2)'s f_flags.
const stReadOnly = 1

// mountExtra mounts the filesystems of the mounts file list (absent: none)
// below root, the new root already mounted, in the file's order. Sources
// named by PARTUUID are waited for as the root is, up to timeout. A
// missing mount point is made only on a writable filesystem; on a
// read-only one (a sealed root) the image must have it. Any failure is an
// error: a declared partition that is not mounted would leave its files
// on the root's filesystem, or fail to write them.
func mountExtra(list, root string, timeout time.Duration, sysBlock, devDir string) error {
	data, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", list, err)
	}
	entries, err := parseMounts(list, data)
	if err != nil {
		return err
	}
	return mountEntries(list, entries, root, timeout, newScanner(sysBlock, devDir))
}

// mountEntries mounts the parsed lines of list below root.
func mountEntries(list string, entries []mountEntry, root string, timeout time.Duration, s *scanner) error {
	for _, e := range entries {
		where := fmt.Sprintf("%s:%d: %s", list, e.Line, e.Target)
		devs, err := waitFor(s, timeout, []wanted{{label: e.Source.String() + " for " + e.Target, spec: e.Source}})
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		dev := devs[0]
		existing, missing, err := resolveIn(root, e.Target)
		if err != nil {
			return fmt.Errorf("%s: mount point: %w", where, err)
		}
		dir := existing
		if missing != "" {
			dir = filepath.Join(existing, missing)
			var sfs syscall.Statfs_t
			if err := syscall.Statfs(existing, &sfs); err != nil {
				return fmt.Errorf("%s: statfs %s: %w", where, existing, err)
			}
			if sfs.Flags&stReadOnly != 0 {
				return fmt.Errorf("%s: the mount point %s is missing, and %s is on a read-only filesystem (a sealed root): the image must have the directory", where, dir, existing)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%s: making the mount point: %w", where, err)
			}
		}
		var flags uintptr
		if e.Flags.ReadOnly {
			flags |= syscall.MS_RDONLY
		}
		if e.Flags.NoSuid {
			flags |= syscall.MS_NOSUID
		}
		if e.Flags.NoDev {
			flags |= syscall.MS_NODEV
		}
		if e.Flags.NoExec {
			flags |= syscall.MS_NOEXEC
		}
		if err := syscall.Mount(dev, dir, e.FSType, flags, e.Data); err != nil {
			return fmt.Errorf("%s: mount %s on %s as %s (%s): %w (the filesystems the kernel knows are in /proc/filesystems)", where, dev, dir, e.FSType, e.Options, err)
		}
		logf("mounted %s on %s (%s, %s)", dev, e.Target, e.FSType, e.Options)
	}
	return nil
}
