package fat

import (
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/fs"
)

// Kind is FAT as kiln's filesystems list it (pkg/fs/all), under the
// spec's name vfat: its writer, how inspect and diff recognise and read
// it, and the boot-sector fields diff compares.
var Kind = fs.Kind{
	Name:         "vfat",
	New:          New,
	Probe:        probeInfo,
	ReadTree:     ReadTree,
	HeaderOffset: 0,
	Fields:       bootSectorFields,
}

// probeInfo is Probe as inspect shows it: the volume ID as blkid's UUID.
func probeInfo(r io.ReaderAt, size int64) (*fs.Info, error) {
	i, err := Probe(r, size)
	if err != nil {
		return nil, err
	}
	return &fs.Info{
		Type: "vfat", Label: i.Label, UUID: fmt.Sprintf("%04X-%04X", i.VolumeID>>16, i.VolumeID&0xffff),
		Size: i.Size, Used: int64(i.TotalClusters-i.FreeClusters) * int64(i.ClusterSize),
	}, nil
}

// bootSectorFields are the boot sector's BPB fields (FAT32 layout past 0x24;
// for FAT12/16 the extended fields sit elsewhere, but the shared part is
// what differs in practice).
var bootSectorFields = []fs.HeaderField{
	fs.Field("BS_OEMName", 0x3, 8, "str"), fs.Field("BPB_BytsPerSec", 0xB, 2, "u"), fs.Field("BPB_SecPerClus", 0xD, 1, "u"),
	fs.Field("BPB_RsvdSecCnt", 0xE, 2, "u"), fs.Field("BPB_NumFATs", 0x10, 1, "u"), fs.Field("BPB_RootEntCnt", 0x11, 2, "u"),
	fs.Field("BPB_TotSec16", 0x13, 2, "u"), fs.Field("BPB_Media", 0x15, 1, "hex"), fs.Field("BPB_FATSz16", 0x16, 2, "u"),
	fs.Field("BPB_HiddSec", 0x1C, 4, "u"), fs.Field("BPB_TotSec32", 0x20, 4, "u"), fs.Field("BPB_FATSz32", 0x24, 4, "u"),
	fs.Field("BPB_RootClus", 0x2C, 4, "u"), fs.Field("BS_VolID (FAT32)", 0x43, 4, "hex"), fs.Field("BS_VolLab (FAT32)", 0x47, 11, "str"),
	fs.Field("BS_VolID (FAT12/16)", 0x27, 4, "hex"), fs.Field("BS_VolLab (FAT12/16)", 0x2B, 11, "str"),
	fs.Field("boot code", 0x5A, 0x1FE-0x5A, "sha"),
}
