package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
)

// qcow2Header is the qcow2 version 3 header (QEMU docs/interop/qcow2.txt,
// "Header" and "Additional fields"), big-endian, at offset 0. kiln always
// writes the 112-byte form that has compression_type; the header
// extensions follow it directly, and kiln writes only the end marker.
type qcow2Header struct {
	Magic                 uint32 // "QFI\xfb"
	Version               uint32 // 3
	BackingFileOffset     uint64 // 0: no backing file
	BackingFileSize       uint32
	ClusterBits           uint32 // cluster size = 1 << ClusterBits, 9..21
	Size                  uint64 // virtual disk size in bytes
	CryptMethod           uint32 // 0: not encrypted
	L1Size                uint32 // entries in the L1 table
	L1TableOffset         uint64 // cluster aligned
	RefcountTableOffset   uint64 // cluster aligned
	RefcountTableClusters uint32
	NbSnapshots           uint32
	SnapshotsOffset       uint64
	IncompatibleFeatures  uint64 // bit 3: compression_type is not zlib
	CompatibleFeatures    uint64
	AutoclearFeatures     uint64
	RefcountOrder         uint32 // refcount width = 1 << RefcountOrder bits
	HeaderLength          uint32 // 112
	CompressionType       uint8  // 0: zlib (deflate), 1: zstd
	Padding               [7]byte
}

const (
	qcow2Magic          = 0x514649fb // "QFI\xfb"
	qcow2HeaderLength   = 112
	qcow2V2HeaderLength = 72
	qcow2RefcountOrder  = 4 // 16-bit refcounts
	qcow2MaxRefcount    = 1<<16 - 1

	qcow2IncompatDirty       = 1 << 0
	qcow2IncompatCorrupt     = 1 << 1
	qcow2IncompatDataFile    = 1 << 2
	qcow2IncompatCompression = 1 << 3
	qcow2IncompatExtendedL2  = 1 << 4

	qcow2CompressionZlib = 0
	qcow2CompressionZstd = 1

	// L1 and L2 entries (qcow2.txt "Cluster mapping").
	qcow2OflagCopied     = 1 << 63 // refcount is exactly one
	qcow2OflagCompressed = 1 << 62
	qcow2OflagZero       = 1 << 0             // standard cluster reads as zeros
	qcow2OffsetMask      = 0x00fffffffffffe00 // bits 9-55 of L1 and standard L2 entries

	// qemu's limits (block/qcow2.h): it refuses larger tables.
	qcow2MaxL1Bytes       = 32 << 20
	qcow2MaxRefTableBytes = 8 << 20
	qcow2MinClusterBits   = 9
	qcow2MaxClusterBits   = 21
)

func init() {
	if n := binary.Size(qcow2Header{}); n != qcow2HeaderLength {
		panic(fmt.Sprintf("BUG: qcow2Header is %d bytes, want %d", n, qcow2HeaderLength))
	}
}

// qcow2CompressedShift is x in the compressed cluster descriptor: bits
// 0..x-1 hold the host offset, bits x..61 the number of 512-byte sectors
// the data takes beyond the first.
func qcow2CompressedShift(clusterBits uint) uint { return 62 - (clusterBits - 8) }

// qcow2Writer emits a qcow2 v3 image. The layout, every byte of which
// follows from the disk content and the options:
//
//	cluster 0                header, end of header extensions
//	for each L2 range that has data, in disk order:
//	    its data clusters in disk order (compressed ones packed byte after
//	    byte, as qemu packs them; an uncompressed cluster or a table starts
//	    on the next cluster boundary)
//	    its L2 table
//	L1 table, refcount table, refcount blocks
//
// All-zero clusters are unallocated. Every refcount is 1 except those of
// host clusters that hold several compressed clusters, which count them.
type qcow2Writer struct {
	size        int64
	clusterBits uint
	compression string // "none", "zlib" or "zstd"
}

func (q *qcow2Writer) emit(ctx context.Context, st *store, out *os.File) error {
	cs := int64(1) << q.clusterBits
	l2e := cs / 8
	clusters := (q.size + cs - 1) / cs
	e := &qcow2Emitter{
		q:     q,
		cs:    cs,
		l2e:   l2e,
		w:     newSeqWriter(out, cs),
		l1:    make([]uint64, (clusters+l2e-1)/l2e),
		l2:    make([]uint64, l2e),
		cur:   -1,
		refs:  []uint16{1}, // the header cluster
		st:    st,
		table: make([]byte, cs),
	}
	p := &pipeline{
		ctx:      ctx,
		src:      st,
		size:     q.size,
		unitSize: cs,
		units: func(yield func(int64) bool) error {
			st.touchedUnits(cs, yield)
			return nil
		},
	}
	switch q.compression {
	case "none":
	case "zlib":
		p.newEncoder = func() encodeFunc {
			d := newRawDeflater()
			return func(u *unit) error {
				enc, err := d.compress(u.enc[:0], u.data)
				if err != nil {
					return err
				}
				u.enc = keepIfSmaller(enc, cs)
				return nil
			}
		}
	case "zstd":
		z := newZstdEncoder(maxWorkers())
		defer z.Close()
		p.newEncoder = func() encodeFunc {
			return func(u *unit) error {
				u.enc = keepIfSmaller(z.EncodeAll(u.data, u.enc[:0]), cs)
				return nil
			}
		}
	default:
		return fmt.Errorf("BUG: qcow2 compression %q passed validation", q.compression)
	}
	if err := p.run(e.cluster); err != nil {
		return err
	}
	st.releaseBelow(q.size + cs)
	return e.finish()
}

// keepIfSmaller returns enc when it saves space (like qemu, which gives
// the compressor cluster_size-1 bytes of room), else an empty slice that
// says "store this cluster uncompressed" and keeps enc's buffer.
func keepIfSmaller(enc []byte, cs int64) []byte {
	if int64(len(enc)) < cs {
		return enc
	}
	return enc[:0]
}

// qcow2Emitter is the sequential half of qcow2Writer: it places clusters
// and tables as units arrive in disk order.
type qcow2Emitter struct {
	q     *qcow2Writer
	cs    int64
	l2e   int64 // entries per L2 table
	w     *seqWriter
	l1    []uint64
	l2    []uint64 // the L2 table being filled
	cur   int64    // its index in l1, -1 when none
	refs  []uint16 // refcount of each host cluster so far
	st    *store
	table []byte // a cluster's worth of buffer for tables
}

// ref adds one reference to host cluster c.
func (e *qcow2Emitter) ref(c int64) error {
	for int64(len(e.refs)) <= c {
		e.refs = append(e.refs, 0)
	}
	if e.refs[c] == qcow2MaxRefcount {
		return fmt.Errorf("BUG: qcow2 host cluster %d referenced more than %d times", c, qcow2MaxRefcount)
	}
	e.refs[c]++
	return nil
}

// cluster places one non-zero guest cluster.
func (e *qcow2Emitter) cluster(u *unit) error {
	bits := e.q.clusterBits
	if l1i := u.idx / e.l2e; l1i != e.cur {
		if err := e.flushL2(); err != nil {
			return err
		}
		e.cur = l1i
		clear(e.l2)
	}
	slot := &e.l2[u.idx%e.l2e]
	if n := int64(len(u.enc)); n > 0 {
		off := e.w.pos()
		// A host cluster counts at most qcow2MaxRefcount compressed
		// clusters: start a new one before that.
		if c := off >> bits; c < int64(len(e.refs)) && e.refs[c] == qcow2MaxRefcount {
			e.w.align(e.cs)
			off = e.w.pos()
		}
		shift := qcow2CompressedShift(bits)
		if off >= 1<<shift {
			return fmt.Errorf("qcow2: compressed data at %d is beyond what %d-byte clusters can address", off, e.cs)
		}
		extra := uint64((off+n-1)>>9 - off>>9)
		*slot = qcow2OflagCompressed | extra<<shift | uint64(off)
		e.w.write(u.enc)
		for c := off >> bits; c <= (off+n-1)>>bits; c++ {
			if err := e.ref(c); err != nil {
				return err
			}
		}
	} else {
		e.w.align(e.cs)
		off := e.w.pos()
		*slot = uint64(off) | qcow2OflagCopied
		e.w.write(u.data)
		if err := e.ref(off >> bits); err != nil {
			return err
		}
	}
	e.st.releaseBelow((u.idx + 1) * e.cs)
	return e.w.err
}

// flushL2 writes the L2 table being filled, after its clusters.
func (e *qcow2Emitter) flushL2() error {
	if e.cur < 0 {
		return nil
	}
	e.w.align(e.cs)
	off := e.w.pos()
	for i, v := range e.l2 {
		binary.BigEndian.PutUint64(e.table[8*i:], v)
	}
	e.w.write(e.table)
	e.l1[e.cur] = uint64(off) | qcow2OflagCopied
	e.cur = -1
	if err := e.ref(off >> e.q.clusterBits); err != nil {
		return err
	}
	return e.w.err
}

// finish writes the L1 table, the refcount structures and the header.
func (e *qcow2Emitter) finish() error {
	if err := e.flushL2(); err != nil {
		return err
	}
	e.w.align(e.cs)
	cs := e.cs
	p := e.w.pos() / cs // clusters written so far, header included
	if int64(len(e.refs)) != p {
		return fmt.Errorf("BUG: qcow2 wrote %d clusters but counted references to %d", p, len(e.refs))
	}
	for c, r := range e.refs {
		if r == 0 {
			return fmt.Errorf("BUG: qcow2 host cluster %d is written but not referenced", c)
		}
	}
	l1Clusters := max(1, (int64(len(e.l1))*8+cs-1)/cs)
	// The refcount blocks must count themselves and the refcount table:
	// grow both until they cover the whole file.
	rbEntries := cs * 8 / (1 << qcow2RefcountOrder)
	var rbc, rtc int64
	for {
		total := p + l1Clusters + rtc + rbc
		nrbc := (total + rbEntries - 1) / rbEntries
		nrtc := (nrbc*8 + cs - 1) / cs
		if nrbc == rbc && nrtc == rtc {
			break
		}
		rbc, rtc = nrbc, nrtc
	}
	if rtc*cs > qcow2MaxRefTableBytes {
		return fmt.Errorf("qcow2: the image needs a refcount table of %d bytes, more than qemu's %d", rtc*cs, qcow2MaxRefTableBytes)
	}
	total := p + l1Clusters + rtc + rbc
	for c := p; c < total; c++ {
		e.refs = append(e.refs, 1)
	}
	l1Off, rtOff := p*cs, (p+l1Clusters)*cs
	rbOff := rtOff + rtc*cs

	be := binary.BigEndian
	var b8 [8]byte
	for _, v := range e.l1 {
		be.PutUint64(b8[:], v)
		e.w.write(b8[:])
	}
	e.w.align(cs)
	for i := int64(0); i < rbc; i++ {
		be.PutUint64(b8[:], uint64(rbOff+i*cs))
		e.w.write(b8[:])
	}
	e.w.align(cs)
	var b2 [2]byte
	for _, r := range e.refs {
		be.PutUint16(b2[:], r)
		e.w.write(b2[:])
	}
	e.w.align(cs)
	if err := e.w.flush(); err != nil {
		return err
	}
	if e.w.pos() != total*cs {
		return fmt.Errorf("BUG: qcow2 image ends at %d, planned %d", e.w.pos(), total*cs)
	}

	h := qcow2Header{
		Magic:                 qcow2Magic,
		Version:               3,
		ClusterBits:           uint32(e.q.clusterBits),
		Size:                  uint64(e.q.size),
		L1Size:                uint32(len(e.l1)),
		L1TableOffset:         uint64(l1Off),
		RefcountTableOffset:   uint64(rtOff),
		RefcountTableClusters: uint32(rtc),
		RefcountOrder:         qcow2RefcountOrder,
		HeaderLength:          qcow2HeaderLength,
	}
	if e.q.compression == "zstd" {
		h.IncompatibleFeatures |= qcow2IncompatCompression
		h.CompressionType = qcow2CompressionZstd
	}
	var hb bytes.Buffer
	binary.Write(&hb, binary.BigEndian, &h)
	hb.Write(make([]byte, 8)) // header extension type 0: end of the area
	if _, err := e.w.f.WriteAt(hb.Bytes(), 0); err != nil {
		return err
	}
	return nil
}
