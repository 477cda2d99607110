package xz

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
)

// blockErr gives a block's decoding error its context; errors of this
// package pass as they are, anything else from the LZMA2 decoder means
// corrupt data.
func (b *block) err(err error) error {
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrClosed) || errors.Is(err, errRead) {
		return err
	}
	return corrupt("block at byte %d: %v", b.pos, err)
}

// errRead marks a read error of the underlying io.ReaderAt.
var errRead = errors.New("xz: reading")

// tail reads and checks what follows a block's data: its padding and its
// check, against sum.
func (f *file) tail(b *block, sum []byte) error {
	at := b.pos + b.headerSize + b.dataSize
	t, err := f.read(at, int(b.checkOffset()-at)+len(sum))
	if err != nil {
		return err
	}
	pad := len(t) - len(sum)
	for _, c := range t[:pad] {
		if c != 0 {
			return corrupt("block at byte %d: nonzero padding", b.pos)
		}
	}
	if !bytes.Equal(t[pad:], sum) {
		return corrupt("block at byte %d: its data fails its check", b.pos)
	}
	return nil
}

// decodeWhole decodes block b into out, which is exactly its uncompressed
// size, and checks it. in is scratch space for its compressed data. It
// stops early, with ErrClosed, once closed is set.
func (f *file) decodeWhole(b *block, out []byte, in []byte, closed *atomic.Bool) ([]byte, error) {
	total := int(b.checkOffset() + checkSize(b.check) - b.pos - b.headerSize) // data, padding and check
	if cap(in) < total+rcSlack {
		in = make([]byte, total, total+rcSlack)
	}
	in = in[:total]
	if err := f.readInto(b.pos+b.headerSize, in); err != nil {
		return in, err
	}
	if err := decodeLZMA2(out, in[:b.dataSize], b.dict, closed); err != nil {
		return in, b.err(err)
	}
	filterBuffer(b.filters, out)
	var sum []byte
	if h := newCheck(b.check); h != nil {
		h.Write(out)
		sum = checkSum(h)
	}
	for _, c := range in[b.dataSize : total-len(sum)] {
		if c != 0 {
			return in, corrupt("block at byte %d: nonzero padding", b.pos)
		}
	}
	if !bytes.Equal(in[total-len(sum):], sum) {
		return in, corrupt("block at byte %d: its data fails its check", b.pos)
	}
	return in, nil
}

// blockReader decodes a block streaming.
type blockReader struct {
	f    *file
	b    *block
	src  *bufio.Reader
	se   *sourceErr
	r    io.Reader // LZMA2 and the filters
	h    hash.Hash
	n    int64
	done bool
}

// sourceErr remembers a read error of the file, which the decoder would
// otherwise report as corrupt data.
type sourceErr struct {
	r   io.Reader
	err error
}

func (s *sourceErr) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = fmt.Errorf("%w: %w", errRead, err)
	}
	return n, err
}

func (f *file) newBlockReader(b *block) (*blockReader, error) {
	se := &sourceErr{r: io.NewSectionReader(f.ra, f.off+b.pos+b.headerSize, b.dataSize)}
	br := &blockReader{f: f, b: b, se: se, src: bufio.NewReaderSize(se, 64<<10), h: newCheck(b.check)}
	lz, err := newLZMA2Reader(br.src, b.dict, b.uncompressed)
	if err != nil {
		return nil, br.fail(err)
	}
	br.r = lz
	for i := len(b.filters) - 1; i >= 0; i-- {
		br.r = newFilterReader(br.r, newFilter(b.filters[i]))
	}
	return br, nil
}

func (br *blockReader) fail(err error) error {
	if br.se.err != nil {
		return fmt.Errorf("block at byte %d: %w", br.b.pos, br.se.err)
	}
	return br.b.err(err)
}

func (br *blockReader) Read(p []byte) (int, error) {
	if br.done {
		return 0, io.EOF
	}
	if rest := br.b.uncompressed - br.n; int64(len(p)) > rest+1 {
		p = p[:rest+1]
	}
	n, err := br.r.Read(p)
	br.n += int64(n)
	if br.n > br.b.uncompressed {
		return 0, corrupt("block at byte %d decodes to more than the %d bytes its index gives", br.b.pos, br.b.uncompressed)
	}
	if br.h != nil {
		br.h.Write(p[:n])
	}
	if err == io.EOF {
		if br.n != br.b.uncompressed {
			return 0, corrupt("block at byte %d decodes to %d bytes, its index gives %d", br.b.pos, br.n, br.b.uncompressed)
		}
		if _, err := br.src.ReadByte(); err != io.EOF {
			return 0, br.fail(errors.New("its LZMA2 data ends before its compressed size"))
		}
		if err := br.f.tail(br.b, checkSum(br.h)); err != nil {
			return 0, err
		}
		br.done = true
		return n, io.EOF
	}
	if err != nil {
		return 0, br.fail(err)
	}
	return n, nil
}
