package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	_ "crypto/sha1" // image hashes of older signatures
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
)

// Bounds on what Signatures reads from a hostile certificate table, each
// checked before anything is allocated from it.
const (
	// MaxSignatures bounds the signatures of one PE: WIN_CERTIFICATE
	// entries and nested signatures together.
	MaxSignatures = 16
	maxNesting    = 4  // nested signatures inside nested signatures
	maxCerts      = 64 // certificates read from one SignedData
	maxSigners    = 16 // SignerInfos looked at in one SignedData (Authenticode has one)
)

var (
	oidNestedSignature = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}
	oidSHA1            = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA384          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// SignatureInfo is one Authenticode signature of a PE as Signatures reads
// it: who signed, with which certificates, and whether it is valid.
type SignatureInfo struct {
	// Entry is the WIN_CERTIFICATE entry of the certificate table the
	// signature is in, from 0.
	Entry int
	// Nested is 0 for the entry's own signature, n for a signature n
	// levels down in nested-signature attributes (1.3.6.1.4.1.311.2.4.1,
	// as signtool /as and Microsoft's dual-signed shims carry them).
	Nested int
	// DigestAlgorithm is the image hash's algorithm: sha1, sha256,
	// sha384 or sha512 (or the OID of one Signatures does not know).
	DigestAlgorithm string
	// Signer is the certificate the SignerInfo names, nil when the
	// signature does not carry it.
	Signer *x509.Certificate
	// Chain is the signer, then its issuer, its issuer's issuer and so on
	// as far as the signature's certificates go (each checked to sign the
	// one before).
	Chain []*x509.Certificate
	// Certificates are all the certificates of the SignedData, in its
	// order.
	Certificates []*x509.Certificate
	// Valid: the image hash the signature names is the file's, the
	// messageDigest attribute is that of the signed content, and the
	// signature over the signed attributes verifies with the signer's
	// certificate (self-consistent: whom to trust is Trusted's question).
	Valid bool
	// Reason says why the signature is not valid; empty when it is.
	Reason string
}

// Trusted reports whether s is valid and its chain reaches one of db: a
// certificate of the chain is one of them or is signed by one of them, as
// firmware checks db (validity dates and key usages are not checked, as
// UEFI does not).
func (s *SignatureInfo) Trusted(db ...*x509.Certificate) bool {
	if !s.Valid {
		return false
	}
	for _, c := range s.Chain {
		for _, d := range db {
			if bytes.Equal(c.Raw, d.Raw) || issuedBy(c, d) {
				return true
			}
		}
	}
	return false
}

// issuedBy reports whether parent's key signed c and c names parent as its
// issuer. It is CheckSignatureFrom without the CA constraints, which
// firmware does not check either.
func issuedBy(c, parent *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// p7SignedDataAny is SignedData with its SignerInfos left raw, so that
// their number is bounded before they are decoded.
type p7SignedDataAny struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      p7ContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue
}

// p7SignerInfoAny is a SignerInfo whose signer identifier may be an
// IssuerAndSerialNumber (version 1) or a [0] SubjectKeyIdentifier
// (version 3).
type p7SignerInfoAny struct {
	Version                   int
	SID                       asn1.RawValue
	DigestAlgorithm           pkix.AlgorithmIdentifier
	AuthenticatedAttributes   asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
	UnauthenticatedAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

// Signatures returns every Authenticode signature of pe: each PKCS#7
// entry of its certificate table and the signatures nested in each, in
// that order, with who signed and whether each is valid. A PE without a
// certificate table has none. It returns an error when pe's headers or
// its certificate table's entries cannot be read; a signature that cannot
// be decoded is returned, not valid, with the reason. Every length is
// bounded against the table, and at most MaxSignatures are read.
func Signatures(pe []byte) ([]SignatureInfo, error) {
	im, err := parse(pe)
	if err != nil {
		return nil, err
	}
	if im.certSize == 0 {
		return nil, nil
	}
	r := &sigReader{pe: pe, im: im, hashes: map[crypto.Hash][]byte{}}
	table := pe[im.certOff : im.certOff+im.certSize]
	for off, entry := 0, 0; off < len(table); entry++ {
		left := table[off:]
		if len(bytes.Trim(left, "\x00")) == 0 {
			break // padding after the last entry
		}
		if len(left) < winCertHdrLen {
			return r.sigs, fmt.Errorf("signature table: entry %d at %#x: %d bytes left, shorter than a WIN_CERTIFICATE header", entry, off, len(left))
		}
		dwLength := int64(binary.LittleEndian.Uint32(left))
		if dwLength < winCertHdrLen || dwLength > int64(len(left)) {
			return r.sigs, fmt.Errorf("signature table: entry %d at %#x: dwLength %d outside the %d bytes left", entry, off, dwLength, len(left))
		}
		if len(r.sigs) >= MaxSignatures {
			return r.sigs, fmt.Errorf("signature table: more than %d signatures", MaxSignatures)
		}
		rev, typ := binary.LittleEndian.Uint16(left[4:]), binary.LittleEndian.Uint16(left[6:])
		if rev != winCertRevision || typ != winCertTypePKCS7 {
			r.sigs = append(r.sigs, SignatureInfo{Entry: entry,
				Reason: fmt.Sprintf("WIN_CERTIFICATE revision %#x type %#x, not %#x %#x (PKCS#7 SignedData)", rev, typ, winCertRevision, winCertTypePKCS7)})
		} else {
			r.signedData(left[winCertHdrLen:dwLength], entry, 0, true)
		}
		off += roundUp8(int(dwLength))
	}
	return r.sigs, nil
}

// sigReader collects the signatures of one PE.
type sigReader struct {
	pe     []byte
	im     *image
	hashes map[crypto.Hash][]byte // the image hash by algorithm, computed once each
	sigs   []SignatureInfo
}

func (r *sigReader) imageHash(h crypto.Hash) []byte {
	if d, ok := r.hashes[h]; ok {
		return d
	}
	d := r.im.hash(r.pe, h.New())
	r.hashes[h] = d
	return d
}

// signedData reads one ContentInfo holding a SignedData (padding zeros
// after it allowed where padded is set: a WIN_CERTIFICATE's), appends its
// signature, then those nested in it.
func (r *sigReader) signedData(b []byte, entry, depth int, padded bool) {
	if len(r.sigs) >= MaxSignatures {
		return
	}
	info := SignatureInfo{Entry: entry, Nested: depth}
	idx := len(r.sigs)
	r.sigs = append(r.sigs, info)
	nested, nerr, err := r.check(&info, b, padded)
	if err != nil {
		info.Reason = err.Error()
	} else {
		info.Valid = true
	}
	r.sigs[idx] = info
	for _, n := range nested {
		if depth+1 > maxNesting {
			if len(r.sigs) < MaxSignatures {
				r.sigs = append(r.sigs, SignatureInfo{Entry: entry, Nested: depth + 1, Reason: fmt.Sprintf("nested more than %d deep", maxNesting)})
			}
			continue
		}
		r.signedData(n, entry, depth+1, false)
	}
	if nerr != nil && len(r.sigs) < MaxSignatures {
		r.sigs = append(r.sigs, SignatureInfo{Entry: entry, Nested: depth + 1, Reason: nerr.Error()})
	}
}

// check fills info from one ContentInfo and returns the nested
// signatures' ContentInfos (and why the rest of them cannot be read), and
// why it is not valid (nil when it is).
func (r *sigReader) check(info *SignatureInfo, b []byte, padded bool) (nested [][]byte, nerr, err error) {
	var ci p7ContentInfo
	rest, err := asn1.Unmarshal(b, &ci)
	if err != nil {
		return nil, nil, fmt.Errorf("ContentInfo: %w", err)
	}
	if len(rest) != 0 && (!padded || len(bytes.Trim(rest, "\x00")) != 0) {
		return nil, nil, fmt.Errorf("%d bytes after the ContentInfo", len(rest))
	}
	if !ci.ContentType.Equal(oidSignedData) || ci.Content.Tag != 0 || ci.Content.Class != asn1.ClassContextSpecific {
		return nil, nil, fmt.Errorf("ContentInfo type %v is not signedData", ci.ContentType)
	}
	var sd p7SignedDataAny
	if err := unmarshalAll(ci.Content.Bytes, &sd, "SignedData"); err != nil {
		return nil, nil, err
	}
	// The certificates, each on its own: one Go cannot read does not hide
	// the others.
	unread := 0
	for rest := sd.Certificates.Bytes; len(rest) > 0; {
		if len(info.Certificates)+unread >= maxCerts {
			return nil, nil, fmt.Errorf("more than %d certificates", maxCerts)
		}
		var rv asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &rv); err != nil {
			return nil, nil, fmt.Errorf("certificates: %w", err)
		}
		c, err := x509.ParseCertificate(rv.FullBytes)
		if err != nil {
			unread++ // an attribute certificate, or one Go refuses
			continue
		}
		info.Certificates = append(info.Certificates, c)
	}
	var signers []p7SignerInfoAny
	for rest := sd.SignerInfos.Bytes; len(rest) > 0; {
		if len(signers) >= maxSigners {
			return nil, nil, fmt.Errorf("more than %d SignerInfos", maxSigners)
		}
		var si p7SignerInfoAny
		if rest, err = asn1.Unmarshal(rest, &si); err != nil {
			return nil, nil, fmt.Errorf("SignerInfo %d: %w", len(signers), err)
		}
		signers = append(signers, si)
	}
	if sd.SignerInfos.Tag != asn1.TagSet || len(signers) != 1 {
		return nil, nil, fmt.Errorf("%d SignerInfos, Authenticode has one", len(signers))
	}
	si := signers[0]
	info.Signer = findSigner(info.Certificates, si.SID)
	if info.Signer != nil {
		info.Chain = chain(info.Signer, info.Certificates)
	}
	nested, nerr = nestedSignatures(si.UnauthenticatedAttributes)
	fail := func(err error) ([][]byte, error, error) { return nested, nerr, err }

	if !sd.ContentInfo.ContentType.Equal(oidSpcIndirectData) {
		return fail(fmt.Errorf("content type %v is not SpcIndirectDataContent", sd.ContentInfo.ContentType))
	}
	indirect := sd.ContentInfo.Content.Bytes
	var idc spcIndirectData
	if err := unmarshalAll(indirect, &idc, "SpcIndirectDataContent"); err != nil {
		return fail(err)
	}
	imgHash, name := hashOf(idc.Digest.Algorithm.Algorithm)
	info.DigestAlgorithm = name
	if imgHash == 0 {
		return fail(fmt.Errorf("image digest algorithm %v is not one of sha1, sha256, sha384, sha512", idc.Digest.Algorithm.Algorithm))
	}
	if got := r.imageHash(imgHash); !bytes.Equal(idc.Digest.Digest, got) {
		return fail(fmt.Errorf("image hash mismatch: the signature holds %s %x, the file's is %x (the PE was changed after signing)", name, idc.Digest.Digest, got))
	}
	if info.Signer == nil {
		return fail(errors.New("the signer's certificate is not in the signature"))
	}
	attrHash, aname := hashOf(si.DigestAlgorithm.Algorithm)
	if attrHash == 0 {
		return fail(fmt.Errorf("signer digest algorithm %v is not one of sha1, sha256, sha384, sha512", si.DigestAlgorithm.Algorithm))
	}
	if len(si.AuthenticatedAttributes.FullBytes) == 0 {
		return fail(errors.New("no signed attributes"))
	}
	var attrs []p7Attribute
	if err := unmarshalAll(append([]byte{tagSequence}, si.AuthenticatedAttributes.FullBytes[1:]...), &attrs, "signed attributes"); err != nil {
		return fail(err)
	}
	content, err := contents(indirect)
	if err != nil {
		return fail(fmt.Errorf("SpcIndirectDataContent: %w", err))
	}
	h := attrHash.New()
	h.Write(content)
	md := h.Sum(nil)
	var sawType, sawDigest bool
	for _, a := range attrs {
		switch {
		case a.Type.Equal(oidContentType):
			sawType = bytes.Equal(a.Values.Bytes, oid(oidSpcIndirectData))
		case a.Type.Equal(oidMessageDigest):
			sawDigest = bytes.Equal(a.Values.Bytes, tlv(tagOctets, md))
		}
	}
	if !sawType {
		return fail(errors.New("the contentType attribute is not SpcIndirectDataContent"))
	}
	if !sawDigest {
		return fail(fmt.Errorf("the messageDigest attribute is not the %s of the signed content", aname))
	}
	h = attrHash.New()
	h.Write([]byte{tagSet})
	h.Write(si.AuthenticatedAttributes.FullBytes[1:])
	d := h.Sum(nil)
	switch pub := info.Signer.PublicKey.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, attrHash, d, si.EncryptedDigest); err != nil {
			return fail(fmt.Errorf("RSA signature verification failed with %q's key: %w", info.Signer.Subject.CommonName, err))
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, d, si.EncryptedDigest) {
			return fail(fmt.Errorf("ECDSA signature verification failed with %q's key", info.Signer.Subject.CommonName))
		}
	default:
		return fail(fmt.Errorf("signer's key is %T, neither RSA nor ECDSA", pub))
	}
	return nested, nerr, nil
}

// nestedSignatures returns the ContentInfos of the nested-signature
// attributes among the unsigned attributes ua.
func nestedSignatures(ua asn1.RawValue) ([][]byte, error) {
	if len(ua.FullBytes) == 0 {
		return nil, nil
	}
	var attrs []p7Attribute
	if err := unmarshalAll(append([]byte{tagSequence}, ua.FullBytes[1:]...), &attrs, "unsigned attributes"); err != nil {
		return nil, err
	}
	var out [][]byte
	for _, a := range attrs {
		if !a.Type.Equal(oidNestedSignature) {
			continue
		}
		for rest := a.Values.Bytes; len(rest) > 0; {
			if len(out) >= MaxSignatures {
				return out, fmt.Errorf("more than %d nested signatures", MaxSignatures)
			}
			var rv asn1.RawValue
			var err error
			if rest, err = asn1.Unmarshal(rest, &rv); err != nil {
				return out, fmt.Errorf("nested signature: %w", err)
			}
			out = append(out, rv.FullBytes)
		}
	}
	return out, nil
}

// findSigner is the certificate of certs that sid (IssuerAndSerialNumber
// or [0] SubjectKeyIdentifier) names, or nil.
func findSigner(certs []*x509.Certificate, sid asn1.RawValue) *x509.Certificate {
	switch {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence:
		var ias struct {
			Issuer asn1.RawValue
			Serial *big.Int
		}
		if unmarshalAll(sid.FullBytes, &ias, "IssuerAndSerialNumber") != nil {
			return nil
		}
		for _, c := range certs {
			if bytes.Equal(c.RawIssuer, ias.Issuer.FullBytes) && c.SerialNumber.Cmp(ias.Serial) == 0 {
				return c
			}
		}
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0:
		for _, c := range certs {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, sid.Bytes) {
				return c
			}
		}
	}
	return nil
}

// chain is signer followed by its issuers found among certs, each checked
// to have signed the one before; it stops at a self-issued certificate.
func chain(signer *x509.Certificate, certs []*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{signer}
	for cur := signer; len(out) <= len(certs) && !bytes.Equal(cur.RawIssuer, cur.RawSubject); {
		var next *x509.Certificate
		for _, c := range certs {
			if !in(out, c) && issuedBy(cur, c) {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		out = append(out, next)
		cur = next
	}
	return out
}

func in(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, l := range list {
		if bytes.Equal(l.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// hashOf is the hash an AlgorithmIdentifier's OID names and its name, or
// 0 and the OID.
func hashOf(o asn1.ObjectIdentifier) (crypto.Hash, string) {
	switch {
	case o.Equal(oidSHA256):
		return crypto.SHA256, "sha256"
	case o.Equal(oidSHA1):
		return crypto.SHA1, "sha1"
	case o.Equal(oidSHA384):
		return crypto.SHA384, "sha384"
	case o.Equal(oidSHA512):
		return crypto.SHA512, "sha512"
	}
	return 0, o.String()
}
