package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"

	"github.com/kiln-build/kiln/pkg/repro"
)

// gptHeader is the GPT header (UEFI 2.10 §5.3.2, table 5-5), little-endian,
// at LBA 1 (primary) and in the last sector (backup). The rest of its
// sector is zero.
type gptHeader struct {
	Signature                [8]byte  // "EFI PART"
	Revision                 uint32   // 0x00010000 (1.0)
	HeaderSize               uint32   // 92
	HeaderCRC32              uint32   // CRC32 of the HeaderSize bytes with this field zero
	Reserved                 uint32   // zero
	MyLBA                    uint64   // LBA of this header
	AlternateLBA             uint64   // LBA of the other header
	FirstUsableLBA           uint64   // first sector partitions may use
	LastUsableLBA            uint64   // last sector partitions may use
	DiskGUID                 [16]byte // mixed-endian, see guidToDisk
	PartitionEntryLBA        uint64   // first sector of this header's entry array
	NumberOfPartitionEntries uint32   // 128 when kiln writes it
	SizeOfPartitionEntry     uint32   // 128 when kiln writes it
	PartitionEntryArrayCRC32 uint32   // CRC32 of NumberOfPartitionEntries*SizeOfPartitionEntry bytes
}

// gptEntry is one partition entry (UEFI 2.10 §5.3.3, table 5-6). An entry
// whose type GUID is zero is unused, and kiln writes it all zero.
type gptEntry struct {
	TypeGUID   [16]byte // partition type, mixed-endian
	GUID       [16]byte // unique partition GUID, mixed-endian
	FirstLBA   uint64
	LastLBA    uint64 // inclusive
	Attributes uint64
	Name       [gptNameUnits]uint16 // UTF-16LE, NUL-padded
}

const (
	gptSignature   = "EFI PART"
	gptRevision    = 0x00010000
	gptHeaderSize  = 92
	gptMaxEntries  = 4096 // bound on what Read accepts from other tools
	gptMaxEntrySz  = 4096
	gptMinEntrySz  = gptEntrySize
	crcFieldOffset = 16
)

func init() {
	if n := binary.Size(gptHeader{}); n != gptHeaderSize {
		panic(fmt.Sprintf("BUG: gptHeader is %d bytes, want %d", n, gptHeaderSize))
	}
	if n := binary.Size(gptEntry{}); n != gptEntrySize {
		panic(fmt.Sprintf("BUG: gptEntry is %d bytes, want %d", n, gptEntrySize))
	}
}

// guidToDisk converts a GUID from canonical (RFC 4122) byte order to the
// mixed-endian order GPT stores: the first three fields little-endian, the
// last two as they are. The conversion is its own inverse.
func guidToDisk(u repro.UUID) [16]byte {
	return [16]byte{
		u[3], u[2], u[1], u[0],
		u[5], u[4],
		u[7], u[6],
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15],
	}
}

// guidFromDisk converts mixed-endian GPT bytes to canonical order.
func guidFromDisk(b [16]byte) repro.UUID { return repro.UUID(guidToDisk(repro.UUID(b))) }

func encodeLE(v any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		panic(fmt.Sprintf("BUG: encoding %T: %v", v, err))
	}
	return b.Bytes()
}

// gptEntryArray returns the 128 entries (16 KiB) of a validated layout.
func gptEntryArray(l *Layout) []byte {
	var entries [gptEntries]gptEntry
	for _, p := range l.Partitions {
		e := gptEntry{
			TypeGUID:   guidToDisk(p.TypeGUID),
			GUID:       guidToDisk(p.GUID),
			FirstLBA:   uint64(p.FirstLBA()),
			LastLBA:    uint64(p.LastLBA()),
			Attributes: p.Attributes,
		}
		copy(e.Name[:], utf16.Encode([]rune(p.Name)))
		entries[p.Number-1] = e
	}
	return encodeLE(&entries)
}

// gptHeaderSector returns the 512-byte sector of a header with its CRC set.
func gptHeaderSector(h gptHeader) []byte {
	h.HeaderCRC32 = 0
	b := encodeLE(&h)
	binary.LittleEndian.PutUint32(b[crcFieldOffset:], crc32.ChecksumIEEE(b))
	sector := make([]byte, SectorSize)
	copy(sector, b)
	return sector
}

// writeGPT writes a validated GPT layout: the protective MBR, the primary
// header and entries at LBA 1-33, the backup entries and header in the last
// 33 sectors.
func writeGPT(w io.WriterAt, l *Layout) error {
	sectors := l.Size / SectorSize
	first, last := l.usable()
	entries := gptEntryArray(l)
	backupEntries := sectors - 1 - gptEntrySectors
	primary := gptHeader{
		Revision:                 gptRevision,
		HeaderSize:               gptHeaderSize,
		MyLBA:                    1,
		AlternateLBA:             uint64(sectors - 1),
		FirstUsableLBA:           uint64(first),
		LastUsableLBA:            uint64(last),
		DiskGUID:                 guidToDisk(l.DiskGUID),
		PartitionEntryLBA:        2,
		NumberOfPartitionEntries: gptEntries,
		SizeOfPartitionEntry:     gptEntrySize,
		PartitionEntryArrayCRC32: crc32.ChecksumIEEE(entries),
	}
	copy(primary.Signature[:], gptSignature)
	backup := primary
	backup.MyLBA, backup.AlternateLBA = primary.AlternateLBA, primary.MyLBA
	backup.PartitionEntryLBA = uint64(backupEntries)

	pmbr := protectiveMBR(sectors, l.DiskSignature)
	writes := []struct {
		what string
		lba  int64
		b    []byte
	}{
		{"protective MBR", 0, pmbr.encode()},
		{"primary GPT header", 1, gptHeaderSector(primary)},
		{"primary GPT entries", 2, entries},
		{"backup GPT entries", backupEntries, entries},
		{"backup GPT header", sectors - 1, gptHeaderSector(backup)},
	}
	for _, x := range writes {
		if _, err := w.WriteAt(x.b, x.lba*SectorSize); err != nil {
			return fmt.Errorf("write %s at LBA %d: %w", x.what, x.lba, err)
		}
	}
	return nil
}

// gptTable is one parsed and checked copy of the GPT.
type gptTable struct {
	hdr     gptHeader
	entries []byte
}

// errNoGPT means the sector holds no GPT header signature at all.
var errNoGPT = errors.New("no GPT header signature")

// readGPTCopy reads and checks the header at lba and its entry array.
func readGPTCopy(r io.ReaderAt, lba, sectors int64) (*gptTable, error) {
	if lba < 1 || lba >= sectors {
		return nil, fmt.Errorf("header LBA %d outside the disk (%d sectors)", lba, sectors)
	}
	sector := make([]byte, SectorSize)
	if _, err := r.ReadAt(sector, lba*SectorSize); err != nil {
		return nil, fmt.Errorf("header at LBA %d: %w", lba, err)
	}
	var h gptHeader
	if err := binary.Read(bytes.NewReader(sector), binary.LittleEndian, &h); err != nil {
		return nil, fmt.Errorf("BUG: decoding GPT header: %w", err)
	}
	if string(h.Signature[:]) != gptSignature {
		return nil, fmt.Errorf("header at LBA %d: %w", lba, errNoGPT)
	}
	if h.HeaderSize < gptHeaderSize || h.HeaderSize > SectorSize {
		return nil, fmt.Errorf("header at LBA %d: header size %d not in %d-%d", lba, h.HeaderSize, gptHeaderSize, SectorSize)
	}
	crcBytes := append([]byte(nil), sector[:h.HeaderSize]...)
	binary.LittleEndian.PutUint32(crcBytes[crcFieldOffset:], 0)
	if got := crc32.ChecksumIEEE(crcBytes); got != h.HeaderCRC32 {
		return nil, fmt.Errorf("header at LBA %d: CRC32 is 0x%08x, the header says 0x%08x", lba, got, h.HeaderCRC32)
	}
	if h.MyLBA != uint64(lba) {
		return nil, fmt.Errorf("header at LBA %d: says it is at LBA %d", lba, h.MyLBA)
	}
	n, sz := int64(h.NumberOfPartitionEntries), int64(h.SizeOfPartitionEntry)
	if n < 1 || n > gptMaxEntries || sz < gptMinEntrySz || sz > gptMaxEntrySz || sz%8 != 0 {
		return nil, fmt.Errorf("header at LBA %d: NumberOfPartitionEntries %d, SizeOfPartitionEntry %d: not supported (1..%d entries of %d..%d bytes, a multiple of 8)",
			lba, n, sz, gptMaxEntries, gptMinEntrySz, gptMaxEntrySz)
	}
	entLBA := int64(h.PartitionEntryLBA)
	entSectors := (n*sz + SectorSize - 1) / SectorSize
	if h.PartitionEntryLBA >= uint64(sectors) || entLBA < 1 || entLBA+entSectors > sectors {
		return nil, fmt.Errorf("header at LBA %d: entries at LBA %d (%d sectors) outside the disk", lba, h.PartitionEntryLBA, entSectors)
	}
	if h.FirstUsableLBA > h.LastUsableLBA || h.LastUsableLBA >= uint64(sectors) {
		return nil, fmt.Errorf("header at LBA %d: usable LBAs %d-%d not within the disk's %d sectors", lba, h.FirstUsableLBA, h.LastUsableLBA, sectors)
	}
	entries := make([]byte, n*sz)
	if _, err := r.ReadAt(entries, entLBA*SectorSize); err != nil {
		return nil, fmt.Errorf("entries at LBA %d: %w", entLBA, err)
	}
	if got := crc32.ChecksumIEEE(entries); got != h.PartitionEntryArrayCRC32 {
		return nil, fmt.Errorf("entries at LBA %d: CRC32 is 0x%08x, the header says 0x%08x", entLBA, got, h.PartitionEntryArrayCRC32)
	}
	return &gptTable{hdr: h, entries: entries}, nil
}

// readGPT reads the primary GPT, or the backup if the primary is unusable.
func readGPT(r io.ReaderAt, m mbrSector, sectors int64) (*Layout, error) {
	var problems []string
	fromBackup := false
	t, perr := readGPTCopy(r, 1, sectors)
	if perr == nil {
		alt := int64(t.hdr.AlternateLBA)
		if alt != sectors-1 {
			problems = append(problems, fmt.Sprintf("primary GPT header: backup header at LBA %d, not at the last sector (LBA %d)", alt, sectors-1))
		}
		if b, err := readGPTCopy(r, alt, sectors); err != nil {
			problems = append(problems, fmt.Sprintf("backup GPT: %v", err))
		} else if b.hdr.DiskGUID != t.hdr.DiskGUID || !bytes.Equal(b.entries, t.entries) || b.hdr.AlternateLBA != 1 {
			problems = append(problems, "backup GPT differs from the primary")
		}
	} else {
		var berr error
		t, berr = readGPTCopy(r, sectors-1, sectors)
		if berr != nil {
			return nil, fmt.Errorf("read GPT: primary: %w; backup: %v", perr, berr)
		}
		fromBackup = true
		problems = append(problems, fmt.Sprintf("primary GPT unusable (%v); read the backup", perr))
	}

	h := t.hdr
	l := &Layout{
		Table:          GPT,
		DiskGUID:       guidFromDisk(h.DiskGUID),
		DiskSignature:  m.DiskSignature,
		Size:           sectors * SectorSize,
		FirstUsableLBA: int64(h.FirstUsableLBA),
		LastUsableLBA:  int64(h.LastUsableLBA),
		FromBackup:     fromBackup,
		Problems:       problems,
	}
	sz := int(h.SizeOfPartitionEntry)
	for i := 0; i < int(h.NumberOfPartitionEntries); i++ {
		var e gptEntry
		if err := binary.Read(bytes.NewReader(t.entries[i*sz:i*sz+gptEntrySize]), binary.LittleEndian, &e); err != nil {
			return nil, fmt.Errorf("BUG: decoding GPT entry: %w", err)
		}
		if e.TypeGUID == ([16]byte{}) {
			continue
		}
		if e.LastLBA < e.FirstLBA || e.LastLBA >= uint64(sectors) {
			return nil, fmt.Errorf("read GPT: entry %d: LBAs %d-%d not within the disk's %d sectors", i+1, e.FirstLBA, e.LastLBA, sectors)
		}
		p := Partition{
			Number:     i + 1,
			Name:       decodeGPTName(e.Name),
			TypeGUID:   guidFromDisk(e.TypeGUID),
			GUID:       guidFromDisk(e.GUID),
			Attributes: e.Attributes,
			Bootable:   e.Attributes&AttrLegacyBIOSBootable != 0,
			Start:      int64(e.FirstLBA) * SectorSize,
			Size:       int64(e.LastLBA-e.FirstLBA+1) * SectorSize,
		}
		if p.FirstLBA() < l.FirstUsableLBA || p.LastLBA() > l.LastUsableLBA {
			l.Problems = append(l.Problems, fmt.Sprintf("partition %d: LBAs %d-%d outside the usable %d-%d", p.Number, p.FirstLBA(), p.LastLBA(), l.FirstUsableLBA, l.LastUsableLBA))
		}
		l.Partitions = append(l.Partitions, p)
	}
	return l, nil
}

// decodeGPTName decodes a NUL-padded UTF-16LE name.
func decodeGPTName(units [gptNameUnits]uint16) string {
	n := 0
	for n < len(units) && units[n] != 0 {
		n++
	}
	return string(utf16.Decode(units[:n]))
}
