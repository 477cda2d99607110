package uefi

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Where Debian's packages put the signed binaries.
const (
	debShimPath = "/usr/lib/shim/shimx64.efi.signed"
	debMMPath   = "/usr/lib/shim/mmx64.efi.signed"
	debGrubPath = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
)

func testShim(t testing.TB) Shim {
	return Shim{
		Shim:       debFile(t, testkit.DebShim, debShimPath),
		MokManager: debFile(t, testkit.DebShimHelpers, debMMPath),
		Grub:       debFile(t, testkit.DebGrubSigned, debGrubPath),
		Kernel:     kernelOf(t),
		Initrd:     Bytes(testInitrd()),
		Cmdline:    "root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef console=ttyS0 $x;{#}",
		Title:      "Debian's 'bookworm'",
		EntryName:  "debian",
		Epoch:      testEpoch,
	}
}

// TestInstallShim: Debian's signed shim, MokManager and GRUB go where
// shim and firmware look; grub.cfg goes to the prefix built into Debian's
// GRUB (/EFI/debian), read from its mods section; the command line's words
// are quoted so GRUB's script syntax reaches the kernel unchanged; no
// fallback (fbx64.efi) is installed.
func TestInstallShim(t *testing.T) {
	sh := testShim(t)
	esp := tree.New(testEpoch)
	files, err := InstallShim(esp, sh)
	if err != nil {
		t.Fatal(err)
	}
	kver := strings.TrimPrefix(files.Kernel, "/debian/")
	kver = strings.TrimSuffix(kver, "/linux")
	want := ShimFiles{
		Shim: "/EFI/BOOT/BOOTX64.EFI", MokManager: "/EFI/BOOT/mmx64.efi", Grub: "/EFI/BOOT/grubx64.efi",
		Config: "/EFI/debian/grub.cfg", Kernel: "/debian/" + kver + "/linux", Initrd: "/debian/" + kver + "/initrd",
	}
	if *files != want || !strings.HasPrefix(kver, "6.1.0-") {
		t.Fatalf("files %+v, want %+v", *files, want)
	}
	wantCfg := "# Written by kiln: one entry, booted at once.\nset timeout=0\nset default=0\n" +
		"menuentry 'Debian'\\''s '\\''bookworm'\\''' {\n" +
		"\tlinux '/debian/" + kver + "/linux' 'root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef' 'console=ttyS0' '$x;{#}'\n" +
		"\tinitrd '/debian/" + kver + "/initrd'\n}\n"
	if got := string(trees.Read(t, esp.Lookup("/EFI/debian/grub.cfg"))); got != wantCfg {
		t.Errorf("grub.cfg:\n%s\nwant:\n%s", got, wantCfg)
	}
	for p, n := range map[string]*tree.Inode{files.Shim: sh.Shim, files.MokManager: sh.MokManager, files.Grub: sh.Grub, files.Kernel: sh.Kernel} {
		if got := esp.Lookup(p); got == nil || got.Content != n.Content || got.Size != n.Size {
			t.Errorf("%s is not the input's file", p)
		}
	}
	var names []string
	for _, c := range esp.Lookup("/EFI/BOOT").Children() {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "BOOTX64.EFI grubx64.efi mmx64.efi" {
		t.Errorf("/EFI/BOOT holds %s", names)
	}

	unsigned := sh
	unsigned.Kernel, unsigned.SignKernel = fileInode(testKernel(t)), true
	if _, err := InstallShim(tree.New(testEpoch), unsigned); err != nil {
		t.Errorf("an unsigned kernel that the caller signs: %v", err)
	}
	noMM := sh
	noMM.MokManager = nil
	if f, err := InstallShim(tree.New(testEpoch), noMM); err != nil || f.MokManager != "" {
		t.Errorf("without MokManager: %+v, %v", f, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Shim)
		want string
	}{
		{"quote", func(s *Shim) { s.Cmdline = `init="/bin/sh"` }, "cannot hold quotes or backslashes"},
		{"backslash", func(s *Shim) { s.Cmdline = `a\b` }, "cannot hold quotes"},
		{"newline", func(s *Shim) { s.Cmdline = "a\nb" }, "shim: cmdline"},
		{"grub is shim", func(s *Shim) { s.Grub = s.Shim }, "shim: GRUB: no mods section"},
		{"arm64 grub", func(s *Shim) { s.Grub = fileInode(makePE(t, peSpec{machine: 0xaa64})) }, "GRUB is for PE machine 0xaa64"},
		{"no shim", func(s *Shim) { s.Shim = nil }, "shim"},
		{"bad token", func(s *Shim) { s.EntryName = "../x" }, "entry name"},
		{"unsigned kernel", func(s *Shim) { s.Kernel = fileInode(testKernel(t)) }, "the kernel carries no signature"},
	} {
		s := testShim(t)
		tc.edit(&s)
		if _, err := InstallShim(tree.New(testEpoch), s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestGrubPrefix: the prefix is read from Debian's GRUB; a module area
// whose sizes run past the section, a prefix naming a device, and one
// with ".." are refused, never read out of bounds.
func TestGrubPrefix(t *testing.T) {
	grub := trees.Read(t, debFile(t, testkit.DebGrubSigned, debGrubPath))
	p, err := GrubPrefix(grub)
	if err != nil || p != "/EFI/debian" {
		t.Fatalf("Debian's GRUB: %q, %v", p, err)
	}
	h, err := parseHeaders(grub, int64(len(grub)))
	if err != nil {
		t.Fatal(err)
	}
	var mods int
	for _, s := range h.sections {
		if s.name() == "mods" {
			mods = int(s.PointerToRawData)
		}
	}
	// Find the prefix object to edit it.
	off := int(binary.LittleEndian.Uint64(grub[mods+8:]))
	obj := mods + off
	for binary.LittleEndian.Uint32(grub[obj:]) != grubObjPrefix {
		obj += int((binary.LittleEndian.Uint32(grub[obj+4:]) + 7) &^ 7)
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"magic", func(b []byte) { b[mods] ^= 1 }, "magic mimg"},
		{"info size", func(b []byte) { binary.LittleEndian.PutUint64(b[mods+16:], 1<<62) }, "in a section of"},
		{"object size", func(b []byte) { binary.LittleEndian.PutUint32(b[obj+4:], 0xfffffff0) }, "outside the"},
		{"object size 0", func(b []byte) { binary.LittleEndian.PutUint32(b[obj+4:], 0) }, "outside the"},
		{"device", func(b []byte) { copy(b[obj+8:], "(hd0,gpt1)/EFI\x00") }, "names a device"},
		{"dotdot", func(b []byte) { copy(b[obj+8:], "/EFI/../x\x00") }, "not a plain absolute folder"},
		{"empty", func(b []byte) { b[obj+8] = 0 }, "no prefix built in"},
		{"no prefix", func(b []byte) { binary.LittleEndian.PutUint32(b[obj:], 99) }, "no prefix built in"},
	} {
		b := append([]byte(nil), grub...)
		tc.edit(b)
		if p, err := GrubPrefix(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %q, %v, want %q", tc.name, p, err, tc.want)
		}
	}
}
