package syslinux

import (
	"fmt"

	"github.com/kiln-build/kiln/pkg/disk"
)

// mbrCodeMax is the MBR's boot code area (disk.WriteBootCode's limit).
const mbrCodeMax = 440

// MBRCode returns the boot code for sector 0 of a disk whose partition
// number part holds the syslinux volume, for disk.WriteBootCode: mbr.bin
// on an MBR disk, where part must be the active partition (mbr.bin boots
// the active one); gptmbr.bin on a GPT disk, where part must have the
// legacy-BIOS-bootable attribute and be the first entry that has it
// (gptmbr.bin boots the first one).
func MBRCode(l *disk.Layout, part int, src Sources) ([]byte, error) {
	if l == nil {
		return nil, fmt.Errorf("syslinux: MBR code: no partition table")
	}
	var p *disk.Partition
	for i := range l.Partitions {
		if l.Partitions[i].Number == part {
			p = &l.Partitions[i]
			break
		}
	}
	if p == nil {
		return nil, fmt.Errorf("syslinux: MBR code: the disk has no partition %d", part)
	}
	var file string
	switch l.Table {
	case disk.MBR:
		if !p.Bootable {
			return nil, fmt.Errorf("syslinux: MBR code: partition %d is not active; mbr.bin boots the active partition", part)
		}
		file = src.path(src.MBR, DefaultMBR)
	case disk.GPT:
		if p.Attributes&disk.AttrLegacyBIOSBootable == 0 {
			return nil, fmt.Errorf("syslinux: MBR code: partition %d lacks the legacy-BIOS-bootable attribute that gptmbr.bin looks for", part)
		}
		for _, q := range l.Partitions {
			if q.Number < part && q.Attributes&disk.AttrLegacyBIOSBootable != 0 {
				return nil, fmt.Errorf("syslinux: MBR code: partition %d is legacy-BIOS-bootable too and comes first: gptmbr.bin would boot it instead of %d", q.Number, part)
			}
		}
		file = src.path(src.GPTMBR, DefaultGPTMBR)
	default:
		return nil, fmt.Errorf("syslinux: MBR code: unknown partition table %v", l.Table)
	}
	code, err := readFile(src.Tree, file, mbrCodeMax, "the package syslinux-common")
	if err != nil {
		return nil, err
	}
	if len(code) == 0 {
		return nil, fmt.Errorf("syslinux: %s is empty", file)
	}
	return code, nil
}
