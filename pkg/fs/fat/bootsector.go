package fat

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// bpb is the BIOS parameter block, bytes 0-35 of the boot sector, common
// to all FAT types (fatgen103 §3.1).
type bpb struct {
	JmpBoot    [3]byte // x86 jump over the BPB to the boot code
	OEMName    [8]byte // informational
	BytsPerSec uint16  // bytes per sector
	SecPerClus uint8   // sectors per cluster, a power of two
	RsvdSecCnt uint16  // sectors before the first FAT
	NumFATs    uint8   // copies of the FAT
	RootEntCnt uint16  // FAT12/16: entries of the fixed root directory; 0 on FAT32
	TotSec16   uint16  // sectors of the volume if below 65536, else 0
	Media      uint8   // media descriptor, also in the low byte of FAT[0]
	FATSz16    uint16  // FAT12/16: sectors of one FAT; 0 on FAT32
	SecPerTrk  uint16  // CHS geometry, unused
	NumHeads   uint16  // CHS geometry, unused
	HiddSec    uint32  // sectors before the volume on its disk (the partition's start)
	TotSec32   uint32  // sectors of the volume if TotSec16 is 0
}

// ebpb16 is the extended BPB of FAT12/16, bytes 36-61 (fatgen103 §3.2).
type ebpb16 struct {
	DrvNum     uint8    // BIOS drive number, 0x80 for a hard disk
	Reserved1  uint8    // 0
	BootSig    uint8    // 0x29: the three fields below are present
	VolID      uint32   // volume serial number
	VolLab     [11]byte // volume label, space padded
	FilSysType [8]byte  // "FAT12   " or "FAT16   ", informational
}

// ebpb32 is the extended BPB of FAT32, bytes 36-89 (fatgen103 §3.3).
type ebpb32 struct {
	FATSz32    uint32   // sectors of one FAT
	ExtFlags   uint16   // 0: the FATs are mirrored
	FSVer      uint16   // 0.0
	RootClus   uint32   // first cluster of the root directory
	FSInfo     uint16   // sector of the FSInfo structure
	BkBootSec  uint16   // sector of the backup boot sector
	Reserved   [12]byte // 0
	DrvNum     uint8    // BIOS drive number, 0x80 for a hard disk
	Reserved1  uint8    // 0
	BootSig    uint8    // 0x29: the three fields below are present
	VolID      uint32   // volume serial number
	VolLab     [11]byte // volume label, space padded
	FilSysType [8]byte  // "FAT32   ", informational
}

const (
	bpbSize       = 36
	bootCode1216  = bpbSize + 26 // offset of the boot code after ebpb16 (0x3E)
	bootCode32    = bpbSize + 54 // offset of the boot code after ebpb32 (0x5A)
	extBootSig    = 0x29
	bootSigOffset = 510 // 0x55 0xAA
)

// fsInfo is the FAT32 FSInfo sector (fatgen103 §5).
type fsInfo struct {
	LeadSig   uint32 // fsInfoLeadSig
	Reserved1 [480]byte
	StrucSig  uint32 // fsInfoStrucSig
	FreeCount uint32 // free clusters, 0xFFFFFFFF if unknown
	NxtFree   uint32 // where to start looking for a free cluster, 0xFFFFFFFF if unknown
	Reserved2 [12]byte
	TrailSig  uint32 // fsInfoTrailSig
}

const (
	fsInfoLeadSig  = 0x41615252 // "RRaA"
	fsInfoStrucSig = 0x61417272 // "rrAa"
	fsInfoTrailSig = 0xAA550000
	unknown32      = 0xFFFFFFFF
)

// notBootable is the message the boot code prints if a machine boots the
// volume before a boot loader replaces the code.
const notBootable = "This is not a bootable disk. Please remove it and press any key to try again ...\r\n"

// bootCode returns x86 real-mode code that prints notBootable through the
// BIOS, waits for a key and asks the BIOS to try the next boot device.
// It is placed at offset at in the sector, which the BIOS loads at 0x7C00.
func bootCode(at int) []byte {
	msg := 0x7C00 + at + 27 // the message follows the 27 bytes of code
	code := []byte{
		0x0E,                            // push cs
		0x1F,                            // pop ds
		0xBE, byte(msg), byte(msg >> 8), // mov si, msg
		// print:
		0xAC,       // lodsb
		0x84, 0xC0, // test al, al
		0x74, 0x09, // jz wait
		0xB4, 0x0E, // mov ah, 0x0E (teletype output)
		0xBB, 0x07, 0x00, // mov bx, 0x0007 (page 0, grey)
		0xCD, 0x10, // int 0x10
		0xEB, 0xF2, // jmp print
		// wait:
		0x30, 0xE4, // xor ah, ah
		0xCD, 0x16, // int 0x16 (read key)
		0xCD, 0x19, // int 0x19 (bootstrap loader: next device)
		0xEB, 0xFE, // jmp $
	}
	return append(append(code, notBootable...), 0)
}

// volLabel pads a label to the 11 bytes the BPB and the volume entry hold.
func volLabel(label string) [11]byte {
	var b [11]byte
	copy(b[:], label+strings.Repeat(" ", 11))
	return b
}

// checkLabel validates and normalises a volume label: upper case, at most
// 11 bytes of printable ASCII without the characters FAT forbids in names.
// Trailing spaces are padding; an empty label becomes "NO NAME", the value
// that means none.
func checkLabel(label string) (string, error) {
	label = strings.TrimRight(label, " ")
	if label == "" {
		return noName, nil
	}
	if len(label) > 11 {
		return "", fmt.Errorf("fat: volume label %q is longer than 11 bytes", label)
	}
	if label[0] == ' ' {
		return "", fmt.Errorf("fat: volume label %q starts with a space", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c < 0x20 || c >= 0x7F || strings.IndexByte(`"*+,./:;<=>?[\]|`, c) >= 0 {
			return "", fmt.Errorf("fat: volume label %q has the character %q, which labels cannot hold", label, c)
		}
	}
	return strings.ToUpper(label), nil
}

const noName = "NO NAME"

// bootSector encodes the boot sector of a volume.
func bootSector(l *layout, o *Options, label string) []byte {
	b := make([]byte, 0, sectorSize)
	p := bpb{
		OEMName:    [8]byte{'M', 'S', 'W', 'I', 'N', '4', '.', '1'}, // most compatible (fatgen103)
		BytsPerSec: sectorSize,
		SecPerClus: uint8(l.secPerClus),
		RsvdSecCnt: uint16(l.reserved),
		NumFATs:    numFATs,
		RootEntCnt: uint16(l.rootEntries),
		Media:      media,
		SecPerTrk:  l.secPerTrack,
		NumHeads:   l.heads,
		HiddSec:    o.HiddenSectors,
	}
	if l.totSectors < 1<<16 && l.fatType != 32 {
		p.TotSec16 = uint16(l.totSectors)
	} else {
		p.TotSec32 = l.totSectors
	}
	var at int
	if l.fatType == 32 {
		at = bootCode32
		p.JmpBoot = [3]byte{0xEB, bootCode32 - 2, 0x90}
		b = mustAppend(b, &p)
		b = mustAppend(b, &ebpb32{
			FATSz32:    l.fatSectors,
			RootClus:   rootCluster32,
			FSInfo:     fsInfoSector,
			BkBootSec:  backupBootSector,
			DrvNum:     0x80,
			BootSig:    extBootSig,
			VolID:      o.VolumeID,
			VolLab:     volLabel(label),
			FilSysType: [8]byte{'F', 'A', 'T', '3', '2', ' ', ' ', ' '},
		})
	} else {
		at = bootCode1216
		p.JmpBoot = [3]byte{0xEB, bootCode1216 - 2, 0x90}
		p.FATSz16 = uint16(l.fatSectors)
		b = mustAppend(b, &p)
		typ := [8]byte{'F', 'A', 'T', '1', '2', ' ', ' ', ' '}
		if l.fatType == 16 {
			typ[4] = '6'
		}
		b = mustAppend(b, &ebpb16{DrvNum: 0x80, BootSig: extBootSig, VolID: o.VolumeID,
			VolLab: volLabel(label), FilSysType: typ})
	}
	if len(b) != at {
		panic(fmt.Sprintf("BUG: fat: BPB ends at %d, not %d", len(b), at))
	}
	b = append(b, bootCode(at)...)
	if len(b) > bootSigOffset {
		panic(fmt.Sprintf("BUG: fat: boot code ends at %d, past the signature", len(b)))
	}
	b = append(b, make([]byte, sectorSize-len(b))...)
	b[bootSigOffset], b[bootSigOffset+1] = 0x55, 0xAA
	return b
}

// fsInfoSectorBytes encodes the FSInfo sector.
func fsInfoSectorBytes(free, nextFree uint32) []byte {
	return mustAppend(nil, &fsInfo{LeadSig: fsInfoLeadSig, StrucSig: fsInfoStrucSig,
		FreeCount: free, NxtFree: nextFree, TrailSig: fsInfoTrailSig})
}

func mustAppend(b []byte, v any) []byte {
	b, err := binary.Append(b, binary.LittleEndian, v)
	if err != nil {
		panic("BUG: fat: encoding: " + err.Error())
	}
	return b
}
