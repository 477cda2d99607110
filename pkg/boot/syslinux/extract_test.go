package syslinux

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// debianInstaller returns the bytes of /usr/bin/syslinux of Debian's
// package syslinux.
func debianInstaller(t *testing.T) []byte {
	t.Helper()
	return treeFile(t, syslinuxSources(t).Tree, DefaultInstaller)
}

func TestExtractDebian(t *testing.T) {
	exe := debianInstaller(t)
	img, err := Extract(exe, "syslinux")
	if err != nil {
		t.Fatal(err)
	}
	bs := img.BootSector
	if bs[0] != 0xEB || string(bs[3:11]) != "SYSLINUX" || bs[510] != 0x55 || bs[511] != 0xAA ||
		binary.LittleEndian.Uint32(bs[bsMagicOff:]) != ldlinuxMagic {
		t.Fatalf("boot sector: % x", bs)
	}
	if !strings.HasPrefix(img.Banner, "SYSLINUX 6.") {
		t.Fatalf("banner %q", img.Banner)
	}
	if n := len(img.LDLinux); n%sectorSize != 0 || n < 32<<10 || n > 128<<10 || !bytes.HasPrefix(img.LDLinux, []byte("\r\nSYSLINUX ")) {
		t.Fatalf("ldlinux.sys: %d bytes starting %q", n, img.LDLinux[:min(n, 16)])
	}
	if got := binary.LittleEndian.Uint32(img.LDLinux[img.pa:]); got != ldlinuxMagic {
		t.Fatalf("patch area at %d starts with %#x", img.pa, got)
	}

	// An independent check of the length: bin2c stores it in .rodata as
	// syslinux_ldlinux_len, beside syslinux_bootsect_len (512), each
	// followed by the same _mtime.
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatal(err)
	}
	ro := f.Section(".rodata")
	if ro == nil {
		t.Fatal("no .rodata")
	}
	data, err := ro.Data()
	if err != nil {
		t.Fatal(err)
	}
	pair := func(n uint32) []uint32 { // the words after each occurrence of n
		var after []uint32
		for i := 0; i+8 <= len(data); i += 4 {
			if binary.LittleEndian.Uint32(data[i:]) == n {
				after = append(after, binary.LittleEndian.Uint32(data[i+4:]))
			}
		}
		return after
	}
	var shared bool
	for _, a := range pair(uint32(len(img.LDLinux))) {
		for _, b := range pair(sectorSize) {
			shared = shared || a == b
		}
	}
	if !shared {
		t.Fatalf(".rodata has no syslinux_ldlinux_len of %d beside syslinux_bootsect_len", len(img.LDLinux))
	}

	// The copy in the tree is what Load extracts.
	img2, err := Load(syslinuxSources(t))
	if err != nil {
		t.Fatal(err)
	}
	if img2.BootSector != img.BootSector || !bytes.Equal(img2.LDLinux, img.LDLinux) {
		t.Fatal("Load and Extract disagree")
	}
}

// TestExtractDamaged breaks the real installer in the ways Extract must
// notice.
func TestExtractDamaged(t *testing.T) {
	exe := debianInstaller(t)
	img, err := Extract(exe, "syslinux")
	if err != nil {
		t.Fatal(err)
	}
	sys := bytes.Index(exe, img.LDLinux[:256])
	boot := bytes.Index(exe, img.BootSector[:])
	if sys < 0 || boot < 0 || bytes.Contains(exe[sys+1:], img.LDLinux[:256]) {
		t.Fatal("cannot find the images in the installer")
	}
	var pa patchArea
	mustDecode(img.LDLinux[img.pa:], &pa)
	sub := func(b []byte, off int, v []byte) []byte { copy(b[off:], v); return b }
	for _, tc := range []struct {
		name  string
		edit  func(b []byte) []byte
		wants []string
	}{
		{"not elf", func(b []byte) []byte { return []byte("#!/bin/sh\necho syslinux\n") },
			[]string{"not an ELF executable"}},
		{"another elf", func([]byte) []byte {
			b, err := os.ReadFile("/proc/self/exe")
			if err != nil {
				testkit.Missing(t, "/proc/self/exe: %v", err)
			}
			return b
		}, []string{"no syslinux boot sector"}},
		{"patched", func(b []byte) []byte { return sub(b, sys+img.pa+8, []byte{1}) },
			[]string{"already patched"}},
		{"end marker", func(b []byte) []byte { return sub(b, sys+img.bytes-3, []byte{0x12}) },
			[]string{"compressed part"}},
		{"cut", func(b []byte) []byte { return sub(b, sys+img.bytes-20, make([]byte, 20)) },
			[]string{"compressed part"}},
		{"padding", func(b []byte) []byte { return sub(b, sys+img.bytes, []byte{1}) },
			[]string{"padding"}},
		{"instance", func(b []byte) []byte { return sub(b, sys+img.pa+4, []byte{0x55}) },
			[]string{"does not check instance"}},
		{"placeholder", func(b []byte) []byte { return sub(b, boot+int(img.epa.Sect1Ptr0), []byte{0}) },
			[]string{"not the placeholder"}},
		{"no boot sector", func(b []byte) []byte { return sub(b, boot+510, []byte{0, 0}) },
			[]string{"no boot sector that loads it"}},
		{"epa", func(b []byte) []byte {
			return sub(b, sys+img.pa+22, binary.LittleEndian.AppendUint16(nil, uint16(len(img.LDLinux))))
		}, []string{"extended patch area"}},
		{"many magics", func(b []byte) []byte {
			chunk := append([]byte("\r\nX\x00\r\n\x1a\x00"), binary.LittleEndian.AppendUint32(nil, ldlinuxMagic)...)
			chunk = append(chunk, 0, 0, 0, 0)
			return sub(b, sys+len(img.LDLinux)+64, bytes.Repeat(chunk, 20))
		}, []string{"more than 16 places"}},
		{"extents", func(b []byte) []byte { return sub(b, sys+int(img.epa.SecPtrOffset), []byte{7}) },
			[]string{"sector extents are not empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extract(tc.edit(bytes.Clone(exe)), "syslinux")
			if !errors.Is(err, ErrNotInstaller) {
				t.Fatalf("error %v does not wrap ErrNotInstaller", err)
			}
			testkit.ErrContains(t, err, tc.wants...)
		})
	}
}

// TestLoadErrors checks the messages that tell what to install.
func TestLoadErrors(t *testing.T) {
	empty := Sources{Tree: newTree()}
	_, err := Load(empty)
	testkit.ErrContains(t, err, DefaultInstaller, "not found", "package syslinux")

	tr := newTree()
	put(tr, "/usr/bin/syslinux", memFile([]byte("#!/bin/sh\n")))
	_, err = Load(Sources{Tree: tr})
	testkit.ErrContains(t, err, "not an ELF", "Debian package syslinux")
}
