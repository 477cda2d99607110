package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// vhdImage reads a fixed or dynamic VHD. The virtual size is the footer's
// CurrentSize, as Hyper-V, Azure and VirtualBox take it (qemu-img writes
// CurrentSize equal to its CHS size, so both readings agree on its images).
type vhdImage struct {
	f     *os.File
	size  int64
	fixed bool

	// dynamic only
	blockSize  int64
	bitmapSize int64
	bat        []uint32

	mu      sync.Mutex
	bmBlock int64 // block whose bitmap is in bm, -1 when none
	bm      []byte
}

func openVHD(f *os.File, fsize int64) (*vhdImage, error) {
	if fsize < 512 {
		return nil, fmt.Errorf("vhd: file of %d bytes has no footer", fsize)
	}
	var raw [512]byte
	if err := preadFull(f, raw[:], fsize/512*512-512); err != nil {
		return nil, fmt.Errorf("vhd footer: %w", err)
	}
	if string(raw[:8]) != vhdCookie {
		return nil, fmt.Errorf("vhd: no footer at the end of the file (truncated?)")
	}
	var ft vhdFooter
	binary.Read(bytes.NewReader(raw[:]), binary.BigEndian, &ft)
	sum := ft.Checksum
	binary.BigEndian.PutUint32(raw[64:], 0)
	if vhdChecksum(raw[:]) != sum {
		return nil, fmt.Errorf("vhd: footer checksum %08x, computed %08x", sum, vhdChecksum(raw[:]))
	}
	if ft.CurrentSize%512 != 0 || ft.CurrentSize > vhdMaxSize {
		return nil, fmt.Errorf("vhd: virtual size %d is not supported", ft.CurrentSize)
	}
	v := &vhdImage{f: f, size: int64(ft.CurrentSize), bmBlock: -1}
	switch ft.DiskType {
	case vhdTypeFixed:
		if fsize/512*512-512 < v.size {
			return nil, fmt.Errorf("vhd: fixed disk of %d bytes in a file of %d", v.size, fsize)
		}
		v.fixed = true
		return v, nil
	case vhdTypeDynamic:
	case vhdTypeDiff:
		return nil, fmt.Errorf("vhd: differencing disks are not supported")
	default:
		return nil, fmt.Errorf("vhd: disk type %d is not supported", ft.DiskType)
	}

	var hraw [1024]byte
	if fsize < 1024 || ft.DataOffset > uint64(fsize)-1024 {
		return nil, fmt.Errorf("vhd footer field Data Offset: the dynamic header at %d is past the end of the %d-byte file", ft.DataOffset, fsize)
	}
	if err := preadFull(f, hraw[:], int64(ft.DataOffset)); err != nil {
		return nil, fmt.Errorf("vhd dynamic header: %w", err)
	}
	var dh vhdDynamicHeader
	binary.Read(bytes.NewReader(hraw[:]), binary.BigEndian, &dh)
	binary.BigEndian.PutUint32(hraw[36:], 0)
	if string(dh.Cookie[:]) != vhdDynamicCookie {
		return nil, fmt.Errorf("vhd: no dynamic disk header at %d", ft.DataOffset)
	}
	if vhdChecksum(hraw[:]) != dh.Checksum {
		return nil, fmt.Errorf("vhd: dynamic header checksum %08x, computed %08x", dh.Checksum, vhdChecksum(hraw[:]))
	}
	bs := int64(dh.BlockSize)
	if bs < 512 || bs&(bs-1) != 0 || bs > 1<<30 {
		return nil, fmt.Errorf("vhd: block size %d is not supported", bs)
	}
	if int64(dh.MaxTableEntries)*bs < v.size {
		return nil, fmt.Errorf("vhd: %d blocks of %d bytes do not cover %d bytes", dh.MaxTableEntries, bs, v.size)
	}
	n := (v.size + bs - 1) / bs
	if dh.TableOffset > 1<<62 {
		return nil, fmt.Errorf("vhd dynamic header field Table Offset %d is out of range", dh.TableOffset)
	}
	if err := checkTable("vhd dynamic header field Table Offset (block allocation table)", int64(dh.TableOffset), n, 4, fsize); err != nil {
		return nil, err
	}
	v.bat = make([]uint32, n)
	if err := readTable(f, int64(dh.TableOffset), 4, len(v.bat), func(i int, b []byte) { v.bat[i] = binary.BigEndian.Uint32(b) }); err != nil {
		return nil, fmt.Errorf("vhd block allocation table: %w", err)
	}
	v.blockSize = bs
	v.bitmapSize = (bs/512/8 + 511) / 512 * 512
	return v, nil
}

func (v *vhdImage) Size() int64    { return v.size }
func (v *vhdImage) Format() string { return "vhd" }
func (v *vhdImage) Close() error   { return v.f.Close() }

// Extents lists the blocks the BAT allocates (a dynamic disk) or the
// file's data extents (a fixed one).
func (v *vhdImage) Extents(ctx context.Context, fn func(Extent) error) error {
	if v.fixed {
		return fileExtents(ctx, v.f, v.size, fn)
	}
	m := merger{fn: fn}
	for b, e := range v.bat {
		if b%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if e == vhdUnallocated {
			continue
		}
		off := int64(b) * v.blockSize
		if err := m.add(Extent{off, min(v.blockSize, v.size-off)}); err != nil {
			return err
		}
	}
	return m.flush()
}

func (v *vhdImage) ReadAt(p []byte, off int64) (int, error) {
	if v.fixed {
		return readSpans(p, off, v.size, 1<<62, func(piece []byte, o int64) error {
			return preadFull(v.f, piece, o)
		})
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return readSpans(p, off, v.size, v.blockSize, v.readPiece)
}

// readPiece reads a piece of one block of a dynamic disk. Sectors whose
// bit is clear in the block's bitmap read as zeros (the bitmap is big
// endian: bit 7 of byte 0 is the block's first sector).
func (v *vhdImage) readPiece(p []byte, off int64) error {
	b, in := off/v.blockSize, off%v.blockSize
	if v.bat[b] == vhdUnallocated {
		clear(p)
		return nil
	}
	base := int64(v.bat[b]) * 512
	if v.bmBlock != b {
		if v.bm == nil {
			v.bm = make([]byte, v.bitmapSize)
		}
		v.bmBlock = -1
		if err := preadFull(v.f, v.bm, base); err != nil {
			return fmt.Errorf("vhd block %d bitmap: %w", b, err)
		}
		v.bmBlock = b
	}
	if err := preadFull(v.f, p, base+v.bitmapSize+in); err != nil {
		return fmt.Errorf("vhd block %d: %w", b, err)
	}
	for o := int64(0); o < int64(len(p)); {
		s := (in + o) / 512
		end := min(int64(len(p)), (s+1)*512-in)
		if v.bm[s/8]&(0x80>>(s%8)) == 0 {
			clear(p[o:end])
		}
		o = end
	}
	return nil
}
