package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/kiln-build/kiln/pkg/repro"
)

// vhdFooter is the hard disk footer (Microsoft Virtual Hard Disk Image
// Format Specification 1.0, "Hard Disk Footer Format"), big-endian, 512
// bytes: the last sector of every VHD, and also the first of a dynamic one.
type vhdFooter struct {
	Cookie             [8]byte // "conectix"
	Features           uint32  // 2: the reserved bit, always set
	FileFormatVersion  uint32  // 0x00010000
	DataOffset         uint64  // dynamic: offset of the dynamic header; fixed: all ones
	TimeStamp          uint32  // seconds since 2000-01-01 00:00:00 UTC
	CreatorApplication [4]byte // "kiln"
	CreatorVersion     uint32
	CreatorHostOS      [4]byte // "Wi2k"
	OriginalSize       uint64  // virtual size in bytes
	CurrentSize        uint64  // virtual size in bytes
	Cylinders          uint16
	Heads              uint8
	SectorsPerTrack    uint8
	DiskType           uint32 // 2 fixed, 3 dynamic, 4 differencing
	Checksum           uint32 // one's complement of the byte sum, this field zero
	UniqueID           [16]byte
	SavedState         uint8
	Reserved           [427]uint8
}

// vhdDynamicHeader follows the footer copy in a dynamic VHD ("Dynamic Disk
// Header Format"), big-endian, 1024 bytes.
type vhdDynamicHeader struct {
	Cookie            [8]byte // "cxsparse"
	DataOffset        uint64  // all ones (qemu notes that MS tools want all 64 bits set)
	TableOffset       uint64  // byte offset of the BAT
	HeaderVersion     uint32  // 0x00010000
	MaxTableEntries   uint32  // BAT entries: blocks in the disk
	BlockSize         uint32  // 2 MiB
	Checksum          uint32  // as the footer's, over these 1024 bytes
	ParentUniqueID    [16]byte
	ParentTimeStamp   uint32
	Reserved1         uint32
	ParentUnicodeName [512]byte
	ParentLocators    [8][24]byte
	Reserved2         [256]byte
}

const (
	vhdCookie        = "conectix"
	vhdDynamicCookie = "cxsparse"
	vhdTypeFixed     = 2
	vhdTypeDynamic   = 3
	vhdTypeDiff      = 4
	vhdBlockSize     = 2 << 20
	vhdBitmapSize    = 512 // a 2 MiB block's sector bitmap: 4096 bits
	vhdBATOffset     = 3 * 512
	vhdUnallocated   = 0xffffffff
	vhdEpoch         = 946684800 // 2000-01-01 00:00:00 UTC in Unix time
	// qemu and Hyper-V stop at 2040 GiB (block/vpc.c VHD_MAX_SECTORS).
	vhdMaxSize = 0xff000000 * 512

	// The CHS geometry VHD readers that size disks by CHS (qemu for
	// unknown creator applications) take to mean "use CurrentSize".
	vhdMaxCylinders = 65535
	vhdMaxHeads     = 16
	vhdMaxSPT       = 255
)

func init() {
	if n := binary.Size(vhdFooter{}); n != 512 {
		panic(fmt.Sprintf("BUG: vhdFooter is %d bytes, want 512", n))
	}
	if n := binary.Size(vhdDynamicHeader{}); n != 1024 {
		panic(fmt.Sprintf("BUG: vhdDynamicHeader is %d bytes, want 1024", n))
	}
}

// vhdChecksum is the one's complement of the sum of all bytes.
func vhdChecksum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return ^s
}

// vhdGeometry is the CHS geometry the VHD specification's algorithm
// ("CHS Calculation") gives for a disk of the given sectors.
func vhdGeometry(sectors int64) (c uint16, h, s uint8) {
	sectors = min(sectors, vhdMaxCylinders*16*255)
	var spt, heads, cth int64
	if sectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = sectors / spt
	} else {
		spt = 17
		cth = sectors / spt
		heads = max((cth+1023)/1024, 4)
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = sectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = sectors / spt
		}
	}
	return uint16(cth / heads), uint8(heads), uint8(spt)
}

// vhdParams is what both subformats stamp into the footer.
type vhdParams struct {
	size  int64
	epoch int64      // Unix seconds
	id    repro.UUID // zero: derive from the content
}

// footer builds the footer of a VHD of the given type.
//
// Geometry: the specification's CHS when it covers the disk exactly; else
// the maximum 65535/16/255, which qemu (and other readers that size a disk
// by its geometry when they do not know the creator application) take to
// mean that CurrentSize is the size: the same choice qemu-img makes with
// force_size. Hyper-V, Azure and VirtualBox use CurrentSize anyway.
func (v *vhdParams) footer(diskType uint32, id repro.UUID) vhdFooter {
	f := vhdFooter{
		Cookie:             [8]byte([]byte(vhdCookie)),
		Features:           2,
		FileFormatVersion:  0x00010000,
		DataOffset:         ^uint64(0),
		TimeStamp:          vhdTimeStamp(v.epoch),
		CreatorApplication: [4]byte([]byte("kiln")),
		CreatorVersion:     0x00010000,
		CreatorHostOS:      [4]byte([]byte("Wi2k")),
		OriginalSize:       uint64(v.size),
		CurrentSize:        uint64(v.size),
		DiskType:           diskType,
		UniqueID:           id,
	}
	c, h, s := vhdGeometry(v.size / 512)
	if int64(c)*int64(h)*int64(s)*512 != v.size {
		c, h, s = vhdMaxCylinders, vhdMaxHeads, vhdMaxSPT
	}
	f.Cylinders, f.Heads, f.SectorsPerTrack = c, h, s
	if diskType == vhdTypeDynamic {
		f.DataOffset = 512
	}
	f.Checksum = vhdChecksum(encodeBE(&f))
	return f
}

// vhdTimeStamp converts Unix seconds to the VHD epoch, clamped to what
// the field holds.
func vhdTimeStamp(epoch int64) uint32 {
	return uint32(min(max(epoch-vhdEpoch, 0), 1<<32-1))
}

func encodeBE(v any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.BigEndian, v); err != nil {
		panic(fmt.Sprintf("BUG: encoding %T: %v", v, err))
	}
	return b.Bytes()
}

// vhdDynamicWriter emits a dynamic VHD:
//
//	0        footer copy
//	512      dynamic disk header
//	1536     BAT (one entry per 2 MiB block, padded to a sector with
//	         unused entries)
//	then     for each block with data, in disk order: its sector bitmap
//	         (all ones: every sector present) and its 2 MiB of data
//	end      footer
//
// Blocks that are all zero are not allocated (BAT entry ffffffff).
type vhdDynamicWriter struct{ vhdParams }

func (v *vhdDynamicWriter) emit(ctx context.Context, st *store, out *os.File) error {
	blocks := (v.size + vhdBlockSize - 1) / vhdBlockSize
	bat := make([]uint32, blocks)
	for i := range bat {
		bat[i] = vhdUnallocated
	}
	batBytes := (blocks*4 + 511) / 512 * 512
	w := newSeqWriter(out, vhdBATOffset+batBytes)
	var cid *contentID
	if v.id.IsZero() {
		cid = newContentID(v.size)
	}
	bitmap := bytes.Repeat([]byte{0xff}, vhdBitmapSize)
	p := &pipeline{
		ctx:      ctx,
		src:      st,
		size:     v.size,
		unitSize: vhdBlockSize,
		units: func(yield func(int64) bool) error {
			st.touchedUnits(vhdBlockSize, yield)
			return nil
		},
		digest: cid != nil,
	}
	err := p.run(func(u *unit) error {
		bat[u.idx] = uint32(w.pos() / 512)
		w.write(bitmap)
		w.write(u.data)
		if cid != nil {
			cid.add(u.digests)
		}
		st.releaseBelow((u.idx + 1) * vhdBlockSize)
		return w.err
	})
	if err != nil {
		return err
	}
	st.releaseBelow(v.size + vhdBlockSize)
	id := v.id
	if cid != nil {
		id = cid.sum()
	}
	footer := encodeBE(v.footer(vhdTypeDynamic, id))
	w.write(footer)
	if err := w.flush(); err != nil {
		return err
	}
	dh := vhdDynamicHeader{
		Cookie:          [8]byte([]byte(vhdDynamicCookie)),
		DataOffset:      ^uint64(0),
		TableOffset:     vhdBATOffset,
		HeaderVersion:   0x00010000,
		MaxTableEntries: uint32(blocks),
		BlockSize:       vhdBlockSize,
	}
	dh.Checksum = vhdChecksum(encodeBE(&dh))
	head := append(footer, encodeBE(&dh)...)
	for _, e := range bat {
		head = binary.BigEndian.AppendUint32(head, e)
	}
	// The rest of the BAT's last sector is unused entries, as qemu and
	// Hyper-V leave it.
	head = append(head, bytes.Repeat([]byte{0xff}, int(vhdBATOffset+batBytes-int64(len(head))))...)
	_, err = out.WriteAt(head, 0)
	return err
}

// vhdFixedOut is the Output of a fixed VHD: the raw disk followed by the
// footer. Writes go straight to a sparse temporary file (holes stay
// holes), and Commit appends the footer.
type vhdFixedOut struct {
	*raw
	vhdParams
	mu   sync.Mutex
	done bool
}

func createVHDFixed(path string, p vhdParams) (*vhdFixedOut, error) {
	r, err := createRaw(path, p.size)
	if err != nil {
		return nil, err
	}
	return &vhdFixedOut{raw: r, vhdParams: p}, nil
}

func (v *vhdFixedOut) check(op string, n int, off int64) error {
	v.mu.Lock()
	done := v.done
	v.mu.Unlock()
	if done {
		return fmt.Errorf("%s %s at %d: %w", op, v.path, off, errFinished)
	}
	if off < 0 || off > v.size || int64(n) > v.size-off {
		return fmt.Errorf("%s of %d bytes at %d: outside the %d-byte disk", op, n, off, v.size)
	}
	return nil
}

func (v *vhdFixedOut) WriteAt(p []byte, off int64) (int, error) {
	if err := v.check("write", len(p), off); err != nil {
		return 0, err
	}
	return v.raw.WriteAt(p, off)
}

func (v *vhdFixedOut) ReadAt(p []byte, off int64) (int, error) {
	if v.finished() {
		return 0, fmt.Errorf("reading %s at %d: %w", v.path, off, errFinished)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	if int64(len(p)) > v.size-off {
		n, err := v.raw.ReadAt(p[:v.size-off], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return v.raw.ReadAt(p, off)
}

func (v *vhdFixedOut) finished() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.done
}

func (v *vhdFixedOut) Commit() error { return v.CommitContext(context.Background()) }

func (v *vhdFixedOut) CommitContext(ctx context.Context) error {
	v.mu.Lock()
	if v.done {
		v.mu.Unlock()
		return fmt.Errorf("committing %s: %w", v.path, errFinished)
	}
	v.done = true
	v.mu.Unlock()
	id := v.id
	if id.IsZero() {
		var err error
		if id, err = v.hashRaw(ctx); err != nil {
			v.raw.Abort()
			return fmt.Errorf("writing %s: %w", v.path, err)
		}
	}
	if _, err := v.f.WriteAt(encodeBE(v.footer(vhdTypeFixed, id)), v.size); err != nil {
		v.raw.Abort()
		return fmt.Errorf("writing %s: %w", v.path, err)
	}
	return v.raw.CommitContext(ctx)
}

func (v *vhdFixedOut) Abort() {
	v.mu.Lock()
	v.done = true
	v.mu.Unlock()
	v.raw.Abort()
}

// hashRaw derives the content ID from the temporary file, visiting only
// its data extents (SEEK_DATA/SEEK_HOLE): a hole is all zero chunks.
func (v *vhdFixedOut) hashRaw(ctx context.Context) (repro.UUID, error) {
	cid := newContentID(v.size)
	p := &pipeline{
		ctx:      ctx,
		src:      v.f,
		size:     v.size,
		unitSize: chunkSize,
		units:    func(yield func(int64) bool) error { return dataChunks(v.f, v.size, yield) },
		digest:   true,
	}
	if err := p.run(func(u *unit) error { cid.add(u.digests); return nil }); err != nil {
		return repro.UUID{}, err
	}
	return cid.sum(), nil
}

// Whence values of lseek(2) for sparse files.
const (
	seekData = 3
	seekHole = 4
)

// dataChunks lists, in order, the chunks of f's first size bytes that
// overlap a data extent. Where the system cannot tell (no SEEK_DATA), it
// lists every chunk.
func dataChunks(f *os.File, size int64, yield func(int64) bool) error {
	last := int64(-1)
	for off := int64(0); off < size; {
		start, err := f.Seek(off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) { // no data after off
				return nil
			}
			start = off // no SEEK_DATA here: treat the rest as data
		}
		if start >= size {
			return nil
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			end = size
		}
		end = min(end, size)
		for c := max(start/chunkSize, last+1); c*chunkSize < end; c++ {
			if !yield(c) {
				return nil
			}
			last = c
		}
		off = end
	}
	return nil
}
