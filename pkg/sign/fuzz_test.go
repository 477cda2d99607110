package sign

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// fuzzBound is what one hostile input may make AuthenticodeDigest,
// Prepare and Verify allocate together, beyond a few copies of the input
// itself: headers are read in place, so the bound is small and a field
// that sizes an allocation shows up as a failure.
const fuzzBound = 1 << 20

// FuzzAuthenticodeDigest feeds hostile PE headers (seeded with the
// hand-built PE32 and PE32+ images, a signed one, one with two
// WIN_CERTIFICATE entries, and the broken headers of TestHostileHeaders'
// kind) to AuthenticodeDigest, Prepare, Verify and Signatures
// under testkit.BoundAlloc: no panic, no allocation over the bound, and a
// digest that does not depend on the CheckSum field.
func FuzzAuthenticodeDigest(f *testing.F) {
	k := newKey(f, 2048)
	for _, plus := range []bool{true, false} {
		pe := minimalPE(plus)
		f.Add(pe)
		signed, err := Sign(pe, k.key, k.cert, Options{})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(signed)
		f.Add(withTwoEntries(f, signed))
		short := bytes.Clone(pe)
		binary.LittleEndian.PutUint32(short[0x3c:], 0xfffffff0)
		f.Add(short)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		limit := uint64(fuzzBound + 4*len(b))
		testkit.BoundAlloc(t, limit, func() {
			d, err := AuthenticodeDigest(b)
			if err != nil {
				return
			}
			if len(d) != 32 {
				t.Fatalf("digest of %d bytes", len(d))
			}
			im, _ := parse(b)
			c := bytes.Clone(b)
			c[im.checksumAt] ^= 0xff
			if d2, err := AuthenticodeDigest(c); err != nil || !bytes.Equal(d, d2) {
				t.Fatalf("changing CheckSum changed the digest (%v)", err)
			}
			if req, err := Prepare(b, k.cert, Options{}); err == nil && len(req.Digest) != 32 {
				t.Fatal("Prepare gave no digest")
			}
			Verify(b, k.cert)
			sigs, _ := Signatures(b)
			if len(sigs) > MaxSignatures {
				t.Fatalf("%d signatures, over the bound of %d", len(sigs), MaxSignatures)
			}
			for _, s := range sigs {
				if s.Valid != (s.Reason == "") || (s.Valid && s.Signer == nil) {
					t.Fatalf("signature valid %v with reason %q, signer %v", s.Valid, s.Reason, s.Signer)
				}
			}
		})
	})
}
