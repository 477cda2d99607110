package ext4

import "fmt"

// extent maps len logical blocks from lblk to physical blocks from pblk.
type extent struct {
	lblk uint32
	len  uint32 // 1..extentMaxLen
	pblk uint64
}

// extentList accumulates a file's block map in logical order.
type extentList []extent

// add maps n blocks from lblk to pblk, merging with the last extent when
// both are contiguous.
func (l *extentList) add(lblk uint64, pblk uint64, n uint64) {
	for n > 0 {
		if k := len(*l); k > 0 {
			e := &(*l)[k-1]
			if uint64(e.lblk)+uint64(e.len) == lblk && e.pblk+uint64(e.len) == pblk && e.len < extentMaxLen {
				m := min(n, uint64(extentMaxLen-e.len))
				e.len += uint32(m)
				lblk, pblk, n = lblk+m, pblk+m, n-m
				continue
			}
		}
		m := min(n, extentMaxLen)
		*l = append(*l, extent{uint32(lblk), uint32(m), pblk})
		lblk, pblk, n = lblk+m, pblk+m, n-m
	}
}

func (l extentList) blocks() uint64 {
	n := uint64(0)
	for _, e := range l {
		n += uint64(e.len)
	}
	return n
}

// extentTreeBlocks returns how many tree blocks (leaves and index nodes)
// n extents need: none if they fit in the inode.
func extentTreeBlocks(n uint64) uint64 {
	total := uint64(0)
	for n > inodeExtentsPerRoot {
		n = (n + extentsPerBlock - 1) / extentsPerBlock
		total += n
	}
	return total
}

// extentNode is one entry of an index level: the first logical block it
// covers and the block holding it.
type extentNode struct {
	lblk uint32
	blk  uint64
}

// buildExtentTree encodes the extent map into iblock (the inode's root)
// and, when it does not fit there, into tree blocks at the blocks given
// (len must be extentTreeBlocks(len(l))), packed full, leaves first.
// It returns the tree blocks' contents, each with its checksum.
func buildExtentTree(l extentList, iblock *[60]byte, treeBlocks []uint64, seed uint32) ([]byte, error) {
	if uint64(len(treeBlocks)) != extentTreeBlocks(uint64(len(l))) {
		return nil, fmt.Errorf("BUG: ext4: %d extents need %d tree blocks, have %d", len(l), extentTreeBlocks(uint64(len(l))), len(treeBlocks))
	}
	out := make([]byte, len(treeBlocks)*blockSize)
	if len(l) <= inodeExtentsPerRoot {
		putExtentHeader(iblock[:], len(l), inodeExtentsPerRoot, 0)
		for i, e := range l {
			putExtent(iblock[12+12*i:], e)
		}
		return out, nil
	}
	// Leaves.
	var level []extentNode
	used := 0
	for i := 0; i < len(l); i += extentsPerBlock {
		chunk := l[i:min(i+extentsPerBlock, len(l))]
		b := out[used*blockSize : (used+1)*blockSize]
		putExtentHeader(b, len(chunk), extentsPerBlock, 0)
		for j, e := range chunk {
			putExtent(b[12+12*j:], e)
		}
		extentTail(b, seed)
		level = append(level, extentNode{chunk[0].lblk, treeBlocks[used]})
		used++
	}
	// Index levels until the top fits in the inode.
	depth := 1
	for len(level) > inodeExtentsPerRoot {
		var up []extentNode
		for i := 0; i < len(level); i += extentsPerBlock {
			chunk := level[i:min(i+extentsPerBlock, len(level))]
			b := out[used*blockSize : (used+1)*blockSize]
			putExtentHeader(b, len(chunk), extentsPerBlock, depth)
			for j, n := range chunk {
				putExtentIndex(b[12+12*j:], n)
			}
			extentTail(b, seed)
			up = append(up, extentNode{chunk[0].lblk, treeBlocks[used]})
			used++
		}
		level = up
		depth++
	}
	putExtentHeader(iblock[:], len(level), inodeExtentsPerRoot, depth)
	for j, n := range level {
		putExtentIndex(iblock[12+12*j:], n)
	}
	return out, nil
}

// Extent header (struct ext4_extent_header, 12 bytes).
func putExtentHeader(b []byte, entries, max, depth int) {
	le.PutUint16(b[0:], extentMagic) // eh_magic
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(max))
	le.PutUint16(b[6:], uint16(depth))
	le.PutUint32(b[8:], 0) // eh_generation
}

// Leaf entry (struct ext4_extent): ee_block, ee_len, ee_start_hi, ee_start_lo.
func putExtent(b []byte, e extent) {
	le.PutUint32(b[0:], e.lblk)
	le.PutUint16(b[4:], uint16(e.len)) // 32768 is stored as is: initialized
	le.PutUint16(b[6:], uint16(e.pblk>>32))
	le.PutUint32(b[8:], uint32(e.pblk))
}

// Index entry (struct ext4_extent_idx): ei_block, ei_leaf_lo, ei_leaf_hi.
func putExtentIndex(b []byte, n extentNode) {
	le.PutUint32(b[0:], n.lblk)
	le.PutUint32(b[4:], uint32(n.blk))
	le.PutUint16(b[8:], uint16(n.blk>>32))
	le.PutUint16(b[10:], 0)
}

// extentTail sets struct ext4_extent_tail after eh_max entries.
func extentTail(b []byte, seed uint32) {
	off := 12 + 12*extentsPerBlock
	le.PutUint32(b[off:], crc32c(seed, b[:off]))
}
