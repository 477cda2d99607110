package xz

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// LZMA2 is a sequence of chunks, each LZMA-compressed (at most 2 MiB out,
// 64 KiB in) or stored (at most 64 KiB), each saying whether it resets the
// dictionary, the LZMA state or its properties; a zero byte ends it.

var (
	errLZMA2Short = errors.New("its LZMA2 data ends before its end marker")
	errLZMA2Long  = errors.New("its LZMA2 data ends before its compressed size")
	errTooMuch    = errors.New("it decodes to more bytes than its index gives")
	errTooLittle  = errors.New("it decodes to fewer bytes than its index gives")
	errChunkEnd   = errors.New("an LZMA2 chunk does not end where its header says")
)

type lzma2Dec struct {
	lzmaDec
	needDictReset, needProps bool
}

var lzma2Pool = sync.Pool{New: func() any { return new(lzma2Dec) }}

func newLZMA2Dec(dict []byte, dictSize int64) *lzma2Dec {
	d := lzma2Pool.Get().(*lzma2Dec)
	d.dict, d.pos, d.dictStart, d.dictSize, d.pending = dict, 0, 0, int(dictSize), 0
	d.needDictReset, d.needProps = true, true
	return d
}

func (d *lzma2Dec) free() {
	d.dict = nil
	d.rc.in = nil
	lzma2Pool.Put(d)
}

type chunk struct {
	end, raw         bool
	unpacked, packed int
}

// chunkHeaderLen is the size of the chunk header that starts with c.
func chunkHeaderLen(c byte) int {
	switch {
	case c == 0:
		return 1
	case c < 0x80:
		return 3
	case c < 0xc0:
		return 5
	}
	return 6
}

// start reads a chunk header and applies its resets.
func (d *lzma2Dec) start(h []byte) (chunk, error) {
	c := h[0]
	if c == 0 {
		return chunk{end: true}, nil
	}
	if c >= 0xe0 || c == 1 {
		d.needProps, d.needDictReset = true, false
		d.dictStart = d.pos
	} else if d.needDictReset {
		return chunk{}, errors.New("its LZMA2 data does not start with a dictionary reset")
	}
	if c < 0x80 {
		if c > 2 {
			return chunk{}, fmt.Errorf("bad LZMA2 control byte 0x%02x", c)
		}
		return chunk{raw: true, unpacked: int(binary.BigEndian.Uint16(h[1:])) + 1}, nil
	}
	ch := chunk{
		unpacked: int(c&0x1f)<<16 + int(binary.BigEndian.Uint16(h[1:])) + 1,
		packed:   int(binary.BigEndian.Uint16(h[3:])) + 1,
	}
	switch {
	case c >= 0xc0:
		if err := d.setProps(h[5]); err != nil {
			return chunk{}, err
		}
		d.needProps = false
		d.reset(d.lc, d.lp)
	case d.needProps:
		return chunk{}, errors.New("an LZMA2 chunk lacks the properties it needs")
	case c >= 0xa0:
		d.reset(d.lc, d.lp)
	}
	return ch, nil
}

// lzma decodes an LZMA chunk whose packed bytes are in[:packed], up to
// d.pos+n; in has rcSlack more bytes.
func (d *lzma2Dec) lzma(in []byte, packed, n int) error {
	if err := d.rc.init(in, packed); err != nil {
		return err
	}
	if err := d.decode(d.pos + n); err != nil {
		return err
	}
	if d.pending != 0 || !d.rc.finished() {
		return errChunkEnd
	}
	return nil
}

// decodeLZMA2 decodes the LZMA2 data in, which must end exactly with its
// end marker, into out, which it must fill exactly. It gives up with
// ErrClosed between chunks once stop is set.
//
// Bytes of in's capacity past its length are read (not written) by the
// range decoder; with less than rcSlack of them, in is copied.
func decodeLZMA2(out, in []byte, dictSize int64, stop *atomic.Bool) error {
	if cap(in)-len(in) < rcSlack {
		in = append(make([]byte, 0, len(in)+rcSlack), in...)
	}
	d := newLZMA2Dec(out, dictSize)
	defer d.free()
	p := 0
	for {
		if stop.Load() {
			return ErrClosed
		}
		if p >= len(in) {
			return errLZMA2Short
		}
		hl := chunkHeaderLen(in[p])
		if hl > len(in)-p {
			return errLZMA2Short
		}
		ch, err := d.start(in[p : p+hl])
		if err != nil {
			return err
		}
		p += hl
		switch {
		case ch.end:
			if d.pos != len(out) {
				return errTooLittle
			}
			if p != len(in) {
				return errLZMA2Long
			}
			return nil
		case ch.unpacked > len(out)-d.pos:
			return errTooMuch
		case ch.raw:
			if ch.unpacked > len(in)-p {
				return errLZMA2Short
			}
			d.pos += copy(out[d.pos:], in[p:p+ch.unpacked])
			p += ch.unpacked
		default:
			if ch.packed > len(in)-p {
				return errLZMA2Short
			}
			if err := d.lzma(in[p:len(in)+rcSlack], ch.packed, ch.unpacked); err != nil {
				return err
			}
			p += ch.packed
		}
	}
}

// lzma2Reader decodes LZMA2 streaming, into a window that slides.
type lzma2Reader struct {
	d    *lzma2Dec
	src  io.Reader
	in   []byte // the packed bytes of the current LZMA chunk
	left int    // what the current chunk has yet to produce
	raw  bool
	r    int // what has been read of d.dict
	keep int // how much of the window a slide keeps
	err  error
	hdr  [6]byte
}

// newLZMA2Reader decodes LZMA2 data streaming, up to its end marker. size
// is what it should decode to: the window is no larger than needed.
func newLZMA2Reader(src io.Reader, dictSize, size int64) (io.Reader, error) {
	keep := min(dictSize, size)
	n := keep + min(max(keep/2, 256<<10), 8<<20)
	if size < n {
		n = size + 1
	}
	d := &lzma2Dec{}
	d.dict, d.dictSize = make([]byte, n), int(dictSize)
	d.needDictReset, d.needProps = true, true
	return &lzma2Reader{d: d, src: src, keep: int(keep), in: make([]byte, 64<<10+rcSlack)}, nil
}

func (lr *lzma2Reader) Read(p []byte) (int, error) {
	d := lr.d
	for lr.r == d.pos {
		if lr.err != nil {
			return 0, lr.err
		}
		if err := lr.step(); err != nil {
			lr.err = err
		}
	}
	n := copy(p, d.dict[lr.r:d.pos])
	lr.r += n
	return n, nil
}

// step decodes some more, once everything decoded has been read.
func (lr *lzma2Reader) step() error {
	d := lr.d
	if lr.left == 0 {
		if _, err := io.ReadFull(lr.src, lr.hdr[:1]); err != nil {
			return noEOF(err)
		}
		hl := chunkHeaderLen(lr.hdr[0])
		if _, err := io.ReadFull(lr.src, lr.hdr[1:hl]); err != nil {
			return noEOF(err)
		}
		ch, err := d.start(lr.hdr[:hl])
		if err != nil {
			return err
		}
		if ch.end {
			return io.EOF
		}
		lr.left, lr.raw = ch.unpacked, ch.raw
		if !ch.raw {
			if _, err := io.ReadFull(lr.src, lr.in[:ch.packed]); err != nil {
				return noEOF(err)
			}
			if err := d.rc.init(lr.in, ch.packed); err != nil {
				return err
			}
		}
	}
	if d.pos == len(d.dict) {
		// Slide: keep the last keep bytes, which matches may reach.
		k := min(lr.keep, d.pos, len(d.dict)-1)
		shift := d.pos - k
		copy(d.dict, d.dict[shift:d.pos])
		d.pos -= shift
		d.dictStart -= shift
		lr.r -= shift
	}
	limit := min(len(d.dict), d.pos+lr.left)
	start := d.pos
	if lr.raw {
		if _, err := io.ReadFull(lr.src, d.dict[d.pos:limit]); err != nil {
			return noEOF(err)
		}
		d.pos = limit
	} else if err := d.decode(limit); err != nil {
		return err
	}
	lr.left -= d.pos - start
	if lr.left == 0 && !lr.raw && (d.pending != 0 || !d.rc.finished()) {
		return errChunkEnd
	}
	return nil
}
