package sign

import (
	"encoding/asn1"
	"fmt"
	"unicode/utf16"

	"github.com/kiln-build/kiln/internal/der"
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

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("BUG: marshalling %T: %v", v, err))
	}
	return b
}

// The DER writer is internal/der's, shared with pkg/efivar.
var (
	tlv   = der.TLV
	setOf = der.SetOf
	oid   = der.OID
	algID = der.AlgID
)

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
