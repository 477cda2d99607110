package ext4

import "fmt"

// finish writes the block and inode bitmaps, the group descriptor table
// and the superblock, with their backups.
func (fw *fsWriter) finish() error {
	g := fw.g
	for gr, p := range fw.pending {
		if p != 0 {
			return fmt.Errorf("BUG: ext4: group %d: %d used inodes never written", gr, p)
		}
	}
	// Bits past the end of the filesystem are set in the last group's
	// block bitmap (padding), without counting them as used.
	bm := g.used.b
	for b := g.blocks; b < uint64(g.groups)*blocksPerGroup; b++ {
		bm[b>>3] |= 1 << (b & 7)
	}

	gdt := make([]byte, uint64(g.gdtBlocks)*blockSize)
	ibm := make([]byte, blockSize)
	var freeBlocks, freeInodes uint64
	for gr := uint32(0); gr < g.groups; gr++ {
		d := gdt[gr*descSize : (gr+1)*descSize]

		bbm := bm[uint64(gr)*blocksPerGroup/8 : uint64(gr+1)*blocksPerGroup/8]
		if err := fw.meta.write(g.blockBitmap[gr], bbm); err != nil {
			return err
		}
		bcsum := crc32c(fw.fsSeed, bbm)
		free := g.used.freeIn(groupFirst(gr), g.groupBlocks(gr))
		freeBlocks += free

		used := fw.usedInodes(gr)
		freeInodes += uint64(g.ipg - used)
		flags := uint16(bgItableZeroed)
		var icsum uint32
		if used == 0 {
			// Like mke2fs: the bitmap is not written, its checksum is 0.
			flags |= bgInodeUninit
		} else {
			clear(ibm)
			for i := uint32(0); i < used; i++ {
				ibm[i>>3] |= 1 << (i & 7)
			}
			for i := g.ipg; i < 8*blockSize; i++ { // padding
				ibm[i>>3] |= 1 << (i & 7)
			}
			icsum = crc32c(fw.fsSeed, ibm[:g.ipg/8])
			if err := fw.meta.write(g.inodeBitmap[gr], ibm); err != nil {
				return err
			}
		}

		put64 := func(lo, hi int, v uint64) {
			le.PutUint32(d[lo:], uint32(v))
			le.PutUint32(d[hi:], uint32(v>>32))
		}
		put32 := func(lo, hi int, v uint32) {
			le.PutUint16(d[lo:], uint16(v))
			le.PutUint16(d[hi:], uint16(v>>16))
		}
		put64(bgBlockBitmapLo, bgBlockBitmapHi, g.blockBitmap[gr])
		put64(bgInodeBitmapLo, bgInodeBitmapHi, g.inodeBitmap[gr])
		put64(bgInodeTableLo, bgInodeTableHi, g.inodeTable[gr])
		put32(bgFreeBlocksLo, bgFreeBlocksHi, uint32(free))
		put32(bgFreeInodesLo, bgFreeInodesHi, g.ipg-used)
		put32(bgUsedDirsLo, bgUsedDirsHi, fw.dirs[gr])
		put32(bgItableUnusedLo, bgItableUnusedHi, g.ipg-used)
		put32(bgBlockBitmapCsumLo, bgBlockBitmapCsumHi, bcsum)
		put32(bgInodeBitmapCsumLo, bgInodeBitmapCsumHi, icsum)
		le.PutUint16(d[bgFlags:], flags)
		le.PutUint16(d[bgChecksum:], uint16(crc32c(crc32cU32(fw.fsSeed, gr), d)))
	}

	sb := fw.superblock(freeBlocks, freeInodes)
	for gr := uint32(0); gr < g.groups; gr++ {
		if !hasSuper(gr) {
			continue
		}
		blk := make([]byte, blockSize)
		off := 0
		if gr == 0 {
			off = sbOffset
		}
		copy(blk[off:], sb)
		le.PutUint16(blk[off+sbBlockGroupNr:], uint16(gr))
		le.PutUint32(blk[off+sbChecksum:], crc32c(^uint32(0), blk[off:off+sbChecksum]))
		if err := fw.meta.write(groupFirst(gr), blk); err != nil {
			return err
		}
		if err := fw.meta.write(groupFirst(gr)+1, gdt); err != nil {
			return err
		}
	}
	return fw.meta.flush()
}

// superblock returns the primary superblock without its checksum.
func (fw *fsWriter) superblock(freeBlocks, freeInodes uint64) []byte {
	g, o := fw.g, fw.o
	b := make([]byte, sbSize)
	put64 := func(lo, hi int, v uint64) {
		le.PutUint32(b[lo:], uint32(v))
		le.PutUint32(b[hi:], uint32(v>>32))
	}
	le.PutUint32(b[sbInodesCount:], g.inodes)
	put64(sbBlocksCountLo, sbBlocksCountHi, g.blocks)
	put64(sbRBlocksCountLo, sbRBlocksCountHi, g.reserved)
	put64(sbFreeBlocksLo, sbFreeBlocksHi, freeBlocks)
	le.PutUint32(b[sbFreeInodes:], uint32(freeInodes))
	le.PutUint32(b[sbFirstDataBlock:], 0)
	le.PutUint32(b[sbLogBlockSize:], blockShift-10)
	le.PutUint32(b[sbLogClusterSize:], blockShift-10)
	le.PutUint32(b[sbBlocksPerGroup:], blocksPerGroup)
	le.PutUint32(b[sbClustersPerGroup:], blocksPerGroup)
	le.PutUint32(b[sbInodesPerGroup:], g.ipg)
	putTime := func(lo, hi int) {
		le.PutUint32(b[lo:], uint32(o.Epoch))
		b[hi] = uint8(o.Epoch >> 32)
	}
	putTime(sbWtime, sbWtimeHi)
	putTime(sbMkfsTime, sbMkfsTimeHi)
	putTime(sbLastCheck, sbLastCheckHi)
	le.PutUint16(b[sbMaxMntCount:], 0xFFFF) // -1
	le.PutUint16(b[sbMagic:], sbMagicValue)
	le.PutUint16(b[sbState:], 1)  // clean
	le.PutUint16(b[sbErrors:], 1) // continue
	le.PutUint32(b[sbRevLevel:], 1)
	le.PutUint32(b[sbFirstIno:], firstIno)
	le.PutUint16(b[sbInodeSize:], inodeSize)
	le.PutUint32(b[sbFeatureCompat:], ourCompat)
	le.PutUint32(b[sbFeatureIncompat:], ourIncompat)
	le.PutUint32(b[sbFeatureRoCompat:], ourRoCompat)
	copy(b[sbUUID:], o.UUID[:])
	copy(b[sbVolumeName:], o.Label)
	le.PutUint32(b[sbJournalInum:], journalIno)
	seed := o.seedUUID()
	copy(b[sbHashSeed:], seed[:])
	b[sbDefHashVersion] = hashHalfMD4
	b[sbJnlBackupType] = jnlBackupBlocks
	le.PutUint16(b[sbDescSize:], descSize)
	le.PutUint32(b[sbDefaultMountOpts:], defmXattrUser|defmACL)
	copy(b[sbJnlBlocks:], fw.jinode.iblock[:])
	le.PutUint32(b[sbJnlBlocks+15*4:], uint32(fw.jinode.size>>32))
	le.PutUint32(b[sbJnlBlocks+16*4:], uint32(fw.jinode.size))
	le.PutUint16(b[sbMinExtraIsize:], extraIsize)
	le.PutUint16(b[sbWantExtraIsize:], extraIsize)
	le.PutUint32(b[sbFlags:], sbFlagSignedHash)
	b[sbLogGroupsPerFlex] = 4 // 16
	b[sbChecksumType] = 1     // crc32c
	return b
}
