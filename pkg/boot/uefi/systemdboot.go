package uefi

import (
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// SystemdBoot describes a systemd-boot installation with one boot entry.
type SystemdBoot struct {
	Loader        *tree.Inode // systemd-bootx64.efi (systemd-boot-efi) from the merged tree
	Kernel        *tree.Inode // the kernel image (vmlinuz): an EFI-stub kernel for the loader's machine
	Initrd        *File       // the initrd; nil for none
	Cmdline       string      // the full kernel command line (the entry's "options"); "" for none
	Title         string      // the menu title; "" leaves it out (systemd-boot then shows the entry's name)
	EntryName     string      // the entry token (kernel-install's: machine ID, IMAGE_ID or ID of os-release)
	KernelVersion string      // the kernel release; "" reads it from an x86 kernel
	Epoch         int64       // mtime of every file and directory added
	// Enroll, when set, are the Secure Boot keys systemd-boot enrols
	// when the firmware is in setup mode: PK.auth, KEK.auth and db.auth
	// (time-based authenticated EFI signature lists) go to
	// /loader/keys/auto/ and loader.conf gets "secure-boot-enroll force"
	// (systemd-boot 252 and later).
	Enroll *EnrollKeys
	// UKI, when set, replaces the type #1 entry: the kernel, initrd and
	// command line are in this Unified Kernel Image (NewUKI), put at
	// /EFI/Linux/UKIName.efi where systemd-boot finds Boot Loader
	// Specification type #2 entries, and made the default. Under Secure
	// Boot the firmware then checks the command line too (it is signed
	// inside the UKI), which a type #1 entry's options are not. Kernel,
	// Initrd and Cmdline must then be unset.
	UKI     *File
	UKIName string
}

// EnrollKeys are the signed EFI signature lists systemd-boot enrols.
type EnrollKeys struct {
	PK, KEK, DB []byte
}

// SystemdBootFiles are the paths InstallSystemdBoot wrote, for messages
// and for the orchestrator's bookkeeping.
type SystemdBootFiles struct {
	Loader     []string // the removable-media path and systemd's own
	Entry      string   // /loader/entries/TOKEN-KVER.conf
	Kernel     string   // /TOKEN/KVER/linux
	Initrd     string   // /TOKEN/KVER/initrd, or "" without an initrd
	LoaderConf string   // /loader/loader.conf
	UKI        string   // /EFI/Linux/NAME.efi with a UKI (then no Entry, Kernel, Initrd)
}

// InstallSystemdBoot adds systemd-boot and one Boot Loader Specification
// type #1 entry to esp, the tree of the EFI system partition:
//
//	/EFI/BOOT/BOOTX64.EFI               the loader (the removable-media path)
//	/EFI/systemd/systemd-bootx64.efi    the loader (where bootctl puts it)
//	/loader/loader.conf                 default TOKEN-KVER.conf, timeout 0, editor no
//	/loader/entries/TOKEN-KVER.conf     title, version, linux, initrd, options
//	/TOKEN/KVER/linux                   the kernel
//	/TOKEN/KVER/initrd                  the initrd, if there is one
//	/loader/keys/auto/{PK,KEK,db}.auth  with Enroll: the keys to enrol
//
// with X64 replaced after the loader's machine type (AA64 ...). Files
// at those paths are replaced; kernel and initrd share their Content with
// the caller's (nothing is copied now). See the package documentation.
func InstallSystemdBoot(esp *tree.Tree, sb SystemdBoot) (*SystemdBootFiles, error) {
	loader, err := fileOf("systemd-boot: loader", sb.Loader)
	if err != nil {
		return nil, err
	}
	if sb.UKI != nil {
		return installSystemdBootUKI(esp, sb, loader)
	}
	kernel, err := fileOf("systemd-boot: kernel", sb.Kernel)
	if err != nil {
		return nil, err
	}
	if err := checkFile("systemd-boot: initrd", sb.Initrd); err != nil {
		return nil, err
	}
	if sb.Initrd != nil && sb.Initrd.Size == 0 {
		return nil, fmt.Errorf("systemd-boot: initrd: is empty")
	}
	if err := checkToken("systemd-boot: entry name", sb.EntryName); err != nil {
		return nil, err
	}
	if err := checkLine("systemd-boot: title", sb.Title); err != nil {
		return nil, err
	}
	if err := checkLine("systemd-boot: cmdline", sb.Cmdline); err != nil {
		return nil, err
	}
	arch, machine, err := peMachine("systemd-boot: loader", loader)
	if err != nil {
		return nil, err
	}
	k, err := inspectKernel(kernel)
	if err != nil {
		return nil, fmt.Errorf("systemd-boot: %w", err)
	}
	if k.machine != machine {
		return nil, fmt.Errorf("systemd-boot: the kernel is for PE machine 0x%04x, the loader for 0x%04x", k.machine, machine)
	}
	kver := sb.KernelVersion
	if kver == "" {
		if kver = k.version; kver == "" {
			return nil, fmt.Errorf("systemd-boot: no kernel version given, and the kernel does not state one")
		}
	}
	if err := checkToken("systemd-boot: kernel version", kver); err != nil {
		return nil, err
	}

	dir := "/" + sb.EntryName + "/" + kver
	out := &SystemdBootFiles{
		Loader:     []string{"/EFI/BOOT/BOOT" + arch + ".EFI", "/EFI/systemd/systemd-boot" + strings.ToLower(arch) + ".efi"},
		Entry:      "/loader/entries/" + sb.EntryName + "-" + kver + ".conf",
		Kernel:     dir + "/linux",
		LoaderConf: "/loader/loader.conf",
	}
	if sb.Initrd != nil {
		out.Initrd = dir + "/initrd"
	}
	entry := entryConf(sb.Title, kver, out.Kernel, out.Initrd, sb.Cmdline)
	conf := loaderConf(sb.EntryName + "-" + kver + ".conf")
	files := []espFile{
		{out.Entry, Bytes([]byte(entry))},
		{out.Kernel, kernel},
	}
	if sb.Initrd != nil {
		files = append(files, espFile{out.Initrd, sb.Initrd})
	}
	return out, putLoader(esp, sb, loader, out, conf, files)
}

// putLoader adds the loader's two copies, loader.conf (with the enrolment
// line when there are keys to enrol), the keys and files to esp.
func putLoader(esp *tree.Tree, sb SystemdBoot, loader *File, out *SystemdBootFiles, conf string, files []espFile) error {
	if sb.Enroll != nil {
		conf += "secure-boot-enroll force\n"
	}
	files = append([]espFile{
		{out.Loader[0], loader},
		{out.Loader[1], loader},
		{out.LoaderConf, Bytes([]byte(conf))},
	}, files...)
	if e := sb.Enroll; e != nil {
		for _, k := range []struct {
			name string
			b    []byte
		}{{"PK.auth", e.PK}, {"KEK.auth", e.KEK}, {"db.auth", e.DB}} {
			if len(k.b) == 0 {
				return fmt.Errorf("systemd-boot: enroll: %s is empty", k.name)
			}
			files = append(files, espFile{"/loader/keys/auto/" + k.name, Bytes(k.b)})
		}
	}
	if err := putAll(esp, files, sb.Epoch); err != nil {
		return fmt.Errorf("systemd-boot: %w", err)
	}
	return nil
}

// installSystemdBootUKI installs systemd-boot with sb.UKI as its one
// (type #2) entry.
func installSystemdBootUKI(esp *tree.Tree, sb SystemdBoot, loader *File) (*SystemdBootFiles, error) {
	if sb.Kernel != nil || sb.Initrd != nil || sb.Cmdline != "" {
		return nil, fmt.Errorf("BUG: systemd-boot: a UKI entry with a kernel, initrd or command line of its own")
	}
	if err := checkToken("systemd-boot: UKI name", sb.UKIName); err != nil {
		return nil, err
	}
	img, ok := sb.UKI.Content.(*ukiImage)
	if !ok {
		return nil, fmt.Errorf("BUG: systemd-boot: the UKI is not one NewUKI made")
	}
	arch, _, err := peMachine("systemd-boot: loader", loader)
	if err != nil {
		return nil, err
	}
	if arch != img.arch {
		return nil, fmt.Errorf("systemd-boot: the UKI is for %s, the loader for %s", img.arch, arch)
	}
	name := sb.UKIName + ".efi"
	out := &SystemdBootFiles{
		Loader:     []string{"/EFI/BOOT/BOOT" + arch + ".EFI", "/EFI/systemd/systemd-boot" + strings.ToLower(arch) + ".efi"},
		LoaderConf: "/loader/loader.conf",
		UKI:        "/EFI/Linux/" + name,
	}
	return out, putLoader(esp, sb, loader, out, loaderConf(name), []espFile{{out.UKI, sb.UKI}})
}

// loaderConf is systemd-boot's loader.conf: boot the entry at once (a key
// held at start shows the menu), and no command line editor.
func loaderConf(entry string) string {
	return "default " + entry + "\ntimeout 0\neditor no\n"
}

// entryConf is a Boot Loader Specification type #1 entry. Paths are
// absolute on the ESP; empty title, initrd or options are left out.
func entryConf(title, version, linux, initrd, options string) string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			b.WriteString(k + " " + v + "\n")
		}
	}
	line("title", title)
	line("version", version)
	line("linux", linux)
	line("initrd", initrd)
	line("options", options)
	return b.String()
}
