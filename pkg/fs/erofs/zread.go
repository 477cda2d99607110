package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// zext is one extent of a compressed file as read: file bytes
// [start, end) from the pcluster at byte pa.
type zext struct {
	start, end int64
	pa         int64
	raw        bool
}

// zcontent reads a COMPRESSED_FULL inode's map header and lcluster
// indexes (after its inode and xattrs, at ri.inline) into extents,
// checked against the partition and each other before anything is
// allocated by their counts. nblks is its i_u (compressed blocks): the
// partition holds them, and there are no more pclusters than that, so
// the extents take at most 32 bytes per block of the partition.
func (rd *reader) zcontent(ri *rinode, nblks uint32, what string) (*zfile, error) {
	hpos := (ri.inline + 7) / 8 * 8
	h, err := rd.read(hpos, zMapHeaderSize, what+": map header")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	advise, algs, cbits := le.Uint16(h[4:]), h[6], h[7]
	compact := ri.layout == layoutCompressedCompact
	if (advise != 0 && (!compact || advise != zAdviseCompacted2B)) || algs != 0 || cbits != 0 {
		return nil, fmt.Errorf("erofs: read: %s: map header advise %#x, algorithms %#x, clusterbits %#x: kiln reads LZ4, 4 KiB lclusters, no big pclusters, tail packing or fragments", what, advise, algs, cbits)
	}
	zf := &zfile{r: rd.r, size: ri.size, what: what, partial: !rd.zeroPad}
	if ri.size == 0 {
		return zf, nil
	}
	n := zIndexes(ri.size)
	if int64(nblks) > rd.size/blockSize {
		return nil, fmt.Errorf("erofs: read: %s: %d compressed blocks in a partition of %d bytes", what, nblks, rd.size)
	}
	var ix zindexer
	if compact {
		c := &compactIndexes{r: rd.r, n: n, ebase: hpos + 8}
		if c.init(advise, rd.size) != nil {
			return nil, fmt.Errorf("erofs: read: %s: %d compact lcluster indexes beyond the partition", what, n)
		}
		ix = c
	} else {
		ipos := hpos + zMapHeaderSize
		if ipos > rd.size || n > (rd.size-ipos)/zIndexSize {
			return nil, fmt.Errorf("erofs: read: %s: %d lcluster indexes beyond the partition", what, n)
		}
		ix = &fullIndexes{r: rd.r, n: n, pos: ipos, buf: make([]byte, min(n*zIndexSize, blockSize))}
	}
	// Extents grow by one per HEAD index, each backed by a pcluster in
	// the partition.
	headLcn := int64(-1)
	for lcn := int64(0); lcn < n; lcn++ {
		typ, ofs, u, err := ix.at(lcn)
		if err != nil {
			return nil, fmt.Errorf("erofs: read: %s: lcluster %d: %w", what, lcn, err)
		}
		switch typ {
		case zPlain, zHead1:
			start := lcn*blockSize + ofs
			if ofs >= blockSize || (lcn == 0 && ofs != 0) {
				return nil, fmt.Errorf("erofs: read: %s: lcluster %d: head at offset %d", what, lcn, ofs)
			}
			if start >= ri.size {
				// The end, inside an lcluster no extent starts in.
				if typ != zPlain || start != ri.size || lcn != n-1 {
					return nil, fmt.Errorf("erofs: read: %s: lcluster %d: head at %d beyond the size %d", what, lcn, start, ri.size)
				}
				continue
			}
			pa := int64(u) * blockSize
			if pa > rd.size-blockSize {
				return nil, fmt.Errorf("erofs: read: %s: lcluster %d: pcluster at block %d beyond the partition", what, lcn, u)
			}
			if len(zf.ext) >= int(nblks) {
				return nil, fmt.Errorf("erofs: read: %s: lcluster %d: more pclusters than the inode's %d", what, lcn, nblks)
			}
			if len(zf.ext) > 0 {
				zf.ext[len(zf.ext)-1].end = start
			}
			zf.ext = append(zf.ext, zext{start: start, end: ri.size, pa: pa, raw: typ == zPlain})
			headLcn = lcn
		case zNonhead:
			if headLcn < 0 || int64(u&0xffff) != lcn-headLcn {
				return nil, fmt.Errorf("erofs: read: %s: lcluster %d: NONHEAD %d lclusters after its head, says %d", what, lcn, lcn-headLcn, u&0xffff)
			}
		default:
			return nil, fmt.Errorf("erofs: read: %s: lcluster %d: index advise %#x (HEAD2, partial references) is not read", what, lcn, typ)
		}
	}
	for i, x := range zf.ext {
		l := x.end - x.start
		if l <= 0 || (x.raw && l > blockSize) || l > zReadMaxExtent {
			return nil, fmt.Errorf("erofs: read: %s: extent %d holds %d bytes (raw %v)", what, i, l, x.raw)
		}
		zf.max = max(zf.max, l)
	}
	return zf, nil
}

// zfile is a compressed file's content: its extents, decompressed on
// Read, one at a time.
type zfile struct {
	r    io.ReaderAt
	size int64
	what string
	ext  []zext
	max  int64 // the longest extent
	// partial: no zero padding, so each LZ4 block is at its pcluster's
	// start, followed by zeros (images for kernels before 5.4).
	partial bool
}

func (z *zfile) Open() (io.ReadCloser, error) {
	return io.NopCloser(&zreader{z: z}), nil
}

type zreader struct {
	z   *zfile
	i   int    // next extent
	out []byte // what is left of the extent decoded last
	buf []byte
	blk []byte
}

func (r *zreader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.i == len(r.z.ext) {
			return 0, io.EOF
		}
		if r.buf == nil {
			r.buf, r.blk = make([]byte, r.z.max), make([]byte, blockSize)
		}
		x := r.z.ext[r.i]
		if _, err := r.z.r.ReadAt(r.blk, x.pa); err != nil {
			return 0, fmt.Errorf("erofs: read: %s: pcluster of extent %d: %w", r.z.what, r.i, err)
		}
		out := r.buf[:x.end-x.start]
		if x.raw {
			copy(out, r.blk)
		} else {
			// Zero padding, then the LZ4 block.
			k := 0
			for !r.z.partial && k < blockSize && r.blk[k] == 0 {
				k++
			}
			if err := lz4DecodeAs(out, r.blk[k:], r.z.partial); err != nil {
				return 0, fmt.Errorf("erofs: read: %s: extent %d (file bytes %d..%d): %w", r.z.what, r.i, x.start, x.end, err)
			}
		}
		r.out = out
		r.i++
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// zindexer gives a compressed file's lcluster indexes in order: type,
// offset of the head (HEAD, PLAIN) and block (HEAD, PLAIN) or distance
// back to the head (NONHEAD).
type zindexer interface {
	at(lcn int64) (typ uint16, ofs int64, u uint32, err error)
}

// fullIndexes reads COMPRESSED_FULL's 8-byte indexes, a block's worth at
// a time.
type fullIndexes struct {
	r   io.ReaderAt
	n   int64
	pos int64
	buf []byte
}

func (f *fullIndexes) at(lcn int64) (uint16, int64, uint32, error) {
	k := lcn % int64(len(f.buf)/zIndexSize)
	if k == 0 {
		m := min(int64(len(f.buf)), (f.n-lcn)*zIndexSize)
		if _, err := f.r.ReadAt(f.buf[:m], f.pos+lcn*zIndexSize); err != nil {
			return 0, 0, 0, err
		}
	}
	e := f.buf[k*zIndexSize:]
	le := binary.LittleEndian
	return le.Uint16(e[0:]), int64(le.Uint16(e[2:])), le.Uint32(e[4:]), nil
}

// zAdviseCompacted2B: compact indexes use 2-byte entries in their middle.
const zAdviseCompacted2B = 0x1

// compactIndexes reads COMPRESSED_COMPACT's indexes (mkfs.erofs's
// default), as the kernel's unpack_compacted_index does with 4 KiB
// lclusters and no big pclusters: from ebase, 4-byte entries up to a
// 32-byte boundary, then 2-byte ones in packs of 16 (when the header
// says so), then 4-byte ones in packs of 2; each pack holds entries of
// 12 bits of offset or distance and 2 of type (a last NONHEAD holds its
// distance to the next head), and at its end a block address from which
// its heads count up.
type compactIndexes struct {
	r              io.ReaderAt
	n, ebase       int64
	initial, c2b   int64
	pack           [32]byte
	packAt, packSz int64
}

func (c *compactIndexes) init(advise uint16, size int64) error {
	c.initial = (32 - c.ebase%32) / 4
	if c.initial == 8 {
		c.initial = 0
	}
	if advise&zAdviseCompacted2B != 0 && c.initial < c.n {
		c.c2b = (c.n - c.initial) / 16 * 16
	}
	// The packs end at most a pack past the last entry.
	end := c.ebase + min(c.n, c.initial)*4 + c.c2b*2 + max(0, c.n-c.initial-c.c2b)*4 + 32
	if c.ebase > size || end > size+32 || end < c.ebase {
		return errLZ4
	}
	c.packAt = -1
	return nil
}

func (c *compactIndexes) at(lcn int64) (uint16, int64, uint32, error) {
	var pos int64
	shift := int64(2)
	switch {
	case lcn < c.initial:
		pos = c.ebase + lcn*4
	case lcn-c.initial < c.c2b:
		shift, pos = 1, c.ebase+c.initial*4+(lcn-c.initial)*2
	default:
		pos = c.ebase + c.initial*4 + c.c2b*2 + (lcn-c.initial-c.c2b)*4
	}
	vcnt := int64(2)
	if shift == 1 {
		vcnt = 16
	}
	size := vcnt << shift
	base := pos / size * size
	if base != c.packAt {
		if _, err := c.r.ReadAt(c.pack[:size], base); err != nil {
			return 0, 0, 0, err
		}
		c.packAt, c.packSz = base, size
	}
	bits := (size - 4) * 8 / vcnt
	decode := func(j int64) (uint16, int64) {
		b := bits * j
		v := binary.LittleEndian.Uint32(c.pack[b/8:]) >> (b % 8)
		return uint16(v>>12) & 3, int64(v & 0xfff)
	}
	i := (pos - base) >> shift
	typ, lo := decode(i)
	if typ == zNonhead {
		if lo&0x800 != 0 {
			return 0, 0, 0, errors.New("compressed block count (big pclusters) is not read")
		}
		if i+1 == vcnt {
			// A pack's last entry holds the distance to the next
			// head: the distance to its own comes from the one
			// before it.
			lo = 1
			if t, d := decode(i - 1); t == zNonhead {
				lo = d + 1
			}
		}
		return typ, 0, uint32(lo), nil
	}
	nblk := uint32(1)
	for j := i; j > 0; {
		j--
		if t, d := decode(j); t == zNonhead {
			j -= d
		}
		if j >= 0 {
			nblk++
		}
	}
	return typ, lo, binary.LittleEndian.Uint32(c.pack[size-4:]) + nblk, nil
}
