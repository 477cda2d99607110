// Package qemu runs a disk image under QEMU for `kiln run`: firmware
// lookup (OVMF for UEFI with a private copy of its variables, SeaBIOS for
// BIOS; AAVMF on the virt machine for arm64), the command line, the
// serial console, and waiting for a marker.
//
// It is not on the build path: nothing here contributes bytes to an image.
//
// It imports nothing of kiln: kiln run and the boot tests hand it an image
// path and a format.
package qemu
