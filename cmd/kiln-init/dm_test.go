package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// TestDMIoctlNumbers checks _IOWR(0xfd, cmd, struct dm_ioctl) against the
// numbers strace shows for dmsetup (size 312 = 0x138).
func TestDMIoctlNumbers(t *testing.T) {
	for _, tc := range []struct {
		cmd  uint32
		want uint32
	}{
		{dmVersionCmd, 0xc138fd00},
		{dmDevCreateCmd, 0xc138fd03},
		{dmDevRemoveCmd, 0xc138fd04},
		{dmDevSuspendCmd, 0xc138fd06},
		{dmDevStatusCmd, 0xc138fd07},
		{dmTableLoadCmd, 0xc138fd09},
	} {
		if got := dmIoctlNumber(tc.cmd); got != tc.want {
			t.Errorf("command %d: ioctl %#x, want %#x", tc.cmd, got, tc.want)
		}
	}
}

func u32(b []byte, off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
func u64(b []byte, off int) uint64 { return binary.NativeEndian.Uint64(b[off:]) }

// TestEncodeDM checks every field of struct dm_ioctl and struct
// dm_target_spec at the offsets of dm-ioctl.h, worked out by hand: version
// 0, data_size 12, data_start 16, target_count 20, open_count 24, flags 28,
// event_nr 32, padding 36, dev 40, name 48, uuid 176, data 305, size 312;
// the target spec: sector_start 0, length 8, status 16, next 20,
// target_type 24, parameters 40.
func TestEncodeDM(t *testing.T) {
	const uuid = "CRYPT-VERITY-0123456789abcdeffedcba9876543210-root"
	params := "1 254:1 254:2 4096 4096 300 1 sha256 " + sealHash + " 00ff" // 106 bytes
	b, err := encodeDM("root", uuid, dmReadOnlyFlag, []dmTarget{{Start: 0, Length: 2400, Type: "verity", Params: params}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 16384 {
		t.Fatalf("buffer of %d bytes, want 16384", len(b))
	}
	for _, f := range []struct {
		name      string
		got, want uint64
	}{
		{"version[0]", uint64(u32(b, 0)), 4},
		{"version[1]", uint64(u32(b, 4)), 0},
		{"version[2]", uint64(u32(b, 8)), 0},
		{"data_size", uint64(u32(b, 12)), 16384},
		{"data_start", uint64(u32(b, 16)), 312},
		{"target_count", uint64(u32(b, 20)), 1},
		{"open_count", uint64(u32(b, 24)), 0},
		{"flags", uint64(u32(b, 28)), 1},
		{"event_nr", uint64(u32(b, 32)), 0},
		{"padding", uint64(u32(b, 36)), 0},
		{"dev", u64(b, 40), 0},
		{"spec.sector_start", u64(b, 312), 0},
		{"spec.length", u64(b, 320), 2400},
		{"spec.status", uint64(u32(b, 328)), 0},
		// 40 + 106 bytes and a NUL, rounded up to 8: 40 + 112.
		{"spec.next", uint64(u32(b, 332)), 152},
	} {
		if f.got != f.want {
			t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
		}
	}
	if len(params) != 106 {
		t.Fatalf("BUG: the parameters are %d bytes, the offsets above assume 106", len(params))
	}
	str := func(off, n int) string { return string(b[off : off+n]) }
	if got := str(48, 128); got != "root"+strings.Repeat("\x00", 124) {
		t.Errorf("name %q", got)
	}
	if got := str(176, 129); got != uuid+strings.Repeat("\x00", 129-len(uuid)) {
		t.Errorf("uuid %q", got)
	}
	if got := str(305, 7); got != strings.Repeat("\x00", 7) {
		t.Errorf("data padding %q", got)
	}
	if got := str(336, 16); got != "verity"+strings.Repeat("\x00", 10) {
		t.Errorf("target_type %q", got)
	}
	if got := str(352, 112); got != params+strings.Repeat("\x00", 6) {
		t.Errorf("parameters %q", got)
	}
	if !bytes.Equal(b[464:], make([]byte, 16384-464)) {
		t.Error("bytes after the target are not zero")
	}

	// The reply is read back from the same layout.
	binary.NativeEndian.PutUint64(b[40:], 0xfe03)
	binary.NativeEndian.PutUint32(b[28:], dmExistsFlag|dmActiveFlag|dmReadOnlyFlag)
	h, err := decodeDM(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Dev != 0xfe03 || h.Flags != 0x25 || h.TargetCount != 1 || string(h.Name[:4]) != "root" || h.Version != [3]uint32{4, 0, 0} {
		t.Errorf("decoded %+v", h)
	}
	if _, err := decodeDM(b[:311]); err == nil {
		t.Error("a reply shorter than struct dm_ioctl is decoded")
	}
}

func TestEncodeDMNoTargets(t *testing.T) {
	b, err := encodeDM("root", "", dmSuspendFlag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u32(b, 20) != 0 || u32(b, 28) != 2 || u32(b, 12) != 16384 || !bytes.Equal(b[176:], make([]byte, 16384-176)) {
		t.Errorf("header %x", b[:312])
	}
}

func TestEncodeDMRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, dev, uuid string
		targets         []dmTarget
		wantErr         string
	}{
		{"long name", strings.Repeat("n", 128), "", nil, "at most 127 bytes"},
		{"NUL in name", "ro\x00ot", "", nil, "no NUL"},
		{"long uuid", "root", strings.Repeat("u", 129), nil, "at most 128 bytes"},
		{"long type", "root", "", []dmTarget{{Type: "a-very-long-target"}}, "at most 15 bytes"},
		{"NUL in params", "root", "", []dmTarget{{Type: "verity", Params: "1\x00"}}, "hold a NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeDM(tc.dev, tc.uuid, 0, tc.targets)
			testkit.WantErr(t, err, tc.wantErr)
		})
	}
	// A name of 127 bytes, the longest, is fine.
	if _, err := encodeDM(strings.Repeat("n", 127), strings.Repeat("u", 128), 0, nil); err != nil {
		t.Error(err)
	}
}

func TestDevNumbers(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint32
		dev          uint64
	}{
		{254, 0, 0xfe00},
		{8, 17, 0x811},
		{259, 300000, 0x493103e0},
		{0x1234, 0x56789, 0x100056723489},
	} {
		if got := mkdev(tc.major, tc.minor); got != tc.dev {
			t.Errorf("mkdev(%d, %d) = %#x, want %#x", tc.major, tc.minor, got, tc.dev)
		}
		if ma, mi := splitDev(tc.dev); ma != tc.major || mi != tc.minor {
			t.Errorf("splitDev(%#x) = %d:%d, want %d:%d", tc.dev, ma, mi, tc.major, tc.minor)
		}
	}
}
