package disk

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Write writes the partition table of l to w, an image of l.Size bytes.
//
// GPT: the protective MBR (one 0xEE partition over the whole disk, at most
// 0xFFFFFFFF sectors), the primary header at LBA 1 and its 128 entries of
// 128 bytes at LBA 2-33, the backup entries in the 32 sectors before the
// last one and the backup header in the last sector. Unused entries are
// zero.
//
// MBR: the disk signature at 0x1B8, the primary partitions in the entries
// of their Number, with CHS fields as libfdisk computes them for 255 heads
// and 63 sectors (0xFE 0xFF 0xFF beyond cylinder 1023), 0x80 for the
// bootable one, and the 0x55AA signature.
//
// In both, the boot code area (bytes 0-439) is written zero; WriteBootCode
// fills it later. Nothing outside the table's sectors is written.
func Write(w io.WriterAt, l *Layout) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	switch l.Table {
	case GPT:
		return writeGPT(w, l)
	case MBR:
		return writeMBR(w, l)
	}
	return fmt.Errorf("BUG: write partition table: table %v passed validation", l.Table)
}

// Read parses the partition table of an image of size bytes: a GPT when
// sector 0 is a (protective) MBR with an 0xEE partition, or has no MBR
// signature but LBA 1 or the last sector holds a GPT header; an MBR
// otherwise, with the logical partitions of its extended partition.
//
// For GPT it checks the header and entry CRCs; if the primary copy is
// unusable it reads the backup, sets FromBackup and says why in Problems.
// Other damage it can read past (a broken backup, a hybrid MBR, partitions
// outside the usable area) is listed in Problems too.
func Read(r io.ReaderAt, size int64) (*Layout, error) {
	sectors := size / SectorSize
	if sectors < 2 {
		return nil, fmt.Errorf("read partition table: image of %d bytes is too small", size)
	}
	sector := make([]byte, SectorSize)
	if _, err := r.ReadAt(sector, 0); err != nil {
		return nil, fmt.Errorf("read partition table: sector 0: %w", err)
	}
	m, err := decodeMBR(sector)
	if err != nil {
		return nil, err
	}
	if m.Signature != mbrSignature {
		l, err := readGPT(r, m, sectors)
		if err != nil {
			if errors.Is(err, errNoGPT) {
				return nil, fmt.Errorf("read partition table: no MBR signature in sector 0 and no GPT header")
			}
			return nil, fmt.Errorf("read partition table: no MBR signature in sector 0: %w", err)
		}
		l.Problems = append([]string{"no protective MBR in sector 0"}, l.Problems...)
		return l, nil
	}
	protective := -1
	used := 0
	for i, e := range m.Entries {
		if e.Type != 0 {
			used++
		}
		if e.Type == 0xEE && protective < 0 {
			protective = i
		}
	}
	if protective < 0 {
		l, err := readMBR(r, m, sectors)
		if err != nil {
			return nil, fmt.Errorf("read partition table: %w", err)
		}
		// Logical partitions lie inside their extended partition; check
		// primaries and logicals each among themselves.
		var primary, logical []Partition
		for _, p := range l.Partitions {
			if p.Number <= 4 {
				primary = append(primary, p)
			} else {
				logical = append(logical, p)
			}
		}
		l.Problems = append(l.Problems, overlapProblems(primary)...)
		l.Problems = append(l.Problems, overlapProblems(logical)...)
		return l, nil
	}
	l, err := readGPT(r, m, sectors)
	if err != nil {
		return nil, fmt.Errorf("read partition table: protective MBR found: %w", err)
	}
	var pmbr []string
	if used > 1 {
		pmbr = append(pmbr, "hybrid MBR: the protective MBR has other partitions besides the 0xEE one")
	}
	if e := m.Entries[protective]; e.FirstLBA != 1 {
		pmbr = append(pmbr, fmt.Sprintf("protective MBR partition starts at LBA %d, not 1", e.FirstLBA))
	}
	l.Problems = append(pmbr, l.Problems...)
	l.Problems = append(l.Problems, overlapProblems(l.Partitions)...)
	return l, nil
}

// overlapProblems reports each partition that overlaps one starting before
// it.
func overlapProblems(ps []Partition) []string {
	s := append([]Partition(nil), ps...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	var out []string
	reach := -1 // index of the partition reaching furthest so far
	for i, p := range s {
		if reach >= 0 && p.Start < s[reach].End() {
			out = append(out, fmt.Sprintf("partition %d (LBAs %d-%d) overlaps partition %d (LBAs %d-%d)",
				p.Number, p.FirstLBA(), p.LastLBA(), s[reach].Number, s[reach].FirstLBA(), s[reach].LastLBA()))
		}
		if reach < 0 || p.End() > s[reach].End() {
			reach = i
		}
	}
	return out
}
