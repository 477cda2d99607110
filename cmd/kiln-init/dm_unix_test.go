//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDMAgainstXSysUnix has golang.org/x/sys/unix, generated from the
// kernel's headers by cgo -godefs, judge the hand-written layout: the
// ioctl numbers, the flags, the field offsets of struct dm_ioctl and
// struct dm_target_spec, a whole header decoded through its struct, and
// the dev_t encoding.
func TestDMAgainstXSysUnix(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"DM_VERSION", uint64(dmIoctlNumber(dmVersionCmd)), unix.DM_VERSION},
		{"DM_DEV_CREATE", uint64(dmIoctlNumber(dmDevCreateCmd)), unix.DM_DEV_CREATE},
		{"DM_DEV_REMOVE", uint64(dmIoctlNumber(dmDevRemoveCmd)), unix.DM_DEV_REMOVE},
		{"DM_DEV_SUSPEND", uint64(dmIoctlNumber(dmDevSuspendCmd)), unix.DM_DEV_SUSPEND},
		{"DM_DEV_STATUS", uint64(dmIoctlNumber(dmDevStatusCmd)), unix.DM_DEV_STATUS},
		{"DM_TABLE_LOAD", uint64(dmIoctlNumber(dmTableLoadCmd)), unix.DM_TABLE_LOAD},
		{"DM_READONLY_FLAG", dmReadOnlyFlag, unix.DM_READONLY_FLAG},
		{"DM_SUSPEND_FLAG", dmSuspendFlag, unix.DM_SUSPEND_FLAG},
		{"DM_ACTIVE_PRESENT_FLAG", dmActiveFlag, unix.DM_ACTIVE_PRESENT_FLAG},
		{"DM_VERSION_MAJOR", dmVersionMajor, unix.DM_VERSION_MAJOR},
		{"DM_NAME_LEN", dmNameLen, unix.DM_NAME_LEN},
		{"DM_UUID_LEN", dmUUIDLen, unix.DM_UUID_LEN},
		{"DM_MAX_TYPE_NAME", dmMaxTypeName, unix.DM_MAX_TYPE_NAME},
		{"sizeof(struct dm_ioctl)", dmIoctlSize, unix.SizeofDmIoctl},
		{"sizeof(struct dm_target_spec)", dmTargetSpecSize, unix.SizeofDmTargetSpec},
		{"binary.Size(dmIoctl)", uint64(binary.Size(dmIoctl{})), unix.SizeofDmIoctl},
		{"binary.Size(dmTargetSpec)", uint64(binary.Size(dmTargetSpec{})), unix.SizeofDmTargetSpec},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, x/sys/unix says %#x", c.name, c.got, c.want)
		}
	}
	var h unix.DmIoctl
	var s unix.DmTargetSpec
	for _, o := range []struct {
		name      string
		got, want uintptr
	}{
		{"data_size", 12, unsafe.Offsetof(h.Data_size)},
		{"data_start", 16, unsafe.Offsetof(h.Data_start)},
		{"target_count", 20, unsafe.Offsetof(h.Target_count)},
		{"open_count", 24, unsafe.Offsetof(h.Open_count)},
		{"flags", 28, unsafe.Offsetof(h.Flags)},
		{"event_nr", 32, unsafe.Offsetof(h.Event_nr)},
		{"dev", 40, unsafe.Offsetof(h.Dev)},
		{"name", 48, unsafe.Offsetof(h.Name)},
		{"uuid", 176, unsafe.Offsetof(h.Uuid)},
		{"data", 305, unsafe.Offsetof(h.Data)},
		{"spec.length", 8, unsafe.Offsetof(s.Length)},
		{"spec.status", 16, unsafe.Offsetof(s.Status)},
		{"spec.next", 20, unsafe.Offsetof(s.Next)},
		{"spec.target_type", 24, unsafe.Offsetof(s.Target_type)},
	} {
		if o.got != o.want {
			t.Errorf("offset of %s: TestEncodeDM assumes %d, x/sys/unix says %d", o.name, o.got, o.want)
		}
	}

	// The bytes encodeDM writes, read through x/sys/unix's structs.
	b, err := encodeDM("root", "CRYPT-VERITY-x-root", dmReadOnlyFlag, []dmTarget{{Start: 0, Length: 2400, Type: "verity", Params: "1 8:1 8:2"}})
	if err != nil {
		t.Fatal(err)
	}
	var got unix.DmIoctl
	if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != [3]uint32{4, 0, 0} || got.Data_size != uint32(len(b)) || got.Data_start != unix.SizeofDmIoctl ||
		got.Target_count != 1 || got.Flags != unix.DM_READONLY_FLAG ||
		string(bytes.TrimRight(got.Name[:], "\x00")) != "root" || string(bytes.TrimRight(got.Uuid[:], "\x00")) != "CRYPT-VERITY-x-root" {
		t.Errorf("header read through unix.DmIoctl: %+v", got)
	}
	var spec unix.DmTargetSpec
	if err := binary.Read(bytes.NewReader(b[got.Data_start:]), binary.NativeEndian, &spec); err != nil {
		t.Fatal(err)
	}
	params := b[int(got.Data_start)+unix.SizeofDmTargetSpec:]
	if spec.Sector_start != 0 || spec.Length != 2400 || spec.Next != 56 || string(bytes.TrimRight(spec.Target_type[:], "\x00")) != "verity" ||
		string(params[:bytes.IndexByte(params, 0)]) != "1 8:1 8:2" {
		t.Errorf("target read through unix.DmTargetSpec: %+v, parameters %q", spec, params[:16])
	}

	for _, d := range []struct{ major, minor uint32 }{{8, 1}, {254, 0}, {259, 300000}, {0x1234, 0x56789}, {4095, 1<<20 - 1}} {
		if got, want := mkdev(d.major, d.minor), unix.Mkdev(d.major, d.minor); got != want {
			t.Errorf("mkdev(%d, %d) = %#x, unix.Mkdev %#x", d.major, d.minor, got, want)
		}
		dev := unix.Mkdev(d.major, d.minor)
		if ma, mi := splitDev(dev); ma != unix.Major(dev) || mi != unix.Minor(dev) {
			t.Errorf("splitDev(%#x) = %d:%d, unix says %d:%d", dev, ma, mi, unix.Major(dev), unix.Minor(dev))
		}
	}
}
