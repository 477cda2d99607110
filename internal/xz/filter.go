package xz

import (
	"encoding/binary"
	"io"
)

// x86 undoes the x86 BCJ filter: it turns the absolute addresses the
// encoder wrote into CALL (E8) and JMP (E9) instructions back into
// relative ones. It follows xz-embedded's bcj_x86.
type x86 struct {
	pos      uint32 // the stream position of the next byte to filter
	prevMask uint32
}

var (
	x86Allowed = [8]bool{true, true, true, false, true, false, false, false}
	x86BitNum  = [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
)

func x86MSByte(b byte) bool { return b == 0 || b == 0xff }

// filter filters buf in place and returns how many bytes of it are done;
// the rest (at most four bytes) need the bytes that follow them, or, at
// the end of the data, stay as they are.
func (s *x86) filter(buf []byte) int {
	if len(buf) <= 4 {
		return 0
	}
	size := len(buf) - 4
	prevPos := -1
	prevMask := s.prevMask
	i := 0
	for ; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(x86BitNum[prevMask])]
				if !x86Allowed[prevMask] || x86MSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !x86MSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (s.pos + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := x86BitNum[prevMask] * 8
			if !x86MSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
	if d := i - prevPos; d > 3 {
		s.prevMask = 0
	} else {
		s.prevMask = prevMask << (d - 1)
	}
	s.pos += uint32(i)
	return i
}

// delta undoes the delta filter.
type delta struct {
	dist int
	hist [256]byte
	pos  byte
}

func (s *delta) filter(buf []byte) int {
	for i := range buf {
		b := buf[i] + s.hist[byte(int(s.pos)-s.dist)]
		buf[i] = b
		s.hist[s.pos] = b
		s.pos++
	}
	return len(buf)
}

type filterFunc func(buf []byte) int

func newFilter(ft filter) filterFunc {
	if ft.id == filterDelta {
		return (&delta{dist: ft.delta}).filter
	}
	return (&x86{pos: ft.start}).filter
}

// filterBuffer undoes a block's filters on its whole output.
func filterBuffer(filters []filter, buf []byte) {
	for i := len(filters) - 1; i >= 0; i-- {
		newFilter(filters[i])(buf)
	}
}

// filterReader undoes one filter on a stream.
type filterReader struct {
	r                io.Reader
	f                filterFunc
	buf              []byte
	start, done, end int // buf[start:done] is ready, buf[done:end] not yet filtered
	eof              bool
}

func newFilterReader(r io.Reader, f filterFunc) *filterReader {
	return &filterReader{r: r, f: f, buf: make([]byte, 64<<10)}
}

func (fr *filterReader) Read(p []byte) (int, error) {
	for fr.start == fr.done {
		if fr.eof {
			if fr.done < fr.end {
				fr.done = fr.end
				continue
			}
			return 0, io.EOF
		}
		n := copy(fr.buf, fr.buf[fr.done:fr.end])
		fr.start, fr.done, fr.end = 0, 0, n
		k, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += k
		if err == io.EOF {
			fr.eof = true
		} else if err != nil {
			return 0, err
		}
		fr.done = fr.f(fr.buf[:fr.end])
	}
	n := copy(p, fr.buf[fr.start:fr.done])
	fr.start += n
	return n, nil
}
