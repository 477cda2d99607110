package imgfmt

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCompressorsHaveNoHistory checks what determinism rests on: a unit
// compresses to the same bytes whatever its worker compressed before, so
// that which worker gets which unit does not matter.
func TestCompressorsHaveNoHistory(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	units := [][]byte{textBytes(r, 64*kib), randomBytes(r, 64*kib), fill(3, 64*kib), textBytes(r, 4*kib), textBytes(r, 2*mib)}
	for _, tc := range []struct {
		name string
		new  func() func([]byte) []byte
	}{
		{"raw deflate", func() func([]byte) []byte {
			d := newRawDeflater()
			return func(b []byte) []byte { out, _ := d.compress(nil, b); return out }
		}},
		{"zlib", func() func([]byte) []byte {
			d := newZlibDeflater()
			return func(b []byte) []byte { out, _ := d.compress(nil, b); return out }
		}},
		{"zstd", func() func([]byte) []byte {
			z := newZstdEncoder(1)
			return func(b []byte) []byte { return z.EncodeAll(b, nil) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, u := range units {
				fresh := tc.new()(u)
				used := tc.new()
				for j := len(units) - 1; j >= 0; j-- {
					used(units[j])
				}
				if again := used(u); !bytes.Equal(fresh, again) {
					t.Fatalf("unit %d: %d bytes fresh, %d after other units", i, len(fresh), len(again))
				}
			}
		})
	}
}
