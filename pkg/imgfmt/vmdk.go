package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/kiln-build/kiln/pkg/repro"
)

// vmdkHeader is the sparse extent header (VMware Virtual Disk Format 5.0,
// "Hosted Sparse Extent Header"), little-endian, one sector long. A
// streamOptimized extent has it twice: at sector 0 with GDOffset =
// vmdkGDAtEnd, and as the footer near the end with the real GDOffset.
type vmdkHeader struct {
	MagicNumber        [4]byte // "KDMV"
	Version            uint32  // 3 for streamOptimized
	Flags              uint32  // vmdkFlag*
	Capacity           uint64  // virtual size in sectors
	GrainSize          uint64  // sectors per grain
	DescriptorOffset   uint64  // sector of the embedded descriptor
	DescriptorSize     uint64  // its size in sectors
	NumGTEsPerGT       uint32  // 512
	RGDOffset          uint64  // redundant grain directory: none when streamed
	GDOffset           uint64  // sector of the grain directory
	OverHead           uint64  // sectors before the first grain
	UncleanShutdown    uint8
	SingleEndLineChar  byte // '\n'
	NonEndLineChar     byte // ' '
	DoubleEndLineChar1 byte // '\r'
	DoubleEndLineChar2 byte // '\n'
	CompressAlgorithm  uint16
	Pad                [433]uint8
}

// vmdkMarker is a metadata marker: the sector before a grain table, the
// grain directory or the footer, and the end-of-stream marker (all zero).
type vmdkMarker struct {
	NumSectors uint64 // sectors of metadata that follow
	Size       uint32 // 0: this is not a grain marker
	Type       uint32 // vmdkMarker*
	Pad        [496]uint8
}

// A grain marker is 12 bytes, then the compressed grain, padded to a
// sector: LBA uint64 (first sector of the grain in the disk), Size uint32
// (bytes of compressed data).
const vmdkGrainMarkerSize = 12

const (
	vmdkMagic   = "KDMV"
	vmdkGDAtEnd = 0xffffffffffffffff

	vmdkFlagNewlineDetect = 1 << 0
	vmdkFlagRGD           = 1 << 1
	vmdkFlagZeroGrain     = 1 << 2
	vmdkFlagCompressed    = 1 << 16
	vmdkFlagMarkers       = 1 << 17

	vmdkCompressionDeflate = 1

	vmdkMarkerEOS       = 0
	vmdkMarkerGT        = 1
	vmdkMarkerGD        = 2
	vmdkMarkerFooter    = 3
	vmdkGrainSectors    = 128 // 64 KiB grains
	vmdkGTEs            = 512 // entries per grain table: 32 MiB of disk
	vmdkDescSectors     = 20
	vmdkOverheadSectors = 128 // header, descriptor, padding to the first grain
	vmdkMaxSectors      = 1<<32 - 1
)

func init() {
	if n := binary.Size(vmdkHeader{}); n != 512 {
		panic(fmt.Sprintf("BUG: vmdkHeader is %d bytes, want 512", n))
	}
	if n := binary.Size(vmdkMarker{}); n != 512 {
		panic(fmt.Sprintf("BUG: vmdkMarker is %d bytes, want 512", n))
	}
}

// vmdkWriter emits a streamOptimized VMDK, laid out as a stream would be:
//
//	sector 0            header (GDOffset = vmdkGDAtEnd)
//	sectors 1..20       the embedded descriptor
//	from sector 128:    for each grain table that has data, in disk order:
//	                        its grains (marker + deflated grain, sector aligned)
//	                        grain table marker, grain table (4 sectors)
//	                    grain directory marker, grain directory
//	                    footer marker, footer (the header with the real
//	                    GDOffset), end-of-stream marker
//
// All-zero grains are left out; grain tables with no grain are left out
// and their directory entry is 0. Every grain is compressed whole (the
// last one padded with zeros past the end of the disk).
type vmdkWriter struct {
	size       int64
	extentName string     // the file name in the descriptor's extent line
	id         repro.UUID // zero: derive the CID from the content
}

func (v *vmdkWriter) header() vmdkHeader {
	return vmdkHeader{
		MagicNumber:        [4]byte([]byte(vmdkMagic)),
		Version:            3,
		Flags:              vmdkFlagNewlineDetect | vmdkFlagCompressed | vmdkFlagMarkers,
		Capacity:           uint64(v.size / 512),
		GrainSize:          vmdkGrainSectors,
		DescriptorOffset:   1,
		DescriptorSize:     vmdkDescSectors,
		NumGTEsPerGT:       vmdkGTEs,
		GDOffset:           vmdkGDAtEnd,
		OverHead:           vmdkOverheadSectors,
		SingleEndLineChar:  '\n',
		NonEndLineChar:     ' ',
		DoubleEndLineChar1: '\r',
		DoubleEndLineChar2: '\n',
		CompressAlgorithm:  vmdkCompressionDeflate,
	}
}

// descriptor is the embedded descriptor text. The CID changes with the
// content (or Options.ID); parentCID ffffffff says there is no parent.
// The geometry is the IDE one qemu and VMware use: 16 heads, 63 sectors.
func (v *vmdkWriter) descriptor(cid uint32) string {
	sectors := v.size / 512
	cyl := min(sectors/(16*63), 16383)
	var b strings.Builder
	fmt.Fprintf(&b, "# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n", cid)
	fmt.Fprintf(&b, "# Extent description\nRW %d SPARSE \"%s\"\n\n", sectors, v.extentName)
	fmt.Fprintf(&b, "# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"%d\"\nddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\nddb.toolsVersion = \"2147483647\"\n", cyl)
	return b.String()
}

func (v *vmdkWriter) emit(ctx context.Context, st *store, out *os.File) error {
	const grain = vmdkGrainSectors * 512
	grains := (v.size + grain - 1) / grain
	e := &vmdkEmitter{
		w:   newSeqWriter(out, vmdkOverheadSectors*512),
		gd:  make([]uint32, (grains+vmdkGTEs-1)/vmdkGTEs),
		gt:  make([]uint32, vmdkGTEs),
		cur: -1,
		st:  st,
	}
	if v.id.IsZero() {
		e.id = newContentID(v.size)
	}
	p := &pipeline{
		ctx:      ctx,
		src:      st,
		size:     v.size,
		unitSize: grain,
		units: func(yield func(int64) bool) error {
			st.touchedUnits(grain, yield)
			return nil
		},
		newEncoder: func() encodeFunc {
			d := newZlibDeflater()
			return func(u *unit) error {
				var err error
				u.enc, err = d.compress(u.enc[:0], u.data)
				return err
			}
		},
		digest: e.id != nil,
	}
	if err := p.run(e.grain); err != nil {
		return err
	}
	st.releaseBelow(v.size + grain)
	if err := e.flushGT(); err != nil {
		return err
	}
	w := e.w
	marker := func(sectors uint64, typ uint32) {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, &vmdkMarker{NumSectors: sectors, Type: typ})
		w.write(b.Bytes())
	}
	gdSectors := (int64(len(e.gd))*4 + 511) / 512
	marker(uint64(gdSectors), vmdkMarkerGD)
	gdOff := w.pos() / 512
	for _, s := range e.gd {
		w.write(binary.LittleEndian.AppendUint32(nil, s))
	}
	w.align(512)
	marker(1, vmdkMarkerFooter)
	h := v.header()
	footer := h
	footer.GDOffset = uint64(gdOff)
	var fb bytes.Buffer
	binary.Write(&fb, binary.LittleEndian, &footer)
	w.write(fb.Bytes())
	marker(0, vmdkMarkerEOS)
	if err := w.flush(); err != nil {
		return err
	}
	if w.pos()/512 > vmdkMaxSectors {
		return fmt.Errorf("vmdk: the image would be %d bytes, more than grain tables can address", w.pos())
	}

	id := v.id
	if e.id != nil {
		id = e.id.sum()
	}
	// The top bit is cleared so that the CID is never ffffffff or
	// fffffffe, which VMware reserves.
	cid := binary.BigEndian.Uint32(id[:4]) &^ (1 << 31)
	var hb bytes.Buffer
	binary.Write(&hb, binary.LittleEndian, &h)
	hb.WriteString(v.descriptor(cid))
	if hb.Len() > (1+vmdkDescSectors)*512 {
		return fmt.Errorf("BUG: vmdk descriptor of %d bytes does not fit %d sectors", hb.Len()-512, vmdkDescSectors)
	}
	_, err := out.WriteAt(hb.Bytes(), 0)
	return err
}

// vmdkEmitter is the sequential half of vmdkWriter.
type vmdkEmitter struct {
	w   *seqWriter
	gd  []uint32 // grain directory: sector of each grain table, 0 for none
	gt  []uint32 // the grain table being filled: sector of each grain marker
	cur int64    // its index in gd, -1 when none
	st  *store
	id  *contentID // nil when Options.ID is given
}

// grain writes one non-zero grain.
func (e *vmdkEmitter) grain(u *unit) error {
	if gti := u.idx / vmdkGTEs; gti != e.cur {
		if err := e.flushGT(); err != nil {
			return err
		}
		e.cur = gti
		clear(e.gt)
	}
	sector := e.w.pos() / 512
	if sector > vmdkMaxSectors {
		return fmt.Errorf("vmdk: grain %d would start at sector %d, beyond what grain tables can address", u.idx, sector)
	}
	e.gt[u.idx%vmdkGTEs] = uint32(sector)
	var m [vmdkGrainMarkerSize]byte
	binary.LittleEndian.PutUint64(m[0:], uint64(u.idx*vmdkGrainSectors))
	binary.LittleEndian.PutUint32(m[8:], uint32(len(u.enc)))
	e.w.write(m[:])
	e.w.write(u.enc)
	e.w.align(512)
	if e.id != nil {
		e.id.add(u.digests)
	}
	e.st.releaseBelow((u.idx + 1) * vmdkGrainSectors * 512)
	return e.w.err
}

// flushGT writes the grain table being filled, after its grains.
func (e *vmdkEmitter) flushGT() error {
	if e.cur < 0 {
		return nil
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &vmdkMarker{NumSectors: vmdkGTEs * 4 / 512, Type: vmdkMarkerGT})
	e.w.write(b.Bytes())
	e.gd[e.cur] = uint32(e.w.pos() / 512)
	for _, s := range e.gt {
		e.w.write(binary.LittleEndian.AppendUint32(nil, s))
	}
	e.cur = -1
	return e.w.err
}
