package layer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// xzMaxDict bounds the LZMA2 dictionary an xz block may ask for (xz's
// presets use at most 64 MiB). The decoder allocates a block's dictionary
// whole before it decodes a byte, so without a bound a 100-byte file could
// make kiln allocate 4 GiB each time it opens it.
const xzMaxDict = 128 << 20

var xzStreamMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// checkXZ reads the structure of the xz file held in a region, from its
// end as `xz --list` does: the footer and index of each stream, which
// locate its blocks, and each block's header. It refuses a block whose
// dictionary is larger than xzMaxDict, and a file whose structure is
// broken (truncated, say), before the decoder allocates anything. It reads
// headers only, no compressed data.
func checkXZ(ra io.ReaderAt, off, size int64) error {
	c := xzChecker{ra: ra, off: off, size: size}
	end := size
	for {
		var err error
		if end, err = c.skipPadding(end); err != nil {
			return err
		}
		if end == 0 {
			return nil
		}
		if end, err = c.stream(end); err != nil {
			return err
		}
	}
}

type xzChecker struct {
	ra        io.ReaderAt
	off, size int64
}

func xzCorrupt(format string, a ...any) error {
	return fmt.Errorf("xz: truncated or corrupt: "+format, a...)
}

func (c *xzChecker) read(at int64, n int) ([]byte, error) {
	if at < 0 || n < 0 || at > c.size-int64(n) {
		return nil, xzCorrupt("%d bytes at byte %d are past its end", n, at)
	}
	b := make([]byte, n)
	if _, err := c.ra.ReadAt(b, c.off+at); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// skipPadding returns where the stream padding (zero bytes, in groups of
// four) that ends at end starts.
func (c *xzChecker) skipPadding(end int64) (int64, error) {
	for end > 0 {
		n := min(end, 4096)
		b, err := c.read(end-n, int(n))
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
		return 0, xzCorrupt("stream padding is not a multiple of 4 bytes")
	}
	return end, nil
}

// stream checks the stream that ends at end and returns where it starts.
func (c *xzChecker) stream(end int64) (int64, error) {
	foot, err := c.read(end-12, 12)
	if err != nil {
		return 0, err
	}
	if foot[10] != 'Y' || foot[11] != 'Z' || crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot[0:4]) {
		return 0, xzCorrupt("no stream footer at byte %d", end-12)
	}
	indexSize := (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4
	index := end - 12 - indexSize
	if index < 12 {
		return 0, xzCorrupt("the index is larger than the stream")
	}
	// Two passes over the index: the blocks' sizes give where the stream
	// starts, from which the blocks are found.
	var total int64
	if err := c.records(index, indexSize, func(unpadded int64) error {
		if total += (unpadded + 3) &^ 3; total > index {
			return xzCorrupt("the blocks of the index are larger than the stream")
		}
		return nil
	}); err != nil {
		return 0, err
	}
	start := index - total - 12
	if start < 0 {
		return 0, xzCorrupt("the blocks of the index are larger than the stream")
	}
	head, err := c.read(start, 12)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(head[:6], xzStreamMagic) || !bytes.Equal(head[6:8], foot[8:10]) ||
		crc32.ChecksumIEEE(head[6:8]) != binary.LittleEndian.Uint32(head[8:12]) {
		return 0, xzCorrupt("no stream header at byte %d, where its index puts it", start)
	}
	pos := start + 12
	err = c.records(index, indexSize, func(unpadded int64) error {
		if err := c.block(pos); err != nil {
			return err
		}
		pos += (unpadded + 3) &^ 3
		return nil
	})
	return start, err
}

// records calls fn with the unpadded size of each block the index lists.
func (c *xzChecker) records(index, size int64, fn func(unpadded int64) error) error {
	br := bufio.NewReader(io.NewSectionReader(c.ra, c.off+index, size))
	if b, err := br.ReadByte(); err != nil || b != 0 {
		return xzCorrupt("no index at byte %d", index)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return xzCorrupt("index at byte %d: %v", index, err)
	}
	for i := uint64(0); i < n; i++ {
		unpadded, err := binary.ReadUvarint(br)
		if err == nil {
			_, err = binary.ReadUvarint(br) // the uncompressed size
		}
		if err != nil || unpadded < 5 || unpadded > 1<<62 {
			return xzCorrupt("index at byte %d: bad record", index)
		}
		if err := fn(int64(unpadded)); err != nil {
			return err
		}
	}
	return nil
}

// block checks the header of the block at pos.
func (c *xzChecker) block(pos int64) error {
	b, err := c.read(pos, 1)
	if err != nil {
		return err
	}
	if b[0] == 0 {
		return xzCorrupt("no block header at byte %d", pos)
	}
	h, err := c.read(pos, (int(b[0])+1)*4)
	if err != nil {
		return err
	}
	body := h[:len(h)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(h[len(h)-4:]) {
		return xzCorrupt("block header at byte %d fails its check", pos)
	}
	flags, p := body[1], 2
	varint := func() (uint64, error) {
		v, n := binary.Uvarint(body[min(p, len(body)):])
		if n <= 0 {
			return 0, xzCorrupt("block header at byte %d is cut short", pos)
		}
		p += n
		return v, nil
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed and uncompressed sizes
		if present {
			if _, err := varint(); err != nil {
				return err
			}
		}
	}
	for range int(flags&3) + 1 {
		id, err := varint()
		if err != nil {
			return err
		}
		n, err := varint()
		if err != nil {
			return err
		}
		if n > uint64(len(body)-p) {
			return xzCorrupt("block header at byte %d is cut short", pos)
		}
		if props := body[p : p+int(n)]; id == 0x21 && len(props) == 1 { // LZMA2
			if d := props[0] & 0x3f; d > 40 {
				return xzCorrupt("block at byte %d: bad dictionary size", pos)
			} else if dict := lzma2Dict(d); dict > xzMaxDict {
				return fmt.Errorf("xz: the block at byte %d asks for a dictionary of %s, more than the %s kiln allows", pos, sizeString(dict), sizeString(xzMaxDict))
			}
		}
		p += int(n)
	}
	return nil
}

// lzma2Dict decodes the dictionary size byte of LZMA2 (at most 40).
func lzma2Dict(d byte) int64 {
	if d == 40 {
		return 1<<32 - 1
	}
	return int64(2|d&1) << (d/2 + 11)
}
