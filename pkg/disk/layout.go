package disk

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kiln-build/kiln/pkg/repro"
)

// SectorSize is the logical sector size of every image kiln makes.
const SectorSize = 512

// MiB is 1 MiB in bytes, the default alignment and the first partition's
// start.
const MiB = 1 << 20

// Table is the kind of partition table.
type Table int

const (
	GPT Table = iota + 1 // GUID Partition Table with protective MBR
	MBR                  // classic DOS/MBR table, primary partitions only
)

func (t Table) String() string {
	switch t {
	case GPT:
		return "gpt"
	case MBR:
		return "mbr"
	}
	return fmt.Sprintf("Table(%d)", int(t))
}

// ParseTable parses "gpt" or "mbr" (also "dos", "msdos"), case-insensitive.
func ParseTable(s string) (Table, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "gpt":
		return GPT, nil
	case "mbr", "dos", "msdos":
		return MBR, nil
	}
	return 0, fmt.Errorf("unknown partition table %q: want gpt or mbr", s)
}

// GPT geometry: kiln always writes 128 entries of 128 bytes (32 sectors).
const (
	gptEntries      = 128
	gptEntrySize    = 128
	gptEntrySectors = gptEntries * gptEntrySize / SectorSize // 32
	gptNameUnits    = 36                                     // UTF-16 code units in an entry's name
	// gptFirstUsable is the first LBA after the protective MBR, the primary
	// header and the primary entries.
	gptFirstUsable = 2 + gptEntrySectors // 34
	// gptBackupSectors is what the backup takes at the end: entries and header.
	gptBackupSectors = gptEntrySectors + 1 // 33
	// mbrMaxSectors is the largest start or size an MBR entry can hold.
	mbrMaxSectors = 1<<32 - 1
)

// GPT attribute bits (UEFI 2.10 table 5-7). Bits 3-47 are reserved; bits
// 48-63 belong to the partition type.
const (
	AttrRequired           = 1 << 0 // platform required: do not delete
	AttrNoBlockIO          = 1 << 1 // EFI firmware must not add a block I/O protocol
	AttrLegacyBIOSBootable = 1 << 2 // legacy BIOS bootable (what BIOS-booting GPT MBR code looks for)
	attrReserved           = (1<<48 - 1) &^ 0b111
)

// Partition is one partition of a Layout.
type Partition struct {
	Number     int        // 1-based slot in the table (GPT entry index + 1; MBR 1-4, logical 5+)
	Name       string     // GPT partition name; for MBR only kiln's bookkeeping (not written)
	TypeGUID   repro.UUID // GPT partition type GUID (zero on MBR)
	MBRType    byte       // MBR partition type byte (zero on GPT)
	GUID       repro.UUID // GPT unique partition GUID (zero on MBR)
	Attributes uint64     // GPT attribute bits (zero on MBR)
	Bootable   bool       // MBR active flag; on GPT the same as Attributes&AttrLegacyBIOSBootable
	Start      int64      // bytes from the start of the disk, a multiple of SectorSize
	Size       int64      // bytes, a multiple of SectorSize
}

// FirstLBA is the partition's first sector.
func (p Partition) FirstLBA() int64 { return p.Start / SectorSize }

// LastLBA is the partition's last sector (inclusive, as GPT stores it).
func (p Partition) LastLBA() int64 { return (p.Start+p.Size)/SectorSize - 1 }

// End is the byte offset just past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Type returns the registry's type of the partition (by GUID on GPT, by MBR
// byte on MBR), or a Type with only the raw values if it is unknown.
func (p Partition) Type() Type {
	if !p.TypeGUID.IsZero() {
		if t, ok := TypeByGUID(p.TypeGUID); ok {
			return t
		}
		return Type{GUID: p.TypeGUID, Description: "GPT type " + p.TypeGUID.String()}
	}
	if t, ok := TypeByMBR(p.MBRType); ok {
		return t
	}
	return Type{MBR: p.MBRType, Description: fmt.Sprintf("MBR type 0x%02x", p.MBRType)}
}

// Layout is a partition table: what Plan produces, Write writes and Read
// returns.
type Layout struct {
	Table         Table
	DiskGUID      repro.UUID // GPT disk GUID (zero on MBR)
	DiskSignature uint32     // MBR disk signature at 0x1B8 (on GPT: the protective MBR's, normally zero)
	Size          int64      // disk size in bytes, a multiple of SectorSize

	// FirstUsableLBA and LastUsableLBA bound where GPT partitions may lie
	// (header fields). Plan sets 34 and the sector before the backup entries;
	// Write uses these defaults when they are zero. On MBR they are 1 and the
	// last sector.
	FirstUsableLBA int64
	LastUsableLBA  int64

	Partitions []Partition // in Number order

	// Set by Read only.
	FromBackup bool     // GPT: the primary header or entries were unusable; this came from the backup
	Problems   []string // what Read found wrong but could read past, e.g. a bad backup CRC
}

// PartUUID returns what Linux calls the partition's PARTUUID (for
// root=PARTUUID=...): the partition GUID on GPT, "<signature>-<number>" in
// hex on MBR.
func (l *Layout) PartUUID(p Partition) string {
	if l.Table == MBR {
		return fmt.Sprintf("%08x-%02x", l.DiskSignature, p.Number)
	}
	return p.GUID.String()
}

// PartitionSpec is one partition as the image spec asks for it.
type PartitionSpec struct {
	Name       string     // unique, non-empty; written as the GPT partition name
	Type       string     // see LookupType: "esp", "root", a GUID, "0x83", ...
	Size       int64      // bytes; rounded up to a multiple of the alignment; 0 only with Rest
	Rest       bool       // take what is left of the disk (at most one partition)
	GUID       repro.UUID // GPT unique partition GUID; required on GPT, ignored on MBR
	Attributes uint64     // GPT attribute bits (AttrRequired, ...); must be zero on MBR
	Bootable   bool       // MBR active flag; on GPT sets AttrLegacyBIOSBootable
}

// PlanOptions are the disk-wide parameters of Plan.
type PlanOptions struct {
	Align         int64      // partition alignment in bytes, a multiple of SectorSize; 0 means 1 MiB
	Arch          string     // target architecture for "root", "usr", ...; "" means DefaultArch
	DiskGUID      repro.UUID // GPT disk GUID; required on GPT, ignored on MBR
	DiskSignature uint32     // MBR disk signature; ignored on GPT
}

func (o PlanOptions) align() (int64, error) {
	if o.Align == 0 {
		return MiB, nil
	}
	if o.Align < 0 || o.Align%SectorSize != 0 {
		return 0, fmt.Errorf("alignment %d: want a positive multiple of %d bytes", o.Align, SectorSize)
	}
	return o.Align, nil
}

// firstStart is where the first partition starts: 1 MiB, rounded up to the
// alignment.
func firstStart(align int64) int64 { return roundUp(MiB, align) }

func roundUp(n, m int64) int64   { return (n + m - 1) / m * m }
func roundDown(n, m int64) int64 { return n / m * m }

// tableTail is how many bytes the table needs after the last partition.
func tableTail(t Table) int64 {
	if t == GPT {
		return gptBackupSectors * SectorSize
	}
	return 0
}

// maxBytes bounds every size so that sums cannot overflow int64.
const maxBytes = 1 << 60

// MinDiskSize returns the smallest disk size, a multiple of 1 MiB, on which
// Plan places partitions of the given sizes (in order, with the same
// options): the aligned partitions plus, on GPT, the backup header and
// entries. A size of 0 stands for a Rest partition and counts as one
// alignment unit, the least Plan gives it.
func MinDiskSize(table Table, sizes []int64, o PlanOptions) (int64, error) {
	if table != GPT && table != MBR {
		return 0, fmt.Errorf("min disk size: unknown table %v", table)
	}
	align, err := o.align()
	if err != nil {
		return 0, fmt.Errorf("min disk size: %w", err)
	}
	end := firstStart(align)
	for i, s := range sizes {
		if s < 0 || s > maxBytes {
			return 0, fmt.Errorf("min disk size: partition %d: size %d out of range", i+1, s)
		}
		if s == 0 {
			s = align
		}
		end += roundUp(s, align)
		if end > maxBytes {
			return 0, fmt.Errorf("min disk size: partitions total more than %d bytes", int64(maxBytes))
		}
	}
	return roundUp(end+tableTail(table), MiB), nil
}

// usableEnd returns the byte offset just past the last usable sector.
func usableEnd(table Table, diskSize int64) int64 {
	return diskSize - tableTail(table)
}

// Plan places parts on a disk of diskSize bytes, in the order given.
//
// Every partition starts on a multiple of the alignment (o.Align, default
// 1 MiB), the first one at 1 MiB rounded up to the alignment, and has a size
// rounded up to a multiple of the alignment, so partitions follow each other
// without gaps. A Rest partition gets what the others leave, up to the last
// usable sector rounded down to the alignment: it ends on an aligned
// boundary, like every other partition, rather than at the last usable
// sector. On GPT with a disk size that is a multiple of the alignment this
// leaves one alignment unit at the end minus the 33 sectors of the backup
// table unused (sfdisk does the same).
//
// Plan checks that the disk is big enough, that names are unique and not
// empty (and at most 36 UTF-16 code units on GPT), that there are at most
// 128 partitions on GPT and 4 on MBR, that MBR starts and sizes fit the
// 32-bit sector fields (2 TiB), that GPT GUIDs are set and unique, and that
// each type exists on the table.
func Plan(table Table, diskSize int64, parts []PartitionSpec, o PlanOptions) (*Layout, error) {
	if table != GPT && table != MBR {
		return nil, fmt.Errorf("plan: unknown table %v", table)
	}
	align, err := o.align()
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if diskSize <= 0 || diskSize%SectorSize != 0 || diskSize > maxBytes {
		return nil, fmt.Errorf("plan: disk size %d: want a positive multiple of %d", diskSize, SectorSize)
	}
	switch {
	case table == GPT && len(parts) > gptEntries:
		return nil, fmt.Errorf("plan: %d partitions: GPT holds at most %d", len(parts), gptEntries)
	case table == MBR && len(parts) > 4:
		return nil, fmt.Errorf("plan: %d partitions: an MBR holds at most 4 primary partitions", len(parts))
	}
	if table == GPT && o.DiskGUID.IsZero() {
		return nil, fmt.Errorf("plan: GPT needs a disk GUID")
	}

	l := &Layout{Table: table, Size: diskSize}
	if table == GPT {
		l.DiskGUID = o.DiskGUID
		l.FirstUsableLBA = gptFirstUsable
		l.LastUsableLBA = diskSize/SectorSize - 1 - gptBackupSectors
	} else {
		l.DiskSignature = o.DiskSignature
		l.FirstUsableLBA = 1
		l.LastUsableLBA = diskSize/SectorSize - 1
	}

	// First pass: resolve and check everything but positions.
	rest := -1
	var fixed int64 // sum of the aligned sizes of the non-Rest partitions
	names := map[string]int{}
	guids := map[repro.UUID]int{}
	bootable := -1
	for i, s := range parts {
		ctx := fmt.Sprintf("plan: partition %d (%q)", i+1, s.Name)
		if s.Name == "" {
			return nil, fmt.Errorf("plan: partition %d: empty name", i+1)
		}
		if j, dup := names[s.Name]; dup {
			return nil, fmt.Errorf("%s: name already used by partition %d", ctx, j)
		}
		names[s.Name] = i + 1
		if table == GPT {
			if err := checkGPTName(s.Name); err != nil {
				return nil, fmt.Errorf("%s: %w", ctx, err)
			}
		}
		t, err := LookupType(s.Type, o.Arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ctx, err)
		}
		p := Partition{Number: i + 1, Name: s.Name}
		switch table {
		case GPT:
			if t.GUID.IsZero() {
				return nil, fmt.Errorf("%s: type %q has no GPT type GUID", ctx, s.Type)
			}
			if s.GUID.IsZero() {
				return nil, fmt.Errorf("%s: GPT needs a partition GUID", ctx)
			}
			if s.GUID == o.DiskGUID {
				return nil, fmt.Errorf("%s: partition GUID %s is the disk GUID", ctx, s.GUID)
			}
			if j, dup := guids[s.GUID]; dup {
				return nil, fmt.Errorf("%s: partition GUID %s already used by partition %d", ctx, s.GUID, j)
			}
			guids[s.GUID] = i + 1
			if s.Attributes&attrReserved != 0 {
				return nil, fmt.Errorf("%s: attributes %#x set reserved bits 3-47", ctx, s.Attributes)
			}
			p.TypeGUID = t.GUID
			p.GUID = s.GUID
			p.Attributes = s.Attributes
			if s.Bootable {
				p.Attributes |= AttrLegacyBIOSBootable
			}
			p.Bootable = p.Attributes&AttrLegacyBIOSBootable != 0
		case MBR:
			if t.MBR == 0 {
				return nil, fmt.Errorf("%s: type %q has no MBR type byte", ctx, s.Type)
			}
			if isExtended(t.MBR) || t.MBR == 0xEE {
				return nil, fmt.Errorf("%s: type %q (0x%02x) is not for a primary partition kiln fills", ctx, s.Type, t.MBR)
			}
			if s.Attributes != 0 {
				return nil, fmt.Errorf("%s: attributes %#x: an MBR has no attribute bits", ctx, s.Attributes)
			}
			if s.Bootable {
				if bootable >= 0 {
					return nil, fmt.Errorf("%s: bootable, but partition %d already is: an MBR has at most one active partition", ctx, bootable+1)
				}
				bootable = i
			}
			p.MBRType = t.MBR
			p.Bootable = s.Bootable
		}
		switch {
		case s.Rest && s.Size != 0:
			return nil, fmt.Errorf("%s: both a size (%d) and rest", ctx, s.Size)
		case s.Rest:
			if rest >= 0 {
				return nil, fmt.Errorf("%s: rest, but partition %d (%q) already takes the rest", ctx, rest+1, parts[rest].Name)
			}
			rest = i
		case s.Size <= 0 || s.Size > maxBytes:
			return nil, fmt.Errorf("%s: size %d: want a positive size or rest", ctx, s.Size)
		default:
			p.Size = roundUp(s.Size, align)
			fixed += p.Size
			if fixed > maxBytes {
				return nil, fmt.Errorf("%s: partitions total more than %d bytes", ctx, int64(maxBytes))
			}
		}
		l.Partitions = append(l.Partitions, p)
	}

	// Second pass: sizes and positions.
	first := firstStart(align)
	end := usableEnd(table, diskSize)
	if rest >= 0 {
		avail := roundDown(end, align) - first - fixed
		if avail < align {
			sizes := make([]int64, len(parts))
			for i, s := range parts {
				sizes[i] = s.Size
			}
			need, _ := MinDiskSize(table, sizes, o)
			return nil, fmt.Errorf("plan: disk of %s is too small: the partitions need %s before rest partition %q gets even %s; a disk of at least %s would do",
				fmtBytes(diskSize), fmtBytes(first+fixed), parts[rest].Name, fmtBytes(align), fmtBytes(need))
		}
		l.Partitions[rest].Size = avail
	} else if first+fixed > end {
		sizes := make([]int64, len(parts))
		for i, s := range parts {
			sizes[i] = s.Size
		}
		need, _ := MinDiskSize(table, sizes, o)
		extra := ""
		if table == GPT {
			extra = fmt.Sprintf(" plus %d bytes for the backup GPT", tableTail(GPT))
		}
		return nil, fmt.Errorf("plan: disk of %s is too small: the partitions end at %s%s; a disk of at least %s would do",
			fmtBytes(diskSize), fmtBytes(first+fixed), extra, fmtBytes(need))
	}
	pos := first
	for i := range l.Partitions {
		p := &l.Partitions[i]
		p.Start = pos
		pos += p.Size
		if table == MBR {
			if p.Start/SectorSize > mbrMaxSectors || p.Size/SectorSize > mbrMaxSectors {
				return nil, fmt.Errorf("plan: partition %d (%q): start %s, size %s: MBR entries hold at most %d sectors (2 TiB) each; use GPT",
					p.Number, p.Name, fmtBytes(p.Start), fmtBytes(p.Size), int64(mbrMaxSectors))
			}
		}
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("BUG: plan made an invalid layout: %w", err)
	}
	return l, nil
}

// checkGPTName checks that name fits a GPT entry: valid UTF-8 without NUL,
// at most 36 UTF-16 code units.
func checkGPTName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("GPT name %q is not valid UTF-8", name)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("GPT name %q contains NUL", name)
	}
	if n := len(utf16.Encode([]rune(name))); n > gptNameUnits {
		return fmt.Errorf("GPT name %q is %d UTF-16 code units long, at most %d fit", name, n, gptNameUnits)
	}
	return nil
}

// fmtBytes formats n as "N bytes (X MiB)", exact where it can be.
func fmtBytes(n int64) string {
	switch {
	case n%(1<<30) == 0 && n >= 1<<30:
		return fmt.Sprintf("%d bytes (%d GiB)", n, n>>30)
	case n%MiB == 0 && n >= MiB:
		return fmt.Sprintf("%d bytes (%d MiB)", n, n>>20)
	case n >= MiB:
		return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/MiB)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Validate checks that l can be written: a known table, a size in whole
// sectors, partitions in whole sectors inside the usable area without
// overlap, numbers unique and in range, and the per-table limits (GPT names,
// GUIDs and types; MBR 32-bit fields, types, one active partition, no
// logical partitions).
func (l *Layout) Validate() error {
	if l.Table != GPT && l.Table != MBR {
		return fmt.Errorf("unknown table %v", l.Table)
	}
	if l.Size <= 0 || l.Size%SectorSize != 0 {
		return fmt.Errorf("disk size %d: want a positive multiple of %d", l.Size, SectorSize)
	}
	first, last := l.usable()
	sectors := l.Size / SectorSize
	switch l.Table {
	case GPT:
		if l.DiskGUID.IsZero() {
			return fmt.Errorf("GPT disk GUID is zero")
		}
		if first < gptFirstUsable || last > sectors-1-gptBackupSectors || first > last {
			return fmt.Errorf("GPT usable LBAs %d-%d: want within %d-%d on a disk of %d sectors",
				first, last, gptFirstUsable, sectors-1-gptBackupSectors, sectors)
		}
	case MBR:
		if first < 1 || last > sectors-1 || first > last {
			return fmt.Errorf("MBR usable LBAs %d-%d: want within 1-%d", first, last, sectors-1)
		}
	}
	ps := make([]Partition, len(l.Partitions))
	copy(ps, l.Partitions)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Start < ps[j].Start })
	numbers := map[int]bool{}
	guids := map[repro.UUID]int{}
	active := 0
	for i, p := range ps {
		ctx := fmt.Sprintf("partition %d (%q)", p.Number, p.Name)
		maxN := gptEntries
		if l.Table == MBR {
			maxN = 4
		}
		if p.Number < 1 || p.Number > maxN {
			if l.Table == MBR && p.Number > 4 {
				return fmt.Errorf("%s: writing logical MBR partitions is not supported", ctx)
			}
			return fmt.Errorf("%s: number out of range 1-%d", ctx, maxN)
		}
		if numbers[p.Number] {
			return fmt.Errorf("%s: number used twice", ctx)
		}
		numbers[p.Number] = true
		if p.Start%SectorSize != 0 || p.Size%SectorSize != 0 || p.Size <= 0 {
			return fmt.Errorf("%s: start %d, size %d: want whole sectors and a positive size", ctx, p.Start, p.Size)
		}
		if p.FirstLBA() < first || p.LastLBA() > last {
			return fmt.Errorf("%s: sectors %d-%d outside the usable %d-%d", ctx, p.FirstLBA(), p.LastLBA(), first, last)
		}
		if i > 0 && p.Start < ps[i-1].End() {
			return fmt.Errorf("%s: sectors %d-%d overlap partition %d (%q), sectors %d-%d",
				ctx, p.FirstLBA(), p.LastLBA(), ps[i-1].Number, ps[i-1].Name, ps[i-1].FirstLBA(), ps[i-1].LastLBA())
		}
		switch l.Table {
		case GPT:
			if err := checkGPTName(p.Name); err != nil {
				return fmt.Errorf("%s: %w", ctx, err)
			}
			if p.TypeGUID.IsZero() {
				return fmt.Errorf("%s: zero type GUID", ctx)
			}
			if p.GUID.IsZero() {
				return fmt.Errorf("%s: zero partition GUID", ctx)
			}
			if j, dup := guids[p.GUID]; dup {
				return fmt.Errorf("%s: partition GUID %s also used by partition %d", ctx, p.GUID, j)
			}
			guids[p.GUID] = p.Number
			if p.Bootable != (p.Attributes&AttrLegacyBIOSBootable != 0) {
				return fmt.Errorf("%s: bootable is %v but the legacy BIOS bootable attribute is %v", ctx, p.Bootable, !p.Bootable)
			}
			if p.MBRType != 0 {
				return fmt.Errorf("%s: MBR type 0x%02x on a GPT partition", ctx, p.MBRType)
			}
		case MBR:
			if p.MBRType == 0 {
				return fmt.Errorf("%s: MBR type 0x00 marks an unused entry", ctx)
			}
			if p.FirstLBA() > mbrMaxSectors || p.Size/SectorSize > mbrMaxSectors {
				return fmt.Errorf("%s: start or size beyond the %d sectors an MBR entry holds", ctx, int64(mbrMaxSectors))
			}
			if !p.TypeGUID.IsZero() || !p.GUID.IsZero() || p.Attributes != 0 {
				return fmt.Errorf("%s: GPT type GUID, partition GUID or attributes on an MBR partition", ctx)
			}
			if p.Bootable {
				active++
			}
		}
	}
	if active > 1 {
		return fmt.Errorf("%d active partitions: an MBR has at most one", active)
	}
	return nil
}

// usable returns the usable LBA range, with the defaults where the layout
// leaves it zero.
func (l *Layout) usable() (first, last int64) {
	first, last = l.FirstUsableLBA, l.LastUsableLBA
	sectors := l.Size / SectorSize
	if first == 0 {
		first = 1
		if l.Table == GPT {
			first = gptFirstUsable
		}
	}
	if last == 0 {
		last = sectors - 1
		if l.Table == GPT {
			last = sectors - 1 - gptBackupSectors
		}
	}
	return first, last
}
