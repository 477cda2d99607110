package xz

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/kiln-build/kiln/internal/size"
)

// MaxDict bounds the LZMA2 dictionary a block may ask for (xz's presets use
// at most 64 MiB). A decoder needs the whole dictionary, so without a bound
// a 100-byte file could make the reader allocate 4 GiB.
const MaxDict = 128 << 20

// maxBuffered is the largest block (uncompressed, and compressed) that is
// decoded whole into a buffer ahead of the reader; larger blocks are
// decoded streaming.
var maxBuffered int64 = 64 << 20

// Errors callers may branch on; every error the reader returns for a bad
// file wraps one of them.
var (
	// ErrCorrupt: the file is truncated, altered or not xz.
	ErrCorrupt = errors.New("xz: truncated or corrupt")
	// ErrUnsupported: a valid xz feature this package does not decode
	// (a filter other than LZMA2, x86 BCJ and delta; an unusual check).
	ErrUnsupported = errors.New("xz: unsupported")
	// ErrDictTooLarge: a block asks for a dictionary larger than MaxDict.
	ErrDictTooLarge = errors.New("xz: dictionary too large")
	// ErrClosed: Read after Close.
	ErrClosed = errors.New("xz: reader closed")
)

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, a...)...)
}

var streamMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// Check types of the stream flags, and the size of each check field.
const (
	checkNone   = 0x00
	checkCRC32  = 0x01
	checkCRC64  = 0x04
	checkSHA256 = 0x0a
)

func checkSize(c byte) int64 {
	if c == 0 {
		return 0
	}
	return 4 << ((c - 1) / 3)
}

// Filter IDs.
const (
	filterDelta = 0x03
	filterX86   = 0x04
	filterLZMA2 = 0x21
)

// stream is what the structure walk learns of one stream.
type stream struct {
	start     int64 // the stream header, relative to the region
	index     int64 // the index
	indexSize int64 // the index's size, its CRC32 included
	check     byte
	blocks    int64 // how many blocks the index lists
}

// filter is a filter that comes before LZMA2 in a block's chain.
type filter struct {
	id    uint64
	delta int    // filterDelta: the distance, 1 to 256
	start uint32 // filterX86: the start offset
}

// block is where one block is and what its header says.
type block struct {
	pos          int64 // the block header, relative to the region
	headerSize   int64
	dataSize     int64 // the LZMA2 data, between header and padding
	uncompressed int64
	check        byte
	filters      []filter // before LZMA2, in header order
	dict         int64    // LZMA2 dictionary size
}

// checkOffset is where the block's check field is.
func (b *block) checkOffset() int64 {
	return b.pos + (b.headerSize+b.dataSize+3)&^3
}

// file reads the region [off, off+size) of ra.
type file struct {
	ra        io.ReaderAt
	off, size int64
}

func (f *file) read(at int64, n int) ([]byte, error) {
	b := make([]byte, n)
	return b, f.readInto(at, b)
}

func (f *file) readInto(at int64, b []byte) error {
	n := int64(len(b))
	if at < 0 || at > f.size-n {
		return corrupt("%d bytes at byte %d are past its end", n, at)
	}
	if k, err := f.ra.ReadAt(b, f.off+at); k < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w %d bytes at byte %d: %w", errRead, n, at, err)
	}
	return nil
}

// streams walks the structure of the file from its end, checks it, and
// returns its streams in file order. It reads headers and indexes only.
func (f *file) streams() ([]stream, error) {
	var out []stream
	end := f.size
	for {
		var err error
		if end, err = f.skipPadding(end); err != nil {
			return nil, err
		}
		if end == 0 {
			break
		}
		s, err := f.stream(end)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		end = s.start
	}
	if len(out) == 0 {
		return nil, corrupt("no stream")
	}
	if out[len(out)-1].start != 0 {
		return nil, corrupt("stream padding before the first stream")
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// skipPadding returns where the stream padding (zero bytes, in groups of
// four) that ends at end starts.
func (f *file) skipPadding(end int64) (int64, error) {
	for end > 0 {
		n := min(end, 4096)
		b, err := f.read(end-n, int(n))
		if err != nil {
			return 0, err
		}
		i := len(b)
		for i > 0 && b[i-1] == 0 {
			i--
		}
		zeros := int64(len(b) - i)
		if zeros < n {
			end -= zeros
			break
		}
		end -= n
	}
	if end%4 != 0 {
		return 0, corrupt("stream padding is not a multiple of 4 bytes")
	}
	return end, nil
}

// stream checks the stream that ends at end: its footer, index, header
// and every block header.
func (f *file) stream(end int64) (stream, error) {
	var s stream
	if end < 32 {
		return s, corrupt("%d bytes at the start are too short for a stream", end)
	}
	foot, err := f.read(end-12, 12)
	if err != nil {
		return s, err
	}
	if foot[10] != 'Y' || foot[11] != 'Z' || crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot[0:4]) {
		return s, corrupt("no stream footer at byte %d", end-12)
	}
	if foot[8] != 0 || foot[9]&0xf0 != 0 {
		return s, corrupt("stream footer at byte %d: reserved flags set", end-12)
	}
	s.check = foot[9]
	switch s.check {
	case checkNone, checkCRC32, checkCRC64, checkSHA256:
	default:
		return s, fmt.Errorf("%w: check type 0x%02x in the stream ending at byte %d", ErrUnsupported, s.check, end)
	}
	s.indexSize = (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4
	s.index = end - 12 - s.indexSize
	if s.index < 12 {
		return s, corrupt("the index of the stream ending at byte %d is larger than the stream", end)
	}
	// First pass over the index: check it whole; the blocks' sizes give
	// where the stream starts.
	ir, err := f.indexReader(s.index, s.indexSize)
	if err != nil {
		return s, err
	}
	var total, uncompressed int64
	for i := int64(0); i < ir.count; i++ {
		unpadded, size, err := ir.next()
		if err != nil {
			return s, err
		}
		if total += (unpadded + 3) &^ 3; total > s.index {
			return s, corrupt("the blocks of the index at byte %d are larger than the stream", s.index)
		}
		if uncompressed > math.MaxInt64-size {
			return s, corrupt("the index at byte %d: the uncompressed size overflows", s.index)
		}
		uncompressed += size
	}
	if err := ir.finish(); err != nil {
		return s, err
	}
	s.blocks = ir.count
	s.start = s.index - total - 12
	if s.start < 0 {
		return s, corrupt("the blocks of the index at byte %d are larger than the stream", s.index)
	}
	head, err := f.read(s.start, 12)
	if err != nil {
		return s, err
	}
	if !bytes.Equal(head[:6], streamMagic) || !bytes.Equal(head[6:8], foot[8:10]) ||
		crc32.ChecksumIEEE(head[6:8]) != binary.LittleEndian.Uint32(head[8:12]) {
		return s, corrupt("no stream header at byte %d, where its index puts it", s.start)
	}
	// Second pass: every block header, against the index.
	it, err := f.blockIter(s)
	if err != nil {
		return s, err
	}
	for {
		_, ok, err := it.next()
		if err != nil {
			return s, err
		}
		if !ok {
			break
		}
	}
	return s, nil
}

// indexReader reads the records of an index and checks its padding and CRC32.
type indexReader struct {
	br    *bufio.Reader
	at    int64 // where the index is, for messages
	size  int64
	n     int64 // bytes read
	crc   uint32
	count int64 // records
}

func (f *file) indexReader(at, size int64) (*indexReader, error) {
	ir := &indexReader{br: bufio.NewReaderSize(io.NewSectionReader(f.ra, f.off+at, size), 4096), at: at, size: size}
	if b, err := ir.byte(); err != nil {
		return nil, err
	} else if b != 0 {
		return nil, corrupt("no index at byte %d", at)
	}
	n, err := ir.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(size) { // a record takes at least two bytes
		return nil, corrupt("index at byte %d: %d records do not fit", at, n)
	}
	ir.count = int64(n)
	return ir, nil
}

func (ir *indexReader) byte() (byte, error) {
	if ir.n >= ir.size-4 {
		return 0, corrupt("index at byte %d is cut short", ir.at)
	}
	b, err := ir.br.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("%w the index at byte %d: %w", errRead, ir.at, noEOF(err))
	}
	ir.n++
	ir.crc = crc32.Update(ir.crc, crc32.IEEETable, []byte{b})
	return b, nil
}

// varint reads a multibyte integer as xz writes them: at most nine bytes,
// no needless trailing zero byte.
func (ir *indexReader) varint() (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := ir.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				break
			}
			return v, nil
		}
	}
	return 0, corrupt("index at byte %d: bad integer", ir.at)
}

// next returns the unpadded and uncompressed sizes of the next record.
func (ir *indexReader) next() (unpadded, uncompressed int64, err error) {
	u, err := ir.varint()
	if err != nil {
		return 0, 0, err
	}
	s, err := ir.varint()
	if err != nil {
		return 0, 0, err
	}
	if u < 5 || u > math.MaxInt64&^3 || s > math.MaxInt64 {
		return 0, 0, corrupt("index at byte %d: bad record", ir.at)
	}
	return int64(u), int64(s), nil
}

// finish checks the index padding and CRC32, after the last record.
func (ir *indexReader) finish() error {
	for ir.n%4 != 0 {
		b, err := ir.byte()
		if err != nil {
			return err
		}
		if b != 0 {
			return corrupt("index at byte %d: nonzero padding", ir.at)
		}
	}
	if ir.n != ir.size-4 {
		return corrupt("index at byte %d: its records do not fill it", ir.at)
	}
	var c [4]byte
	if _, err := io.ReadFull(ir.br, c[:]); err != nil {
		return fmt.Errorf("%w the index at byte %d: %w", errRead, ir.at, noEOF(err))
	}
	if binary.LittleEndian.Uint32(c[:]) != ir.crc {
		return corrupt("index at byte %d fails its check", ir.at)
	}
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// blockIter yields the blocks of a stream, in order, from its index, with
// each block's header read and checked against the index.
type blockIter struct {
	f   *file
	s   stream
	ir  *indexReader
	i   int64
	pos int64
}

func (f *file) blockIter(s stream) (*blockIter, error) {
	ir, err := f.indexReader(s.index, s.indexSize)
	if err != nil {
		return nil, err
	}
	if ir.count != s.blocks {
		return nil, corrupt("index at byte %d changed while read", s.index)
	}
	return &blockIter{f: f, s: s, ir: ir, pos: s.start + 12}, nil
}

func (it *blockIter) next() (block, bool, error) {
	if it.i == it.s.blocks {
		if it.pos != it.s.index {
			return block{}, false, corrupt("index at byte %d changed while read", it.s.index)
		}
		return block{}, false, nil
	}
	unpadded, size, err := it.ir.next()
	if err != nil {
		return block{}, false, err
	}
	b, err := it.f.blockHeader(it.pos, unpadded, size, it.s.check)
	if err != nil {
		return block{}, false, err
	}
	it.i++
	it.pos += (unpadded + 3) &^ 3
	if it.pos > it.s.index {
		return block{}, false, corrupt("index at byte %d changed while read", it.s.index)
	}
	return b, true, nil
}

// blockHeader reads and checks the header of the block at pos, whose index
// record gives its unpadded and uncompressed sizes.
func (f *file) blockHeader(pos, unpadded, uncompressed int64, check byte) (block, error) {
	b := block{pos: pos, uncompressed: uncompressed, check: check}
	first, err := f.read(pos, 1)
	if err != nil {
		return b, err
	}
	if first[0] == 0 {
		return b, corrupt("no block header at byte %d, where the index puts one", pos)
	}
	b.headerSize = (int64(first[0]) + 1) * 4
	b.dataSize = unpadded - b.headerSize - checkSize(check)
	if b.dataSize <= 0 {
		return b, corrupt("block at byte %d: the index gives it a size smaller than its header", pos)
	}
	h, err := f.read(pos, int(b.headerSize))
	if err != nil {
		return b, err
	}
	body := h[:len(h)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(h[len(h)-4:]) {
		return b, corrupt("block header at byte %d fails its check", pos)
	}
	flags, p := body[1], 2
	if flags&0x3c != 0 {
		return b, corrupt("block header at byte %d: reserved flags set", pos)
	}
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9 && p < len(body); i++ {
			c := body[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				if c == 0 && i > 0 {
					break
				}
				return v, nil
			}
		}
		return 0, corrupt("block header at byte %d: bad integer", pos)
	}
	if flags&0x40 != 0 {
		v, err := varint()
		if err != nil {
			return b, err
		}
		if v != uint64(b.dataSize) {
			return b, corrupt("block at byte %d: its header gives a compressed size of %d, its index %d", pos, v, b.dataSize)
		}
	}
	if flags&0x80 != 0 {
		v, err := varint()
		if err != nil {
			return b, err
		}
		if v != uint64(uncompressed) {
			return b, corrupt("block at byte %d: its header gives an uncompressed size of %d, its index %d", pos, v, uncompressed)
		}
	}
	nf := int(flags&3) + 1
	for i := range nf {
		id, err := varint()
		if err != nil {
			return b, err
		}
		n, err := varint()
		if err != nil {
			return b, err
		}
		if n > uint64(len(body)-p) {
			return b, corrupt("block header at byte %d is cut short", pos)
		}
		props := body[p : p+int(n)]
		p += int(n)
		last := i == nf-1
		switch {
		case id == filterLZMA2 && last:
			if len(props) != 1 || props[0]&0xc0 != 0 || props[0] > 40 {
				return b, corrupt("block at byte %d: bad LZMA2 properties", pos)
			}
			b.dict = lzma2Dict(props[0])
			if b.dict > MaxDict {
				return b, fmt.Errorf("%w: the block at byte %d asks for a dictionary of %s, more than the %s allowed",
					ErrDictTooLarge, pos, size.String(b.dict), size.String(MaxDict))
			}
		case last:
			if id >= filterDelta && id <= 0x0b { // delta and the BCJ filters
				return b, corrupt("block at byte %d: filter 0x%02x cannot be last", pos, id)
			}
			return b, fmt.Errorf("%w: filter 0x%02x in the block at byte %d", ErrUnsupported, id, pos)
		case id == filterLZMA2:
			return b, corrupt("block at byte %d: LZMA2 must be the last filter", pos)
		case id == filterDelta:
			if len(props) != 1 {
				return b, corrupt("block at byte %d: bad delta properties", pos)
			}
			b.filters = append(b.filters, filter{id: id, delta: int(props[0]) + 1})
		case id == filterX86:
			ft := filter{id: id}
			switch len(props) {
			case 0:
			case 4:
				ft.start = binary.LittleEndian.Uint32(props)
			default:
				return b, corrupt("block at byte %d: bad x86 properties", pos)
			}
			b.filters = append(b.filters, ft)
		default:
			return b, fmt.Errorf("%w: filter 0x%02x in the block at byte %d", ErrUnsupported, id, pos)
		}
	}
	for _, c := range body[p:] {
		if c != 0 {
			return b, corrupt("block header at byte %d: nonzero padding", pos)
		}
	}
	return b, nil
}

// lzma2Dict decodes the dictionary size byte of LZMA2 (at most 40).
func lzma2Dict(d byte) int64 {
	if d == 40 {
		return 1<<32 - 1
	}
	return int64(2|d&1) << (d/2 + 11)
}
