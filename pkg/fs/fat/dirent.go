package fat

import (
	"time"
)

// Directory entry attributes.
const (
	attrReadOnly = 0x01
	attrVolumeID = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = 0x0F // read-only|hidden|system|volume: a long-name entry

	dirEntrySize = 32
	lfnChars     = 13   // UTF-16 units in one LFN entry
	lfnLast      = 0x40 // order bit: the last (first stored) LFN entry
)

// dirEntry is a short (8.3) directory entry (fatgen103 §6).
type dirEntry struct {
	Name         shortName // base and extension, space padded
	Attr         uint8     // attr*
	NTRes        uint8     // Windows NT case bits: caseLowerBase, caseLowerExt
	CrtTimeTenth uint8     // creation time, hundredths of a second (0-199)
	CrtTime      uint16    // creation time, 2-second resolution
	CrtDate      uint16    // creation date
	LstAccDate   uint16    // last access date
	FstClusHI    uint16    // high 16 bits of the first cluster (FAT32)
	WrtTime      uint16    // modification time
	WrtDate      uint16    // modification date
	FstClusLO    uint16    // low 16 bits of the first cluster
	FileSize     uint32    // bytes; 0 for directories
}

// lfnEntry is one VFAT long-name entry: 13 UTF-16 units of the name, in
// three pieces around the fields a short entry needs to look unused.
type lfnEntry struct {
	Ord       uint8     // 1-based position of this piece; lfnLast on the last
	Name1     [5]uint16 // units 1-5
	Attr      uint8     // attrLFN
	Type      uint8     // 0
	Chksum    uint8     // checksum of the short name that follows
	Name2     [6]uint16 // units 6-11
	FstClusLO uint16    // 0
	Name3     [2]uint16 // units 12-13
}

func (e *dirEntry) setCluster(c uint32) {
	e.FstClusHI = uint16(c >> 16)
	e.FstClusLO = uint16(c)
}

// setTimes sets every time of the entry from one instant.
func (e *dirEntry) setTimes(sec int64, nsec uint32) {
	d, t, cs := fatTime(sec, nsec)
	e.CrtTimeTenth, e.CrtTime, e.CrtDate = cs, t, d
	e.LstAccDate = d
	e.WrtTime, e.WrtDate = t, d
}

var (
	minFATTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxFATTime = time.Date(2107, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
)

// fatTime converts a Unix time, taken as UTC, to a FAT date, time (2-second
// resolution) and creation-time hundredths; times out of FAT's range
// (1980-2107) are clamped to its ends.
func fatTime(sec int64, nsec uint32) (date, tim uint16, cs uint8) {
	switch {
	case sec < minFATTime:
		sec, nsec = minFATTime, 0
	case sec > maxFATTime:
		sec, nsec = maxFATTime, 999_999_999
	}
	t := time.Unix(sec, 0).UTC()
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tim = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	cs = uint8(t.Second()%2*100) + uint8(min(nsec, 999_999_999)/10_000_000)
	return date, tim, cs
}

// fromFATTime is the inverse of fatTime's date and time, for tests and Probe.
func fromFATTime(date, tim uint16) time.Time {
	return time.Date(int(date>>9)+1980, time.Month(date>>5&0xF), int(date&0x1F),
		int(tim>>11), int(tim>>5&0x3F), int(tim&0x1F)*2, 0, time.UTC)
}

// appendEntry appends the encoded entry to b.
func appendEntry(b []byte, e *dirEntry) []byte {
	return mustAppend(b, e)
}

// appendLFN appends the long-name entries of name (UTF-16), last piece
// first as they are stored, for a short name with checksum sum.
func appendLFN(b []byte, name []uint16, sum uint8) []byte {
	n := lfnSlots(len(name))
	for i := n; i >= 1; i-- {
		var piece [lfnChars]uint16
		for j := range piece {
			k := (i-1)*lfnChars + j
			switch {
			case k < len(name):
				piece[j] = name[k]
			case k == len(name):
				piece[j] = 0 // terminator, unless the name fills the entry
			default:
				piece[j] = 0xFFFF // padding after the terminator
			}
		}
		e := lfnEntry{Ord: uint8(i), Attr: attrLFN, Chksum: sum}
		if i == n {
			e.Ord |= lfnLast
		}
		copy(e.Name1[:], piece[0:5])
		copy(e.Name2[:], piece[5:11])
		copy(e.Name3[:], piece[11:13])
		b = mustAppend(b, &e)
	}
	return b
}
