// Package uefi makes a disk boot under UEFI firmware: it installs
// systemd-boot with a Boot Loader Specification entry, or builds a Unified
// Kernel Image (UKI), as files added to the tree of the EFI system partition
// (ESP) that pkg/fs/fat then writes. It runs no external program; everything
// is parsed and assembled here, in Go.
//
// # systemd-boot (InstallSystemdBoot)
//
// The loader (systemd-bootx64.efi from the merged tree) goes to the
// removable-media path /EFI/BOOT/BOOTX64.EFI, which firmware boots without
// an NVRAM entry, and to /EFI/systemd/systemd-bootx64.efi, where bootctl
// puts it (the architecture suffix follows the loader's PE machine type:
// X64, AA64, RISCV64, LOONGARCH64). The kernel and initrd go where kernel-install's
// "bls" layout puts them, /ENTRY-TOKEN/KERNEL-VERSION/linux and /initrd, and
// the entry is /loader/entries/ENTRY-TOKEN-KERNEL-VERSION.conf, a Boot
// Loader Specification type #1 entry (title, version, linux, initrd,
// options). /loader/loader.conf makes it the default, with "timeout 0" (boot
// at once; hold a key for the menu) and "editor no". No random seed is
// written: kiln's output must not depend on randomness, and systemd-boot
// runs without one.
//
// # Unified Kernel Images (BuildUKI, InstallUKI)
//
// A UKI is systemd's EFI stub (linuxx64.efi.stub) with the kernel, initrd,
// command line and os-release appended as PE sections. BuildUKI does what
// systemd's ukify (pe_add_sections) does, for the sections kiln makes:
//
//   - the stub's PE/COFF headers are parsed and checked (DOS header, PE
//     signature, COFF header, PE32+ optional header, data directories,
//     section table); a signed stub (a certificate table) is refused, as
//     ukify refuses it;
//   - a COFF symbol table at the very end of the stub (systemd 252's stub
//     has one) is cut off and PointerToSymbolTable/NumberOfSymbols zeroed,
//     as ukify does; one elsewhere is kept;
//   - SizeOfHeaders is rounded up to FileAlignment (the first section's
//     data starts there anyway), and the new section headers must fit
//     between the section table and both SizeOfHeaders and the first
//     section's data, in bytes that are zero; else it is an error;
//   - new sections are appended in ukify's order (systemd 254's, see
//     uki.go): .osrel, .cmdline, .uname, .initrd, .sbat, and .linux last
//     ("to leave breathing room for decompression"); empty ones are left
//     out. Each starts at the next
//     FileAlignment boundary of the file and at the next SectionAlignment
//     boundary of the address space after the previous section's end;
//     VirtualSize is the data's length and SizeOfRawData that length
//     rounded up to FileAlignment, zero-padded;
//   - characteristics: MEM_READ plus CNT_INITIALIZED_DATA, or CNT_CODE for
//     .linux (what current ukify sets);
//   - NumberOfSections, SizeOfInitializedData (plus every new section's
//     VirtualSize, as ukify counts it, .linux included) and SizeOfImage (the
//     end of the last section, rounded up to SectionAlignment) are updated;
//     CheckSum is set to zero, as ukify does (firmware does not check it);
//     TimeDateStamp is the stub's (zero in Debian's stub), never the clock.
//
// .sbat (sbat.go) is ukify's merge: its header once, the stub's entries,
// the kernel's, and ukify's "uki,1,UKI,..." entry, then "\n\x00". The
// stub's own .sbat leaves the section table and the file (the sections
// after it in the file move back; their addresses stay), so the UKI has
// one .sbat (shim refuses two) and no gap between sections; ukify instead
// overwrites the stub's .sbat in place, which in systemd 252's stub would
// overlap .sdmagic in memory. A .sbat that is not SBAT text (not UTF-8,
// control characters, no "sbat,1," header, a second header, an entry of
// fewer than six fields or a generation that is not a number), or of more
// than 16 KiB, is refused.
//
// Not done (yet): .dtb, .splash, .pcrsig/.pcrpkey (Secure Boot signing is
// pkg/sign's). .linux's VirtualSize is the kernel's length, as early ukify
// set it and as the systemd 252 stub expects (it hands VirtualSize bytes to
// LoadImage), not the kernel's SizeOfImage that current ukify sets for
// newer stubs, which load the kernel in place.
//
// The UKI is never held in memory whole: only the stub is (tens of KiB);
// BuildUKI streams it, then the kernel and initrd straight from their
// tree.Content, and InstallUKI puts a Content in the tree that does the
// same each time it is opened.
//
// # Determinism and hostile input
//
// Every file and directory this package adds is root:root, 0644 or 0755,
// with the build epoch as mtime; the bytes depend only on the inputs. The
// stub, loader and kernel come from layers and are checked: a file that is
// not a PE32+ EFI application, sizes or offsets outside the file or beyond
// 32 bits, a kernel for another machine than the stub or loader, names that
// would escape their directory or break a config file, and Contents whose
// length differs from their stated size are errors.
//
// References: Microsoft PE/COFF specification (sections 2-4); systemd's
// src/ukify/ukify.py; the UAPI Boot Loader Specification; systemd-boot(7),
// loader.conf(5) and kernel-install(8) of systemd 252.
//
// It imports only pkg/tree; it must not import pkg/layer, pkg/spec or
// pkg/build.
package uefi
