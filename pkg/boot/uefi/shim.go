package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Shim describes the Secure Boot chain stock firmware trusts: shim signed
// by Microsoft's UEFI CA, the distribution's GRUB that shim trusts (signed
// with the key shim carries), and a kernel signed with that key (or with
// a key enrolled in shim's MOK list).
type Shim struct {
	Shim       *tree.Inode // shimx64.efi.signed (shim-signed)
	MokManager *tree.Inode // mmx64.efi.signed (shim-helpers-amd64-signed); nil for none
	Grub       *tree.Inode // grubx64.efi.signed (grub-efi-amd64-signed): a monolithic image with its prefix built in
	Kernel     *tree.Inode // the kernel image, signed
	Initrd     *File       // the initrd; nil for none
	Cmdline    string      // the kernel command line
	Title      string      // the menu entry's title
	EntryName  string      // the entry token: the kernel goes to /TOKEN/KVER/
	// KernelVersion is the kernel release; "" reads it from an x86 kernel.
	KernelVersion string
	Epoch         int64 // mtime of every file and directory added
	// SignKernel says the caller signs the kernel on the ESP afterwards
	// (with a key the user enrols in MOK). Without it a kernel that
	// carries no signature is refused: shim would refuse to boot it.
	SignKernel bool
}

// ShimFiles are the paths InstallShim wrote.
type ShimFiles struct {
	Shim       string // /EFI/BOOT/BOOTX64.EFI
	MokManager string // /EFI/BOOT/mmx64.efi, "" without one
	Grub       string // /EFI/BOOT/grubx64.efi
	Config     string // PREFIX/grub.cfg, PREFIX as the GRUB image has it built in
	Kernel     string // /TOKEN/KVER/linux
	Initrd     string // /TOKEN/KVER/initrd, "" without one
}

// maxGrubRead bounds the GRUB image kiln reads to find its prefix (Debian's
// is 4 MiB).
const maxGrubRead = 64 << 20

// InstallShim adds shim, MokManager, GRUB, the kernel, the initrd and
// GRUB's configuration to esp:
//
//	/EFI/BOOT/BOOTX64.EFI   shim, which firmware boots from removable media
//	/EFI/BOOT/mmx64.efi     MokManager, which shim starts to enrol MOK keys
//	/EFI/BOOT/grubx64.efi   GRUB, which shim loads from its own folder
//	PREFIX/grub.cfg         one entry, no menu (timeout 0)
//	/TOKEN/KVER/linux       the kernel, as for systemd-boot
//	/TOKEN/KVER/initrd      the initrd
//
// with X64 after shim's machine type. PREFIX is the folder GRUB's
// signed image has built in (/EFI/debian for Debian's): a signed GRUB
// cannot be given another, so kiln reads it from the image. shim's
// fallback (fbx64.efi) is not installed: beside BOOTX64.EFI it would make
// shim write boot entries and reset instead of booting. GRUB checks the
// kernel's signature through shim; the initrd and grub.cfg are not
// checked (see the package documentation).
func InstallShim(esp *tree.Tree, sh Shim) (*ShimFiles, error) {
	shim, err := fileOf("shim", sh.Shim)
	if err != nil {
		return nil, err
	}
	grub, err := fileOf("shim: GRUB", sh.Grub)
	if err != nil {
		return nil, err
	}
	kernel, err := fileOf("shim: kernel", sh.Kernel)
	if err != nil {
		return nil, err
	}
	if err := checkFile("shim: initrd", sh.Initrd); err != nil {
		return nil, err
	}
	if sh.Initrd != nil && sh.Initrd.Size == 0 {
		return nil, fmt.Errorf("shim: initrd: is empty")
	}
	if err := checkToken("shim: entry name", sh.EntryName); err != nil {
		return nil, err
	}
	if err := checkLine("shim: title", sh.Title); err != nil {
		return nil, err
	}
	if err := checkLine("shim: cmdline", sh.Cmdline); err != nil {
		return nil, err
	}
	if i := strings.IndexAny(sh.Cmdline, "\"'\\"); i >= 0 {
		return nil, fmt.Errorf("shim: cmdline: GRUB escapes %q with a backslash, which the kernel does not undo: a command line through GRUB cannot hold quotes or backslashes", sh.Cmdline[i])
	}
	arch, machine, err := peMachine("shim", shim)
	if err != nil {
		return nil, err
	}
	if _, m, err := peMachine("shim: GRUB", grub); err != nil {
		return nil, err
	} else if m != machine {
		return nil, fmt.Errorf("shim: GRUB is for PE machine 0x%04x, shim for 0x%04x", m, machine)
	}
	var mm *File
	if sh.MokManager != nil {
		if mm, err = fileOf("shim: MokManager", sh.MokManager); err != nil {
			return nil, err
		}
		if _, m, err := peMachine("shim: MokManager", mm); err != nil {
			return nil, err
		} else if m != machine {
			return nil, fmt.Errorf("shim: MokManager is for PE machine 0x%04x, shim for 0x%04x", m, machine)
		}
	}
	k, err := inspectKernel(kernel)
	if err != nil {
		return nil, fmt.Errorf("shim: %w", err)
	}
	if k.machine != machine {
		return nil, fmt.Errorf("shim: the kernel is for PE machine 0x%04x, shim for 0x%04x", k.machine, machine)
	}
	if !sh.SignKernel {
		kb, err := kernel.readPrefix("shim: kernel", maxHeaderRead)
		if err != nil {
			return nil, err
		}
		kh, err := parseHeaders(kb, kernel.Size)
		if err != nil {
			return nil, fmt.Errorf("shim: kernel: %w", err)
		}
		if len(kh.dirs) <= dirSecurity || kh.dirs[dirSecurity].Size == 0 {
			return nil, fmt.Errorf("shim: the kernel carries no signature, and shim under Secure Boot boots only a kernel signed with a key it trusts: use the distribution's signed kernel (Debian: linux-image-amd64, not -unsigned), or sign it with boot.secureboot and enrol that certificate in MOK")
		}
	}
	kver := sh.KernelVersion
	if kver == "" {
		if kver = k.version; kver == "" {
			return nil, fmt.Errorf("shim: no kernel version given, and the kernel does not state one")
		}
	}
	if err := checkToken("shim: kernel version", kver); err != nil {
		return nil, err
	}
	gb, err := grub.readAll("shim: GRUB", maxGrubRead)
	if err != nil {
		return nil, err
	}
	prefix, err := GrubPrefix(gb)
	if err != nil {
		return nil, fmt.Errorf("shim: GRUB: %w", err)
	}

	low := strings.ToLower(arch)
	dir := "/" + sh.EntryName + "/" + kver
	out := &ShimFiles{
		Shim:   "/EFI/BOOT/BOOT" + arch + ".EFI",
		Grub:   "/EFI/BOOT/grub" + low + ".efi",
		Config: prefix + "/grub.cfg",
		Kernel: dir + "/linux",
	}
	if sh.Initrd != nil {
		out.Initrd = dir + "/initrd"
	}
	files := []espFile{
		{out.Shim, shim},
		{out.Grub, grub},
		{out.Config, Bytes([]byte(grubConfig(sh.Title, out.Kernel, out.Initrd, sh.Cmdline)))},
		{out.Kernel, kernel},
	}
	if mm != nil {
		out.MokManager = "/EFI/BOOT/mm" + low + ".efi"
		files = append(files, espFile{out.MokManager, mm})
	}
	if sh.Initrd != nil {
		files = append(files, espFile{out.Initrd, sh.Initrd})
	}
	if err := putAll(esp, files, sh.Epoch); err != nil {
		return nil, fmt.Errorf("shim: %w", err)
	}
	return out, nil
}

// grubConfig is GRUB's configuration: one entry, booted at once. Every
// word of the command line is single-quoted, so GRUB's script syntax
// ($, ;, {, #) reaches the kernel as it is.
func grubConfig(title, linux, initrd, cmdline string) string {
	var b strings.Builder
	b.WriteString("# Written by kiln: one entry, booted at once.\nset timeout=0\nset default=0\n")
	fmt.Fprintf(&b, "menuentry %s {\n\tlinux %s", grubQuote(title), grubQuote(linux))
	for _, w := range strings.Fields(cmdline) {
		b.WriteString(" " + grubQuote(w))
	}
	b.WriteString("\n")
	if initrd != "" {
		fmt.Fprintf(&b, "\tinitrd %s\n", grubQuote(initrd))
	}
	b.WriteString("}\n")
	return b.String()
}

// grubQuote single-quotes s for GRUB's shell-like script: a quote in s
// ends the quoting, is escaped with a backslash, and quoting resumes, as
// in sh.
func grubQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// GRUB's module area (grub-mkimage): in the "mods" section, a
// grub_module_info64 header then objects, each a grub_module_header (type,
// size including the header) and its data, padded to 8 bytes.
const (
	grubModMagic   = 0x676d696d // "mimg"
	grubObjPrefix  = 3          // OBJ_TYPE_PREFIX: the prefix, NUL-terminated
	grubModInfoLen = 24
	grubModHdrLen  = 8
	maxGrubPrefix  = 256
)

// GrubPrefix returns the prefix built into a monolithic GRUB EFI image
// (grub-mkimage -p): the folder GRUB reads grub.cfg from, on the device it
// was loaded from. A prefix naming a device ("(hd0,gpt1)/...") or none
// is an error: kiln could not tell where GRUB looks.
func GrubPrefix(pe []byte) (string, error) {
	h, err := parseHeaders(pe, int64(len(pe)))
	if err != nil {
		return "", err
	}
	var mods []byte
	for _, s := range h.sections {
		if s.name() != "mods" {
			continue
		}
		start, n := int64(s.PointerToRawData), int64(s.SizeOfRawData)
		if start+n > int64(len(pe)) {
			return "", fmt.Errorf("section mods (%d bytes at %d) runs past the file's %d bytes", n, start, len(pe))
		}
		mods = pe[start : start+n]
	}
	if mods == nil {
		return "", fmt.Errorf("no mods section: not a GRUB image made by grub-mkimage")
	}
	if len(mods) < grubModInfoLen || binary.LittleEndian.Uint32(mods) != grubModMagic {
		return "", fmt.Errorf("section mods does not start with GRUB's module info (magic mimg)")
	}
	off, size := binary.LittleEndian.Uint64(mods[8:]), binary.LittleEndian.Uint64(mods[16:])
	if size > uint64(len(mods)) || off < grubModInfoLen || off > size {
		return "", fmt.Errorf("GRUB's module info: objects at %d, %d bytes in all, in a section of %d bytes", off, size, len(mods))
	}
	area := mods[off:size]
	prefix, found := "", false
	for len(area) >= grubModHdrLen {
		typ, n := binary.LittleEndian.Uint32(area), binary.LittleEndian.Uint32(area[4:])
		if n < grubModHdrLen || uint64(n) > uint64(len(area)) {
			return "", fmt.Errorf("GRUB module object of type %d: size %d outside the %d bytes left", typ, n, len(area))
		}
		if typ == grubObjPrefix {
			data := area[grubModHdrLen:n]
			if i := bytes.IndexByte(data, 0); i >= 0 {
				data = data[:i]
			}
			if found {
				return "", fmt.Errorf("GRUB has two prefixes")
			}
			prefix, found = string(data), true
		}
		step := (uint64(n) + 7) &^ 7
		if step > uint64(len(area)) {
			break
		}
		area = area[step:]
	}
	switch {
	case !found || prefix == "":
		return "", fmt.Errorf("no prefix built in: kiln cannot tell where this GRUB reads grub.cfg")
	case strings.HasPrefix(prefix, "("):
		return "", fmt.Errorf("prefix %q names a device: kiln can only place grub.cfg on the ESP GRUB is loaded from", prefix)
	case len(prefix) > maxGrubPrefix || !strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "/.") || strings.ContainsAny(prefix, "\\\x00\n"):
		return "", fmt.Errorf("prefix %q is not a plain absolute folder", prefix)
	}
	return strings.TrimSuffix(prefix, "/"), nil
}
