package erofs

// metaAlloc places the metadata (each inode with its xattrs and inline
// tail, 32-byte aligned) in the metadata blocks, as mkfs.erofs's buffer
// manager does: an item that must stay within one block goes into the
// started block with the least room that still holds it (best fit; of
// those, the one that reached that room first), else into a new block
// at the end. Packing inodes one after another instead leaves the rest
// of a block empty whenever the next inode and its tail do not fit it:
// on a Debian minbase tree that cost 2.2% over mkfs.erofs's image.
//
// Items are placed in the order they are asked for (the tree's walk),
// so the layout is a function of the tree alone. An inode's nid follows
// from its position; directory entries are encoded once all positions
// are known.
type metaAlloc struct {
	used []int32 // bytes used at the start of each metadata block
	// free[k] lists the blocks with k*32 bytes free (oldest first), with
	// stale entries: a block is in free[k] only while its room is k*32.
	free [blockSize/32 + 1][]int64
}

func (a *metaAlloc) init() {
	// Block 0: the superblock, then the root inode at 1152 (nid 36).
	a.used = []int32{metaStart}
	a.push(0)
}

func (a *metaAlloc) room(blk int64) int64 { return blockSize - int64(a.used[blk]) }

func (a *metaAlloc) push(blk int64) {
	if k := a.room(blk) / 32; k > 0 {
		a.free[k] = append(a.free[k], blk)
	}
}

// fit places size bytes (at most a block) within one block and returns
// their offset.
func (a *metaAlloc) fit(size int64) int64 {
	need := (size + 31) / 32
	for k := need; k < int64(len(a.free)); k++ {
		for len(a.free[k]) > 0 {
			blk := a.free[k][0]
			if a.room(blk)/32 != k {
				a.free[k] = a.free[k][1:] // stale
				continue
			}
			a.free[k] = a.free[k][1:]
			pos := blk*blockSize + int64(a.used[blk])
			a.used[blk] += int32(need * 32)
			a.push(blk)
			return pos
		}
	}
	blk := int64(len(a.used))
	a.used = append(a.used, int32(need*32))
	a.push(blk)
	return blk * blockSize
}

// span places size bytes that may cross blocks, their first head bytes
// within the first block: after the last block's used bytes when head
// fits there, else from a new block. It returns their offset.
func (a *metaAlloc) span(size, head int64) int64 {
	last := int64(len(a.used) - 1)
	pos := int64(len(a.used)) * blockSize
	if a.room(last) >= head {
		pos = last*blockSize + int64(a.used[last])
	}
	end := (pos + size + 31) / 32 * 32
	for int64(len(a.used))*blockSize < end {
		a.used = append(a.used, 0)
	}
	for b := pos / blockSize; b < int64(len(a.used)); b++ {
		a.used[b] = int32(min(blockSize, end-b*blockSize))
	}
	a.push(int64(len(a.used) - 1))
	return pos
}

// end is the offset past the last metadata byte.
func (a *metaAlloc) end() int64 {
	last := int64(len(a.used) - 1)
	return last*blockSize + int64(a.used[last])
}
