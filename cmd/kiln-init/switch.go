//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Filesystem magics (statfs f_type) of the initramfs root.
const (
	ramfsMagic = 0x858458f6
	tmpfsMagic = 0x01021994
)

// mountRoot mounts the root device on /root, read-only unless rw (a
// verity root is always read-only: parseCmdline sees to it).
func mountRoot(cfg *config, dev string) error {
	if err := os.MkdirAll("/root", 0o700); err != nil {
		return fmt.Errorf("mkdir /root: %w", err)
	}
	var flags uintptr
	if cfg.ReadOnly || cfg.Verity != nil {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount(dev, "/root", cfg.FSType, flags, cfg.Flags); err != nil {
		return fmt.Errorf("mount %s on /root as %s (rootflags=%q): %w (the filesystems the kernel knows are in /proc/filesystems)", dev, cfg.FSType, cfg.Flags, err)
	}
	return nil
}

// switchRoot makes /root, where the root is mounted, the root and execs
// init there. It returns only if that failed, having said why.
func switchRoot(cfg *config, dev string) {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := syscall.Mount(d, "/root"+d, "", syscall.MS_MOVE, ""); err != nil {
			logf("warning: move %s to /root%s: %v; detaching it instead", d, d, err)
			syscall.Unmount(d, syscall.MNT_DETACH)
		}
	}
	freeInitramfs()
	if err := os.Chdir("/root"); err != nil {
		logf("chdir /root: %v", err)
		return
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		logf("move /root to /: %v", err)
		return
	}
	if err := syscall.Chroot("."); err != nil {
		logf("chroot: %v", err)
		return
	}
	if err := os.Chdir("/"); err != nil {
		logf("chdir /: %v", err)
		return
	}
	inits := []string{cfg.Init}
	if !cfg.InitGiven {
		inits = append(inits, "/etc/init", "/bin/init", "/bin/sh") // the kernel's fallbacks
	}
	for _, init := range inits {
		logf("switching to %s on %s", init, dev)
		argv := append([]string{init}, os.Args[1:]...)
		err := syscall.Exec(init, argv, os.Environ())
		logf("exec %s: %v", init, err)
	}
}

// freeInitramfs deletes the files of the initramfs, which would otherwise
// stay in memory, without crossing into other filesystems (the new root
// mounted on /root). It does nothing unless / is the kernel's ramfs or
// tmpfs rootfs.
func freeInitramfs() {
	var sfs syscall.Statfs_t
	if err := syscall.Statfs("/", &sfs); err != nil || (uint32(sfs.Type) != ramfsMagic && uint32(sfs.Type) != tmpfsMagic) {
		return
	}
	var root syscall.Stat_t
	if err := syscall.Lstat("/", &root); err != nil {
		return
	}
	removeSameDev("/", uint64(root.Dev))
}

func removeSameDev(dir string, dev uint64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil || uint64(st.Dev) != dev {
			continue
		}
		if e.IsDir() {
			removeSameDev(p, dev)
			if p == "/root" {
				continue
			}
		}
		os.Remove(p)
	}
}
