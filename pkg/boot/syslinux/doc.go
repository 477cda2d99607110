// Package syslinux makes a FAT volume boot with SYSLINUX under a BIOS: it
// does what `syslinux --install` does, in Go, on the FAT that pkg/fs/fat
// writes, and picks the MBR boot code (mbr.bin or gptmbr.bin) for the disk.
//
// # Where the code comes from
//
// Debian ships no ldlinux.sys file. The boot sector (ldlinux.bss) and
// ldlinux.sys are data inside the installer, /usr/bin/syslinux of the
// package syslinux (libinstaller's syslinux_bootsect[] and
// syslinux_ldlinux[], in a stripped ELF). Extract finds them by their
// structure and checks what it finds against everything syslinux itself
// relies on:
//
//   - ldlinux.sys starts with its banner ("\r\nSYSLINUX 6.04 \0\r\n\x1a"),
//     followed, 8-byte aligned, by LDLINUX_MAGIC, the build's instance
//     word and the patch area, which must be as the build left it (all
//     fields the installer fills still zero). Every offset of the extended
//     patch area must lie inside the image.
//   - Its length is not stored in the image, so Extract reads it from the
//     code: the core's decompressor call names the address of the
//     compressed 32-bit part and of its length field (which prepcore
//     filled in) and the decompressed length. The compressed part must be
//     an LZO1X stream that decodes to exactly that length and ends exactly
//     where the length field says; the image is that end rounded up to 512
//     bytes (as bin2c pads it), and the padding must be zero.
//   - The boot sector ends with LDLINUX_MAGIC, the BS_MAGIC_VER link word
//     and 0x55AA; it must compare the instance word of this very
//     ldlinux.sys at its load address, and hold the placeholders
//     0xdeadbeef and 0xfeedface where the extended patch area says the
//     first sector's address goes.
//
// ldlinux.c32, mbr.bin and gptmbr.bin are plain files of syslinux-common.
// All of them are read from the merged tree (Sources), never from the
// host.
//
// # Two phases
//
// Prepare runs before the FAT is written: it adds /ldlinux.sys (the image
// followed by the two ADV sectors, exactly the bytes the installer copies
// in), /ldlinux.c32 and /syslinux.cfg to the ESP's tree, plus the kernel
// and initrd when given. Install runs after the FAT is written to the
// partition: it takes ldlinux.sys's extents from what the FAT writer
// reported (fs.Report.Extents for LDLinuxPath), checks that they hold the
// bytes Prepare put there, patches the
// image as syslinux_patch does (sector extents, ADV sector addresses,
// sector counts, checksum; the first sector's address into the boot
// sector) and writes syslinux's boot code into the volume's boot sector,
// keeping its BPB, as syslinux_make_bootsect does; on FAT32 it also
// refreshes the backup boot sector. MBRCode returns the boot code for the
// disk's MBR, for disk.WriteBootCode.
//
// The result is what the real installer (the mtools variant Debian ships,
// run without --directory) produces, byte for byte, for the same sector
// list, except that ldlinux.sys and ldlinux.c32 are read-only but neither
// hidden nor system files (pkg/fs/fat has no way to set those bits; booting
// does not need them), and that the installer leaves the FAT32 backup boot
// sector stale.
//
// References: syslinux 6.04 libinstaller/syslxmod.c (syslinux_patch),
// syslxint.h, fs.c (syslinux_make_bootsect, syslinux_check_bootsect),
// setadv.c (the ADV), mtools/syslinux.c (the installer), core/diskboot.inc,
// core/diskstart.inc, core/init.inc, lzo/prepcore.c and
// core/fs/lib/loadconfig.c (where syslinux.cfg is looked for).
//
// It imports pkg/tree, pkg/disk and pkg/fs/fat (the filesystem it installs
// into); it must not import pkg/layer, pkg/spec or pkg/build.
package syslinux
