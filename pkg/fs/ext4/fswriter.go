package ext4

import (
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/tree"
)

// ErrNoSpace is wrapped by the error Write returns when the tree does not
// fit.
var ErrNoSpace = errors.New("no space left")

// fsWriter is the second pass: it allocates and writes every inode's
// blocks in walk order, streams inode tables out group by group, and
// finally writes bitmaps, group descriptors and superblocks.
type fsWriter struct {
	g       *geometry
	a       *analysis
	o       *Options
	data    *blockWriter // file and directory blocks, in allocation order
	meta    *blockWriter // inode tables, bitmaps, descriptors, superblocks
	cur     uint64       // allocation cursor
	fsSeed  uint32
	seed    [4]uint32
	itabs   map[uint32][]byte // inode tables of groups not yet complete
	pending []uint32          // per group: used inodes not yet encoded
	dirs    []uint32          // per group: directories
	done    []bool            // per inode: written
	buf     []byte            // content read buffer
	pf      *prefetcher
	jinode  inode // the journal inode, for s_jnl_blocks
}

const readBufSize = 4 << 20

func newFsWriter(w io.WriterAt, g *geometry, a *analysis, o *Options) *fsWriter {
	fw := &fsWriter{
		g:       g,
		a:       a,
		o:       o,
		data:    newBlockWriter(w, g.blocks, true),
		meta:    newBlockWriter(w, g.blocks, false),
		fsSeed:  crc32c(^uint32(0), o.UUID[:]),
		seed:    o.hashSeed(),
		itabs:   map[uint32][]byte{},
		pending: make([]uint32, g.groups),
		dirs:    make([]uint32, g.groups),
		done:    make([]bool, a.maxIno+1),
	}
	for gr := range fw.pending {
		fw.pending[gr] = fw.usedInodes(uint32(gr))
	}
	return fw
}

// usedInodes returns how many inodes of group gr are in use: inodes are
// used from 1 to maxIno without gaps.
func (fw *fsWriter) usedInodes(gr uint32) uint32 {
	first := uint64(gr) * uint64(fw.g.ipg) // inodes before the group
	if uint64(fw.a.maxIno) <= first {
		return 0
	}
	return uint32(min(uint64(fw.a.maxIno)-first, uint64(fw.g.ipg)))
}

// run writes the filesystem. Whatever happens, the data writer's and the
// prefetcher's goroutines have ended when it returns.
func (fw *fsWriter) run(t *tree.Tree) error {
	err := fw.writeData(t)
	if cerr := fw.data.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return fw.finish()
}

// writeData writes the journal, the reserved inodes and the tree.
func (fw *fsWriter) writeData(t *tree.Tree) error {
	if err := fw.writeJournal(); err != nil {
		return err
	}
	for ino := uint32(1); ino < firstIno; ino++ {
		if ino == rootIno {
			continue // written by the walk
		}
		var n inode
		switch ino {
		case 1: // bad blocks inode: empty, with times, as mke2fs leaves it
			n.mtime = fw.o.Epoch
		case journalIno:
			n = fw.jinode
		}
		if err := fw.putInode(ino, &n); err != nil {
			return err
		}
	}
	fw.pf = startPrefetch(fw.a)
	defer fw.pf.stop()
	return fw.walk("/", t.Root, rootIno, rootIno)
}

func (fw *fsWriter) walk(p string, n *tree.Inode, ino, parent uint32) error {
	fw.done[ino] = true
	var children []tree.Dirent
	if n.Kind == tree.Dir {
		children = n.Children()
	}
	if err := fw.writeInode(p, n, ino, parent, children); err != nil {
		return err
	}
	if ino == rootIno && fw.a.lostFound == nil {
		if err := fw.writeLostFound(); err != nil {
			return err
		}
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, c := range children {
		cino := fw.a.ino[c.Inode]
		if fw.done[cino] {
			continue // another name of a hardlinked inode
		}
		if err := fw.walk(prefix+c.Name, c.Inode, cino, ino); err != nil {
			return err
		}
	}
	return nil
}

func (fw *fsWriter) noSpace(p, what string) error {
	return fmt.Errorf("ext4: %s: %w: %s; %d of the filesystem's %d blocks (%d MiB) are in use",
		p, ErrNoSpace, what, fw.g.used.count, fw.g.blocks, fw.g.blocks*blockSize>>20)
}

// alloc takes n blocks at the cursor.
func (fw *fsWriter) alloc(p, what string, n uint64) ([]run, error) {
	rs, ok := fw.g.used.alloc(&fw.cur, n)
	if !ok {
		return nil, fw.noSpace(p, fmt.Sprintf("%s needs %d more blocks", what, n))
	}
	return rs, nil
}

// place allocates and writes data (whole blocks) as logical blocks
// 0..n-1 of an inode, returning its extents.
func (fw *fsWriter) place(p, what string, data []byte) (extentList, error) {
	rs, err := fw.alloc(p, what, uint64(len(data)/blockSize))
	if err != nil {
		return nil, err
	}
	var ext extentList
	off := uint64(0)
	for _, r := range rs {
		ext.add(off, r.start, r.n)
		if err := fw.data.write(r.start, data[off*blockSize:(off+r.n)*blockSize]); err != nil {
			return nil, err
		}
		off += r.n
	}
	return ext, nil
}

// finishExtents allocates and writes the extent tree blocks ext needs,
// sets the inode's root, flag and block count.
func (fw *fsWriter) finishExtents(p string, in *inode, ext extentList, iseed uint32) error {
	in.flags |= flagExtents
	k := extentTreeBlocks(uint64(len(ext)))
	var blocks []uint64
	if k > 0 {
		rs, err := fw.alloc(p, "extent tree", k)
		if err != nil {
			return err
		}
		blocks = runBlocks(rs)
	}
	data, err := buildExtentTree(ext, &in.iblock, blocks, iseed)
	if err != nil {
		return err
	}
	for i, b := range blocks {
		if err := fw.data.write(b, data[i*blockSize:(i+1)*blockSize]); err != nil {
			return err
		}
	}
	in.sectors += (ext.blocks() + k) * (blockSize / 512)
	return nil
}

func (fw *fsWriter) writeInode(p string, n *tree.Inode, ino, parent uint32, children []tree.Dirent) error {
	in := inode{
		mode:       uint16(n.Kind.ModeType()) | uint16(n.Mode&0o7777),
		uid:        n.UID,
		gid:        n.GID,
		links:      uint16(fw.a.links[ino]),
		mtime:      n.Mtime,
		nsec:       n.Nsec,
		extraIsize: extraIsize,
	}
	iseed := inodeSeed(fw.fsSeed, ino, 0)
	xs, err := prepareXattrs(n.Xattrs)
	if err != nil {
		return fmt.Errorf("ext4: %s: %w", p, err)
	}
	ib, xb, err := splitXattrs(xs)
	if err != nil {
		return fmt.Errorf("ext4: %s: %w", p, err)
	}
	in.xattrs = encodeIbodyXattrs(ib)
	if len(xb) > 0 {
		rs, err := fw.alloc(p, "xattr block", 1)
		if err != nil {
			return err
		}
		blk := rs[0].start
		if err := fw.data.write(blk, encodeXattrBlock(xb, blk, fw.fsSeed)); err != nil {
			return err
		}
		in.fileACL = blk
		in.sectors += blockSize / 512
	}

	switch n.Kind {
	case tree.Dir:
		minBlocks := 1
		if ino == firstIno {
			minBlocks = 4 // like mke2fs: room to reconnect files without allocating
		}
		data, indexed, err := buildDir(ino, parent, fw.a.dirEntries(ino, children), fw.seed, minBlocks, iseed)
		if err != nil {
			return fmt.Errorf("ext4: %s: %w", p, err)
		}
		ext, err := fw.place(p, "directory", data)
		if err != nil {
			return err
		}
		in.size = uint64(len(data))
		if indexed {
			in.flags |= flagIndex
		}
		if err := fw.finishExtents(p, &in, ext, iseed); err != nil {
			return err
		}
		fw.dirs[(ino-1)/fw.g.ipg]++
	case tree.Regular:
		ext, err := fw.streamFile(p, n, ino)
		if err != nil {
			return err
		}
		in.size = uint64(n.Size)
		if err := fw.finishExtents(p, &in, ext, iseed); err != nil {
			return err
		}
	case tree.Symlink:
		in.size = uint64(len(n.Target))
		if len(n.Target) < len(in.iblock) { // fast symlink: target in i_block
			copy(in.iblock[:], n.Target)
			break
		}
		b := make([]byte, blockSize)
		copy(b, n.Target)
		ext, err := fw.place(p, "symlink", b)
		if err != nil {
			return err
		}
		if err := fw.finishExtents(p, &in, ext, iseed); err != nil {
			return err
		}
	case tree.CharDev, tree.BlockDev:
		// The kernel's encoding: old (8:8 in i_block[0]) when both fit,
		// else new (i_block[1]: minor low 8, major 12, minor high 12).
		major, minor := n.Major, n.Minor
		if major < 256 && minor < 256 {
			le.PutUint32(in.iblock[0:], major<<8|minor)
		} else {
			le.PutUint32(in.iblock[4:], (minor&0xff)|(major&0xfff)<<8|(minor&^0xff)<<12)
		}
	case tree.FIFO:
	default:
		return fmt.Errorf("ext4: %s: unsupported inode kind %s", p, n.Kind)
	}
	return fw.putInode(ino, &in)
}

// writeLostFound creates /lost+found (inode 11) as mke2fs does: 0700,
// root-owned, four empty blocks, dated at the epoch.
func (fw *fsWriter) writeLostFound() error {
	const p = "/lost+found"
	fw.done[firstIno] = true
	in := inode{mode: sIFDIR | 0o700, links: 2, mtime: fw.o.Epoch, extraIsize: extraIsize}
	iseed := inodeSeed(fw.fsSeed, firstIno, 0)
	data, _, err := buildDir(firstIno, rootIno, nil, fw.seed, 4, iseed)
	if err != nil {
		return err
	}
	ext, err := fw.place(p, "directory", data)
	if err != nil {
		return err
	}
	in.size = uint64(len(data))
	if err := fw.finishExtents(p, &in, ext, iseed); err != nil {
		return err
	}
	fw.dirs[(firstIno-1)/fw.g.ipg]++
	return fw.putInode(firstIno, &in)
}

// streamFile reads a regular file's content through the read buffer and
// writes its non-zero blocks at the cursor; all-zero blocks are holes.
func (fw *fsWriter) streamFile(p string, n *tree.Inode, ino uint32) (extentList, error) {
	if n.Size == 0 {
		return nil, nil
	}
	var ext extentList
	item, err := fw.pf.next(ino)
	if err != nil {
		return nil, err
	}
	if item.err != nil {
		return nil, fmt.Errorf("ext4: %s: %w", p, item.err)
	}
	if item.data != nil {
		err := fw.placeChunk(p, n, item.data, 0, &ext)
		fw.pf.release(item.buf)
		return ext, err
	}
	rc, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("ext4: %s: open content: %w", p, err)
	}
	defer rc.Close()
	if fw.buf == nil {
		fw.buf = make([]byte, readBufSize)
	}
	buf := fw.buf
	lblk := uint64(0)
	read := int64(0)
	for read < n.Size {
		chunk := int(min(n.Size-read, int64(len(buf))))
		if _, err := io.ReadFull(rc, buf[:chunk]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("ext4: %s: %w of %d bytes", p, errShortContent, n.Size)
			}
			return nil, fmt.Errorf("ext4: %s: read content: %w", p, err)
		}
		if err := fw.placeChunk(p, n, buf[:chunk], lblk, &ext); err != nil {
			return nil, err
		}
		read += int64(chunk)
		lblk += uint64(len(buf[:chunk])+blockSize-1) / blockSize
	}
	var one [1]byte
	if k, _ := rc.Read(one[:]); k > 0 {
		return nil, fmt.Errorf("ext4: %s: %w of %d bytes", p, errLongContent, n.Size)
	}
	if err := rc.Close(); err != nil {
		return nil, fmt.Errorf("ext4: %s: close content: %w", p, err)
	}
	return ext, nil
}

// writeJournal writes the journal superblock and extent tree blocks and
// prepares the journal inode.
func (fw *fsWriter) writeJournal() error {
	g := fw.g
	in := inode{mode: sIFREG | 0o600, links: 1, mtime: fw.o.Epoch, extraIsize: extraIsize,
		size: uint64(g.jblocks) * blockSize, flags: flagExtents}
	data, err := buildExtentTree(g.jext, &in.iblock, g.jtree, inodeSeed(fw.fsSeed, journalIno, 0))
	if err != nil {
		return err
	}
	for i, b := range g.jtree {
		if err := fw.meta.write(b, data[i*blockSize:(i+1)*blockSize]); err != nil {
			return err
		}
	}
	in.sectors = (uint64(g.jblocks) + uint64(len(g.jtree))) * (blockSize / 512)
	fw.jinode = in
	return fw.meta.write(g.journal[0].start, journalSuperblock(g.jblocks, fw.o.journalUUID()))
}

// putInode encodes inode ino into its group's inode table and writes the
// table out once all its used inodes are there.
func (fw *fsWriter) putInode(ino uint32, n *inode) error {
	gr := (ino - 1) / fw.g.ipg
	t := fw.itabs[gr]
	if t == nil {
		t = make([]byte, uint64(fw.g.itb)*blockSize)
		fw.itabs[gr] = t
	}
	idx := (ino - 1) % fw.g.ipg
	n.encode(t[idx*inodeSize:], ino, fw.fsSeed)
	if fw.pending[gr] == 0 {
		return fmt.Errorf("BUG: ext4: inode %d encoded twice", ino)
	}
	fw.pending[gr]--
	if fw.pending[gr] > 0 {
		return nil
	}
	used := uint64(fw.usedInodes(gr)) * inodeSize
	delete(fw.itabs, gr)
	return fw.meta.write(fw.g.inodeTable[gr], t[:(used+blockSize-1)/blockSize*blockSize])
}

// placeChunk allocates and writes the non-zero blocks of chunk, logical
// blocks from lblk of file n; the last block is zero-padded (chunk's
// capacity must allow it).
func (fw *fsWriter) placeChunk(p string, n *tree.Inode, chunk []byte, lblk uint64, ext *extentList) error {
	nb := (len(chunk) + blockSize - 1) / blockSize
	buf := chunk[:nb*blockSize]
	clear(buf[len(chunk):])
	for i := 0; i < nb; {
		if isZero(buf[i*blockSize : (i+1)*blockSize]) {
			i++
			continue
		}
		j := i + 1
		for j < nb && !isZero(buf[j*blockSize:(j+1)*blockSize]) {
			j++
		}
		rs, ok := fw.g.used.alloc(&fw.cur, uint64(j-i))
		if !ok {
			return fw.noSpace(p, fmt.Sprintf("file of %d bytes does not fit (%d bytes written)", n.Size, (lblk+uint64(i))*blockSize))
		}
		off := uint64(i)
		for _, r := range rs {
			ext.add(lblk+off, r.start, r.n)
			if err := fw.data.put(r.start, buf[off*blockSize:(off+r.n)*blockSize]); err != nil {
				return err
			}
			off += r.n
		}
		i = j
	}
	return nil
}
