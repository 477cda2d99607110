package syslinux

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

const (
	sectorSize = 512

	ldlinuxMagic = 0x3eb202fe // LDLINUX_MAGIC (syslxint.h)
	bsMagicVer   = 0x1b << 9  // BS_MAGIC_VER: the high bits of the boot sector's link word

	// loadAddr is where the boot sector loads ldlinux.sys (generate_extents
	// counts from it; the core is linked for it).
	loadAddr = 0x8000
	// pmCodeStart is where the core decompresses its 32-bit part
	// (__pm_code_start in core/i386/syslinux.ld).
	pmCodeStart = 0x100000

	// Placeholders the boot sector holds where the installer puts the
	// first sector of ldlinux.sys (Sect1Ptr0_VAL, Sect1Ptr1_VAL in
	// core/diskstart.inc).
	sect1Ptr0Val = 0xdeadbeef
	sect1Ptr1Val = 0xfeedface

	// Boot sector offsets (struct fat_boot_sector).
	bsHeadLen    = 11    // bsJump and bsOemName: what make_bootsect copies first
	bsCode       = 0x5A  // bs32.Code: syslinux's code, also on FAT12/16
	bsMagicOff   = 0x1F8 // bsMagic: LDLINUX_MAGIC
	bsLinkOff    = 0x1FC // bsForwardPtr: (Sect1Load - bootsec) | BS_MAGIC_VER
	bsSignature  = 0x1FE // 0x55 0xAA
	bannerMaxLen = 128

	maxInstaller = 64 << 20 // the installer is about 200 KiB
	maxImage     = 1 << 20  // ldlinux.sys is about 57 KiB; the core must fit below 640 KiB
	// maxCandidates bounds the work on a hostile file full of magic
	// numbers; the installer has one boot sector and one ldlinux.sys.
	maxCandidates = 16
)

// patchArea is ldlinux.sys's patch area (struct patch_area), found at
// LDLINUX_MAGIC, 8-byte aligned after the banner.
type patchArea struct {
	Magic       uint32 // ldlinuxMagic
	Instance    uint32 // LDLINUX_MAGIC ^ build date: the boot sector checks it
	DataSectors uint16 // sectors of ldlinux.sys without the ADV; set by the installer
	ADVSectors  uint16 // sectors of the ADV (2); set by the installer
	Dwords      uint32 // dwords of ldlinux.sys the checksum covers; set by the installer
	Checksum    uint32 // LDLINUX_MAGIC minus the sum of those dwords; set by the installer
	MaxTransfer uint16 // sectors per BIOS read (127)
	EPAOffset   uint16 // offset of the extended patch area in ldlinux.sys
}

// extPatchArea is the extended patch area (struct ext_patch_area). Offsets
// are into ldlinux.sys, except Sect1Ptr0, Sect1Ptr1 and RAIDPatch, which
// are into the boot sector.
type extPatchArea struct {
	ADVPtrOffset uint16 // two uint64: the sectors of the two ADV copies
	DirOffset    uint16 // the install directory, NUL-terminated
	DirLen       uint16
	SubvolOffset uint16 // the btrfs subvolume, NUL-terminated
	SubvolLen    uint16
	SecPtrOffset uint16 // SecPtrCnt extents of ldlinux.sys after its first sector
	SecPtrCnt    uint16
	Sect1Ptr0    uint16 // low dword of the first sector's address
	Sect1Ptr1    uint16 // high dword of the first sector's address
	RAIDPatch    uint16 // where --raid patches in INT 18h
}

// extentSize is the size of struct syslinux_extent: uint64 lba, uint16 len.
const extentSize = 10

var (
	patchAreaSize    = binary.Size(patchArea{})
	extPatchAreaSize = binary.Size(extPatchArea{})
)

// Image is syslinux's BIOS code for FAT, as Extract finds it in the
// installer. Its fields are not to be modified.
type Image struct {
	// BootSector is the unpatched boot sector (ldlinux.bss).
	BootSector [sectorSize]byte
	// LDLinux is the unpatched ldlinux.sys without the ADV: a multiple of
	// 512 bytes (the installer's syslinux_ldlinux[], zero padded).
	LDLinux []byte
	// Banner is ldlinux.sys's banner, such as "SYSLINUX 6.04".
	Banner string
	// Instance is the build's instance word that ties the boot sector to
	// ldlinux.sys.
	Instance uint32

	pa    int // offset of the patch area (LDLINUX_MAGIC) in LDLinux
	epa   extPatchArea
	bytes int // length of ldlinux.sys before the padding
}

// ErrNotInstaller is returned (wrapped) when a file holds no syslinux
// boot sector and ldlinux.sys.
var ErrNotInstaller = errors.New("no syslinux boot sector and ldlinux.sys in it")

// Extract finds the boot sector and ldlinux.sys in the syslinux installer
// (the ELF executable /usr/bin/syslinux of Debian's package syslinux),
// whose bytes are exe, and verifies them (see the package documentation).
// name is for messages.
func Extract(exe []byte, name string) (*Image, error) {
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		return nil, fmt.Errorf("syslinux: %s: not an ELF executable (%v): %w", name, err, ErrNotInstaller)
	}
	var (
		boots [][]byte // boot sector candidates
		syss  []*Image // verified ldlinux.sys images, without their boot sector
		errs  []string // why candidates failed
	)
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Size > maxInstaller {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("syslinux: %s: reading section %s: %w", name, s.Name, err)
		}
		b, sys, why := scanSection(data)
		boots, syss = append(boots, b...), append(syss, sys...)
		for _, w := range why {
			errs = append(errs, s.Name+": "+w)
		}
	}
	var found []*Image
	for _, img := range syss {
		paired := 0
		for _, b := range boots {
			if err := img.pairBootSector(b); err != nil {
				errs = append(errs, fmt.Sprintf("boot sector candidate: %v", err))
				continue
			}
			paired++
			cp := *img
			copy(cp.BootSector[:], b)
			found = append(found, &cp)
		}
		if paired == 0 {
			errs = append(errs, "ldlinux.sys: no boot sector that loads it")
		}
	}
	switch {
	case len(found) == 0 && len(errs) == 0:
		return nil, fmt.Errorf("syslinux: %s: %w", name, ErrNotInstaller)
	case len(found) == 0:
		return nil, fmt.Errorf("syslinux: %s: found syslinux's magic but nothing that checks out: %s: %w",
			name, strings.Join(errs, "; "), ErrNotInstaller)
	}
	for _, img := range found[1:] {
		if img.BootSector != found[0].BootSector || !bytes.Equal(img.LDLinux, found[0].LDLinux) {
			return nil, fmt.Errorf("syslinux: %s: holds %d different boot sector and ldlinux.sys pairs", name, len(found))
		}
	}
	return found[0], nil
}

// scanSection returns the boot sector candidates and the verified
// ldlinux.sys images in one section's data, and why each ldlinux.sys
// candidate that was not one failed.
func scanSection(data []byte) (boots [][]byte, syss []*Image, why []string) {
	magic := binary.LittleEndian.AppendUint32(nil, ldlinuxMagic)
	var sys []int // offsets of LDLINUX_MAGIC with a banner before it
	for i := 0; ; i++ {
		k := bytes.Index(data[i:], magic)
		if k < 0 {
			break
		}
		i += k
		if b := i - bsMagicOff; b >= 0 && b+sectorSize <= len(data) && isBootSector(data[b:b+sectorSize]) {
			boots = append(boots, data[b:b+sectorSize])
		}
		if _, ok := bannerBefore(data, i); ok {
			sys = append(sys, i)
		}
		if len(boots) > maxCandidates || len(sys) > maxCandidates {
			return nil, nil, []string{fmt.Sprintf("more than %d places look like syslinux's code", maxCandidates)}
		}
	}
	for _, m := range sys {
		img, err := parseLDLinux(data, m)
		if err != nil {
			why = append(why, fmt.Sprintf("ldlinux.sys candidate at %#x: %v", m, err))
			continue
		}
		syss = append(syss, img)
	}
	return boots, syss, why
}

// isBootSector reports whether b looks like syslinux's boot sector: a
// short jump, LDLINUX_MAGIC, the link word and the 0x55AA signature.
func isBootSector(b []byte) bool {
	return b[0] == 0xEB &&
		binary.LittleEndian.Uint32(b[bsMagicOff:]) == ldlinuxMagic &&
		binary.LittleEndian.Uint16(b[bsLinkOff:])&^0x1FF == bsMagicVer &&
		b[bsSignature] == 0x55 && b[bsSignature+1] == 0xAA
}

// bannerBefore finds the start of ldlinux.sys, given the offset m of its
// LDLINUX_MAGIC: the banner "\r\n" TEXT "\0\r\n\x1a", then zeros up to
// the 8-byte aligned magic. It returns the start and the banner text.
func bannerBefore(data []byte, m int) (int, bool) {
	j := m
	for k := 0; k < 7 && j > 0 && data[j-1] == 0; k++ {
		j--
	}
	if j < 4 || string(data[j-4:j]) != "\x00\r\n\x1a" {
		return 0, false
	}
	t := j - 4
	for t > 0 && j-4-t < bannerMaxLen && data[t-1] >= 0x20 && data[t-1] < 0x7F {
		t--
	}
	s := t - 2
	if t == j-4 || s < 0 || string(data[s:t]) != "\r\n" || (m-s)%8 != 0 {
		return 0, false
	}
	return s, true
}

// parseLDLinux reads and verifies ldlinux.sys whose LDLINUX_MAGIC is at
// data[m].
func parseLDLinux(data []byte, m int) (*Image, error) {
	s, _ := bannerBefore(data, m)
	img := &Image{
		Banner: strings.TrimSpace(string(bytes.TrimRight(data[s+2:m], "\x00\r\n\x1a"))),
		pa:     m - s,
	}
	if m+patchAreaSize > len(data) {
		return nil, errors.New("the patch area is cut off")
	}
	var pa patchArea
	mustDecode(data[m:], &pa)
	img.Instance = pa.Instance
	if pa.DataSectors != 0 || pa.ADVSectors != 0 || pa.Dwords != 0 || pa.Checksum != 0 {
		return nil, errors.New("the patch area is already patched: not an installer's pristine copy")
	}
	if pa.MaxTransfer == 0 {
		return nil, errors.New("the patch area's maximum transfer is 0")
	}

	// The length: from the core's call of its decompressor (core/init.inc,
	// pm_decompress):
	//	push __pm_code_len+16	68 imm32
	//	push esp		54
	//	push __pm_code_start	68 00 00 10 00
	//	push dword [lzo_data_size]	ff 35 addr32
	//	push dword __pm_code_lma	68 imm32
	//	call ...		e8
	pattern := []byte{0x54, 0x68, 0x00, 0x00, 0x10, 0x00, 0xFF, 0x35}
	binary.LittleEndian.PutUint32(pattern[2:], pmCodeStart)
	var calls []int
	lim := min(len(data), s+maxImage)
	for i := s; i < lim; i++ {
		k := bytes.Index(data[i:lim], pattern)
		if k < 0 {
			break
		}
		i += k
		if i-5 >= s && data[i-5] == 0x68 && i+18 <= len(data) && data[i+12] == 0x68 && data[i+17] == 0xE8 {
			calls = append(calls, i)
		}
	}
	if len(calls) != 1 {
		return nil, fmt.Errorf("found %d calls of the core's decompressor, want 1", len(calls))
	}
	c := calls[0]
	pmLen := int64(binary.LittleEndian.Uint32(data[c-4:])) - 16
	sizeField := int64(binary.LittleEndian.Uint32(data[c+8:])) - loadAddr
	lma := int64(binary.LittleEndian.Uint32(data[c+13:])) - loadAddr
	avail := int64(min(len(data)-s, maxImage))
	if pmLen <= 0 || pmLen > 16<<20 {
		return nil, fmt.Errorf("the core's 32-bit part is %d bytes long", pmLen)
	}
	if sizeField < int64(m-s) || sizeField+4 > lma || lma > avail {
		return nil, fmt.Errorf("the compressed part (at %d) or its length field (at %d) is out of place", lma, sizeField)
	}
	clen := int64(binary.LittleEndian.Uint32(data[int64(s)+sizeField:]))
	end := lma + clen
	if clen == 0 || end > avail {
		return nil, fmt.Errorf("the compressed part of %d bytes at %d does not fit", clen, lma)
	}
	outLen, inLen, err := lzo1xLength(data[int64(s)+lma:int64(s)+end], int(pmLen))
	if err != nil {
		return nil, fmt.Errorf("the compressed part: %w", err)
	}
	if int64(outLen) != pmLen || int64(inLen) != clen {
		return nil, fmt.Errorf("the compressed part decodes %d of its %d bytes to %d bytes, want all to %d", inLen, clen, outLen, pmLen)
	}
	padded := (end + sectorSize - 1) / sectorSize * sectorSize
	if padded > avail {
		return nil, fmt.Errorf("ldlinux.sys of %d bytes is cut off at %d", padded, avail)
	}
	for _, b := range data[int64(s)+end : int64(s)+padded] {
		if b != 0 {
			return nil, errors.New("the padding after ldlinux.sys is not zero")
		}
	}
	img.bytes = int(end)
	img.LDLinux = bytes.Clone(data[s : int64(s)+padded])

	// The extended patch area and everything it points to.
	sys := img.LDLinux
	if int(pa.EPAOffset)+extPatchAreaSize > len(sys) {
		return nil, fmt.Errorf("the extended patch area at %d is outside the image", pa.EPAOffset)
	}
	mustDecode(sys[pa.EPAOffset:], &img.epa)
	e := img.epa
	for _, r := range []struct {
		what     string
		off, len int
	}{
		{"the ADV pointers", int(e.ADVPtrOffset), 16},
		{"the directory field", int(e.DirOffset), int(e.DirLen)},
		{"the subvolume field", int(e.SubvolOffset), int(e.SubvolLen)},
		{"the sector extents", int(e.SecPtrOffset), int(e.SecPtrCnt) * extentSize},
	} {
		if r.off < img.pa+patchAreaSize || r.off+r.len > img.bytes {
			return nil, fmt.Errorf("%s (%d bytes at %d) are outside the image", r.what, r.len, r.off)
		}
	}
	if e.SecPtrCnt == 0 {
		return nil, errors.New("the image has room for no sector extents")
	}
	for _, b := range sys[e.SecPtrOffset : int(e.SecPtrOffset)+int(e.SecPtrCnt)*extentSize] {
		if b != 0 {
			return nil, errors.New("the sector extents are not empty")
		}
	}
	for _, b := range sys[e.ADVPtrOffset : e.ADVPtrOffset+16] {
		if b != 0 {
			return nil, errors.New("the ADV pointers are not empty")
		}
	}
	return img, nil
}

// pairBootSector checks that boot sector b loads this ldlinux.sys: it
// compares the instance word at the load address of the patch area, and it
// holds the placeholders for the first sector's address where the extended
// patch area says.
func (img *Image) pairBootSector(b []byte) error {
	want := binary.LittleEndian.AppendUint16(nil, uint16(loadAddr+img.pa+4))
	want = binary.LittleEndian.AppendUint32(want, img.Instance)
	if !bytes.Contains(b[bsCode:bsMagicOff], want) {
		return fmt.Errorf("it does not check instance %#08x at %#x", img.Instance, loadAddr+img.pa+4)
	}
	e := img.epa
	for _, p := range []struct {
		off  uint16
		want uint32
	}{{e.Sect1Ptr0, sect1Ptr0Val}, {e.Sect1Ptr1, sect1Ptr1Val}} {
		if p.off < bsCode || int(p.off)+4 > bsMagicOff {
			return fmt.Errorf("the first sector's address goes at %#x, outside its code", p.off)
		}
		if got := binary.LittleEndian.Uint32(b[p.off:]); got != p.want {
			return fmt.Errorf("%#08x at %#x, not the placeholder %#08x", got, p.off, p.want)
		}
	}
	if e.RAIDPatch < bsCode || int(e.RAIDPatch)+2 > bsMagicOff {
		return fmt.Errorf("the RAID patch goes at %#x, outside its code", e.RAIDPatch)
	}
	return nil
}

func mustDecode(b []byte, v any) {
	if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
		panic("BUG: syslinux: decoding: " + err.Error())
	}
}
