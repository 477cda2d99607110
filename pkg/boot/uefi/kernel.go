package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kiln-build/kiln/pkg/tree"
)

// x86 boot protocol (Documentation/arch/x86/boot.rst): the real-mode setup
// header of a bzImage.
const (
	setupMagicAt      = 0x202 // "HdrS"
	setupKernelVerAt  = 0x20e // u16: offset of the version string, minus 0x200
	setupKernelVerOff = 0x200 // what kernel_version is relative to
	maxVersionRead    = 256   // bytes of the version string read at most
	kernelPrefix      = 0x200 + 0x10000 + maxVersionRead
)

// kernelInfo is what this package needs to know about a kernel image.
type kernelInfo struct {
	machine uint16 // PE machine type
	version string // release from the x86 setup header ("6.1.0-56-amd64"), or ""
}

// inspectKernel checks that f is an EFI-stub kernel (a PE32+ EFI
// application: systemd-boot and systemd-stub both start it with
// LoadImage) and reads its release when it is an x86 bzImage.
func inspectKernel(f *File) (*kernelInfo, error) {
	b, err := f.readPrefix("kernel", kernelPrefix)
	if err != nil {
		return nil, err
	}
	h, err := parseHeaders(b, f.Size)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w (kiln boots EFI-stub kernels only)", err)
	}
	return &kernelInfo{machine: h.file.Machine, version: bzImageVersion(b)}, nil
}

// bzImageVersion returns the release an x86 bzImage names in its setup
// header's kernel_version string ("6.1.0-56-amd64 (debian-kernel@...) #1
// SMP ..."): its first word, if it is a plausible release. Else "".
func bzImageVersion(b []byte) string {
	if len(b) < setupKernelVerAt+2 || string(b[setupMagicAt:setupMagicAt+4]) != "HdrS" {
		return ""
	}
	off := int(binary.LittleEndian.Uint16(b[setupKernelVerAt:]))
	if off == 0 {
		return ""
	}
	at := setupKernelVerOff + off
	if at >= len(b) {
		return ""
	}
	s := b[at:min(len(b), at+maxVersionRead)]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if i := bytes.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	if checkToken("", string(s)) != nil || len(s) > 64 {
		return ""
	}
	return string(s)
}

// KernelVersion returns the release of a kernel image, as `uname -r`
// would print it, read from the setup header of an x86 bzImage (as ukify
// reads it). For other kernels, or an image that does not state one, it is
// an error: the caller then names the version (from /lib/modules, say).
func KernelVersion(kernel *tree.Inode) (string, error) {
	f, err := fileOf("kernel", kernel)
	if err != nil {
		return "", err
	}
	k, err := inspectKernel(f)
	if err != nil {
		return "", err
	}
	if k.version == "" {
		return "", fmt.Errorf("kernel: no x86 setup header naming a version")
	}
	return k.version, nil
}
