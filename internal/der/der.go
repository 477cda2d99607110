// Package der is the small DER writer of kiln's signatures (pkg/sign's
// Authenticode PKCS#7, pkg/efivar's authenticated variables): every byte of
// what they sign is built explicitly from these, so nothing varies between
// runs. It imports nothing of kiln.
package der

import (
	"bytes"
	"encoding/asn1"
	"fmt"
	"sort"
)

// Tags of the DER elements kiln writes.
const (
	TagNull     = 0x05
	TagSequence = 0x30
)

// TLV encodes one DER element of the given tag over the concatenated
// contents.
func TLV(tag byte, contents ...[]byte) []byte {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	out := []byte{tag}
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		panic(fmt.Sprintf("BUG: DER element of %d bytes", n)) // a certificate and a signature are kilobytes
	}
	for _, c := range contents {
		out = append(out, c...)
	}
	return out
}

// SetOf encodes a DER SET OF: its elements sorted by their encodings.
func SetOf(tag byte, elems ...[]byte) []byte {
	s := append([][]byte(nil), elems...)
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i], s[j]) < 0 })
	return TLV(tag, s...)
}

// OID encodes an object identifier.
func OID(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("BUG: marshalling OID %v: %v", o, err))
	}
	return b
}

// AlgID is an AlgorithmIdentifier with NULL parameters.
func AlgID(o asn1.ObjectIdentifier) []byte {
	return TLV(TagSequence, OID(o), []byte{TagNull, 0})
}
