package sign

import (
	"crypto"
	"crypto/rand" // repro-ok: only for key.Sign, whose RSA PKCS#1 v1.5 signature is deterministic (the reader blinds)
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key sizes accepted for the signing certificate's RSA key.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// WIN_CERTIFICATE values for an Authenticode signature.
const (
	winCertRevision  = 0x0200 // WIN_CERT_REVISION_2_0
	winCertTypePKCS7 = 0x0002 // WIN_CERT_TYPE_PKCS_SIGNED_DATA
)

// Options change what is signed. The zero value is the reproducible
// default.
type Options struct {
	// SigningTime, when not zero, is written as the PKCS#9 signingTime
	// signed attribute (UTCTime, or GeneralizedTime outside 1950-2049).
	// Zero writes none, so the signature depends on nothing but the
	// image, the key and the certificate. The build passes the spec's
	// epoch here or nothing, never the clock.
	SigningTime time.Time
}

// Request is a prepared signature: everything but the RSA signature
// itself. Digest is what the signer signs, exactly what
// `openssl pkeyutl -sign -inkey KEY -pkeyopt digest:sha256` signs when
// given it as input: sha256 over the DER signed attributes.
type Request struct {
	// Hash is the digest algorithm of Digest and of the signature
	// (crypto.SHA256); the signature is RSA PKCS#1 v1.5.
	Hash crypto.Hash
	// ImageDigest is the Authenticode hash of the image as it is signed
	// (padded to 8 bytes, any previous signature removed).
	ImageDigest []byte
	// SignedAttributes is the DER SET OF the signed attributes.
	SignedAttributes []byte
	// Digest is sha256(SignedAttributes): the bytes to sign.
	Digest []byte

	image    []byte // the unsigned image, padded to 8 bytes
	im       *image
	cert     *x509.Certificate
	indirect []byte // DER SpcIndirectDataContent
}

// rsaKey returns cert's RSA public key, refusing other kinds and sizes.
func rsaKey(cert *x509.Certificate) (*rsa.PublicKey, error) {
	if cert == nil {
		return nil, errors.New("sign: no certificate")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sign: certificate %q: key is %T, not RSA", cert.Subject, cert.PublicKey)
	}
	if b := pub.N.BitLen(); b < minRSABits || b > maxRSABits {
		return nil, fmt.Errorf("sign: certificate %q: RSA key of %d bits, not %d to %d", cert.Subject, b, minRSABits, maxRSABits)
	}
	return pub, nil
}

// Prepare builds the signed attributes for signing pe with cert and
// returns them with their digest; Complete then takes the signature. An
// existing signature of pe is replaced, not kept beside the new one.
// Prepare does not change pe.
func Prepare(pe []byte, cert *x509.Certificate, opts Options) (*Request, error) {
	if _, err := rsaKey(cert); err != nil {
		return nil, err
	}
	im, err := parse(pe)
	if err != nil {
		return nil, err
	}
	if im.certDirAt < 0 {
		return nil, errors.New("pe: NumberOfRvaAndSizes leaves no Certificate Table data directory entry to sign")
	}
	if err := im.contiguous(); err != nil {
		return nil, err
	}
	// The unsigned image: without any previous certificate table, padded
	// with zeros to 8 bytes so the table that follows is aligned. The
	// padding is part of the hashed image, as with sbsign and osslsigncode.
	img := make([]byte, roundUp8(im.hashEnd))
	copy(img, pe[:im.hashEnd])
	clear(img[im.certDirAt : im.certDirAt+8])
	if im, err = parse(img); err != nil {
		return nil, fmt.Errorf("BUG: reparsing the unsigned image: %w", err)
	}
	req := &Request{Hash: crypto.SHA256, image: img, im: im, cert: cert}
	req.ImageDigest = im.digest(img)
	req.indirect = indirectData(req.ImageDigest)
	content, err := contents(req.indirect)
	if err != nil {
		return nil, fmt.Errorf("BUG: SpcIndirectDataContent: %w", err)
	}
	md := sha256.Sum256(content)
	attrs := [][]byte{
		attribute(oidContentType, oid(oidSpcIndirectData)),
		attribute(oidSpcSpOpusInfo, tlv(tagSequence)),
		attribute(oidSpcStatementType, tlv(tagSequence, oid(oidSpcIndividual))),
		attribute(oidMessageDigest, tlv(tagOctets, md[:])),
	}
	if !opts.SigningTime.IsZero() {
		attrs = append(attrs, attribute(oidSigningTime, mustMarshal(opts.SigningTime.UTC())))
	}
	req.SignedAttributes = setOf(tagSet, attrs...)
	d := sha256.Sum256(req.SignedAttributes)
	req.Digest = d[:]
	return req, nil
}

func roundUp8(n int) int { return (n + 7) &^ 7 }

// Complete checks signature (RSA PKCS#1 v1.5 over req.Digest) against the
// certificate's key and returns the signed image: the unsigned image with
// a WIN_CERTIFICATE holding the PKCS#7 SignedData appended, the
// Certificate Table entry pointing at it and the PE checksum updated.
func Complete(req *Request, signature []byte) ([]byte, error) {
	if req == nil || req.im == nil {
		return nil, errors.New("sign: request not made by Prepare")
	}
	pub, err := rsaKey(req.cert)
	if err != nil {
		return nil, err
	}
	if len(signature) != pub.Size() {
		return nil, fmt.Errorf("sign: signature of %d bytes for an RSA key of %d bytes", len(signature), pub.Size())
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, req.Digest, signature); err != nil {
		return nil, fmt.Errorf("sign: the signature does not verify with the key of certificate %q: %w", req.cert.Subject, err)
	}
	p7 := signedData(req, signature)
	tableLen := roundUp8(winCertHdrLen + len(p7))
	out := make([]byte, len(req.image)+tableLen)
	copy(out, req.image)
	wc := out[len(req.image):]
	binary.LittleEndian.PutUint32(wc[0:], uint32(tableLen))
	binary.LittleEndian.PutUint16(wc[4:], winCertRevision)
	binary.LittleEndian.PutUint16(wc[6:], winCertTypePKCS7)
	copy(wc[winCertHdrLen:], p7)
	dir := req.im.certDirAt
	binary.LittleEndian.PutUint32(out[dir:], uint32(len(req.image)))
	binary.LittleEndian.PutUint32(out[dir+4:], uint32(tableLen))
	clear(out[req.im.checksumAt : req.im.checksumAt+4])
	binary.LittleEndian.PutUint32(out[req.im.checksumAt:], checksum(out))
	return out, nil
}

// signedData is the DER ContentInfo of the PKCS#7 SignedData:
//
//	ContentInfo { signedData, [0] SignedData {
//	    version 1, digestAlgorithms { sha256 },
//	    contentInfo { SPC_INDIRECT_DATA, [0] SpcIndirectDataContent },
//	    certificates [0] { cert },
//	    signerInfos { SignerInfo {
//	        version 1, issuerAndSerialNumber, sha256,
//	        authenticatedAttributes [0] IMPLICIT (the signed attributes),
//	        rsaEncryption, signature } } } }
func signedData(req *Request, signature []byte) []byte {
	attrs, err := contents(req.SignedAttributes)
	if err != nil {
		panic(fmt.Sprintf("BUG: signed attributes: %v", err))
	}
	signer := tlv(tagSequence,
		[]byte{tagInteger, 1, 1},
		tlv(tagSequence, req.cert.RawIssuer, mustMarshal(req.cert.SerialNumber)),
		algID(oidSHA256),
		tlv(tagContext0, attrs),
		algID(oidRSAEncryption),
		tlv(tagOctets, signature))
	sd := tlv(tagSequence,
		[]byte{tagInteger, 1, 1},
		tlv(tagSet, algID(oidSHA256)),
		tlv(tagSequence, oid(oidSpcIndirectData), tlv(tagContext0, req.indirect)),
		tlv(tagContext0, req.cert.Raw),
		tlv(tagSet, signer))
	return tlv(tagSequence, oid(oidSignedData), tlv(tagContext0, sd))
}

// Sign signs pe with key, whose public half cert holds: Prepare, the
// signature by key (any crypto.Signer: an HSM's key need not leave it),
// Complete. Signing the same input with the same key and certificate
// gives the same bytes (RSA PKCS#1 v1.5 is deterministic).
func Sign(pe []byte, key crypto.Signer, cert *x509.Certificate, opts Options) ([]byte, error) {
	req, err := Prepare(pe, cert, opts)
	if err != nil {
		return nil, err
	}
	pub, _ := rsaKey(cert)
	kpub, ok := key.Public().(*rsa.PublicKey)
	if !ok || !kpub.Equal(pub) {
		return nil, fmt.Errorf("sign: the key is not the one of certificate %q", cert.Subject)
	}
	sig, err := key.Sign(rand.Reader, req.Digest, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign: signing with the key of %q: %w", cert.Subject, err)
	}
	return Complete(req, sig)
}
