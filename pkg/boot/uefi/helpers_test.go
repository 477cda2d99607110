package uefi

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

const testEpoch = 1700000000 // 2023-11-14 22:13:20 UTC

func fileInode(data []byte) *tree.Inode {
	return &tree.Inode{Kind: tree.Regular, Mode: 0o755, UID: 1000, GID: 1000, Mtime: 12345, Size: int64(len(data)), Content: bytesContent(data)}
}

// peSec is a section of a test PE image.
type peSec struct {
	name  string
	data  []byte
	vsize uint32 // 0: len(data)
	flags uint32
}

// peSpec describes a PE32+ image made by makePE. Zero values get the
// defaults of systemd 252's stub: x86-64, EFI application, 512-byte file
// and section alignment, SizeOfHeaders 0x400.
type peSpec struct {
	machine       uint16
	magic         uint16
	subsystem     uint16
	fileAlign     uint32
	sectAlign     uint32
	sizeOfHeaders uint32
	timestamp     uint32
	checksum      uint32
	sections      []peSec
	symbols       int  // COFF symbol records appended at the end, with a string table
	signed        bool // a certificate table directory entry
	setupVersion  string
	headerJunk    bool // a non-zero byte right after the section table
}

// makePE builds a small, valid PE32+ image: the DOS header, at 0x40 the PE
// signature, COFF header, optional header with 16 data directories and the
// section table; each section's data at the next file-aligned offset, and
// at the next section-aligned address from 0x1000 (or SectionAlignment). With setupVersion, an
// x86 setup header ("HdrS") at 0x202 points to that version string at 0x300.
func makePE(t testing.TB, s peSpec) []byte {
	t.Helper()
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.fileAlign, 0x200)
	def(&s.sectAlign, 0x200)
	def(&s.sizeOfHeaders, 0x400)
	if s.machine == 0 {
		s.machine = 0x8664
	}
	if s.magic == 0 {
		s.magic = pe32PlusMagic
	}
	if s.subsystem == 0 {
		s.subsystem = subsystemEFI
	}
	const peAt = 0x40
	secAt := peAt + 4 + fileHeaderLen + optHeaderLen + 16*dataDirLen
	// The headers take SizeOfHeaders bytes, or more where a test makes the
	// section table overflow them.
	hdrLen := max(int64(s.sizeOfHeaders), roundUp(int64(secAt+len(s.sections)*sectionLen), int64(s.fileAlign)))
	img := make([]byte, hdrLen)
	copy(img, "MZ")
	binary.LittleEndian.PutUint32(img[dosLfanewAt:], peAt)
	copy(img[peAt:], peSignature)
	var hdrs []sectionHeader
	off, va := hdrLen, roundUp(0x1000, int64(s.sectAlign))
	var initData uint32
	for _, sec := range s.sections {
		raw := roundUp(int64(len(sec.data)), int64(s.fileAlign))
		vs := sec.vsize
		if vs == 0 {
			vs = uint32(len(sec.data))
		}
		h := sectionHeader{VirtualSize: vs, VirtualAddress: uint32(va), SizeOfRawData: uint32(raw), PointerToRawData: uint32(off), Characteristics: sec.flags}
		copy(h.Name[:], sec.name)
		hdrs = append(hdrs, h)
		img = append(img, sec.data...)
		img = append(img, make([]byte, raw-int64(len(sec.data)))...)
		off += raw
		va = roundUp(va+int64(vs), int64(s.sectAlign))
		initData += vs
	}
	fh := fileHeader{Machine: s.machine, NumberOfSections: uint16(len(hdrs)), TimeDateStamp: s.timestamp,
		SizeOfOptionalHeader: optHeaderLen + 16*dataDirLen, Characteristics: 0x206}
	if s.symbols > 0 {
		fh.PointerToSymbolTable = uint32(len(img))
		fh.NumberOfSymbols = uint32(s.symbols)
		img = append(img, bytes.Repeat([]byte{0xAB}, symbolLen*s.symbols)...)
		img = binary.LittleEndian.AppendUint32(img, 4+6)
		img = append(img, "label\x00"...)
	}
	oh := optionalHeader64{Magic: s.magic, SizeOfInitializedData: initData, AddressOfEntryPoint: 0x1000,
		SectionAlignment: s.sectAlign, FileAlignment: s.fileAlign, SizeOfImage: uint32(va),
		SizeOfHeaders: s.sizeOfHeaders, CheckSum: s.checksum, Subsystem: s.subsystem, NumberOfRvaAndSizes: 16}
	mustEncode(img[peAt+4:], &fh)
	mustEncode(img[peAt+4+fileHeaderLen:], &oh)
	if s.signed {
		mustEncode(img[peAt+4+fileHeaderLen+optHeaderLen+dirSecurity*dataDirLen:], &dataDirectory{VirtualAddress: uint32(len(img)), Size: 8})
	}
	for i := range hdrs {
		mustEncode(img[secAt+i*sectionLen:], &hdrs[i])
	}
	if s.headerJunk {
		img[secAt+len(hdrs)*sectionLen] = 1
	}
	if s.setupVersion != "" {
		copy(img[setupMagicAt:], "HdrS")
		binary.LittleEndian.PutUint16(img[setupKernelVerAt:], 0x100)
		copy(img[0x300:], s.setupVersion+"\x00")
	}
	return img
}

// testStub is a stub shaped like systemd 252's: .text, .reloc, .data
// (VirtualSize below SizeOfRawData), .sdmagic, and a symbol table.
func testStub(t testing.TB) []byte {
	return makePE(t, peSpec{
		timestamp: 0x5eadbeef,
		checksum:  0x1234,
		sections: []peSec{
			{name: ".text", data: bytes.Repeat([]byte{0xCC}, 0x900), flags: 0x60000020},
			{name: ".reloc", data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, flags: 0x42000040},
			{name: ".data", data: bytes.Repeat([]byte{0x11}, 0x500), vsize: 0x4b8, flags: 0xc0000040},
			{name: ".sdmagic", data: []byte("#### LoaderInfo: systemd-stub 252 ####"), flags: 0x40000040},
		},
		symbols: 3,
	})
}

// testKernel is a small EFI-stub "kernel" with an x86 setup header.
func testKernel(t testing.TB) []byte {
	return makePE(t, peSpec{
		sections: []peSec{
			{name: ".setup", data: bytes.Repeat([]byte{0x22}, 0x600), flags: 0x40000040},
			{name: ".text", data: bytes.Repeat([]byte{0x33}, 0x1234), flags: 0x60000020},
		},
		setupVersion: "6.1.0-99-amd64 (kiln@example.org) (gcc) #1 SMP Debian",
	})
}

// The real Debian packages (see testkit.FindDeb) and the files of theirs
// that tests use.
const (
	stubPath    = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	loaderPath  = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	busyboxPath = "/bin/busybox"
)

// debFile returns the regular file at p (no symlinks followed) of the
// .deb matching pattern.
func debFile(t testing.TB, pattern, p string) *tree.Inode {
	t.Helper()
	return trees.Regular(t, trees.Debs(t, testEpoch, pattern), p)
}

// kernelOf returns the vmlinuz of the kernel package.
func kernelOf(t testing.TB) *tree.Inode {
	t.Helper()
	return trees.Kernel(t, trees.Debs(t, testEpoch, testkit.DebKernel))
}
