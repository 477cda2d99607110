package sign

import (
	"bytes"
	"encoding/asn1"
	"fmt"
	"sort"
	"unicode/utf16"
)

// A small DER writer: every structure of the signature is built from
// these, so each byte is explicit and nothing varies between runs.

// DER tags used below.
const (
	tagInteger   = 0x02
	tagBitString = 0x03
	tagOctets    = 0x04
	tagNull      = 0x05
	tagOID       = 0x06
	tagSequence  = 0x30
	tagSet       = 0x31
	tagContext0  = 0xa0 // [0] constructed
	tagContext2  = 0xa2 // [2] constructed
	tagContext0P = 0x80 // [0] primitive
)

// tlv encodes one DER element of the given tag over the concatenated
// contents.
func tlv(tag byte, contents ...[]byte) []byte {
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

// setOf encodes a DER SET OF: its elements sorted by their encodings.
func setOf(tag byte, elems ...[]byte) []byte {
	s := append([][]byte(nil), elems...)
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i], s[j]) < 0 })
	return tlv(tag, s...)
}

func oid(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("BUG: marshalling OID %v: %v", o, err))
	}
	return b
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("BUG: marshalling %T: %v", v, err))
	}
	return b
}

// algID is an AlgorithmIdentifier with NULL parameters.
func algID(o asn1.ObjectIdentifier) []byte { return tlv(tagSequence, oid(o), []byte{tagNull, 0}) }

// bmpString is the big-endian UTF-16 of s.
func bmpString(s string) []byte {
	var b []byte
	for _, r := range utf16.Encode([]rune(s)) {
		b = append(b, byte(r>>8), byte(r))
	}
	return b
}

// contents returns the contents of the DER element b (its value without
// tag and length).
func contents(b []byte) ([]byte, error) {
	var rv asn1.RawValue
	rest, err := asn1.Unmarshal(b, &rv)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the element", len(rest))
	}
	return rv.Bytes, nil
}

var (
	oidSHA256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSignedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidSpcIndirectData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcStatementType = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 11}
	oidSpcSpOpusInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
	oidSpcPEImageData   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcIndividual    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}
)

// indirectData is the DER SpcIndirectDataContent for a PE image with the
// given sha256 Authenticode digest, as osslsigncode writes it:
//
//	SpcIndirectDataContent ::= SEQUENCE {
//	    data          SpcAttributeTypeAndOptionalValue, -- SPC_PE_IMAGE_DATAOBJ, SpcPeImageData
//	    messageDigest DigestInfo }                      -- sha256, the image hash
//	SpcPeImageData ::= SEQUENCE {
//	    flags BIT STRING,                  -- includeResources
//	    file  [0] EXPLICIT SpcLink }       -- [2] SpcString: [0] BMPString "<<<Obsolete>>>"
func indirectData(digest []byte) []byte {
	peImageData := tlv(tagSequence,
		[]byte{tagBitString, 2, 7, 0x80},
		tlv(tagContext0, tlv(tagContext2, tlv(tagContext0P, bmpString("<<<Obsolete>>>")))))
	return tlv(tagSequence,
		tlv(tagSequence, oid(oidSpcPEImageData), peImageData),
		tlv(tagSequence, algID(oidSHA256), tlv(tagOctets, digest)))
}

// attribute is one PKCS#9 Attribute: SEQUENCE { type, SET { value } }.
func attribute(t asn1.ObjectIdentifier, value []byte) []byte {
	return tlv(tagSequence, oid(t), tlv(tagSet, value))
}
