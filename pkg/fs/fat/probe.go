package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Info describes a FAT file system, as Probe reads it.
type Info struct {
	FATType int    // 12, 16 or 32
	OEMName string // informational name in the boot sector
	// Label is the volume label as blkid's LABEL: the root directory's
	// label entry (even "NO NAME"), trailing blanks cut; "" for none. The
	// boot sector's label is not a fallback (libblkid's vfat.c since 2.37).
	Label string
	// BootLabel is the boot sector's label, as blkid's LABEL_FATBOOT: only
	// with the 0x29 extended boot signature; "" for none or "NO NAME".
	BootLabel       string
	VolumeID        uint32 // volume serial number
	Size            int64  // bytes the file system spans
	SectorSize      int    // bytes per sector
	ClusterSize     int    // bytes per cluster
	ReservedSectors uint32 // sectors before the first FAT
	NumFATs         int
	FATSectors      uint32 // sectors of one FAT
	RootEntries     uint32 // FAT12/16: entries of the fixed root directory
	RootCluster     uint32 // FAT32: first cluster of the root directory
	HiddenSectors   uint32 // start of the partition, as the boot sector says
	Media           uint8
	TotalClusters   uint32 // data clusters
	FreeClusters    uint32 // unused data clusters
	FreeFromFSInfo  bool   // FreeClusters is the FSInfo sector's count, not counted from the FAT
}

// Probe reads the FAT file system at the start of r, whose size is size
// bytes: the boot sector, the label entry of the root directory, and the
// free-cluster count from the FSInfo sector where that is valid (FAT32),
// else by counting free entries in the first FAT.
func Probe(r io.ReaderAt, size int64) (*Info, error) {
	sec := make([]byte, sectorSize)
	if _, err := r.ReadAt(sec, 0); err != nil {
		return nil, fmt.Errorf("fat: reading the boot sector: %w", err)
	}
	if sec[bootSigOffset] != 0x55 || sec[bootSigOffset+1] != 0xAA {
		return nil, errors.New("fat: no boot sector signature (0x55 0xAA)")
	}
	var p bpb
	if _, err := binary.Decode(sec, binary.LittleEndian, &p); err != nil {
		return nil, fmt.Errorf("fat: decoding the BPB: %w", err)
	}
	if p.JmpBoot[0] != 0xEB && p.JmpBoot[0] != 0xE9 {
		return nil, fmt.Errorf("fat: boot sector starts with %#02x, not a jump", p.JmpBoot[0])
	}
	bps := uint32(p.BytsPerSec)
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 {
		return nil, fmt.Errorf("fat: %d bytes per sector is not a FAT sector size", bps)
	}
	spc := uint32(p.SecPerClus)
	if spc == 0 || spc&(spc-1) != 0 {
		return nil, fmt.Errorf("fat: %d sectors per cluster is not a power of two", spc)
	}
	if p.RsvdSecCnt == 0 || p.NumFATs == 0 {
		return nil, fmt.Errorf("fat: %d reserved sectors and %d FATs: not a FAT boot sector", p.RsvdSecCnt, p.NumFATs)
	}
	in := &Info{
		OEMName:         strings.TrimRight(string(p.OEMName[:]), " \x00"),
		SectorSize:      int(bps),
		ClusterSize:     int(bps * spc),
		ReservedSectors: uint32(p.RsvdSecCnt),
		NumFATs:         int(p.NumFATs),
		RootEntries:     uint32(p.RootEntCnt),
		HiddenSectors:   p.HiddSec,
		Media:           p.Media,
	}
	tot := uint32(p.TotSec16)
	if tot == 0 {
		tot = p.TotSec32
	}
	in.Size = int64(tot) * int64(bps)
	if in.Size > size {
		return nil, fmt.Errorf("fat: the boot sector says %d bytes, more than the %d given", in.Size, size)
	}
	var (
		label  [11]byte
		hasLab bool
		fsinfo uint16
	)
	if p.FATSz16 == 0 {
		var e ebpb32
		if _, err := binary.Decode(sec[bpbSize:], binary.LittleEndian, &e); err != nil {
			return nil, fmt.Errorf("fat: decoding the FAT32 BPB: %w", err)
		}
		in.FATType, in.FATSectors, in.RootCluster, fsinfo = 32, e.FATSz32, e.RootClus, e.FSInfo
		in.VolumeID = e.VolID // whatever the signature says, as blkid reads FAT32
		label, hasLab = e.VolLab, e.BootSig == extBootSig
	} else {
		var e ebpb16
		if _, err := binary.Decode(sec[bpbSize:], binary.LittleEndian, &e); err != nil {
			return nil, fmt.Errorf("fat: decoding the FAT12/16 BPB: %w", err)
		}
		in.FATSectors = uint32(p.FATSz16)
		if e.BootSig == extBootSig || e.BootSig == 0x28 {
			in.VolumeID = e.VolID
		}
		label, hasLab = e.VolLab, e.BootSig == extBootSig
	}
	if in.FATSectors == 0 {
		return nil, errors.New("fat: the FAT has 0 sectors")
	}
	rootSecs := (in.RootEntries*32 + bps - 1) / bps
	meta := uint64(in.ReservedSectors) + uint64(in.NumFATs)*uint64(in.FATSectors) + uint64(rootSecs)
	if meta >= uint64(tot) {
		return nil, fmt.Errorf("fat: reserved sectors, FATs and root directory (%d sectors) fill the %d-sector volume", meta, tot)
	}
	in.TotalClusters = uint32((uint64(tot) - meta) / uint64(spc))
	if in.FATType == 0 {
		in.FATType = typeOfCount(in.TotalClusters)
		if in.FATType == 32 {
			return nil, fmt.Errorf("fat: %d clusters with a 16-bit FAT length field", in.TotalClusters)
		}
	}
	if fatEnts := uint64(in.FATSectors) * uint64(bps) * 8 / uint64(in.FATType); uint64(in.TotalClusters)+2 > fatEnts {
		in.TotalClusters = uint32(fatEnts - 2) // clusters past the FAT are unusable
	}
	if hasLab && string(label[:]) != noName+"    " {
		in.BootLabel = labelString(label[:])
	}

	fr := &fatReader{r: r, in: in, off: int64(in.ReservedSectors) * int64(bps)}
	rootLabel, found, err := fr.rootLabel(int64(meta-uint64(rootSecs)) * int64(bps))
	if err != nil {
		return nil, err
	}
	if found {
		in.Label = rootLabel
	}

	if in.FATType == 32 && fsinfo != 0 && fsinfo != 0xFFFF && uint32(fsinfo) < in.ReservedSectors {
		b := make([]byte, sectorSize)
		if _, err := r.ReadAt(b, int64(fsinfo)*int64(bps)); err != nil {
			return nil, fmt.Errorf("fat: reading the FSInfo sector: %w", err)
		}
		var fi fsInfo
		if _, err := binary.Decode(b, binary.LittleEndian, &fi); err != nil {
			return nil, fmt.Errorf("fat: decoding the FSInfo sector: %w", err)
		}
		if fi.LeadSig == fsInfoLeadSig && fi.StrucSig == fsInfoStrucSig && fi.FreeCount <= in.TotalClusters {
			in.FreeClusters, in.FreeFromFSInfo = fi.FreeCount, true
			return in, nil
		}
	}
	free, err := fr.countFree()
	if err != nil {
		return nil, err
	}
	in.FreeClusters = free
	return in, nil
}

// labelString turns an 11-byte space-padded label into a string, "" for
// none.
func labelString(b []byte) string {
	s := strings.TrimRight(string(b), " \x00")
	if s == noName {
		return ""
	}
	return s
}

// fatReader reads the first FAT of a volume.
type fatReader struct {
	r   io.ReaderAt
	in  *Info
	off int64 // byte offset of the first FAT
}

// entry reads FAT entry c.
func (f *fatReader) entry(c uint32) (uint32, error) {
	var b [4]byte
	off := f.off + int64(c)*int64(f.in.FATType)/8
	n := f.in.FATType / 8
	if f.in.FATType == 12 {
		n = 2
	}
	if _, err := f.r.ReadAt(b[:n], off); err != nil {
		return 0, fmt.Errorf("fat: reading FAT entry %d: %w", c, err)
	}
	v := binary.LittleEndian.Uint32(b[:])
	switch f.in.FATType {
	case 12:
		if c%2 == 1 {
			v >>= 4
		}
		return v & 0xFFF, nil
	case 16:
		return v & 0xFFFF, nil
	}
	return v & 0x0FFFFFFF, nil
}

// countFree counts the free entries of clusters 2 .. TotalClusters+1.
func (f *fatReader) countFree() (uint32, error) {
	const chunk = 1 << 16 // entries, even
	bits := uint32(f.in.FATType)
	buf := make([]byte, chunk*bits/8)
	var free uint32
	end := f.in.TotalClusters + 2
	for lo := uint32(0); lo < end; lo += chunk {
		hi := min(end, lo+chunk)
		b := buf[:((hi-lo)*bits+7)/8]
		if _, err := f.r.ReadAt(b, f.off+int64(lo)*int64(bits)/8); err != nil {
			return 0, fmt.Errorf("fat: reading the FAT: %w", err)
		}
		for c := max(lo, 2); c < hi; c++ {
			i := c - lo
			var v uint32
			switch bits {
			case 12:
				o := i * 3 / 2
				v = uint32(b[o]) | uint32(b[o+1])<<8
				if i%2 == 1 {
					v >>= 4
				}
				v &= 0xFFF
			case 16:
				v = uint32(binary.LittleEndian.Uint16(b[2*i:]))
			case 32:
				v = binary.LittleEndian.Uint32(b[4*i:]) & 0x0FFFFFFF
			}
			if v == 0 {
				free++
			}
		}
	}
	return free, nil
}

// rootLabel looks for the volume label entry in the root directory, which
// starts at byte rootOff on FAT12/16 and at the root cluster on FAT32.
func (f *fatReader) rootLabel(rootOff int64) (string, bool, error) {
	in := f.in
	dataOff := rootOff + int64(in.RootEntries)*32
	dataOff = (dataOff + int64(in.SectorSize) - 1) / int64(in.SectorSize) * int64(in.SectorSize)
	var spans []struct{ off, n int64 } // regions of the root directory
	if in.FATType != 32 {
		spans = append(spans, struct{ off, n int64 }{rootOff, int64(in.RootEntries) * 32})
	} else {
		// blkid looks at the first 99 clusters of the chain (maxloop).
		c := in.RootCluster
		for i := 0; c >= 2 && c < in.TotalClusters+2 && i < min(maxDirEntries*32/in.ClusterSize+1, 99); i++ {
			spans = append(spans, struct{ off, n int64 }{dataOff + int64(c-2)*int64(in.ClusterSize), int64(in.ClusterSize)})
			next, err := f.entry(c)
			if err != nil {
				return "", false, err
			}
			c = next
		}
	}
	for _, s := range spans {
		b := make([]byte, s.n)
		if _, err := f.r.ReadAt(b, s.off); err != nil {
			return "", false, fmt.Errorf("fat: reading the root directory: %w", err)
		}
		for e := 0; e+dirEntrySize <= len(b); e += dirEntrySize {
			ent := b[e : e+dirEntrySize]
			// libblkid's search_fat_label: free entries, entries with a
			// cluster and long-name entries are skipped; the first other
			// entry with the volume-ID bit and not the directory bit is
			// the label.
			switch {
			case ent[0] == 0:
				return "", false, nil
			case ent[0] == 0xE5, binary.LittleEndian.Uint16(ent[20:]) != 0, binary.LittleEndian.Uint16(ent[26:]) != 0,
				ent[11]&0x3F == attrLFN, ent[11]&(attrVolumeID|attrDir) != attrVolumeID:
				continue
			}
			name := bytes.Clone(ent[:11])
			if name[0] == 0x05 {
				name[0] = 0xE5
			}
			return strings.TrimRight(string(name), " \t\n\r\x00"), true, nil
		}
	}
	return "", false, nil
}
