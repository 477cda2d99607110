package erofs

import (
	"encoding/binary"
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
	if advise != 0 || algs != 0 || cbits != 0 {
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
	ipos := hpos + zMapHeaderSize
	if ipos > rd.size || n > (rd.size-ipos)/zIndexSize {
		return nil, fmt.Errorf("erofs: read: %s: %d lcluster indexes beyond the partition", what, n)
	}
	// The indexes, a block's worth at a time; extents grow by one per
	// HEAD index, each backed by a pcluster in the partition.
	buf := make([]byte, min(n*zIndexSize, blockSize))
	headLcn := int64(-1)
	for lcn := int64(0); lcn < n; lcn++ {
		k := lcn % int64(len(buf)/zIndexSize)
		if k == 0 {
			m := min(int64(len(buf)), (n-lcn)*zIndexSize)
			if _, err := rd.r.ReadAt(buf[:m], ipos+lcn*zIndexSize); err != nil {
				return nil, fmt.Errorf("erofs: read: %s: lcluster indexes: %w", what, err)
			}
		}
		e := buf[k*zIndexSize:]
		typ, ofs, u := le.Uint16(e[0:]), int64(le.Uint16(e[2:])), le.Uint32(e[4:])
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
