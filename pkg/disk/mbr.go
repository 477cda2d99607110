package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// mbrEntry is one of the four partition entries of an MBR (16 bytes at
// 0x1BE, 0x1CE, 0x1DE, 0x1EE), little-endian.
type mbrEntry struct {
	Status   byte    // 0x80 active (bootable), 0x00 inactive
	FirstCHS [3]byte // head; sector (bits 0-5) and cylinder bits 8-9 (bits 6-7); cylinder bits 0-7
	Type     byte    // partition type; 0x00 unused
	LastCHS  [3]byte // as FirstCHS, for the last sector
	FirstLBA uint32  // first sector
	Sectors  uint32  // number of sectors
}

// mbrSector is sector 0 of an MBR-partitioned disk, and the protective MBR
// of a GPT disk (UEFI 2.10 §5.2.1 and §5.2.3).
type mbrSector struct {
	BootCode      [bootCodeSize]byte // left zero by Write; see WriteBootCode
	DiskSignature uint32             // at 0x1B8
	Reserved      uint16             // at 0x1BC, zero ("copy protected" 0x5A5A is not used)
	Entries       [4]mbrEntry        // at 0x1BE
	Signature     uint16             // at 0x1FE: 0xAA55, the bytes 0x55 0xAA
}

const (
	bootCodeSize = 440
	mbrSignature = 0xAA55
	// chsHeads and chsSectors are the geometry sfdisk and sgdisk assume for
	// disks (and image files) that report none.
	chsHeads   = 255
	chsSectors = 63
)

func init() {
	if n := binary.Size(mbrSector{}); n != SectorSize {
		panic(fmt.Sprintf("BUG: mbrSector is %d bytes, want %d", n, SectorSize))
	}
}

// chs encodes an LBA as the three CHS bytes of an MBR entry for a geometry
// of 255 heads and 63 sectors per track, as libfdisk does: a sector beyond
// cylinder 1023 is written as cylinder 1023, head 254, sector 63 (the bytes
// 0xFE 0xFF 0xFF), the usual "use the LBA fields" marker.
func chs(lba int64) [3]byte {
	if lba/(chsHeads*chsSectors) > 1023 {
		lba = chsHeads*chsSectors*1024 - 1
	}
	s := lba%chsSectors + 1
	lba /= chsSectors
	h := lba % chsHeads
	c := lba / chsHeads
	return [3]byte{byte(h), byte(s) | byte((c>>2)&0xC0), byte(c)}
}

// protectiveMBR returns the protective MBR of a GPT disk of the given
// number of sectors: one 0xEE partition from LBA 1 to the end of the disk,
// its size clamped to 0xFFFFFFFF, start CHS 0x000200, end CHS that of the
// last sector or 0xFFFFFF if it cannot be represented (UEFI 2.10 table 5-4;
// sgdisk writes the same).
func protectiveMBR(sectors int64, signature uint32) mbrSector {
	size := sectors - 1
	if size > mbrMaxSectors {
		size = mbrMaxSectors
	}
	last := [3]byte{0xFF, 0xFF, 0xFF}
	if (sectors-1)/(chsHeads*chsSectors) <= 1023 {
		last = chs(sectors - 1)
	}
	m := mbrSector{DiskSignature: signature, Signature: mbrSignature}
	m.Entries[0] = mbrEntry{
		FirstCHS: [3]byte{0x00, 0x02, 0x00},
		Type:     0xEE,
		LastCHS:  last,
		FirstLBA: 1,
		Sectors:  uint32(size),
	}
	return m
}

// encode returns the 512 bytes of m.
func (m *mbrSector) encode() []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, m); err != nil {
		panic(fmt.Sprintf("BUG: encoding MBR: %v", err))
	}
	return b.Bytes()
}

// decodeMBR parses a 512-byte sector.
func decodeMBR(b []byte) (mbrSector, error) {
	var m mbrSector
	if len(b) != SectorSize {
		return m, fmt.Errorf("BUG: MBR sector of %d bytes", len(b))
	}
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, &m); err != nil {
		return m, fmt.Errorf("BUG: decoding MBR: %w", err)
	}
	return m, nil
}

// writeMBR writes the MBR of an MBR layout (already validated).
func writeMBR(w io.WriterAt, l *Layout) error {
	m := mbrSector{DiskSignature: l.DiskSignature, Signature: mbrSignature}
	for _, p := range l.Partitions {
		e := mbrEntry{
			Type:     p.MBRType,
			FirstCHS: chs(p.FirstLBA()),
			LastCHS:  chs(p.LastLBA()),
			FirstLBA: uint32(p.FirstLBA()),
			Sectors:  uint32(p.Size / SectorSize),
		}
		if p.Bootable {
			e.Status = 0x80
		}
		m.Entries[p.Number-1] = e
	}
	if _, err := w.WriteAt(m.encode(), 0); err != nil {
		return fmt.Errorf("write MBR: %w", err)
	}
	return nil
}

// WriteBootCode writes code (at most 440 bytes) at the start of sector 0,
// the MBR's boot code area, leaving the disk signature, the partition
// entries and everything after len(code) untouched. Call it after Write,
// which leaves the area zero.
func WriteBootCode(w io.WriterAt, code []byte) error {
	if len(code) > bootCodeSize {
		return fmt.Errorf("write boot code: %d bytes, the MBR has room for %d", len(code), bootCodeSize)
	}
	if len(code) == 0 {
		return nil
	}
	if _, err := w.WriteAt(code, 0); err != nil {
		return fmt.Errorf("write boot code: %w", err)
	}
	return nil
}

// maxLogical bounds the EBR chain Read follows, against loops.
const maxLogical = 256

// readMBR turns an MBR (already decoded from sector 0) into a layout,
// following the chain of extended boot records of the first extended
// partition for logical partitions (numbered from 5).
func readMBR(r io.ReaderAt, m mbrSector, sectors int64) (*Layout, error) {
	l := &Layout{
		Table:          MBR,
		DiskSignature:  m.DiskSignature,
		Size:           sectors * SectorSize,
		FirstUsableLBA: 1,
		LastUsableLBA:  sectors - 1,
	}
	var ext *mbrEntry
	for i := range m.Entries {
		e := m.Entries[i]
		if e.Type == 0 {
			continue
		}
		if e.Status != 0 && e.Status != 0x80 {
			l.Problems = append(l.Problems, fmt.Sprintf("partition %d: status byte 0x%02x is neither 0x00 nor 0x80", i+1, e.Status))
		}
		p := Partition{
			Number:   i + 1,
			MBRType:  e.Type,
			Bootable: e.Status&0x80 != 0,
			Start:    int64(e.FirstLBA) * SectorSize,
			Size:     int64(e.Sectors) * SectorSize,
		}
		l.Problems = append(l.Problems, checkExtent(p, sectors)...)
		l.Partitions = append(l.Partitions, p)
		if isExtended(e.Type) && ext == nil {
			ext = &m.Entries[i]
		}
	}
	if ext == nil {
		return l, nil
	}
	base := int64(ext.FirstLBA)
	extEnd := base + int64(ext.Sectors)
	cur := base
	buf := make([]byte, SectorSize)
	n := 5
	for hops := 0; ; hops++ {
		if hops >= maxLogical {
			return nil, fmt.Errorf("read MBR: more than %d logical partitions, or a loop in the extended boot records", maxLogical)
		}
		if cur < base || cur >= extEnd || cur >= sectors {
			return nil, fmt.Errorf("read MBR: extended boot record at LBA %d outside the extended partition (LBA %d-%d)", cur, base, extEnd-1)
		}
		if _, err := r.ReadAt(buf, cur*SectorSize); err != nil {
			return nil, fmt.Errorf("read MBR: extended boot record at LBA %d: %w", cur, err)
		}
		ebr, err := decodeMBR(buf)
		if err != nil {
			return nil, err
		}
		if ebr.Signature != mbrSignature {
			return nil, fmt.Errorf("read MBR: extended boot record at LBA %d: no 0x55AA signature", cur)
		}
		if e := ebr.Entries[0]; e.Type != 0 && e.Sectors != 0 {
			p := Partition{
				Number:   n,
				MBRType:  e.Type,
				Bootable: e.Status&0x80 != 0,
				Start:    (cur + int64(e.FirstLBA)) * SectorSize,
				Size:     int64(e.Sectors) * SectorSize,
			}
			l.Problems = append(l.Problems, checkExtent(p, sectors)...)
			l.Partitions = append(l.Partitions, p)
			n++
		} // else an empty EBR (possible as the first one) holds no partition
		next := ebr.Entries[1]
		if !isExtended(next.Type) || next.FirstLBA == 0 {
			break
		}
		nxt := base + int64(next.FirstLBA)
		if nxt <= cur {
			return nil, fmt.Errorf("read MBR: extended boot record at LBA %d links back to LBA %d", cur, nxt)
		}
		cur = nxt
	}
	return l, nil
}

// checkExtent reports a partition that does not lie within the disk.
func checkExtent(p Partition, sectors int64) []string {
	if p.Size == 0 {
		return []string{fmt.Sprintf("partition %d: size 0", p.Number)}
	}
	if p.FirstLBA() < 1 || p.LastLBA() >= sectors {
		return []string{fmt.Sprintf("partition %d: sectors %d-%d outside the disk's 1-%d", p.Number, p.FirstLBA(), p.LastLBA(), sectors-1)}
	}
	return nil
}
