package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// PE/COFF layout, from the Microsoft PE/COFF specification. All fields are
// little-endian.

const (
	dosMagic      = "MZ" // e_magic of the MS-DOS stub header
	dosLfanewAt   = 0x3c // e_lfanew: file offset of the PE signature
	peSignature   = "PE\x00\x00"
	pe32PlusMagic = 0x20b    // optional header magic of PE32+ (64-bit)
	pe32Magic     = 0x10b    // ... of PE32, which kiln does not handle
	fileHeaderLen = 20       // binary.Size(fileHeader{})
	optHeaderLen  = 112      // binary.Size(optionalHeader64{})
	dataDirLen    = 8        // binary.Size(dataDirectory{})
	sectionLen    = 40       // binary.Size(sectionHeader{})
	symbolLen     = 18       // one COFF symbol table record
	maxDataDirs   = 16       // data directories the specification defines
	dirSecurity   = 4        // index of the certificate table directory
	subsystemEFI  = 10       // IMAGE_SUBSYSTEM_EFI_APPLICATION
	maxSections   = 96       // the Windows loader's limit, which the specification states
	maxHeaderRead = 64 << 10 // headers are read from this many leading bytes at most
	maxStubSize   = 64 << 20 // a stub larger than this is not a stub
	maxU32        = math.MaxUint32
)

// COFF file header characteristics and section flags used here.
const (
	fileLocalSymsStripped = 0x0008     // IMAGE_FILE_LOCAL_SYMS_STRIPPED
	scnCntCode            = 0x00000020 // IMAGE_SCN_CNT_CODE
	scnCntInitializedData = 0x00000040 // IMAGE_SCN_CNT_INITIALIZED_DATA
	scnMemRead            = 0x40000000 // IMAGE_SCN_MEM_READ
)

// Machine types (COFF file header Machine) of PE32+ images, with the name
// UEFI gives their removable-media boot file, BOOT<NAME>.EFI (UEFI
// specification 2.10, 3.5.1.1). IA32 and ARM images are PE32, which this
// package does not handle.
var machines = map[uint16]string{
	0x8664: "X64",
	0xaa64: "AA64",
	0x5064: "RISCV64",
	0x6264: "LOONGARCH64",
}

// fileHeader is the COFF file header, right after the PE signature.
type fileHeader struct {
	Machine              uint16 // target machine, e.g. 0x8664 for x86-64
	NumberOfSections     uint16 // entries of the section table
	TimeDateStamp        uint32 // seconds since 1970 the linker chose (kept as it is)
	PointerToSymbolTable uint32 // file offset of the COFF symbol table, or 0
	NumberOfSymbols      uint32 // records of the symbol table (a string table follows it)
	SizeOfOptionalHeader uint16 // bytes of the optional header, data directories included
	Characteristics      uint16 // IMAGE_FILE_* flags
}

// optionalHeader64 is the PE32+ optional header up to, not including, its
// data directories.
type optionalHeader64 struct {
	Magic                       uint16 // 0x20b for PE32+
	MajorLinkerVersion          uint8
	MinorLinkerVersion          uint8
	SizeOfCode                  uint32 // sum of the code sections' sizes
	SizeOfInitializedData       uint32 // sum of the initialized data sections' sizes
	SizeOfUninitializedData     uint32 // sum of the bss sections' sizes
	AddressOfEntryPoint         uint32 // RVA of the entry point
	BaseOfCode                  uint32 // RVA of the start of the code
	ImageBase                   uint64 // preferred load address
	SectionAlignment            uint32 // alignment of sections in memory
	FileAlignment               uint32 // alignment of section data in the file
	MajorOperatingSystemVersion uint16
	MinorOperatingSystemVersion uint16
	MajorImageVersion           uint16
	MinorImageVersion           uint16
	MajorSubsystemVersion       uint16
	MinorSubsystemVersion       uint16
	Win32VersionValue           uint32 // reserved, zero
	SizeOfImage                 uint32 // bytes of the image in memory, a multiple of SectionAlignment
	SizeOfHeaders               uint32 // bytes of all headers, a multiple of FileAlignment
	CheckSum                    uint32 // image checksum (firmware ignores it)
	Subsystem                   uint16 // 10 for an EFI application
	DllCharacteristics          uint16
	SizeOfStackReserve          uint64
	SizeOfStackCommit           uint64
	SizeOfHeapReserve           uint64
	SizeOfHeapCommit            uint64
	LoaderFlags                 uint32 // reserved, zero
	NumberOfRvaAndSizes         uint32 // data directories that follow
}

// dataDirectory is one entry of the optional header's data directories.
type dataDirectory struct {
	VirtualAddress uint32 // RVA (for the certificate table: a file offset)
	Size           uint32
}

// sectionHeader is one entry of the section table.
type sectionHeader struct {
	Name                 [8]byte // NUL-padded; 8 bytes without NUL are allowed
	VirtualSize          uint32  // bytes in memory (zero-filled past SizeOfRawData)
	VirtualAddress       uint32  // RVA of the first byte in memory
	SizeOfRawData        uint32  // bytes in the file, a multiple of FileAlignment
	PointerToRawData     uint32  // file offset, a multiple of FileAlignment
	PointerToRelocations uint32  // zero in images
	PointerToLinenumbers uint32  // zero in images
	NumberOfRelocations  uint16
	NumberOfLinenumbers  uint16
	Characteristics      uint32 // IMAGE_SCN_* flags
}

func (s *sectionHeader) name() string {
	return string(bytes.TrimRight(s.Name[:], "\x00"))
}

// memEnd is the RVA just past the section in memory.
func (s *sectionHeader) memEnd() int64 {
	size := s.VirtualSize
	if size == 0 {
		size = s.SizeOfRawData
	}
	return int64(s.VirtualAddress) + int64(size)
}

// peHeaders is what parseHeaders found in a PE image.
type peHeaders struct {
	peAt     int // offset of the PE signature
	file     fileHeader
	opt      optionalHeader64
	dirs     []dataDirectory
	secAt    int // offset of the section table
	sections []sectionHeader
}

func (h *peHeaders) fileAt() int { return h.peAt + len(peSignature) }
func (h *peHeaders) optAt() int  { return h.fileAt() + fileHeaderLen }

// secTableEnd is the offset just past the section table.
func (h *peHeaders) secTableEnd() int { return h.secAt + len(h.sections)*sectionLen }

// machineName is the UEFI name of the image's machine type ("X64").
func (h *peHeaders) machineName() (string, error) {
	n, ok := machines[h.file.Machine]
	if !ok {
		return "", fmt.Errorf("unknown PE machine type 0x%04x", h.file.Machine)
	}
	return n, nil
}

// parseHeaders decodes and checks the headers of a PE32+ EFI application
// whose first bytes are b and whose whole length is size (b may be a
// prefix). It checks what every use here relies on; parseStub checks more.
func parseHeaders(b []byte, size int64) (*peHeaders, error) {
	if len(b) < 0x40 || string(b[:2]) != dosMagic {
		return nil, fmt.Errorf("not a PE image: no MZ header")
	}
	h := &peHeaders{}
	lfanew := int64(binary.LittleEndian.Uint32(b[dosLfanewAt:]))
	if lfanew < 0x40 || lfanew+int64(len(peSignature)+fileHeaderLen+optHeaderLen) > int64(len(b)) {
		return nil, fmt.Errorf("not a PE image: PE header offset 0x%x is outside the first %d bytes", lfanew, len(b))
	}
	h.peAt = int(lfanew)
	if string(b[h.peAt:h.peAt+4]) != peSignature {
		return nil, fmt.Errorf("not a PE image: no PE signature at 0x%x", h.peAt)
	}
	mustDecode(b[h.fileAt():], &h.file)
	mustDecode(b[h.optAt():], &h.opt)
	switch h.opt.Magic {
	case pe32PlusMagic:
	case pe32Magic:
		return nil, fmt.Errorf("PE32 (32-bit) images are not supported, only PE32+")
	default:
		return nil, fmt.Errorf("not a PE image: optional header magic 0x%x", h.opt.Magic)
	}
	if h.opt.Subsystem != subsystemEFI {
		return nil, fmt.Errorf("not an EFI application: PE subsystem %d", h.opt.Subsystem)
	}
	if h.opt.NumberOfRvaAndSizes > maxDataDirs {
		return nil, fmt.Errorf("PE header: %d data directories, at most %d exist", h.opt.NumberOfRvaAndSizes, maxDataDirs)
	}
	dirsLen := int(h.opt.NumberOfRvaAndSizes) * dataDirLen
	if int(h.file.SizeOfOptionalHeader) < optHeaderLen+dirsLen {
		return nil, fmt.Errorf("PE header: optional header of %d bytes cannot hold its %d data directories", h.file.SizeOfOptionalHeader, h.opt.NumberOfRvaAndSizes)
	}
	h.secAt = h.optAt() + int(h.file.SizeOfOptionalHeader)
	n := int(h.file.NumberOfSections)
	if n > maxSections {
		return nil, fmt.Errorf("PE header: %d sections, at most %d allowed", n, maxSections)
	}
	if h.secAt+n*sectionLen > len(b) {
		return nil, fmt.Errorf("PE header: section table (0x%x, %d sections) is outside the first %d bytes", h.secAt, n, len(b))
	}
	h.dirs = make([]dataDirectory, h.opt.NumberOfRvaAndSizes)
	for i := range h.dirs {
		mustDecode(b[h.optAt()+optHeaderLen+i*dataDirLen:], &h.dirs[i])
	}
	h.sections = make([]sectionHeader, n)
	for i := range h.sections {
		mustDecode(b[h.secAt+i*sectionLen:], &h.sections[i])
	}
	fa, sa := h.opt.FileAlignment, h.opt.SectionAlignment
	if fa < 512 || fa > 64<<10 || bits.OnesCount32(fa) != 1 {
		return nil, fmt.Errorf("PE header: FileAlignment 0x%x is not a power of two from 512 to 64 KiB", fa)
	}
	if sa < fa || bits.OnesCount32(sa) != 1 {
		return nil, fmt.Errorf("PE header: SectionAlignment 0x%x is not a power of two at least FileAlignment (0x%x)", sa, fa)
	}
	if int64(h.opt.SizeOfHeaders) > size || int64(h.opt.SizeOfHeaders) < int64(h.secTableEnd()) {
		return nil, fmt.Errorf("PE header: SizeOfHeaders 0x%x does not cover the section table (ends at 0x%x) or exceeds the file (%d bytes)", h.opt.SizeOfHeaders, h.secTableEnd(), size)
	}
	var prevEnd int64
	for i := range h.sections {
		s := &h.sections[i]
		if s.SizeOfRawData > 0 && int64(s.PointerToRawData)+int64(s.SizeOfRawData) > size {
			return nil, fmt.Errorf("PE section %d (%q): data 0x%x+0x%x is outside the file (%d bytes)", i, s.name(), s.PointerToRawData, s.SizeOfRawData, size)
		}
		if int64(s.VirtualAddress) < prevEnd || s.memEnd() > maxU32 {
			return nil, fmt.Errorf("PE section %d (%q): address 0x%x overlaps the section before it or wraps", i, s.name(), s.VirtualAddress)
		}
		prevEnd = s.memEnd()
	}
	return h, nil
}

// mustDecode decodes a fixed-size little-endian structure from b, which
// the caller has checked is long enough.
func mustDecode(b []byte, v any) {
	if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
		panic(fmt.Sprintf("BUG: decoding %T: %v", v, err))
	}
}

// mustEncode encodes a fixed-size little-endian structure into b.
func mustEncode(b []byte, v any) {
	if _, err := binary.Encode(b, binary.LittleEndian, v); err != nil {
		panic(fmt.Sprintf("BUG: encoding %T: %v", v, err))
	}
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// peMachine reads f's PE headers and returns its UEFI machine name and
// type.
func peMachine(what string, f *File) (string, uint16, error) {
	b, err := f.readPrefix(what, maxHeaderRead)
	if err != nil {
		return "", 0, err
	}
	h, err := parseHeaders(b, f.Size)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", what, err)
	}
	arch, err := h.machineName()
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", what, err)
	}
	return arch, h.file.Machine, nil
}
