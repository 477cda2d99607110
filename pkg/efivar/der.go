package efivar

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"github.com/kiln-build/kiln/internal/der"
)

// The DER writer is internal/der's, shared with pkg/sign: every byte of
// the SignedData is explicit and nothing varies between runs.

const (
	tagInteger  = 0x02
	tagOctets   = 0x04
	tagNull     = 0x05
	tagSequence = 0x30
	tagSet      = 0x31
	tagContext0 = 0xa0 // [0] constructed
)

var (
	tlv   = der.TLV
	oid   = der.OID
	algID = der.AlgID
)

var (
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// signedData is the DER PKCS#7 SignedData, without a ContentInfo around
// it, of an RSA PKCS#1 v1.5 sha256 signature by cert over detached
// content, as sign-efi-sig-list writes it (PKCS7_DETACHED|PKCS7_NOATTR,
// i2d_PKCS7_SIGNED):
//
//	SignedData {
//	    version 1, digestAlgorithms { sha256 },
//	    contentInfo { data },                  -- detached: no content
//	    certificates [0] { cert },
//	    signerInfos { SignerInfo {
//	        version 1, issuerAndSerialNumber, sha256,
//	        rsaEncryption, signature } } }     -- no signed attributes
func signedData(cert *x509.Certificate, signature []byte) []byte {
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		panic(fmt.Sprintf("BUG: marshalling serial number: %v", err))
	}
	signer := tlv(tagSequence,
		[]byte{tagInteger, 1, 1},
		tlv(tagSequence, cert.RawIssuer, serial),
		algID(oidSHA256),
		algID(oidRSAEncryption),
		tlv(tagOctets, signature))
	return tlv(tagSequence,
		[]byte{tagInteger, 1, 1},
		tlv(tagSet, algID(oidSHA256)),
		tlv(tagSequence, oid(oidData)),
		tlv(tagContext0, cert.Raw),
		tlv(tagSet, signer))
}
