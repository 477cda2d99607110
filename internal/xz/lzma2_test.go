package xz

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
)

// TestLZMA2Chunks feeds hand-made chunk sequences to both LZMA2 decoders:
// the rules on resets, sizes and the end marker.
func TestLZMA2Chunks(t *testing.T) {
	// A real LZMA chunk (control byte 0xe0: dictionary reset and
	// properties) from xz, for the sequences below.
	comp := xzBytes(t, []byte("hello hello hello hello"), "--format=raw", "--lzma2=preset=0")
	if comp[0] != 0xe0 || comp[len(comp)-1] != 0 {
		t.Fatalf("xz wrote %x", comp)
	}
	lz := comp[:len(comp)-1]
	// As an 0x80 chunk (no reset): without the properties byte.
	noPropsChunk := append(append([]byte{0x80}, lz[1:5]...), lz[6:]...)
	// whole: an error from the whole decoder; stream: from the streaming
	// one too (which leaves the sizes and what follows the end marker to
	// the block reader).
	tests := []struct {
		name          string
		in            []byte
		want          string
		whole, stream bool
	}{
		{"stored", []byte{0x01, 0x00, 0x02, 'a', 'b', 'c', 0x00}, "abc", false, false},
		{"stored twice", []byte{0x01, 0x00, 0x00, 'a', 0x02, 0x00, 0x00, 'b', 0x00}, "ab", false, false},
		{"lzma", comp, "hello hello hello hello", false, false},
		{"lzma then stored", append(append([]byte(nil), lz...), 0x02, 0x00, 0x00, '!', 0x00), "hello hello hello hello!", false, false},
		{"empty", []byte{0x00}, "", false, false},
		{"no dictionary reset", []byte{0x02, 0x00, 0x00, 'a', 0x00}, "", true, true},
		{"lzma without properties", append(append([]byte{0x01, 0x00, 0x00, 'a'}, noPropsChunk...), 0x00), "", true, true},
		{"bad control byte", []byte{0x01, 0x00, 0x00, 'a', 0x03, 0x00}, "", true, true},
		{"no end marker", []byte{0x01, 0x00, 0x00, 'a'}, "a", true, true},
		{"bytes after the end marker", []byte{0x01, 0x00, 0x00, 'a', 0x00, 0x00}, "a", true, false},
		{"stored chunk cut", []byte{0x01, 0x00, 0x05, 'a', 'b'}, "", true, true},
		{"lzma chunk cut", lz[:len(lz)-1], "", true, true},
		{"lzma packed size too large", append(append(append([]byte(nil), lz[:3]...), 0xff, 0xff), lz[5:]...), "", true, true},
		{"lzma packed size too small", append(append(append(append([]byte(nil), lz[:3]...), 0x00, byte(len(lz)-6-2)), lz[5:]...), 0x00), "", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, len(tc.want))
			var stop atomic.Bool
			err := decodeLZMA2(out, tc.in, 1<<20, &stop)
			if tc.whole != (err != nil) || err == nil && string(out) != tc.want {
				t.Errorf("whole: %q, %v", out, err)
			}
			r, _ := newLZMA2Reader(bytes.NewReader(tc.in), 1<<20, int64(len(tc.want)))
			got, err := io.ReadAll(r)
			if tc.stream != (err != nil) || err == nil && string(got) != tc.want {
				t.Errorf("streaming: %q, %v", got, err)
			}
		})
	}
	// Sizes: the whole decoder must fill its buffer exactly.
	var stop atomic.Bool
	for _, n := range []int{0, 2, 4} {
		if err := decodeLZMA2(make([]byte, n), []byte{0x01, 0x00, 0x02, 'a', 'b', 'c', 0x00}, 1<<20, &stop); !errors.Is(err, errTooMuch) && !errors.Is(err, errTooLittle) {
			t.Errorf("%d-byte buffer for 3 bytes: %v", n, err)
		}
	}
}
