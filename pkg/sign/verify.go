package sign

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
)

// The PKCS#7 structures Verify reads, as encoding/asn1 sees them.
type p7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue // [0] EXPLICIT: its Bytes are the inner element
}

type p7SignedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      p7ContentInfo
	Certificates     asn1.RawValue  `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue  `asn1:"optional,tag:1"`
	SignerInfos      []p7SignerInfo `asn1:"set"`
}

type p7SignerInfo struct {
	Version                   int
	IssuerAndSerial           p7IssuerAndSerial
	DigestAlgorithm           pkix.AlgorithmIdentifier
	AuthenticatedAttributes   asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
	UnauthenticatedAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

type p7IssuerAndSerial struct {
	Issuer asn1.RawValue
	Serial asn1.RawValue
}

type p7Attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

type spcIndirectData struct {
	Data   asn1.RawValue
	Digest struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
}

var oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}

// unmarshalAll decodes one DER element into v and refuses trailing bytes.
func unmarshalAll(b []byte, v any, what string) error {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil {
		return fmt.Errorf("signature: %s: %w", what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("signature: %s: %d bytes after it", what, len(rest))
	}
	return nil
}

// Verify checks the Authenticode signature of a signed PE as firmware
// does: one signer, sha256, the image hash it signs equals the hash of pe,
// the messageDigest attribute matches the signed content, the RSA
// signature over the signed attributes verifies with the signer's
// certificate, and that certificate is one of db or signed by one of them
// (validity dates are not checked, as UEFI does not). It returns the
// signer's certificate.
func Verify(pe []byte, db ...*x509.Certificate) (*x509.Certificate, error) {
	im, err := parse(pe)
	if err != nil {
		return nil, err
	}
	if im.certSize == 0 {
		return nil, errors.New("signature: the PE has no certificate table")
	}
	table := pe[im.certOff : im.certOff+im.certSize]
	dwLength := int64(binary.LittleEndian.Uint32(table))
	if dwLength < winCertHdrLen || dwLength > int64(len(table)) {
		return nil, fmt.Errorf("signature: WIN_CERTIFICATE dwLength %d outside the table of %d bytes", dwLength, len(table))
	}
	if rev, typ := binary.LittleEndian.Uint16(table[4:]), binary.LittleEndian.Uint16(table[6:]); rev != winCertRevision || typ != winCertTypePKCS7 {
		return nil, fmt.Errorf("signature: WIN_CERTIFICATE revision %#x type %#x, not %#x %#x", rev, typ, winCertRevision, winCertTypePKCS7)
	}
	var ci p7ContentInfo
	rest, err := asn1.Unmarshal(table[winCertHdrLen:dwLength], &ci)
	if err != nil {
		return nil, fmt.Errorf("signature: ContentInfo: %w", err)
	}
	if len(bytes.Trim(rest, "\x00")) != 0 {
		return nil, fmt.Errorf("signature: %d bytes after the ContentInfo", len(rest))
	}
	if !ci.ContentType.Equal(oidSignedData) || ci.Content.Tag != 0 || ci.Content.Class != asn1.ClassContextSpecific {
		return nil, fmt.Errorf("signature: ContentInfo type %v is not signedData", ci.ContentType)
	}
	var sd p7SignedData
	if err := unmarshalAll(ci.Content.Bytes, &sd, "SignedData"); err != nil {
		return nil, err
	}
	if !sd.ContentInfo.ContentType.Equal(oidSpcIndirectData) {
		return nil, fmt.Errorf("signature: content type %v is not SpcIndirectDataContent", sd.ContentInfo.ContentType)
	}
	indirect := sd.ContentInfo.Content.Bytes
	var idc spcIndirectData
	if err := unmarshalAll(indirect, &idc, "SpcIndirectDataContent"); err != nil {
		return nil, err
	}
	if !idc.Digest.Algorithm.Algorithm.Equal(oidSHA256) {
		return nil, fmt.Errorf("signature: image digest algorithm %v is not sha256", idc.Digest.Algorithm.Algorithm)
	}
	if !bytes.Equal(idc.Digest.Digest, im.digest(pe)) {
		return nil, errors.New("signature: the image hash does not match the signed one (the PE was changed after signing)")
	}
	if len(sd.SignerInfos) != 1 {
		return nil, fmt.Errorf("signature: %d signers, want 1", len(sd.SignerInfos))
	}
	si := sd.SignerInfos[0]
	if !si.DigestAlgorithm.Algorithm.Equal(oidSHA256) {
		return nil, fmt.Errorf("signature: signer digest algorithm %v is not sha256", si.DigestAlgorithm.Algorithm)
	}
	if a := si.DigestEncryptionAlgorithm.Algorithm; !a.Equal(oidRSAEncryption) && !a.Equal(oidSHA256WithRSA) {
		return nil, fmt.Errorf("signature: signature algorithm %v is not RSA", a)
	}
	if len(si.AuthenticatedAttributes.FullBytes) == 0 {
		return nil, errors.New("signature: no signed attributes")
	}
	var attrs []p7Attribute
	if err := unmarshalAll(append([]byte{tagSequence}, si.AuthenticatedAttributes.FullBytes[1:]...), &attrs, "signed attributes"); err != nil {
		return nil, err
	}
	content, err := contents(indirect)
	if err != nil {
		return nil, fmt.Errorf("signature: SpcIndirectDataContent: %w", err)
	}
	md := sha256.Sum256(content)
	var sawType, sawDigest bool
	for _, a := range attrs {
		switch {
		case a.Type.Equal(oidContentType):
			sawType = bytes.Equal(a.Values.Bytes, oid(oidSpcIndirectData))
		case a.Type.Equal(oidMessageDigest):
			sawDigest = bytes.Equal(a.Values.Bytes, tlv(tagOctets, md[:]))
		}
	}
	if !sawType || !sawDigest {
		return nil, errors.New("signature: the contentType or messageDigest attribute does not match the signed content")
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signature: certificates: %w", err)
	}
	var signer *x509.Certificate
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, si.IssuerAndSerial.Issuer.FullBytes) && bytes.Equal(mustMarshal(c.SerialNumber), si.IssuerAndSerial.Serial.FullBytes) {
			signer = c
		}
	}
	if signer == nil {
		return nil, errors.New("signature: the signer's certificate is not in the signature")
	}
	pub, err := rsaKey(signer)
	if err != nil {
		return nil, err
	}
	signed := append([]byte{tagSet}, si.AuthenticatedAttributes.FullBytes[1:]...)
	d := sha256.Sum256(signed)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], si.EncryptedDigest); err != nil {
		return nil, fmt.Errorf("signature: RSA signature of %q does not verify: %w", signer.Subject, err)
	}
	for _, c := range db {
		if bytes.Equal(c.Raw, signer.Raw) || signer.CheckSignatureFrom(c) == nil {
			return signer, nil
		}
	}
	return signer, fmt.Errorf("signature: signer %q is not trusted by the given certificates", signer.Subject)
}
