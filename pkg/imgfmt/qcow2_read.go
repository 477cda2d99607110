package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// qcow2Image reads a qcow2 image: versions 2 and 3, standard, zero and
// compressed clusters (zlib or zstd). Snapshots are ignored (the active L1
// table is the disk); refcounts are not needed to read.
type qcow2Image struct {
	f           *os.File
	fsize       int64
	size        int64
	version     uint32
	clusterBits uint
	cs          int64
	l2e         int64
	l1          []uint64
	compression uint8

	mu      sync.Mutex
	l2      tableCache[uint64] // L2 tables by host offset
	l2raw   []byte             // an L2 table as read, before decoding
	zOff    int64              // host offset of the cluster in zData, -1 when none
	zData   []byte
	zBuf    []byte
	zstdDec *zstdDecoder
}

func openQcow2(f *os.File, fsize int64) (*qcow2Image, error) {
	var raw [qcow2HeaderLength]byte
	if err := preadFull(f, raw[:qcow2V2HeaderLength], 0); err != nil {
		return nil, fmt.Errorf("qcow2 header: %w", err)
	}
	var h qcow2Header
	version := binary.BigEndian.Uint32(raw[4:])
	switch version {
	case 2:
	case 3:
		if err := preadFull(f, raw[qcow2V2HeaderLength:104], qcow2V2HeaderLength); err != nil {
			return nil, fmt.Errorf("qcow2 v3 header: %w", err)
		}
		hl := int64(binary.BigEndian.Uint32(raw[100:]))
		if hl < 104 || hl%8 != 0 {
			return nil, fmt.Errorf("qcow2 v3 header length %d is invalid", hl)
		}
		if err := preadFull(f, raw[104:min(hl, qcow2HeaderLength)], 104); err != nil {
			return nil, fmt.Errorf("qcow2 v3 header: %w", err)
		}
	default:
		return nil, fmt.Errorf("qcow2 version %d is not supported", version)
	}
	binary.Read(bytes.NewReader(raw[:]), binary.BigEndian, &h)
	if h.ClusterBits < qcow2MinClusterBits || h.ClusterBits > qcow2MaxClusterBits {
		return nil, fmt.Errorf("qcow2 cluster_bits %d is outside %d..%d", h.ClusterBits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	if h.CryptMethod != 0 {
		return nil, fmt.Errorf("qcow2: encrypted images are not supported")
	}
	if h.BackingFileOffset != 0 {
		return nil, fmt.Errorf("qcow2: images with a backing file are not supported")
	}
	if version == 3 {
		known := uint64(qcow2IncompatDirty | qcow2IncompatCorrupt | qcow2IncompatCompression)
		if h.IncompatibleFeatures&qcow2IncompatDataFile != 0 {
			return nil, fmt.Errorf("qcow2: images with an external data file are not supported")
		}
		if h.IncompatibleFeatures&qcow2IncompatExtendedL2 != 0 {
			return nil, fmt.Errorf("qcow2: images with extended L2 entries are not supported")
		}
		if bits := h.IncompatibleFeatures &^ known; bits != 0 {
			return nil, fmt.Errorf("qcow2: unknown incompatible features %#x", bits)
		}
	}
	if h.CompressionType > qcow2CompressionZstd {
		return nil, fmt.Errorf("qcow2: unknown compression type %d", h.CompressionType)
	}
	if h.Size > 1<<62 {
		return nil, fmt.Errorf("qcow2: virtual size %d is out of range", h.Size)
	}
	q := &qcow2Image{
		f:           f,
		fsize:       fsize,
		size:        int64(h.Size),
		version:     version,
		clusterBits: uint(h.ClusterBits),
		cs:          1 << h.ClusterBits,
		compression: h.CompressionType,
		zOff:        -1,
	}
	q.l2e = q.cs / 8
	need := ((q.size+q.cs-1)/q.cs + q.l2e - 1) / q.l2e
	if int64(h.L1Size) < need {
		return nil, fmt.Errorf("qcow2: L1 table of %d entries, a %d-byte disk needs %d", h.L1Size, q.size, need)
	}
	if int64(h.L1Size)*8 > qcow2MaxL1Bytes || h.L1TableOffset%uint64(q.cs) != 0 || h.L1TableOffset > 1<<62 {
		return nil, fmt.Errorf("qcow2: L1 table of %d entries at %d is invalid", h.L1Size, h.L1TableOffset)
	}
	if err := checkTable("qcow2 header field l1_table_offset/l1_size", int64(h.L1TableOffset), need, 8, fsize); err != nil {
		return nil, err
	}
	q.l1 = make([]uint64, need)
	if err := readTable(f, int64(h.L1TableOffset), 8, len(q.l1), func(i int, b []byte) { q.l1[i] = binary.BigEndian.Uint64(b) }); err != nil {
		return nil, fmt.Errorf("qcow2 L1 table: %w", err)
	}
	offs := make([]uint64, len(q.l1))
	for i, e := range q.l1 {
		offs[i] = e & qcow2OffsetMask
	}
	if err := checkUnshared("qcow2 L1 table", offs); err != nil {
		return nil, err
	}
	q.l2.init(16)
	return q, nil
}

func (q *qcow2Image) Size() int64    { return q.size }
func (q *qcow2Image) Format() string { return "qcow2" }

func (q *qcow2Image) Close() error {
	if q.zstdDec != nil {
		q.zstdDec.close()
	}
	return q.f.Close()
}

func (q *qcow2Image) ReadAt(p []byte, off int64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return readSpans(p, off, q.size, q.cs, q.readPiece)
}

// Extents lists the guest clusters the L2 tables map: to data, compressed
// or not. Unallocated clusters and (version 3) zero clusters read as zeros.
func (q *qcow2Image) Extents(ctx context.Context, fn func(Extent) error) error {
	m := merger{fn: fn}
	for i, l1e := range q.l1 {
		if err := ctx.Err(); err != nil {
			return err
		}
		l2off := l1e & qcow2OffsetMask
		if l2off == 0 {
			continue
		}
		q.mu.Lock()
		l2, err := q.loadL2(int64(l2off))
		q.mu.Unlock()
		if err != nil {
			return err
		}
		for j, e := range l2 {
			g := int64(i)*q.l2e + int64(j)
			if g*q.cs >= q.size {
				break
			}
			if e&qcow2OflagCompressed == 0 && ((q.version >= 3 && e&qcow2OflagZero != 0) || e&qcow2OffsetMask == 0) {
				continue
			}
			if err := m.add(Extent{g * q.cs, min(q.cs, q.size-g*q.cs)}); err != nil {
				return err
			}
		}
	}
	return m.flush()
}

// readPiece reads a piece of one guest cluster.
func (q *qcow2Image) readPiece(p []byte, off int64) error {
	g, in := off/q.cs, off%q.cs
	l2off := q.l1[g/q.l2e] & qcow2OffsetMask
	if l2off == 0 {
		clear(p)
		return nil
	}
	l2, err := q.loadL2(int64(l2off))
	if err != nil {
		return err
	}
	e := l2[g%q.l2e]
	if e&qcow2OflagCompressed != 0 {
		data, err := q.cluster(e)
		if err != nil {
			return fmt.Errorf("qcow2 guest cluster %d: %w", g, err)
		}
		copy(p, data[in:])
		return nil
	}
	host := int64(e & qcow2OffsetMask)
	if (q.version >= 3 && e&qcow2OflagZero != 0) || host == 0 {
		clear(p)
		return nil
	}
	if err := preadFull(q.f, p, host+in); err != nil {
		return fmt.Errorf("qcow2 guest cluster %d: %w", g, err)
	}
	return nil
}

func (q *qcow2Image) loadL2(off int64) ([]uint64, error) {
	if t := q.l2.get(uint64(off)); t != nil {
		return t, nil
	}
	if off%q.cs != 0 {
		return nil, fmt.Errorf("qcow2: L2 table at %d is not cluster aligned", off)
	}
	if off > q.fsize-q.cs {
		return nil, fmt.Errorf("qcow2: L2 table at %d (L1 entry) is past the end of the %d-byte file", off, q.fsize)
	}
	if q.l2raw == nil {
		q.l2raw = make([]byte, q.cs)
	}
	raw := q.l2raw
	if err := preadFull(q.f, raw, off); err != nil {
		return nil, fmt.Errorf("qcow2 L2 table: %w", err)
	}
	t := make([]uint64, q.l2e)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(raw[8*i:])
	}
	q.l2.put(uint64(off), t)
	return t, nil
}

// cluster decompresses the compressed cluster that L2 entry e describes.
func (q *qcow2Image) cluster(e uint64) ([]byte, error) {
	shift := qcow2CompressedShift(q.clusterBits)
	host := int64(e & (1<<shift - 1))
	sectors := int64(e>>shift&(1<<(q.clusterBits-8)-1)) + 1
	csize := sectors*512 - host%512
	if host == q.zOff {
		return q.zData, nil
	}
	if host >= q.fsize {
		return nil, fmt.Errorf("compressed data at %d is past the end of the %d-byte file", host, q.fsize)
	}
	if cap(q.zBuf) < int(csize) {
		q.zBuf = make([]byte, csize)
	}
	buf := q.zBuf[:csize]
	// The last compressed cluster may end before its last sector does.
	n, err := q.f.ReadAt(buf, host)
	if n == 0 && err != nil {
		return nil, fmt.Errorf("reading compressed data at %d: %w", host, err)
	}
	if q.zData == nil {
		q.zData = make([]byte, q.cs)
	}
	q.zOff = -1
	switch q.compression {
	case qcow2CompressionZlib:
		err = inflateRaw(q.zData, buf[:n])
	case qcow2CompressionZstd:
		if q.zstdDec == nil {
			if q.zstdDec, err = newZstdDecoder(); err != nil {
				return nil, err
			}
		}
		err = q.zstdDec.decompress(q.zData, buf[:n])
	}
	if err != nil {
		return nil, fmt.Errorf("compressed data at %d: %w", host, err)
	}
	q.zOff = host
	return q.zData, nil
}

// tableCache keeps the last few tables a reader loaded, evicting the
// oldest (readers mostly go front to back).
type tableCache[T any] struct {
	keys []uint64
	vals [][]T
	next int
}

func (c *tableCache[T]) init(n int) {
	c.keys = make([]uint64, n)
	c.vals = make([][]T, n)
}

func (c *tableCache[T]) get(k uint64) []T {
	for i, key := range c.keys {
		if key == k && c.vals[i] != nil {
			return c.vals[i]
		}
	}
	return nil
}

func (c *tableCache[T]) put(k uint64, v []T) {
	c.keys[c.next], c.vals[c.next] = k, v
	c.next = (c.next + 1) % len(c.keys)
}
