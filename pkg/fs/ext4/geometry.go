package ext4

import (
	"fmt"
)

// Fixed format parameters.
const (
	blockSize      = 4096
	blockShift     = 12
	blocksPerGroup = 8 * blockSize // one bitmap block per group
	inodeSize      = 256
	inodesPerBlock = blockSize / inodeSize
	descSize       = 64 // 64bit feature: ext4_group_desc with the _hi halves
	descsPerBlock  = blockSize / descSize
	flexSize       = 16 // groups per flex group (s_log_groups_per_flex = 4)
	extraIsize     = 32 // i_extra_isize: up to i_projid
	firstIno       = 11 // s_first_ino; lost+found
	rootIno        = 2
	journalIno     = 8
	maxIPG         = 8 * blockSize // inodes per group: one bitmap block
	minBlocks      = 2048          // below this mke2fs makes no journal
)

// geometry is the fixed layout of a filesystem: groups, where each
// group's bitmaps and inode table are, and where the journal is.
type geometry struct {
	blocks      uint64 // s_blocks_count; may be less than the window (dropped runt group)
	groups      uint32
	ipg         uint32 // inodes per group
	itb         uint32 // inode table blocks per group
	inodes      uint32
	gdtBlocks   uint32
	blockBitmap []uint64 // per group
	inodeBitmap []uint64
	inodeTable  []uint64
	journal     []run // the journal's blocks, in order
	jext        extentList
	jtree       []uint64 // the journal's extent tree blocks, if any
	jblocks     uint32
	reserved    uint64 // s_r_blocks_count
	used        *bitmap
	metaBlocks  uint64 // blocks used before any file data (incl. journal)
}

// run is a contiguous range of blocks.
type run struct {
	start uint64
	n     uint64
}

// hasSuper reports whether group g holds a superblock and GDT backup
// (sparse_super: 0, 1 and powers of 3, 5, 7).
func hasSuper(g uint32) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []uint32{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

// defaultJournalBlocks is ext2fs_default_journal_size.
func defaultJournalBlocks(blocks uint64) uint32 {
	switch {
	case blocks < 2048:
		return 0
	case blocks < 32768:
		return 1024
	case blocks < 256*1024:
		return 4096
	case blocks < 512*1024:
		return 8192
	case blocks < 4096*1024:
		return 16384
	case blocks < 8192*1024:
		return 32768
	case blocks < 16384*1024:
		return 65536
	case blocks < 32768*1024:
		return 131072
	}
	return 262144
}

// errTooSmall and errTooManyInodes let MinSize tell "grow and retry" from
// real errors.
type geomError struct {
	msg      string
	tooSmall bool
}

func (e *geomError) Error() string { return e.msg }

// newGeometry lays out a filesystem of (at most) windowBlocks blocks with
// room for at least minInodes inodes (numbered 1..minInodes).
func newGeometry(windowBlocks uint64, minInodes uint64, o *Options) (*geometry, error) {
	if windowBlocks < minBlocks {
		return nil, &geomError{fmt.Sprintf("%d blocks is too small for ext4 with a journal: need at least %d (%d MiB)", windowBlocks, minBlocks, minBlocks*blockSize>>20), true}
	}
	if windowBlocks > 1<<48 {
		return nil, &geomError{msg: fmt.Sprintf("%d blocks is more than ext4 supports", windowBlocks)}
	}
	g := &geometry{blocks: windowBlocks}
	ratio := uint64(o.InodeRatio)
	if ratio == 0 {
		ratio = 16384
	}
	for {
		g.groups = uint32((g.blocks + blocksPerGroup - 1) / blocksPerGroup)
		g.gdtBlocks = (g.groups + descsPerBlock - 1) / descsPerBlock

		want := g.blocks * blockSize / ratio
		if want < minInodes {
			want = minInodes
		}
		ipg := (want + uint64(g.groups) - 1) / uint64(g.groups)
		ipg = (ipg + inodesPerBlock - 1) / inodesPerBlock * inodesPerBlock
		if ipg < inodesPerBlock {
			ipg = inodesPerBlock
		}
		if ipg > maxIPG {
			if minInodes > uint64(maxIPG)*uint64(g.groups) {
				return nil, &geomError{fmt.Sprintf("the tree needs %d inodes, %d blocks hold at most %d", minInodes, g.blocks, uint64(maxIPG)*uint64(g.groups)), true}
			}
			ipg = maxIPG
		}
		g.ipg = uint32(ipg)
		g.itb = g.ipg / inodesPerBlock
		if uint64(g.ipg)*uint64(g.groups) >= 1<<32 {
			return nil, &geomError{msg: fmt.Sprintf("%d inodes are more than ext4 supports", uint64(g.ipg)*uint64(g.groups))}
		}
		// Like mke2fs: a last group too small for its own metadata
		// (plus 50 blocks) is dropped.
		rem := g.blocks % blocksPerGroup
		if rem == 0 {
			break
		}
		overhead := uint64(2 + g.itb)
		if hasSuper(g.groups - 1) {
			overhead += 1 + uint64(g.gdtBlocks)
		}
		if rem >= overhead+50 {
			break
		}
		if g.groups == 1 {
			return nil, &geomError{fmt.Sprintf("%d blocks is too small for the metadata", g.blocks), true}
		}
		g.blocks -= rem
	}
	g.inodes = g.ipg * g.groups

	// Metadata: superblock and GDT copies, then each flex group's
	// bitmaps and inode tables packed at the start of its first group.
	g.used = newBitmap(g.blocks)
	for gr := uint32(0); gr < g.groups; gr++ {
		if hasSuper(gr) {
			g.used.setRange(uint64(gr)*blocksPerGroup, 1+uint64(g.gdtBlocks))
		}
	}
	g.blockBitmap = make([]uint64, g.groups)
	g.inodeBitmap = make([]uint64, g.groups)
	g.inodeTable = make([]uint64, g.groups)
	for f := uint32(0); f < g.groups; f += flexSize {
		n := min(flexSize, g.groups-f)
		cur := uint64(f) * blocksPerGroup
		var ok bool
		for i := uint32(0); i < n; i++ {
			if g.blockBitmap[f+i], ok = g.used.allocRun(&cur, 1); !ok {
				return nil, g.noRoomForMeta()
			}
		}
		for i := uint32(0); i < n; i++ {
			if g.inodeBitmap[f+i], ok = g.used.allocRun(&cur, 1); !ok {
				return nil, g.noRoomForMeta()
			}
		}
		for i := uint32(0); i < n; i++ {
			if g.inodeTable[f+i], ok = g.used.allocRun(&cur, uint64(g.itb)); !ok {
				return nil, g.noRoomForMeta()
			}
		}
	}

	// The journal: one contiguous run if there is one (first fit), else
	// whatever free blocks come first.
	g.jblocks = defaultJournalBlocks(g.blocks)
	cur := uint64(0)
	if start, ok := g.used.allocRun(&cur, uint64(g.jblocks)); ok {
		g.journal = []run{{start, uint64(g.jblocks)}}
	} else {
		cur = 0
		rs, ok := g.used.alloc(&cur, uint64(g.jblocks))
		if !ok {
			return nil, &geomError{fmt.Sprintf("%d blocks leave no room for a %d-block journal", g.blocks, g.jblocks), true}
		}
		g.journal = rs
	}
	for _, r := range g.journal {
		g.jext.add(g.jext.blocks(), r.start, r.n)
	}
	if k := extentTreeBlocks(uint64(len(g.jext))); k > 0 {
		cur = 0
		rs, ok := g.used.alloc(&cur, k)
		if !ok {
			return nil, &geomError{fmt.Sprintf("%d blocks leave no room for the journal's extent tree", g.blocks), true}
		}
		g.jtree = runBlocks(rs)
	}
	g.metaBlocks = g.used.count
	g.reserved = g.blocks * uint64(o.ReservedPercent) / 100
	return g, nil
}

func (g *geometry) noRoomForMeta() error {
	return &geomError{fmt.Sprintf("%d blocks leave no room for the inode tables of %d inodes", g.blocks, g.inodes), true}
}

// groupFirst returns the first block of group gr.
func groupFirst(gr uint32) uint64 { return uint64(gr) * blocksPerGroup }

// groupBlocks returns how many blocks group gr has (the last may be short).
func (g *geometry) groupBlocks(gr uint32) uint64 {
	if gr == g.groups-1 {
		return g.blocks - groupFirst(gr)
	}
	return blocksPerGroup
}

// runBlocks lists the blocks of runs.
func runBlocks(rs []run) []uint64 {
	var out []uint64
	for _, r := range rs {
		for b := r.start; b < r.start+r.n; b++ {
			out = append(out, b)
		}
	}
	return out
}
