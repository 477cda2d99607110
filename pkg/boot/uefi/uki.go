package uefi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/tree"
)

// UKI describes a Unified Kernel Image: systemd's EFI stub with the
// kernel, initrd, command line and os-release as PE sections.
type UKI struct {
	Stub      *tree.Inode // linuxx64.efi.stub (systemd-boot-efi) from the merged tree
	Kernel    *tree.Inode // the kernel image (vmlinuz): an EFI-stub kernel for the stub's machine
	Initrd    *File       // the initrd; nil for none
	Cmdline   string      // the kernel command line (.cmdline); "" for none
	OSRelease []byte      // the bytes of the tree's os-release (.osrel); nil for none
	Uname     string      // the kernel release (.uname); "" reads it from an x86 kernel, or leaves it out
	Epoch     int64       // mtime of the files InstallUKI adds
}

// uki section names, in the order ukify appends them: .osrel, .cmdline,
// .uname, .initrd, .sbat, .linux. That is ukify's order from systemd 254
// (the first ukify that writes .sbat; systemd 252, Debian bookworm's, has
// no ukify, and its systemd-stub(7) names no order), which kiln follows
// because it keeps .linux last ("to leave breathing room for
// decompression": a kernel started in place through the EFI handover
// protocol decompresses past its end), with the kernel's length as its
// VirtualSize, as the era of stubs like 252 expects (see the package
// documentation). Current ukify (systemd main) puts .linux before .sbat, with the
// kernel's SizeOfImage as VirtualSize, for newer stubs that load the
// kernel with LoadImage. .dtb, .splash, .pcrpkey and .pcrsig, which
// kiln does not make, would go between .cmdline and .initrd (.pcrsig
// between .sbat and .linux).
//
// ukify writes the merged .sbat over the stub's own .sbat section when it
// fits that section's SizeOfRawData. kiln instead takes the stub's .sbat
// out of the section table and appends the merged one in the order above:
// in Debian's 252 stub, .sbat (0xe2 bytes at 0x19000) is followed in memory
// by .sdmagic at 0x19100, so the merged 0x134 bytes written in place would
// overlap .sdmagic, an invalid image that kiln's own PE reader refuses
// (systemd's maintainers call deleting and recreating .sbat the durable
// fix, systemd PR #38589).
const (
	secOSRel   = ".osrel"
	secCmdline = ".cmdline"
	secUname   = ".uname"
	secInitrd  = ".initrd"
	secLinux   = ".linux"
)

// dirDebug is the index of the debug directory, whose entries hold file
// offsets.
const dirDebug = 6

// ukiPart is a run of bytes of the UKI: bytes held here, a File streamed
// from its Content, or zeros.
type ukiPart struct {
	b     []byte
	f     *File
	what  string
	zeros int64
}

// ukiImage is a planned UKI: its bytes, as parts, and its length.
type ukiImage struct {
	parts []ukiPart
	size  int64
	arch  string // UEFI name of the machine type ("X64")
}

// newSection is a section BuildUKI appends.
type newSection struct {
	name  string
	data  *File
	flags uint32
}

// NewUKI plans the UKI u describes and returns it as a File whose Content
// streams it: the stub's headers and sections are held in memory (tens of
// KiB), the kernel and initrd are read from their Contents each time the
// UKI is opened. The stub is read, and the kernel's headers, now.
func NewUKI(u UKI) (*File, error) {
	img, err := planUKI(u)
	if err != nil {
		return nil, err
	}
	return &File{Content: img, Size: img.size}, nil
}

// BuildUKI writes the UKI u describes to w (see the package documentation
// for the layout), streaming the kernel and initrd.
func BuildUKI(w io.Writer, u UKI) error {
	img, err := planUKI(u)
	if err != nil {
		return err
	}
	r := img.reader()
	defer r.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return fmt.Errorf("uki: %w", err)
	}
	if n != img.size {
		return fmt.Errorf("BUG: uki: wrote %d bytes, planned %d", n, img.size)
	}
	return nil
}

// InstallUKI builds the UKI u describes into esp as /EFI/Linux/NAME.efi,
// where systemd-boot finds Boot Loader Specification type #2 entries
// (kernel-install names it ENTRY-TOKEN-KERNEL-VERSION), and as the
// removable-media boot file /EFI/BOOT/BOOTX64.EFI (BOOTAA64.EFI ... after
// the stub's machine type), which firmware boots without an NVRAM entry.
// Both are the same streamed content.
func InstallUKI(esp *tree.Tree, u UKI, name string) error {
	if err := checkToken("uki: name", name); err != nil {
		return err
	}
	f, err := NewUKI(u)
	if err != nil {
		return err
	}
	arch := f.Content.(*ukiImage).arch
	files := []espFile{{"/EFI/BOOT/BOOT" + arch + ".EFI", f}, {"/EFI/Linux/" + name + ".efi", f}}
	if err := putAll(esp, files, u.Epoch); err != nil {
		return fmt.Errorf("uki: %w", err)
	}
	return nil
}

// planUKI checks the inputs and lays the UKI out.
func planUKI(u UKI) (*ukiImage, error) {
	stubF, err := fileOf("uki: stub", u.Stub)
	if err != nil {
		return nil, err
	}
	kernel, err := fileOf("uki: kernel", u.Kernel)
	if err != nil {
		return nil, err
	}
	if err := checkFile("uki: initrd", u.Initrd); err != nil {
		return nil, err
	}
	if err := checkCmdline(u.Cmdline); err != nil {
		return nil, err
	}
	stub, err := stubF.readAll("uki: stub", maxStubSize)
	if err != nil {
		return nil, err
	}
	h, err := parseHeaders(stub, int64(len(stub)))
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	arch, err := h.machineName()
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	k, err := inspectKernel(kernel)
	if err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	if k.machine != h.file.Machine {
		return nil, fmt.Errorf("uki: the kernel is for PE machine 0x%04x, the stub for 0x%04x", k.machine, h.file.Machine)
	}
	uname := u.Uname
	if uname == "" {
		uname = k.version
	} else if err := checkToken("uki: uname", uname); err != nil {
		return nil, err
	}

	stubEntries, stubSBATAt, err := stubSBAT(stub, h)
	if err != nil {
		return nil, err
	}
	kernelEntries, err := kernelSBAT(kernel)
	if err != nil {
		return nil, err
	}

	var secs []newSection
	add := func(name string, f *File, flags uint32) {
		if f != nil && f.Size > 0 {
			secs = append(secs, newSection{name, f, flags})
		}
	}
	data := uint32(scnMemRead | scnCntInitializedData)
	add(secOSRel, Bytes(u.OSRelease), data)
	add(secCmdline, Bytes([]byte(u.Cmdline)), data)
	add(secUname, Bytes([]byte(uname)), data)
	add(secInitrd, u.Initrd, data)
	add(secSBAT, Bytes(mergeSBAT(stubEntries, kernelEntries)), data)
	add(secLinux, kernel, scnMemRead|scnCntCode)
	img, err := layoutUKI(stub, h, secs, stubSBATAt)
	if err != nil {
		return nil, err
	}
	img.arch = arch
	return img, nil
}

// checkCmdline checks a command line for the stub, which (in systemd 252)
// widens it to UTF-16 byte by byte: printable ASCII only.
func checkCmdline(s string) error {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("uki: cmdline %q: only printable ASCII is allowed (byte 0x%02x)", s, c)
		}
	}
	return nil
}

// layoutUKI appends secs to the stub whose headers are h, as ukify's
// pe_add_sections does (see the package documentation). drop, unless it
// is -1, is the index of the stub's .sbat section, which the UKI's merged
// .sbat replaces: its header leaves the section table (the ones after it
// move up) and its bytes leave the file (the sections after them in the
// file move back), so that the image has one .sbat, where secs puts it,
// and no gap between sections in the file: Authenticode hashes a file
// with gaps differently in every tool (sbverify warns about them, and its
// hash then differs from osslsigncode's and kiln's).
func layoutUKI(stub []byte, h *peHeaders, secs []newSection, drop int) (*ukiImage, error) {
	if len(h.dirs) > dirSecurity && h.dirs[dirSecurity] != (dataDirectory{}) {
		return nil, fmt.Errorf("uki: stub: it is signed (it has a certificate table); refusing, as ukify does")
	}
	fa, sa := int64(h.opt.FileAlignment), int64(h.opt.SectionAlignment)

	// The stub's sections: aligned, and where the first one's data starts.
	// New sections go after the end in memory of those that stay.
	firstData := int64(len(stub))
	var dataEnd, memEnd int64
	var kept []sectionHeader
	for i := range h.sections {
		s := &h.sections[i]
		if s.SizeOfRawData > 0 {
			if int64(s.PointerToRawData)%fa != 0 || int64(s.SizeOfRawData)%fa != 0 {
				return nil, fmt.Errorf("uki: stub: section %q data 0x%x+0x%x is not aligned to FileAlignment 0x%x", s.name(), s.PointerToRawData, s.SizeOfRawData, fa)
			}
			firstData = min(firstData, int64(s.PointerToRawData))
			dataEnd = max(dataEnd, int64(s.PointerToRawData)+int64(s.SizeOfRawData))
		}
		if i != drop {
			memEnd = max(memEnd, s.memEnd())
			kept = append(kept, *s)
		}
	}

	// SizeOfHeaders is rounded up to FileAlignment: the first section's
	// data starts at such a boundary, so the bytes up to it are headers.
	file, opt := h.file, h.opt
	opt.SizeOfHeaders = uint32(roundUp(int64(opt.SizeOfHeaders), fa))
	if int64(opt.SizeOfHeaders) > firstData {
		return nil, fmt.Errorf("uki: stub: SizeOfHeaders 0x%x rounded to FileAlignment runs into section data at 0x%x", opt.SizeOfHeaders, firstData)
	}

	// A symbol table at the very end of the file is cut off.
	end := int64(len(stub))
	if sym := int64(file.PointerToSymbolTable); sym != 0 {
		n := sym + symbolLen*int64(file.NumberOfSymbols)
		if n+4 <= end {
			n += int64(binary.LittleEndian.Uint32(stub[n:]))
		}
		if n == end {
			if sym < max(dataEnd, int64(opt.SizeOfHeaders)) {
				return nil, fmt.Errorf("uki: stub: symbol table at 0x%x overlaps the headers or section data (up to 0x%x)", sym, max(dataEnd, int64(opt.SizeOfHeaders)))
			}
			end = sym
			file.PointerToSymbolTable, file.NumberOfSymbols = 0, 0
			file.Characteristics |= fileLocalSymsStripped
		}
	}
	// Bytes after the last section's data that no header points to are
	// dropped, so that the new sections follow the stub's with no gap:
	// Authenticode implementations disagree on bytes between sections
	// (EDK2 hashes by the specification's SUM_OF_BYTES_HASHED rule,
	// sbsigntool and osslsigncode each otherwise), and firmware would
	// refuse a signed UKI with a gap. Debian's arm64 252 stub (gnu-efi,
	// objcopy'd) carries 5 KiB of ELF symbols there that nothing reads.
	if last := max(dataEnd, int64(opt.SizeOfHeaders)); end > last && file.PointerToSymbolTable == 0 &&
		(len(h.dirs) <= dirDebug || h.dirs[dirDebug] == (dataDirectory{})) {
		end = last
	}
	if drop >= 0 && file.PointerToSymbolTable != 0 {
		// Its symbols name sections by number, which would shift.
		return nil, fmt.Errorf("uki: stub: it has a COFF symbol table (at 0x%x, not at the end of the file) and a .sbat section; refusing to renumber its sections", file.PointerToSymbolTable)
	}
	if drop >= 0 && len(h.dirs) > dirDebug && h.dirs[dirDebug] != (dataDirectory{}) {
		// Its entries hold file offsets, which would shift.
		return nil, fmt.Errorf("uki: stub: it has a debug directory and a .sbat section; refusing to move its sections in the file")
	}

	// Room for the new section headers, in bytes that are free.
	tableEnd := int64(h.secTableEnd())
	keptEnd := int64(h.secAt) + int64(len(kept))*sectionLen
	newEnd := keptEnd + int64(len(secs))*sectionLen
	if newEnd > int64(opt.SizeOfHeaders) {
		return nil, fmt.Errorf("uki: stub: no room for %d more section headers: the section table ends at 0x%x and the headers at 0x%x", len(secs), keptEnd, opt.SizeOfHeaders)
	}
	if newEnd > tableEnd && !headerFree(stub, tableEnd, newEnd, h.file.Machine) {
		return nil, fmt.Errorf("uki: stub: the header bytes after the section table (0x%x-0x%x) are not free", tableEnd, newEnd)
	}
	if len(kept)+len(secs) > maxSections {
		return nil, fmt.Errorf("uki: stub: %d sections and %d more are too many", len(kept), len(secs))
	}

	// The dropped section's bytes, from-to, which belong to no other
	// section, are cut out of the file.
	var from, to int64
	if drop >= 0 && h.sections[drop].SizeOfRawData > 0 {
		d := h.sections[drop]
		from, to = int64(d.PointerToRawData), int64(d.PointerToRawData)+int64(d.SizeOfRawData)
		if from < int64(opt.SizeOfHeaders) || to > end {
			return nil, fmt.Errorf("uki: stub: .sbat data 0x%x-0x%x is in the headers or past the sections (0x%x)", from, to, end)
		}
		for i := range kept {
			s := &kept[i]
			if s.SizeOfRawData == 0 {
				continue
			}
			if int64(s.PointerToRawData) < to && from < int64(s.PointerToRawData)+int64(s.SizeOfRawData) {
				return nil, fmt.Errorf("uki: stub: .sbat data 0x%x-0x%x overlaps section %q in the file", from, to, s.name())
			}
			if int64(s.PointerToRawData) >= to {
				s.PointerToRawData -= uint32(to - from)
			}
		}
	}
	head := make([]byte, roundUp(end-(to-from), fa))
	if to > from {
		copy(head[copy(head, stub[:from]):], stub[to:end])
	} else {
		copy(head, stub[:end])
	}
	if drop >= 0 {
		clear(head[h.secAt:tableEnd])
		for i := range kept {
			mustEncode(head[h.secAt+i*sectionLen:], &kept[i])
		}
	}
	img := &ukiImage{parts: []ukiPart{{b: head}}}
	off := int64(len(head))
	va := roundUp(memEnd, sa)
	initData := int64(opt.SizeOfInitializedData)
	var last sectionHeader
	for i, s := range secs {
		raw := roundUp(s.data.Size, fa)
		if off+raw > maxU32 || va+s.data.Size > maxU32 {
			return nil, fmt.Errorf("uki: section %s: the image would be larger than PE allows (4 GiB)", s.name)
		}
		sh := sectionHeader{
			VirtualSize:      uint32(s.data.Size),
			VirtualAddress:   uint32(va),
			SizeOfRawData:    uint32(raw),
			PointerToRawData: uint32(off),
			Characteristics:  s.flags,
		}
		copy(sh.Name[:], s.name)
		mustEncode(head[keptEnd+int64(i)*sectionLen:], &sh)
		img.parts = append(img.parts, ukiPart{f: s.data, what: "uki: " + s.name}, ukiPart{zeros: raw - s.data.Size})
		initData += s.data.Size
		off += raw
		va = roundUp(va+s.data.Size, sa)
		last = sh
	}
	if initData > maxU32 {
		return nil, fmt.Errorf("uki: SizeOfInitializedData would be larger than PE allows (4 GiB)")
	}
	file.NumberOfSections = uint16(len(kept) + len(secs))
	opt.SizeOfInitializedData = uint32(initData)
	if len(secs) > 0 {
		opt.SizeOfImage = uint32(roundUp(int64(last.VirtualAddress)+int64(last.VirtualSize), sa))
	}
	opt.CheckSum = 0
	mustEncode(head[h.fileAt():], &file)
	mustEncode(head[h.optAt():], &opt)
	img.size = off
	return img, nil
}

// aarch64NOP is the AArch64 NOP instruction (0xd503201f), little-endian.
var aarch64NOP = []byte{0x1f, 0x20, 0x03, 0xd5}

// headerFree reports whether the header bytes stub[from:to] that new
// section headers would take hold nothing: zeros, or, in an arm64 stub,
// the NOP instructions gnu-efi's hand-made PE header (systemd 252's
// linuxaa64.efi.stub) is padded with up to the first section. Nothing
// runs them (the entry point is in .text) and no section or data
// directory covers them; ukify writes its section headers over them.
func headerFree(stub []byte, from, to int64, machine uint16) bool {
	if allZero(stub[from:to]) {
		return true
	}
	if machine != 0xaa64 || from%4 != 0 {
		return false
	}
	for i := from; i < to; i += 4 {
		w := stub[i:min(i+4, int64(len(stub)))]
		if !bytes.Equal(w, aarch64NOP[:len(w)]) && !allZero(w) {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Open streams the UKI (it makes a *ukiImage a tree.Content).
func (img *ukiImage) Open() (io.ReadCloser, error) { return img.reader(), nil }

func (img *ukiImage) reader() *ukiReader { return &ukiReader{parts: img.parts} }

// ukiReader reads the parts of a UKI one after the other, opening each
// File when it comes to it.
type ukiReader struct {
	parts []ukiPart
	cur   io.Reader
	rc    io.ReadCloser
}

func (r *ukiReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.parts) == 0 {
				return 0, io.EOF
			}
			part := r.parts[0]
			r.parts = r.parts[1:]
			switch {
			case part.f != nil:
				rc, err := part.f.open(part.what)
				if err != nil {
					return 0, err
				}
				r.cur, r.rc = rc, rc
			case part.b != nil:
				r.cur = bytes.NewReader(part.b)
			default:
				r.cur = io.LimitReader(zeros{}, part.zeros)
			}
		}
		n, err := r.cur.Read(p)
		if err == io.EOF {
			if err := r.closeCur(); err != nil {
				return n, err
			}
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (r *ukiReader) closeCur() error {
	r.cur = nil
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}

func (r *ukiReader) Close() error {
	r.parts = nil
	return r.closeCur()
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
