package fat

import (
	"fmt"
)

const (
	sectorSize = 512
	numFATs    = 2
	media      = 0xF8

	// Cluster-count limits that decide the FAT type (fatgen103: a volume
	// with fewer than 4085 clusters is FAT12, fewer than 65525 FAT16,
	// else FAT32).
	minClusters16 = 4085
	minClusters32 = 65525

	// mkfs.fat's upper limits: the top cluster numbers are reserved
	// (bad-cluster and end-of-chain marks), FAT32 entries have 28 bits.
	maxClusters12 = 1<<12 - 16
	maxClusters16 = 1<<16 - 16
	maxClusters32 = 1<<28 - 16

	reserved32       = 32 // reserved sectors on FAT32
	reserved1216     = 1  // reserved sectors on FAT12/16 (before alignment)
	defaultRootEnts  = 512
	fsInfoSector     = 1
	backupBootSector = 6
	rootCluster32    = 2
)

// layout is the geometry of a volume, in sectors of sectorSize bytes.
type layout struct {
	fatType     int    // 12, 16 or 32
	totSectors  uint32 // sectors of the volume
	secPerClus  uint32 // sectors per cluster, a power of two
	reserved    uint32 // reserved sectors before the first FAT
	fatSectors  uint32 // sectors of one FAT
	rootEntries uint32 // FAT12/16: entries of the fixed root directory; 0 on FAT32
	clusters    uint32 // data clusters, numbered 2 .. clusters+1
	heads       uint16 // CHS geometry of the BPB (meaningless, as mkfs.fat sets it)
	secPerTrack uint16
}

func (l *layout) rootSectors() uint32 { return cdiv(l.rootEntries*32, sectorSize) }

// fatStart is the first sector of FAT number i (0-based).
func (l *layout) fatStart(i int) uint32 { return l.reserved + uint32(i)*l.fatSectors }

// rootStart is the first sector of the fixed root directory (FAT12/16).
func (l *layout) rootStart() uint32 { return l.reserved + numFATs*l.fatSectors }

// dataStart is the first sector of cluster 2.
func (l *layout) dataStart() uint32 { return l.rootStart() + l.rootSectors() }

func (l *layout) clusterBytes() int64 { return int64(l.secPerClus) * sectorSize }

// clusterOffset is the byte offset of cluster c from the volume start.
func (l *layout) clusterOffset(c uint32) int64 {
	return (int64(l.dataStart()) + int64(c-2)*int64(l.secPerClus)) * sectorSize
}

// fatEntries is how many entries one FAT has room for.
func (l *layout) fatEntries() uint64 {
	return uint64(l.fatSectors) * sectorSize * 8 / uint64(l.fatType)
}

// check verifies the invariants every layout must keep; a failure is a bug.
func (l *layout) check() error {
	if uint64(l.clusters)+2 > l.fatEntries() {
		return fmt.Errorf("BUG: fat: %d clusters but the FAT has only %d entries", l.clusters, l.fatEntries())
	}
	if uint64(l.dataStart())+uint64(l.clusters)*uint64(l.secPerClus) > uint64(l.totSectors) {
		return fmt.Errorf("BUG: fat: data area of %d clusters ends past the volume's %d sectors", l.clusters, l.totSectors)
	}
	if got := typeOfCount(l.clusters); got != l.fatType {
		return fmt.Errorf("BUG: fat: %d clusters make a FAT%d, not a FAT%d", l.clusters, got, l.fatType)
	}
	return nil
}

// typeOfCount is the FAT type that a cluster count implies (fatgen103).
func typeOfCount(clusters uint32) int {
	switch {
	case clusters < minClusters16:
		return 12
	case clusters < minClusters32:
		return 16
	}
	return 32
}

func cdiv(a, b uint32) uint32 { return (a + b - 1) / b }

// newLayout chooses the geometry for a volume of totSectors sectors, as
// mkfs.fat does. fatType is 12, 16, 32, or 0 for FAT32 where the size allows
// it, else the better of FAT16 and FAT12. rootEntries is the least number of
// root directory entries FAT12/16 must provide (at least 512 are).
func newLayout(totSectors uint32, fatType int, rootEntries uint32) (*layout, error) {
	size := int64(totSectors) * sectorSize
	if rootEntries < defaultRootEnts {
		rootEntries = defaultRootEnts
	}
	switch fatType {
	case 0:
		if l, err := layout32(totSectors); err == nil {
			return l, nil
		}
		l, err := layout1216(totSectors, 0, rootEntries)
		if err != nil {
			return nil, fmt.Errorf("fat: %d bytes is too small for any FAT file system", size)
		}
		return l, nil
	case 32:
		return layout32(totSectors)
	case 12, 16:
		return layout1216(totSectors, fatType, rootEntries)
	}
	return nil, fmt.Errorf("fat: FAT type %d: want 0 (automatic), 12, 16 or 32", fatType)
}

// chs returns the placeholder CHS geometry mkfs.fat writes.
func chs(totSectors uint32) (heads, secPerTrack uint16) {
	if uint64(totSectors)*sectorSize < 512<<20 {
		return 64, 32
	}
	return 255, 63
}

// alignUp rounds sectors up to a multiple of clus (a power of two) when
// align is set, as mkfs.fat aligns the FATs and the data area to clusters.
func alignUp(sectors, clus uint32, align bool) uint32 {
	if !align {
		return sectors
	}
	return (sectors + clus - 1) &^ (clus - 1)
}

// layout32 is mkfs.fat's FAT32 geometry: the cluster size follows
// fatgen103's table (512 bytes up to 260 MiB, 4 KiB up to 8 GiB, 8 KiB up
// to 16 GiB, 16 KiB up to 32 GiB, 32 KiB above), the FAT is sized for
// the clusters left after it, and there must be at least 65525 clusters.
func layout32(totSectors uint32) (*layout, error) {
	const mibSectors = 1 << 20 / sectorSize
	var spc uint32
	switch {
	case totSectors > 32<<10*mibSectors:
		spc = 64
	case totSectors > 16<<10*mibSectors:
		spc = 32
	case totSectors > 8<<10*mibSectors:
		spc = 16
	case totSectors > 260*mibSectors:
		spc = 8
	default:
		spc = 1
	}
	align := totSectors > 8192
	reserved := alignUp(reserved32, spc, align)
	if totSectors <= reserved {
		return nil, fmt.Errorf("fat: %d bytes is too small for FAT32", int64(totSectors)*sectorSize)
	}
	fatdata := uint64(totSectors - reserved)
	// First estimate, from fatdata*512 = n*spc*512 + FATs of n+2 entries.
	n := (fatdata*sectorSize + numFATs*8) / (uint64(spc)*sectorSize + numFATs*4)
	fatLen := alignUp(uint32(cdiv64((n+2)*4, sectorSize)), spc, align)
	if uint64(numFATs)*uint64(fatLen) >= fatdata {
		return nil, fmt.Errorf("fat: %d bytes is too small for FAT32", int64(totSectors)*sectorSize)
	}
	// The FATs may leave less room than estimated: count again.
	n = (fatdata - numFATs*uint64(fatLen)) / uint64(spc)
	if max := uint64(fatLen) * sectorSize / 4; n+2 > max {
		n = max - 2 // never more clusters than FAT entries
	}
	if n > maxClusters32 {
		return nil, fmt.Errorf("fat: %d bytes is too large for FAT32", int64(totSectors)*sectorSize)
	}
	if n < minClusters32 {
		return nil, fmt.Errorf("fat: %d bytes is too small for FAT32: %d clusters of %d bytes, FAT32 needs at least %d (about 33 MiB)",
			int64(totSectors)*sectorSize, n, spc*sectorSize, minClusters32)
	}
	h, s := chs(totSectors)
	l := &layout{fatType: 32, totSectors: totSectors, secPerClus: spc, reserved: reserved,
		fatSectors: fatLen, clusters: uint32(n), heads: h, secPerTrack: s}
	return l, l.check()
}

func cdiv64(a, b uint64) uint64 { return (a + b - 1) / b }

// layout1216 is mkfs.fat's FAT12/FAT16 geometry: starting at 4 sectors per
// cluster, the cluster size doubles until the wanted type (0: either) fits.
// Unlike mkfs.fat, a forced FAT16 must still have the 4085 clusters that
// make readers see it as FAT16.
func layout1216(totSectors uint32, fatType int, rootEntries uint32) (*layout, error) {
	size := int64(totSectors) * sectorSize
	align := totSectors > 8192
	rootSecs := cdiv(rootEntries*32, sectorSize)
	var (
		spc                uint32
		n12, n16           uint64
		fatLen12, fatLen16 uint32
	)
	for spc = 4; spc <= 128; spc <<= 1 {
		n12, n16 = 0, 0
		over := uint64(alignUp(reserved1216, spc, align)) + uint64(alignUp(rootSecs, spc, align))
		if over >= uint64(totSectors) {
			break
		}
		fatdata := uint64(totSectors) - over

		// FAT12: 1.5 bytes an entry.
		n := 2 * (fatdata*sectorSize + numFATs*3) / (2*uint64(spc)*sectorSize + numFATs*3)
		fatLen12 = alignUp(uint32(cdiv64(((n+2)*3+1)/2, sectorSize)), spc, align)
		if numFATs*uint64(fatLen12) < fatdata {
			n = (fatdata - numFATs*uint64(fatLen12)) / uint64(spc)
			max := min(uint64(fatLen12)*sectorSize*2/3, maxClusters12)
			if n <= max-2 {
				n12 = n
			}
		}

		// FAT16: 2 bytes an entry.
		n = (fatdata*sectorSize + numFATs*4) / (uint64(spc)*sectorSize + numFATs*2)
		fatLen16 = alignUp(uint32(cdiv64((n+2)*2, sectorSize)), spc, align)
		if numFATs*uint64(fatLen16) < fatdata {
			n = (fatdata - numFATs*uint64(fatLen16)) / uint64(spc)
			max := min(uint64(fatLen16)*sectorSize/2, maxClusters16)
			if n <= max-2 && n >= minClusters16 {
				n16 = n
			}
		}

		if (n12 > 0 && fatType != 16) || (n16 > 0 && fatType != 12) {
			break
		}
	}
	if fatType == 0 {
		fatType = 12
		if n16 > n12 {
			fatType = 16
		}
	}
	n, fatLen := n12, fatLen12
	if fatType == 16 {
		n, fatLen = n16, fatLen16
	}
	if n == 0 || spc > 128 {
		what := "small"
		if size > 64<<20 {
			what = "large"
		}
		return nil, fmt.Errorf("fat: %d bytes is too %s for FAT%d", size, what, fatType)
	}
	h, s := chs(totSectors)
	l := &layout{fatType: fatType, totSectors: totSectors, secPerClus: spc,
		reserved: alignUp(reserved1216, spc, align), fatSectors: fatLen,
		rootEntries: alignUp(rootSecs, spc, align) * (sectorSize / 32),
		clusters:    uint32(n), heads: h, secPerTrack: s}
	return l, l.check()
}
