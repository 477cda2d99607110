package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// vmdkImage reads a VMDK whose file is a hosted sparse extent: the
// streamOptimized VMDKs kiln and qemu write (compressed grains with
// markers; the grain directory found through the footer when the header
// says it is at the end) and monolithicSparse ones (plain grains).
type vmdkImage struct {
	f          *os.File
	size       int64
	grain      int64 // bytes
	gtes       int64
	gd         []uint32
	compressed bool
	markers    bool
	zeroGrain  bool // GTE 1 means a grain of zeros

	mu    sync.Mutex
	gts   tableCache[uint32]
	gOff  int64 // sector of the grain in gData, -1 when none
	gData []byte
	gLen  int // bytes gData decompressed to
	gBuf  []byte
	fsize int64
}

func openVMDK(f *os.File, fsize int64) (*vmdkImage, error) {
	var raw [512]byte
	if err := preadFull(f, raw[:], 0); err != nil {
		return nil, fmt.Errorf("vmdk header: %w", err)
	}
	var h vmdkHeader
	binary.Read(bytes.NewReader(raw[:]), binary.LittleEndian, &h)
	if h.GDOffset == vmdkGDAtEnd {
		// A streamed extent: the footer, before the end-of-stream marker,
		// has the real header (checked as qemu checks it).
		if fsize < 1536 {
			return nil, fmt.Errorf("vmdk: the grain directory is at the end but the file is %d bytes", fsize)
		}
		var tail [1536]byte
		if err := preadFull(f, tail[:], fsize/512*512-1536); err != nil {
			return nil, fmt.Errorf("vmdk footer: %w", err)
		}
		var fm, eos vmdkMarker
		binary.Read(bytes.NewReader(tail[:512]), binary.LittleEndian, &fm)
		binary.Read(bytes.NewReader(tail[1024:]), binary.LittleEndian, &eos)
		if string(tail[512:516]) != vmdkMagic || fm.Size != 0 || fm.Type != vmdkMarkerFooter ||
			eos.NumSectors != 0 || eos.Size != 0 || eos.Type != vmdkMarkerEOS {
			return nil, fmt.Errorf("vmdk: invalid footer")
		}
		binary.Read(bytes.NewReader(tail[512:1024]), binary.LittleEndian, &h)
	}
	if h.Version > 3 {
		return nil, fmt.Errorf("vmdk version %d is not supported", h.Version)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > 512 || h.GrainSize == 0 || h.GrainSize > vmdkMaxReadGrainSectors {
		return nil, fmt.Errorf("vmdk header fields numGTEsPerGT %d, grainSize %d: grain tables of 1 to 512 entries of grains of 1 to %d sectors are supported", h.NumGTEsPerGT, h.GrainSize, vmdkMaxReadGrainSectors)
	}
	if h.Capacity == 0 || h.Capacity > vmdkMaxSectors {
		return nil, fmt.Errorf("vmdk header field capacity: %d sectors is not supported", h.Capacity)
	}
	v := &vmdkImage{
		f:          f,
		size:       int64(h.Capacity) * 512,
		grain:      int64(h.GrainSize) * 512,
		gtes:       int64(h.NumGTEsPerGT),
		compressed: h.CompressAlgorithm == vmdkCompressionDeflate,
		markers:    h.Flags&vmdkFlagMarkers != 0,
		zeroGrain:  h.Flags&vmdkFlagZeroGrain != 0,
		gOff:       -1,
		fsize:      fsize,
	}
	if h.CompressAlgorithm > vmdkCompressionDeflate {
		return nil, fmt.Errorf("vmdk: compression algorithm %d is not supported", h.CompressAlgorithm)
	}
	n := (int64(h.Capacity) + int64(h.NumGTEsPerGT)*int64(h.GrainSize) - 1) / (int64(h.NumGTEsPerGT) * int64(h.GrainSize))
	if h.GDOffset > 1<<53 {
		return nil, fmt.Errorf("vmdk header field gdOffset %d is out of range", h.GDOffset)
	}
	if err := checkTable("vmdk header field gdOffset (grain directory)", int64(h.GDOffset)*512, n, 4, fsize); err != nil {
		return nil, err
	}
	v.gd = make([]uint32, n)
	if err := readTable(f, int64(h.GDOffset)*512, 4, len(v.gd), func(i int, b []byte) { v.gd[i] = binary.LittleEndian.Uint32(b) }); err != nil {
		return nil, fmt.Errorf("vmdk grain directory: %w", err)
	}
	offs := make([]uint64, len(v.gd))
	for i, e := range v.gd {
		offs[i] = uint64(e)
	}
	if err := checkUnshared("vmdk grain directory", offs); err != nil {
		return nil, err
	}
	v.gts.init(16)
	return v, nil
}

func (v *vmdkImage) Size() int64    { return v.size }
func (v *vmdkImage) Format() string { return "vmdk" }
func (v *vmdkImage) Close() error   { return v.f.Close() }

// vmdkMaxReadGrainSectors bounds the grain size the reader accepts, 16
// MiB (VMware and qemu write 64 KiB grains): a compressed grain is
// decompressed whole, and its buffers must stay far under 256 MiB.
const vmdkMaxReadGrainSectors = 1 << 15

// Extents lists the grains the grain tables map (a zero grain, GTE 1
// with the zero-grain flag, is not allocated).
func (v *vmdkImage) Extents(ctx context.Context, fn func(Extent) error) error {
	m := merger{fn: fn}
	for i, gt := range v.gd {
		if err := ctx.Err(); err != nil {
			return err
		}
		if gt == 0 {
			continue
		}
		v.mu.Lock()
		t, err := v.loadGT(gt)
		v.mu.Unlock()
		if err != nil {
			return err
		}
		for j, gte := range t {
			off := (int64(i)*v.gtes + int64(j)) * v.grain
			if off >= v.size {
				break
			}
			if gte == 0 || (gte == 1 && v.zeroGrain) {
				continue
			}
			if err := m.add(Extent{off, min(v.grain, v.size-off)}); err != nil {
				return err
			}
		}
	}
	return m.flush()
}

func (v *vmdkImage) ReadAt(p []byte, off int64) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return readSpans(p, off, v.size, v.grain, v.readPiece)
}

// readPiece reads a piece of one grain.
func (v *vmdkImage) readPiece(p []byte, off int64) error {
	g, in := off/v.grain, off%v.grain
	gt := v.gd[g/v.gtes]
	if gt == 0 {
		clear(p)
		return nil
	}
	t, err := v.loadGT(gt)
	if err != nil {
		return err
	}
	gte := t[g%v.gtes]
	if gte == 0 || (gte == 1 && v.zeroGrain) {
		clear(p)
		return nil
	}
	if !v.compressed {
		if err := preadFull(v.f, p, int64(gte)*512+in); err != nil {
			return fmt.Errorf("vmdk grain %d: %w", g, err)
		}
		return nil
	}
	if err := v.loadGrain(int64(gte)); err != nil {
		return fmt.Errorf("vmdk grain %d: %w", g, err)
	}
	if in+int64(len(p)) > int64(v.gLen) {
		return fmt.Errorf("vmdk grain %d decompresses to %d bytes, %d needed", g, v.gLen, in+int64(len(p)))
	}
	copy(p, v.gData[in:])
	return nil
}

func (v *vmdkImage) loadGT(sector uint32) ([]uint32, error) {
	if t := v.gts.get(uint64(sector)); t != nil {
		return t, nil
	}
	raw := make([]byte, v.gtes*4)
	if err := preadFull(v.f, raw, int64(sector)*512); err != nil {
		return nil, fmt.Errorf("vmdk grain table: %w", err)
	}
	t := make([]uint32, v.gtes)
	for i := range t {
		t[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	v.gts.put(uint64(sector), t)
	return t, nil
}

// loadGrain decompresses the grain at sector into gData.
func (v *vmdkImage) loadGrain(sector int64) error {
	if sector == v.gOff {
		return nil
	}
	off := sector * 512
	// Without a marker the compressed size is unknown: like qemu, take
	// up to two grains' worth and let the stream end where it ends.
	size := 2 * v.grain
	if v.markers {
		var m [vmdkGrainMarkerSize]byte
		if err := preadFull(v.f, m[:], off); err != nil {
			return err
		}
		size = int64(binary.LittleEndian.Uint32(m[8:]))
		if size == 0 || size > 2*v.grain {
			return fmt.Errorf("grain marker at %d: compressed size %d is invalid for %d-byte grains", off, size, v.grain)
		}
		off += vmdkGrainMarkerSize
	}
	size = min(size, v.fsize-off)
	if size <= 0 {
		return fmt.Errorf("compressed data at %d is past the end of the file", off)
	}
	if int64(cap(v.gBuf)) < size {
		v.gBuf = make([]byte, size)
	}
	buf := v.gBuf[:size]
	if err := preadFull(v.f, buf, off); err != nil {
		return err
	}
	if v.gData == nil {
		v.gData = make([]byte, v.grain)
	}
	v.gOff = -1
	n, err := inflateZlib(v.gData, buf)
	if err != nil {
		return err
	}
	v.gOff, v.gLen = sector, n
	return nil
}
