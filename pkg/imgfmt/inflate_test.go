package imgfmt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/flate"
)

// deflateMaxDistance walks a raw deflate stream (RFC 1951) to its final
// block and returns the longest distance a match uses and the number of
// bytes the stream decodes to. It is a minimal decoder (after zlib's
// contrib/puff) kept only to check the window qcow2 streams stay within.
func deflateMaxDistance(data []byte) (maxDist, n int, err error) {
	br := &bitReader{data: data}
	for {
		final := br.bits(1)
		typ := br.bits(2)
		switch typ {
		case 0:
			br.bitn, br.bitc = 0, 0
			if br.pos+4 > len(br.data) {
				return 0, 0, errors.New("stored block: truncated")
			}
			l := int(br.data[br.pos]) | int(br.data[br.pos+1])<<8
			br.pos += 4 + l
			n += l
		case 1, 2:
			var lit, dist huffman
			if typ == 1 {
				var lens [288 + 30]int
				for i := range 288 {
					switch {
					case i < 144:
						lens[i] = 8
					case i < 256:
						lens[i] = 9
					case i < 280:
						lens[i] = 7
					default:
						lens[i] = 8
					}
				}
				for i := range 30 {
					lens[288+i] = 5
				}
				lit, dist = newHuffman(lens[:288]), newHuffman(lens[288:])
			} else if lit, dist, err = br.dynamicTables(); err != nil {
				return 0, 0, err
			}
			for {
				sym := br.decode(&lit)
				if sym < 0 {
					return 0, 0, errors.New("bad literal/length code")
				}
				if sym < 256 {
					n++
					continue
				}
				if sym == 256 {
					break
				}
				sym -= 257
				if sym >= 29 {
					return 0, 0, errors.New("bad length symbol")
				}
				length := lenBase[sym] + br.bits(lenExtra[sym])
				ds := br.decode(&dist)
				if ds < 0 || ds >= 30 {
					return 0, 0, errors.New("bad distance symbol")
				}
				d := distBase[ds] + br.bits(distExtra[ds])
				if d > n {
					return 0, 0, errors.New("distance before the start of the stream")
				}
				maxDist = max(maxDist, d)
				n += length
			}
		default:
			return 0, 0, errors.New("reserved block type")
		}
		if br.err != nil {
			return 0, 0, br.err
		}
		if final == 1 {
			return maxDist, n, nil
		}
	}
}

var (
	lenBase   = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clOrder   = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

type bitReader struct {
	data       []byte
	pos        int
	bitc, bitn uint
	err        error
}

func (br *bitReader) bits(need int) int {
	for br.bitn < uint(need) {
		if br.pos >= len(br.data) {
			br.err = errors.New("truncated stream")
			return 0
		}
		br.bitc |= uint(br.data[br.pos]) << br.bitn
		br.pos++
		br.bitn += 8
	}
	v := int(br.bitc & (1<<uint(need) - 1))
	br.bitc >>= uint(need)
	br.bitn -= uint(need)
	return v
}

type huffman struct {
	count [16]int
	sym   []int
}

func newHuffman(lens []int) huffman {
	var h huffman
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	var offs [16]int
	for l := 1; l < 16; l++ {
		offs[l] = offs[l-1] + h.count[l-1]
	}
	offs[0] = 0
	h.sym = make([]int, len(lens))
	for s, l := range lens {
		if l != 0 {
			h.sym[offs[l]] = s
			offs[l]++
		}
	}
	return h
}

// decode reads one symbol (canonical codes, as puff.c decodes them).
func (br *bitReader) decode(h *huffman) int {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= br.bits(1)
		count := h.count[l]
		if code-count < first {
			return h.sym[index+code-first]
		}
		index += count
		first = (first + count) << 1
		code <<= 1
		if br.err != nil {
			return -1
		}
	}
	return -1
}

func (br *bitReader) dynamicTables() (lit, dist huffman, err error) {
	nlen := br.bits(5) + 257
	ndist := br.bits(5) + 1
	ncode := br.bits(4) + 4
	var cl [19]int
	for i := range ncode {
		cl[clOrder[i]] = br.bits(3)
	}
	clh := newHuffman(cl[:])
	lens := make([]int, nlen+ndist)
	for i := 0; i < nlen+ndist; {
		sym := br.decode(&clh)
		switch {
		case sym < 0:
			return lit, dist, errors.New("bad code length code")
		case sym < 16:
			lens[i] = sym
			i++
			continue
		}
		var l, rep int
		switch sym {
		case 16:
			if i == 0 {
				return lit, dist, errors.New("repeat with no previous length")
			}
			l, rep = lens[i-1], 3+br.bits(2)
		case 17:
			rep = 3 + br.bits(3)
		default:
			rep = 11 + br.bits(7)
		}
		if i+rep > len(lens) {
			return lit, dist, errors.New("too many code lengths")
		}
		for ; rep > 0; rep-- {
			lens[i] = l
			i++
		}
	}
	return newHuffman(lens[:nlen]), newHuffman(lens[nlen:]), br.err
}

// TestDeflateMaxDistance checks the checker: it sees the 32 KiB matches
// of an ordinary deflate stream and the bytes it decodes to.
func TestDeflateMaxDistance(t *testing.T) {
	var src bytes.Buffer
	src.Write(bytes.Repeat([]byte("kiln image cluster "), 300)) // repeats 19 bytes back
	block := textBytesFixed(20 * kib)
	src.Write(block)
	src.Write(block) // a repeat 20 KiB back
	for _, tc := range []struct {
		name    string
		window  int // 0: an ordinary 32 KiB writer
		atMost  int
		atLeast int
	}{
		{"32KiB window", 0, 32 * kib, 4*kib + 1},
		{"4KiB window", qcow2DeflateWindow, qcow2DeflateWindow, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			var w *flate.Writer
			var err error
			if tc.window == 0 {
				w, err = flate.NewWriter(&out, 6)
			} else {
				w, err = flate.NewWriterWindow(&out, tc.window)
			}
			if err != nil {
				t.Fatal(err)
			}
			w.Write(src.Bytes())
			w.Close()
			d, n, err := deflateMaxDistance(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if n != src.Len() || d > tc.atMost || d < tc.atLeast {
				t.Fatalf("decoded %d bytes (want %d), longest match %d back (want %d..%d)", n, src.Len(), d, tc.atLeast, tc.atMost)
			}
		})
	}
}

// textBytesFixed is text-like data without repeats closer than its length.
func textBytesFixed(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return b
}
