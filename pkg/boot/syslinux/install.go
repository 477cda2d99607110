package syslinux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/fs/fat"
)

// ReadWriterAt is a partition: Install reads the FAT and writes to it.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// FAT32 BPB fields Install needs beyond fat.Probe.
const (
	bpbBkBootSec = 0x32 // backup boot sector (FAT32)
)

// LDLinuxPath is the file of the ESP whose extents Install needs: ask the
// FAT writer for them (fs.Region.Locate, fat.WriteLocate).
const LDLinuxPath = "/" + ldlinuxSys

// Install makes the FAT volume in part (size bytes, starting at sector
// partStartLBA of its disk) boot syslinux, after it was written from the
// tree Prepare filled with img: ldlinux are the extents of /ldlinux.sys
// (LDLinuxPath) as the FAT writer reported them, in bytes from the
// volume's start. It checks that they hold what Prepare put there, patches its first sectors for where it lies and
// writes syslinux's code into the boot sector, keeping the BPB. On FAT32 it
// writes the same boot sector to the backup boot sector if that was a copy
// of the boot sector before (fat.Write makes it one). Install writes nothing
// if a check fails.
//
// The BPB's hidden-sector count must be partStartLBA (fat.Options
// .HiddenSectors): the boot sector adds it to every sector it loads when
// no MBR code tells it where its partition is.
func Install(part ReadWriterAt, size int64, partStartLBA uint64, img *Image, ldlinux []fs.Extent) error {
	if img == nil || len(img.LDLinux) == 0 {
		return errors.New("syslinux: install: no image")
	}
	in, err := fat.Probe(part, size)
	if err != nil {
		return fmt.Errorf("syslinux: install: %w", err)
	}
	if in.SectorSize != sectorSize {
		return fmt.Errorf("syslinux: install: the FAT has %d-byte sectors; syslinux needs 512", in.SectorSize)
	}
	if uint64(in.HiddenSectors) != partStartLBA {
		return fmt.Errorf("syslinux: install: the FAT's BPB says it starts at sector %d (hidden sectors), the partition starts at %d", in.HiddenSectors, partStartLBA)
	}
	var vol [sectorSize]byte
	if _, err := part.ReadAt(vol[:], 0); err != nil {
		return fmt.Errorf("syslinux: install: reading the boot sector: %w", err)
	}
	if err := checkBootSector(vol[:]); err != nil {
		return fmt.Errorf("syslinux: install: the FAT's boot sector: %w", err)
	}

	want := img.FileBytes()
	sectors, err := extentSectors(ldlinux, int64(len(want)), size)
	if err != nil {
		return fmt.Errorf("syslinux: install: /%s: %w", ldlinuxSys, err)
	}
	if len(sectors) != img.sectorCount() {
		return fmt.Errorf("BUG: syslinux: install: %d sectors for a %d-byte file", len(sectors), len(want))
	}
	got := make([]byte, len(want))
	for i, s := range sectors {
		if _, err := part.ReadAt(got[i*sectorSize:(i+1)*sectorSize], int64(s)*sectorSize); err != nil {
			return fmt.Errorf("syslinux: install: reading /%s: %w", ldlinuxSys, err)
		}
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("syslinux: install: /%s on the volume is not the one of this image (was the FAT written from the tree Prepare filled?)", ldlinuxSys)
	}

	sys, boot, err := img.patch(sectors)
	if err != nil {
		return err
	}
	newBoot := makeBootSector(vol, boot)
	backup := -1
	if in.FATType == 32 {
		bk := int(binary.LittleEndian.Uint16(vol[bpbBkBootSec:]))
		if bk != 0 && bk != 0xFFFF && uint32(bk) < in.ReservedSectors {
			var old [sectorSize]byte
			if _, err := part.ReadAt(old[:], int64(bk)*sectorSize); err != nil {
				return fmt.Errorf("syslinux: install: reading the backup boot sector: %w", err)
			}
			if old == vol {
				backup = bk
			}
		}
	}

	// The installer writes the patched sectors of ldlinux.sys (all of the
	// image; the ADV is as it was), then the boot sector.
	for i := 0; i < len(sys)/sectorSize; i++ {
		if _, err := part.WriteAt(sys[i*sectorSize:(i+1)*sectorSize], int64(sectors[i])*sectorSize); err != nil {
			return fmt.Errorf("syslinux: install: writing /%s: %w", ldlinuxSys, err)
		}
	}
	if _, err := part.WriteAt(newBoot[:], 0); err != nil {
		return fmt.Errorf("syslinux: install: writing the boot sector: %w", err)
	}
	if backup >= 0 {
		if _, err := part.WriteAt(newBoot[:], int64(backup)*sectorSize); err != nil {
			return fmt.Errorf("syslinux: install: writing the backup boot sector: %w", err)
		}
	}
	return nil
}

// extentSectors turns a file's extents, byte ranges of a volume of size
// bytes, into the sectors that hold its data, checking that they cover
// exactly want bytes, start on sector boundaries and lie in the volume.
func extentSectors(exts []fs.Extent, want, size int64) ([]uint64, error) {
	var (
		sectors []uint64
		total   int64
	)
	for _, e := range exts {
		if e.Length <= 0 || e.Offset < 0 || e.Offset%sectorSize != 0 || e.Offset > size-e.Length {
			return nil, fmt.Errorf("extent of %d bytes at %d is not a sector-aligned range of the %d-byte volume", e.Length, e.Offset, size)
		}
		if total += e.Length; total > want {
			return nil, fmt.Errorf("the extents hold more than the %d bytes Prepare put there", want)
		}
		for s := e.Offset / sectorSize; s < (e.Offset+e.Length+sectorSize-1)/sectorSize; s++ {
			sectors = append(sectors, uint64(s))
		}
	}
	if total != want {
		return nil, fmt.Errorf("the extents hold %d bytes, not the %d Prepare put there", total, want)
	}
	return sectors, nil
}
