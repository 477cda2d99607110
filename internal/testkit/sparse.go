package testkit

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync"
)

// A sparse image is the input format of the ReadTree fuzz targets (pkg/fs/ext4, pkg/fs/fat):
//
//	u32 image size in bytes (at most MaxSparseImage)
//	records: u32 offset, u16 length, length bytes of data
//
// all little-endian. Bytes no record gives are zero; a record past the
// size is cut at it; later records overwrite earlier ones; a truncated
// last record keeps what it has.
const (
	MaxSparseImage = 64 << 20
	sparsePage     = 4096
)

// SparseImage is a decoded sparse image: pages of data, zeros elsewhere.
type SparseImage struct {
	Size  int64
	pages map[int64][]byte // page index -> sparsePage bytes
}

// DecodeSparse decodes a sparse image; false if it is malformed or too large.
func DecodeSparse(data []byte) (*SparseImage, bool) {
	if len(data) < 4 {
		return nil, false
	}
	m := &SparseImage{Size: int64(binary.LittleEndian.Uint32(data)), pages: map[int64][]byte{}}
	if m.Size > MaxSparseImage {
		return nil, false
	}
	for p := data[4:]; len(p) >= 6; {
		off, n := int64(binary.LittleEndian.Uint32(p)), int(binary.LittleEndian.Uint16(p[4:]))
		p = p[6:]
		chunk := p[:min(n, len(p))]
		p = p[len(chunk):]
		for len(chunk) > 0 && off < m.Size {
			pg := m.pages[off/sparsePage]
			if pg == nil {
				pg = make([]byte, sparsePage)
				m.pages[off/sparsePage] = pg
			}
			k := copy(pg[off%sparsePage:], chunk[:min(int64(len(chunk)), m.Size-off)])
			chunk, off = chunk[k:], off+int64(k)
		}
	}
	return m, true
}

// ReadAt reads from the pages, zeros where there are none.
func (m *SparseImage) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= m.Size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), m.Size-off))
	for i := 0; i < n; {
		o := off + int64(i)
		k := min(n-i, int(sparsePage-o%sparsePage))
		if pg := m.pages[o/sparsePage]; pg != nil {
			copy(b[i:i+k], pg[o%sparsePage:])
		} else {
			clear(b[i : i+k])
		}
		i += k
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// EncodeSparse encodes the bytes of img that lie in the ranges given
// (and are not zero) as a sparse image.
func EncodeSparse(img []byte, ranges [][2]int64) []byte {
	keep := make([]bool, len(img))
	for _, r := range ranges {
		for i := max(r[0], 0); i < min(r[1], int64(len(img))); i++ {
			keep[i] = img[i] != 0
		}
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(img)))
	for i := 0; i < len(img); {
		if !keep[i] {
			i++
			continue
		}
		// A run of kept bytes, bridging gaps of fewer than 8 zeros.
		j, last := i, i
		for j < len(img) && j-last < 8 && j-i < 0xFFFF {
			if keep[j] {
				last = j
			}
			j++
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(i))
		out = binary.LittleEndian.AppendUint16(out, uint16(last+1-i))
		out = append(out, img[i:last+1]...)
		i = last + 1
	}
	return out
}

// Recorder is an image in memory that records the ranges read.
type Recorder struct {
	Img    []byte
	mu     sync.Mutex
	ranges [][2]int64
}

// Ranges returns the ranges read so far.
func (r *Recorder) Ranges() [][2]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]int64(nil), r.ranges...)
}

func (r *Recorder) ReadAt(b []byte, off int64) (int, error) {
	r.mu.Lock()
	r.ranges = append(r.ranges, [2]int64{off, off + int64(len(b))})
	r.mu.Unlock()
	return bytes.NewReader(r.Img).ReadAt(b, off)
}
