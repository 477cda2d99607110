package syslinux

import (
	"encoding/binary"
	"fmt"
)

// The Auxiliary Data Vector: two copies of one sector after ldlinux.sys,
// where syslinux keeps data across boots (libinstaller/setadv.c).
const (
	advSize   = 512
	advSector = 2          // sectors of the ADV (both copies)
	advMagic1 = 0x5a2d2fa5 // head signature
	advMagic2 = 0xa3041767 // total checksum
	advMagic3 = 0xdd28bf64 // tail signature
)

// emptyADV returns the two copies of an empty ADV, as syslinux_reset_adv
// makes them: the head signature, a checksum that makes the dwords from 4
// to the tail sum to advMagic2, zeros, the tail signature.
func emptyADV() []byte {
	b := make([]byte, advSector*advSize)
	a := b[:advSize]
	binary.LittleEndian.PutUint32(a[0:], advMagic1)
	sum := uint32(advMagic2)
	for i := 8; i < advSize-4; i += 4 {
		sum -= binary.LittleEndian.Uint32(a[i:])
	}
	binary.LittleEndian.PutUint32(a[4:], sum)
	binary.LittleEndian.PutUint32(a[advSize-4:], advMagic3)
	copy(b[advSize:], a)
	return b
}

// FileBytes returns the content of /ldlinux.sys as the installer first
// writes it: the unpatched image followed by the empty ADV.
func (img *Image) FileBytes() []byte {
	return append(append(make([]byte, 0, len(img.LDLinux)+advSector*advSize), img.LDLinux...), emptyADV()...)
}

// sectorCount is how many sectors /ldlinux.sys takes, ADV included.
func (img *Image) sectorCount() int { return len(img.LDLinux)/sectorSize + advSector }

// extent is struct syslinux_extent.
type extent struct {
	LBA uint64
	Len uint16
}

// extents groups the sectors ldlinux.sys loads after its first one into
// runs, as generate_extents does: consecutive sectors, each run under 64
// KiB. (generate_extents also means to keep a run from crossing a 64 KiB
// boundary of memory, but its test compares a sector's address with the
// sector's own last byte, so it never cuts a run; the same arithmetic is
// kept here, since the extents must be the installer's.)
func extents(sectors []uint64) []extent {
	var (
		out  []extent
		addr uint32 = loadAddr // the address of the sector at hand
		base uint32
		cur  extent
	)
	for _, s := range sectors {
		if cur.Len > 0 {
			xbytes := (uint32(cur.Len) + 1) * sectorSize
			if s == cur.LBA+uint64(cur.Len) && xbytes < 65536 && (addr^(base+xbytes-1))&0xffff0000 == 0 {
				cur.Len++
				addr += sectorSize
				continue
			}
			out = append(out, cur)
		}
		base = addr
		cur = extent{LBA: s, Len: 1}
		addr += sectorSize
	}
	if cur.Len > 0 {
		out = append(out, cur)
	}
	return out
}

// patch returns ldlinux.sys and the boot sector patched for an
// ldlinux.sys whose sectors (ADV included, counted from the start of the
// volume) are sectors, as syslinux_patch does without --stupid, --raid,
// --directory or a subvolume. It fails where syslinux_patch would fail or
// write past the extent table.
func (img *Image) patch(sectors []uint64) (sys []byte, boot [sectorSize]byte, err error) {
	nsect := img.sectorCount()
	if len(sectors) != nsect {
		return nil, boot, fmt.Errorf("BUG: syslinux: patch: %d sectors for a %d-sector ldlinux.sys", len(sectors), nsect)
	}
	sys = append([]byte(nil), img.LDLinux...)
	boot = img.BootSector
	e := img.epa

	// The first sector's address goes into the boot sector.
	binary.LittleEndian.PutUint32(boot[e.Sect1Ptr0:], uint32(sectors[0]))
	binary.LittleEndian.PutUint32(boot[e.Sect1Ptr1:], uint32(sectors[0]>>32))

	var pa patchArea
	mustDecode(sys[img.pa:], &pa)
	dw := len(sys) / 4 // complete dwords, without the ADV
	pa.DataSectors = uint16(nsect - advSector)
	pa.ADVSectors = advSector
	pa.Dwords = uint32(dw)
	pa.Checksum = 0

	// The rest of the image's sectors as extents; then the ADV sectors.
	exts := extents(sectors[1 : nsect-advSector])
	if len(exts) > int(e.SecPtrCnt) {
		return nil, boot, fmt.Errorf("syslinux: ldlinux.sys is in %d pieces, the image has room for %d", len(exts), e.SecPtrCnt)
	}
	table := sys[e.SecPtrOffset : int(e.SecPtrOffset)+int(e.SecPtrCnt)*extentSize]
	clear(table)
	for i, x := range exts {
		binary.LittleEndian.PutUint64(table[i*extentSize:], x.LBA)
		binary.LittleEndian.PutUint16(table[i*extentSize+8:], x.Len)
	}
	binary.LittleEndian.PutUint64(sys[e.ADVPtrOffset:], sectors[nsect-2])
	binary.LittleEndian.PutUint64(sys[e.ADVPtrOffset+8:], sectors[nsect-1])

	// The checksum: LDLINUX_MAGIC minus the sum of every dword.
	putPatchArea(sys[img.pa:], &pa)
	sum := uint32(ldlinuxMagic)
	for i := 0; i < dw; i++ {
		sum -= binary.LittleEndian.Uint32(sys[4*i:])
	}
	pa.Checksum = sum
	putPatchArea(sys[img.pa:], &pa)
	return sys, boot, nil
}

func putPatchArea(b []byte, pa *patchArea) {
	if _, err := binary.Encode(b, binary.LittleEndian, pa); err != nil {
		panic("BUG: syslinux: encoding the patch area: " + err.Error())
	}
}

// makeBootSector returns the volume's boot sector vol with syslinux's code
// from boot, as syslinux_make_bootsect does for FAT: the jump and OEM name
// (bytes 0-10) and everything from the FAT32 code offset (0x5A) to the
// signature come from boot; the BPB in between stays. The same offsets
// serve FAT12/16, whose BPB ends at 0x3E: syslinux's code starts at 0x5A
// whatever the FAT type, and bytes 0x3E-0x59 keep what was there.
func makeBootSector(vol, boot [sectorSize]byte) [sectorSize]byte {
	out := vol
	copy(out[:bsHeadLen], boot[:bsHeadLen])
	copy(out[bsCode:bsSignature], boot[bsCode:bsSignature])
	return out
}

// checkBootSector applies syslinux_check_bootsect's tests for FAT to a
// volume's boot sector: the installer refuses a volume that fails them.
func checkBootSector(b []byte) error {
	u16 := func(o int) uint32 { return uint32(binary.LittleEndian.Uint16(b[o:])) }
	u32 := func(o int) uint32 { return binary.LittleEndian.Uint32(b[o:]) }
	if m := b[0x15]; m != 0xF0 && m < 0xF8 {
		return fmt.Errorf("media byte %#02x: not a FAT volume", m)
	}
	if bps := u16(0x0B); bps != sectorSize {
		return fmt.Errorf("%d-byte sectors: syslinux needs 512", bps)
	}
	spc := uint32(b[0x0D])
	if spc == 0 || spc&(spc-1) != 0 {
		return fmt.Errorf("%d sectors per cluster", spc)
	}
	sectors := u16(0x13)
	if sectors == 0 {
		sectors = u32(0x20)
	}
	fatSecs := u16(0x16)
	if fatSecs == 0 {
		fatSecs = u32(0x24)
	}
	fatSecs *= uint32(b[0x10])
	rootSecs := (u16(0x11)*32 + sectorSize - 1) / sectorSize
	meta := uint64(u16(0x0E)) + uint64(fatSecs) + uint64(rootSecs)
	if fatSecs == 0 || meta > uint64(sectors) {
		return fmt.Errorf("%d FAT sectors and %d metadata sectors on a %d-sector volume", fatSecs, meta, sectors)
	}
	clusters := (uint64(sectors) - meta) / uint64(spc)
	typ := string(b[0x52:0x5A])
	if clusters < 0xFFF5 {
		typ = string(b[0x36:0x3E])
		if u16(0x16) == 0 {
			return fmt.Errorf("%d clusters (FAT12/16) but no 16-bit FAT length", clusters)
		}
		if b[0x26] == 0x29 {
			switch {
			case typ == "FAT12   " && clusters >= 0xFF5:
				return fmt.Errorf("%d clusters, but the boot sector says FAT12", clusters)
			case typ == "FAT16   " && clusters < 0xFF5:
				return fmt.Errorf("%d clusters, but the boot sector says FAT16", clusters)
			case typ == "FAT32   ":
				return fmt.Errorf("%d clusters, but the boot sector says FAT32", clusters)
			case typ != "FAT12   " && typ != "FAT16   " && typ != "FAT     ":
				return fmt.Errorf("file system type %q", typ)
			}
		}
		return nil
	}
	if clusters >= 0x0FFFFFF5 {
		return fmt.Errorf("%d clusters: too many for FAT", clusters)
	}
	if b[0x42] != 0x29 || typ != "FAT32   " {
		return fmt.Errorf("%d clusters but no FAT32 signature", clusters)
	}
	return nil
}
