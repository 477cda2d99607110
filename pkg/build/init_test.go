package build

import (
	"encoding/binary"
	"strings"
	"testing"
)

// elfHeader is the first 20 bytes of an ELF file: class, byte order and
// machine as given.
func elfHeader(class, order byte, machine uint16) []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = class, order, 1
	binary.LittleEndian.PutUint16(b[16:], 2) // ET_EXEC
	binary.LittleEndian.PutUint16(b[18:], machine)
	return b
}

// TestCheckELF: kiln-init must be an ELF for the image's architecture;
// another machine, another class or byte order, or no ELF at all is
// refused with the GOARCH to build it for.
func TestCheckELF(t *testing.T) {
	for arch, want := range map[string]string{"x86-64": "amd64", "amd64": "amd64", "arm64": "arm64", "aarch64": "arm64", "riscv64": "riscv64"} {
		tg, err := targetOf(arch)
		if err != nil || tg.goarch != want {
			t.Errorf("targetOf(%s) = %+v, %v", arch, tg, err)
		}
	}
	if _, err := targetOf("sparc"); err == nil {
		t.Error("sparc accepted")
	}
	amd, _ := targetOf("x86-64")
	arm, _ := targetOf("arm64")
	if err := checkELF("kiln-init", elfHeader(2, 1, 62), amd); err != nil {
		t.Errorf("amd64 ELF for amd64: %v", err)
	}
	if err := checkELF("kiln-init", elfHeader(2, 1, 183), arm); err != nil {
		t.Errorf("arm64 ELF for arm64: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		tg   archTarget
		want string
	}{
		{"amd64 init for arm64", elfHeader(2, 1, 62), arm, "is for ELF machine 62 (amd64), and the image is for arm64 (machine 183): give kiln-init built with GOARCH=arm64"},
		{"arm64 init for amd64", elfHeader(2, 1, 183), amd, "GOARCH=amd64"},
		{"32-bit", elfHeader(1, 1, 62), amd, "not a little-endian 64-bit binary"},
		{"big-endian", elfHeader(2, 2, 62), amd, "byte order 2"},
		{"script", []byte("#!/bin/sh\necho hello world\n"), amd, "not an ELF binary"},
		{"short", []byte("\x7fELF"), amd, "not an ELF binary"},
	} {
		if err := checkELF("kiln-init", tc.b, tc.tg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}
