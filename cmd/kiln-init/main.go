//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
	"time"
)

// modulesList is where pkg/initramfs lists the modules to load.
const modulesList = "/etc/kiln/modules"

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "kiln-init: not PID 1: kiln-init is the init of an initramfs and changes the mounts of the machine it runs on; refusing to run")
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			logf("BUG: %v\n%s", r, debug.Stack())
			rescue()
		}
	}()
	setupEarly()
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		logf("read /proc/cmdline: %v", err)
	}
	cfg, cfgErr := parseCmdline(string(cmdline))
	for _, w := range cfg.Warnings {
		logf("warning: %s", w)
	}
	loadModules(modulesList)
	if cfgErr != nil {
		logf("%v", cfgErr)
		rescue()
	}
	var dev string
	if cfg.Verity != nil {
		// Never a fallback: on any error the root stays unmounted.
		dev, err = setupVerity(cfg, bootPaths)
	} else {
		dev, err = waitForRoot(cfg)
	}
	if err != nil {
		logf("%v", err)
		rescue()
	}
	if err := mountRoot(cfg, dev); err != nil {
		if cfg.Verity != nil {
			err = fmt.Errorf("verity: %w", err)
		}
		logf("%v", err)
		rescue()
	}
	if err := mountExtra(mountsList, "/root", cfg.Timeout, "/sys/class/block", "/dev"); err != nil {
		logf("%v", err)
		rescue()
	}
	switchRoot(cfg, dev)
	rescue()
}

// setupEarly mounts the API filesystems and opens the console.
func setupEarly() {
	mounts := []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"devtmpfs", "/dev", "mode=0755", syscall.MS_NOSUID},
		{"proc", "/proc", "", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
		{"sysfs", "/sys", "", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			logf("mkdir %s: %v", m.target, err)
		}
		if err := syscall.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, syscall.EBUSY) {
			logf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
	// The archive declares /dev/console, so the kernel gave us the console
	// already; open it again from devtmpfs in case it did not.
	fd, err := syscall.Open("/dev/console", syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		logf("open /dev/console: %v", err)
		return
	}
	for i := 0; i <= 2; i++ {
		if fd != i {
			syscall.Dup3(fd, i, 0)
		}
	}
	if fd > 2 {
		syscall.Close(fd)
	}
}

// waitForRoot polls for the root device until cfg.Timeout.
func waitForRoot(cfg *config) (string, error) {
	limit := "forever"
	if cfg.Timeout > 0 {
		limit = "up to " + cfg.Timeout.String()
	}
	logf("waiting %s for root=%s (rootfstype=%s)", limit, cfg.Root, cfg.FSType)
	devs, err := waitFor(newScanner("/sys/class/block", "/dev"), cfg.Timeout, []wanted{{label: "root=" + cfg.Root.String(), raw: "root=" + cfg.RootRaw, spec: cfg.Root}})
	if err != nil {
		return "", err
	}
	return devs[0], nil
}

// rescue drops to /bin/sh if there is one, else sleeps forever: PID 1
// must not exit.
func rescue() {
	if _, err := os.Stat("/bin/sh"); err == nil {
		logf("starting /bin/sh")
		err := syscall.Exec("/bin/sh", []string{"/bin/sh"}, os.Environ())
		logf("exec /bin/sh: %v", err)
	}
	logf("no shell to drop to: sleeping forever (the kernel would panic if init exited)")
	for {
		time.Sleep(time.Hour)
	}
}
