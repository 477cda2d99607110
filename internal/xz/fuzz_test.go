package xz

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"

	"github.com/ulikunitz/xz"
)

// FuzzReader: no input makes the reader panic, and whatever it decodes
// without an error is what ulikunitz/xz (or, for the filters that does not
// know, xz itself) decodes.
func FuzzReader(f *testing.F) {
	text := textBytes(20<<10, 20)
	for _, args := range [][]string{
		{"-6"},
		{"-0", "--check=crc32"},
		{"-T2", "--block-size=4KiB", "--check=crc64"},
		{"--block-size=7000", "--check=sha256"},
		{"--check=none"},
		{"--x86", "--lzma2=preset=0"},
		{"--delta=dist=3", "--lzma2=preset=0", "--block-size=9000"},
	} {
		f.Add(xzBytes(f, text[:5000], args...))
		f.Add(xzBytes(f, text, args...))
	}
	f.Add(xzBytes(f, nil))
	f.Add(append(append(xzBytes(f, text[:100]), 0, 0, 0, 0), xzBytes(f, text[100:300], "--check=none")...))
	f.Add(xzBytes(f, randomBytes(3000, 21), "-1"))
	defer func(v int64) { maxBuffered = v }(maxBuffered)
	maxBuffered = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decode(data, 2)
		if err != nil {
			return
		}
		zr, zerr := xz.NewReader(bytes.NewReader(data))
		var want []byte
		if zerr == nil {
			want, zerr = io.ReadAll(io.LimitReader(zr, int64(len(got))+1))
		}
		if zerr != nil {
			var ok bool
			if want, ok = unxz(t, data); !ok {
				t.Fatalf("decoded %d bytes; ulikunitz and xz fail (%v)", len(got), zerr)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes; the oracle decodes %d other bytes", len(got), len(want))
		}
	})
}

// FuzzLZMA2 runs raw LZMA2 data through the whole and the streaming
// decoders, with a small dictionary so that the streaming window slides:
// no panic, and when both succeed, the same output.
func FuzzLZMA2(f *testing.F) {
	text := textBytes(30<<10, 22)
	for _, opts := range []string{"preset=0", "preset=6,dict=4KiB", "preset=1,lc=0,lp=2,pb=1"} {
		f.Add(uint16(len(text)), xzBytes(f, text, "--format=raw", "--lzma2="+opts))
	}
	f.Add(uint16(3), []byte{0x01, 0x00, 0x02, 'a', 'b', 'c', 0x00})
	f.Fuzz(func(t *testing.T, size uint16, in []byte) {
		out := make([]byte, size)
		var stop atomic.Bool
		err := decodeLZMA2(out, in, 4096, &stop)
		r, _ := newLZMA2Reader(bytes.NewReader(in), 4096, int64(size))
		got, serr := io.ReadAll(io.LimitReader(r, int64(size)+1))
		if err == nil && serr == nil && !bytes.Equal(out, got) {
			t.Fatalf("whole and streaming decoders differ")
		}
		if err == nil && serr != nil {
			t.Fatalf("whole decodes, streaming fails: %v", serr)
		}
	})
}
