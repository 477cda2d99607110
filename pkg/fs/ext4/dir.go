package ext4

import (
	"cmp"
	"fmt"
	"slices"
)

// Directory blocks. A directory whose entries fit in one block is linear
// ("." and ".." first, then the entries in name order). A larger one is
// hashed (dir_index): block 0 is the dx_root (fake "." and ".." then the
// index), blocks 1..L the leaves (entries in hash order, packed full),
// then, with two levels, the dx_node blocks. Every leaf and linear block
// ends with the 12-byte checksum dirent; dx blocks end with a dx_tail.

const (
	dirTailSize = 12
	leafSpace   = blockSize - dirTailSize  // bytes of dirents in a leaf
	dxRootLimit = (blockSize - 32 - 8) / 8 // 507: after ".", "..", dx_root_info; minus dx_tail
	dxNodeLimit = (blockSize - 8 - 8) / 8  // 510: after the fake dirent; minus dx_tail
	maxNameLen  = 255
	linkMax     = 65000 // EXT4_LINK_MAX
)

// dentry is one directory entry.
type dentry struct {
	name  string
	ino   uint32
	ftype uint8
	hash  uint32
	minor uint32
}

func recLen(nameLen int) int { return (8 + nameLen + 3) &^ 3 }

// linearSize returns the bytes ".", ".." and ents take in a linear block.
func linearSize(ents []dentry) int {
	n := 24
	for i := range ents {
		n += recLen(len(ents[i].name))
	}
	return n
}

// hashSort computes the entries' hashes and sorts them in hash order
// (ties by minor hash, then name, so the order is total).
func hashSort(ents []dentry, seed [4]uint32) {
	for i := range ents {
		ents[i].hash, ents[i].minor = dirHash(ents[i].name, seed)
	}
	slices.SortFunc(ents, func(a, b dentry) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		if c := cmp.Compare(a.minor, b.minor); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
}

// packLeaves splits hash-sorted entries into leaves, each filled until the
// next entry does not fit; it returns each leaf's first index.
func packLeaves(ents []dentry) []int {
	var starts []int
	used := leafSpace
	for i := range ents {
		r := recLen(len(ents[i].name))
		if used+r > leafSpace {
			starts = append(starts, i)
			used = 0
		}
		used += r
	}
	return starts
}

// dxShape returns the block counts of a hashed directory with the given
// number of leaves.
func dxShape(leaves int) (nodes int, levels int, err error) {
	if leaves <= dxRootLimit {
		return 0, 0, nil
	}
	nodes = (leaves + dxNodeLimit - 1) / dxNodeLimit
	if nodes > dxRootLimit {
		return 0, 0, fmt.Errorf("directory needs %d leaf blocks, a two-level htree holds at most %d", leaves, dxRootLimit*dxNodeLimit)
	}
	return nodes, 1, nil
}

// dirBlockCount returns how many blocks a directory with ents takes
// (at least minBlocks when linear). ents must not be hash-sorted yet: it
// sorts a copy.
func dirBlockCount(ents []dentry, seed [4]uint32, minBlocks int) (int, error) {
	if linearSize(ents) <= leafSpace {
		return max(1, minBlocks), nil
	}
	c := slices.Clone(ents)
	hashSort(c, seed)
	leaves := len(packLeaves(c))
	nodes, _, err := dxShape(leaves)
	if err != nil {
		return 0, err
	}
	return 1 + leaves + nodes, nil
}

// buildDir returns the blocks of directory self (parent is its ".."),
// holding ents (in name order; hashed directories reorder it), padded to
// minBlocks when linear, with all checksums; and whether it is hashed.
func buildDir(self, parent uint32, ents []dentry, seed [4]uint32, minBlocks int, iseed uint32) ([]byte, bool, error) {
	if linearSize(ents) <= leafSpace {
		n := max(1, minBlocks)
		out := make([]byte, n*blockSize)
		b := out[:blockSize]
		off := putDirent(b, 0, self, ".", ftDir, 12)
		if len(ents) == 0 {
			off = putDirent(b, off, parent, "..", ftDir, leafSpace-off)
		} else {
			off = putDirent(b, off, parent, "..", ftDir, 12)
			off = putEntries(b, off, ents)
		}
		if off != leafSpace {
			return nil, false, fmt.Errorf("BUG: ext4: linear directory block filled to %d", off)
		}
		dirLeafTail(b, iseed)
		for i := 1; i < n; i++ {
			b := out[i*blockSize : (i+1)*blockSize]
			putDirent(b, 0, 0, "", 0, leafSpace)
			dirLeafTail(b, iseed)
		}
		return out, false, nil
	}

	hashSort(ents, seed)
	starts := packLeaves(ents)
	leaves := len(starts)
	nodes, levels, err := dxShape(leaves)
	if err != nil {
		return nil, false, err
	}
	out := make([]byte, (1+leaves+nodes)*blockSize)

	// Leaves at logical blocks 1..leaves; each leaf's dx hash is its first
	// entry's, with the low bit set when it continues the previous leaf's
	// last hash (a collision split across leaves).
	type dxEntry struct{ hash, blk uint32 }
	leafIdx := make([]dxEntry, leaves)
	for l := 0; l < leaves; l++ {
		end := len(ents)
		if l+1 < leaves {
			end = starts[l+1]
		}
		b := out[(1+l)*blockSize : (2+l)*blockSize]
		if off := putEntries(b, 0, ents[starts[l]:end]); off != leafSpace {
			return nil, false, fmt.Errorf("BUG: ext4: directory leaf filled to %d", off)
		}
		dirLeafTail(b, iseed)
		h := ents[starts[l]].hash
		if l > 0 && ents[starts[l]-1].hash == h {
			h |= 1
		}
		leafIdx[l] = dxEntry{h, uint32(1 + l)}
	}

	top := leafIdx
	if levels == 1 {
		top = make([]dxEntry, nodes)
		for k := 0; k < nodes; k++ {
			chunk := leafIdx[k*dxNodeLimit : min((k+1)*dxNodeLimit, leaves)]
			blk := 1 + leaves + k
			b := out[blk*blockSize : (blk+1)*blockSize]
			// Fake empty dirent covering the block, then the index.
			le.PutUint32(b[0:], 0)
			le.PutUint16(b[4:], blockSize)
			putDxEntries(b, 8, dxNodeLimit, len(chunk), func(i int) (uint32, uint32) { return chunk[i].hash, chunk[i].blk })
			dxTail(b, 8, len(chunk), iseed)
			top[k] = dxEntry{chunk[0].hash, uint32(blk)}
		}
	}

	// dx_root.
	b := out[:blockSize]
	off := putDirent(b, 0, self, ".", ftDir, 12)
	putDirent(b, off, parent, "..", ftDir, blockSize-12)
	// struct dx_root_info at 24.
	le.PutUint32(b[24:], 0) // reserved_zero
	b[28] = hashHalfMD4     // hash_version
	b[29] = 8               // info_length
	b[30] = uint8(levels)   // indirect_levels
	b[31] = 0               // unused_flags
	putDxEntries(b, 32, dxRootLimit, len(top), func(i int) (uint32, uint32) { return top[i].hash, top[i].blk })
	dxTail(b, 32, len(top), iseed)
	return out, true, nil
}

// putDxEntries writes struct dx_countlimit and the entries at off: entry
// 0's hash slot holds limit and count (its hash is implicitly the lower
// bound), the others are {hash, block}.
func putDxEntries(b []byte, off, limit, count int, ent func(int) (hash, blk uint32)) {
	le.PutUint16(b[off:], uint16(limit))
	le.PutUint16(b[off+2:], uint16(count))
	for i := 0; i < count; i++ {
		h, blk := ent(i)
		if i > 0 {
			le.PutUint32(b[off+8*i:], h)
		}
		le.PutUint32(b[off+8*i+4:], blk)
	}
}

// dxTail sets struct dx_tail (dt_reserved, dt_checksum) after limit
// entries: crc32c over the count/limit header and count entries, then
// dt_reserved and a zero checksum.
func dxTail(b []byte, countOff, count int, iseed uint32) {
	t := blockSize - 8
	le.PutUint32(b[t:], 0)
	c := crc32c(iseed, b[:countOff+8*count])
	c = crc32c(c, b[t:t+4])
	c = crc32c(c, []byte{0, 0, 0, 0})
	le.PutUint32(b[t+4:], c)
}

// putEntries writes ents from off, the last one stretched to leafSpace.
func putEntries(b []byte, off int, ents []dentry) int {
	for i := range ents {
		r := recLen(len(ents[i].name))
		if i == len(ents)-1 {
			r = leafSpace - off
		}
		off = putDirent(b, off, ents[i].ino, ents[i].name, ents[i].ftype, r)
	}
	return off
}

// putDirent writes struct ext4_dir_entry_2 and returns the next offset.
func putDirent(b []byte, off int, ino uint32, name string, ftype uint8, rec int) int {
	le.PutUint32(b[off:], ino)
	le.PutUint16(b[off+4:], uint16(rec))
	b[off+6] = uint8(len(name))
	b[off+7] = ftype
	copy(b[off+8:], name)
	return off + rec
}

// dirLeafTail sets struct ext4_dir_entry_tail: a fake dirent of 12 bytes
// (inode 0, rec_len 12, name_len 0, file_type 0xDE) and the crc32c of the
// block before it.
func dirLeafTail(b []byte, iseed uint32) {
	t := b[leafSpace:blockSize]
	le.PutUint32(t[0:], 0)
	le.PutUint16(t[4:], dirTailSize)
	t[6] = 0
	t[7] = 0xDE
	le.PutUint32(t[8:], crc32c(iseed, b[:leafSpace]))
}
