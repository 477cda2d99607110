package build

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/pkg/disk"
)

// InitSource returns the kiln-init for a target architecture (a GOARCH:
// amd64, arm64, ...) and a name for it (a path, or "embedded
// kiln-init-arm64") that the build summary reports.
type InitSource func(goarch string) (data []byte, name string, err error)

// archTarget is what a disk.arch means for the binaries kiln puts in the
// image: Go's GOARCH, and the ELF machine, class and byte order of
// kiln-init and of the kernel's modules.
type archTarget struct {
	goarch  string
	machine uint16 // e_machine
	class   byte   // EI_CLASS: 1 = 32-bit, 2 = 64-bit
}

var archTargets = map[string]archTarget{
	"x86-64":  {"amd64", 62, 2},    // EM_X86_64
	"arm64":   {"arm64", 183, 2},   // EM_AARCH64
	"riscv64": {"riscv64", 243, 2}, // EM_RISCV
	"x86":     {"386", 3, 1},       // EM_386
	"arm":     {"arm", 40, 1},      // EM_ARM
}

// targetOf returns the target of the spec's disk.arch.
func targetOf(arch string) (archTarget, error) {
	a, err := disk.NormalizeArch(arch)
	if err != nil {
		return archTarget{}, err
	}
	t, ok := archTargets[a]
	if !ok {
		return archTarget{}, fmt.Errorf("BUG: no target for architecture %s", a)
	}
	return t, nil
}

// pathInit is the InitSource of a kiln-init file given by path (--init,
// $KILN_INIT): the same file for every architecture, checked by
// checkELF like any other.
func pathInit(path string) InitSource {
	return func(string) ([]byte, string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", err
		}
		return b, path, nil
	}
}

// checkELF checks that b is a little-endian ELF executable for t: a
// kiln-init for another architecture would make an image whose
// initramfs cannot start.
func checkELF(what string, b []byte, t archTarget) error {
	if len(b) < 20 || !bytes.Equal(b[:4], []byte("\x7fELF")) {
		return fmt.Errorf("%s is not an ELF binary", what)
	}
	if b[4] != t.class || b[5] != 1 {
		return fmt.Errorf("%s is an ELF of class %d, byte order %d, not a little-endian %d-bit binary for %s", what, b[4], b[5], 32*int(t.class), t.goarch)
	}
	if m := binary.LittleEndian.Uint16(b[18:]); m != t.machine {
		return fmt.Errorf("%s is for ELF machine %d (%s), and the image is for %s (machine %d): give kiln-init built with GOARCH=%s", what, m, machineName(m), t.goarch, t.machine, t.goarch)
	}
	return nil
}

// machineName names an ELF machine for messages.
func machineName(m uint16) string {
	for _, t := range archTargets {
		if t.machine == m {
			return t.goarch
		}
	}
	return "unknown"
}
