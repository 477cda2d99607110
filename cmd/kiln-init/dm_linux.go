//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// dmControl is the device-mapper control node.
const dmControl = "/dev/mapper/control"

// dmCommandNames name the commands in errors.
var dmCommandNames = map[uint32]string{
	dmVersionCmd:    "DM_VERSION",
	dmDevCreateCmd:  "DM_DEV_CREATE",
	dmDevRemoveCmd:  "DM_DEV_REMOVE",
	dmDevSuspendCmd: "DM_DEV_SUSPEND",
	dmDevStatusCmd:  "DM_DEV_STATUS",
	dmTableLoadCmd:  "DM_TABLE_LOAD",
}

// openDMControl opens the control node, making it first if devtmpfs did
// not (misc major 10, the minor /proc/misc gives "device-mapper").
func openDMControl(control, procMisc string) (*os.File, error) {
	if _, err := os.Stat(control); errors.Is(err, os.ErrNotExist) {
		minor, err := miscMinor(procMisc, "device-mapper")
		if err != nil {
			return nil, fmt.Errorf("%s is missing and %w: is dm_mod loaded (listed in /etc/kiln/modules, or built in)?", control, err)
		}
		if err := os.MkdirAll(filepath.Dir(control), 0o755); err != nil {
			return nil, err
		}
		if err := syscall.Mknod(control, syscall.S_IFCHR|0o600, int(mkdev(10, minor))); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("mknod %s (10:%d): %w", control, minor, err)
		}
	}
	f, err := os.OpenFile(control, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w (is dm_mod loaded?)", err)
	}
	return f, nil
}

// miscMinor finds a misc device's minor in /proc/misc ("236 device-mapper").
func miscMinor(procMisc, name string) (uint32, error) {
	f, err := os.Open(procMisc)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[1] == name {
			n, err := strconv.ParseUint(fields[0], 10, 20)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %v", procMisc, sc.Text(), err)
			}
			return uint32(n), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s line", procMisc, name)
}

// dmCall sends one command and returns the kernel's reply header.
func dmCall(f *os.File, cmd uint32, name, uuid string, flags uint32, targets []dmTarget) (dmIoctl, error) {
	buf, err := encodeDM(name, uuid, flags, targets)
	if err != nil {
		return dmIoctl{}, err
	}
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(dmIoctlNumber(cmd)), uintptr(unsafe.Pointer(&buf[0])))
	reply, derr := decodeDM(buf)
	if errno != 0 {
		return reply, fmt.Errorf("%s %q: %w", dmCommandNames[cmd], name, errno)
	}
	if derr != nil {
		return reply, fmt.Errorf("%s %q: reply: %w", dmCommandNames[cmd], name, derr)
	}
	return reply, nil
}

// dmCreate creates the device name with one read-only target and
// activates it: DM_DEV_CREATE, DM_TABLE_LOAD, then DM_DEV_SUSPEND without
// DM_SUSPEND_FLAG (a resume, which makes the loaded table live). It
// returns the device's dev_t. When a step fails after the device exists,
// it removes the device again, so that nothing half made is left to mount.
func dmCreate(control *os.File, name, uuid string, t dmTarget) (uint64, error) {
	v, err := dmCall(control, dmVersionCmd, "", "", 0, nil)
	if err != nil {
		return 0, err
	}
	if v.Version[0] != dmVersionMajor {
		return 0, fmt.Errorf("the kernel's device-mapper interface is version %d.%d.%d, kiln-init speaks %d", v.Version[0], v.Version[1], v.Version[2], dmVersionMajor)
	}
	created, err := dmCall(control, dmDevCreateCmd, name, uuid, 0, nil)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (uint64, error) {
		if _, rerr := dmCall(control, dmDevRemoveCmd, name, "", 0, nil); rerr != nil {
			return 0, fmt.Errorf("%w (and removing the half-made device: %v)", err, rerr)
		}
		return 0, err
	}
	if _, err := dmCall(control, dmTableLoadCmd, name, "", dmReadOnlyFlag, []dmTarget{t}); err != nil {
		hint := "the kernel's message above says why"
		if errors.Is(err, syscall.EINVAL) {
			hint += "; an unknown target type means the dm_" + t.Type + " module is not loaded: list it in /etc/kiln/modules"
		}
		return fail(fmt.Errorf("%w (table: %d %d %s %s; %s)", err, t.Start, t.Length, t.Type, t.Params, hint))
	}
	resumed, err := dmCall(control, dmDevSuspendCmd, name, "", 0, nil)
	if err != nil {
		return fail(err)
	}
	if resumed.Flags&dmActiveFlag == 0 {
		return fail(fmt.Errorf("DM_DEV_SUSPEND %q (resume): the device has no live table", name))
	}
	return created.Dev, nil
}

// dmRemove removes a device (for tests and cleanup).
func dmRemove(control *os.File, name string) error {
	_, err := dmCall(control, dmDevRemoveCmd, name, "", 0, nil)
	return err
}
