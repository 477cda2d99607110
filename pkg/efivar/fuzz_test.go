package efivar

import (
	"bytes"
	"testing"
)

// FuzzVerify: Verify never panics on any input, and whatever it accepts
// is the update it was given (the same data, read back within it).
func FuzzVerify(f *testing.F) {
	pk := newKey(f, "PK")
	esl := SignatureList(testOwner, pk.cert.Raw)
	a, err := AuthVariable("PK", GlobalVariable, AuthAttributes, testTime, esl, pk.key, pk.cert)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a)
	f.Add(a[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := Verify(b, "PK", GlobalVariable, AuthAttributes, pk.cert)
		if err != nil {
			return
		}
		if !bytes.HasSuffix(b, u.Data) || u.Signer != pk.cert {
			t.Errorf("accepted update reads back data not at its end, or another signer")
		}
	})
}
