package efivar

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"math/big"
	"time"
)

// ASN.1 shapes read by Verify.
type signedDataASN struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      contentInfoASN
	Certificates     asn1.RawValue   `asn1:"optional,tag:0"`
	SignerInfos      []signerInfoASN `asn1:"set"`
}

type contentInfoASN struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

type signerInfoASN struct {
	Version                   int
	IssuerAndSerial           issuerAndSerialASN
	DigestAlgorithm           pkix.AlgorithmIdentifier
	AuthenticatedAttributes   asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	Signature                 []byte
}

type issuerAndSerialASN struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// Update is an authenticated variable update read by Verify.
type Update struct {
	Time   time.Time         // the EFI_TIME, in UTC
	Signer *x509.Certificate // the one of the trusted certificates that signed it
	Data   []byte            // the new value (an EFI_SIGNATURE_LIST for PK, KEK, db)
}

// Verify reads auth, an EFI_VARIABLE_AUTHENTICATION_2 followed by the
// new value, and checks its signature for variable name of vendor with
// attributes attrs against the trusted certificates, as firmware does
// for a self-signed signer: the SignerInfo's issuer and serial number
// must be those of one of trusted, whose key must verify the signature.
// Certificates carried in the SignedData are not trusted. Only the form
// AuthVariable and sign-efi-sig-list write is accepted (sha256 with RSA,
// no signed attributes); anything else is refused, never guessed at.
func Verify(auth []byte, name string, vendor GUID, attrs uint32, trusted ...*x509.Certificate) (*Update, error) {
	if len(auth) < efiTimeSize+winCertSize {
		return nil, fmt.Errorf("efivar: variable %s: %d bytes, shorter than EFI_VARIABLE_AUTHENTICATION_2 (%d)", name, len(auth), efiTimeSize+winCertSize)
	}
	ts := auth[:efiTimeSize]
	if !bytes.Equal(ts[7:], make([]byte, 9)) {
		return nil, fmt.Errorf("efivar: variable %s: EFI_TIME: Pad1, Nanosecond, TimeZone, Daylight or Pad2 not zero", name)
	}
	tm := time.Date(int(binary.LittleEndian.Uint16(ts)), time.Month(ts[2]), int(ts[3]), int(ts[4]), int(ts[5]), int(ts[6]), 0, time.UTC)
	if tm.Month() != time.Month(ts[2]) || tm.Day() != int(ts[3]) || tm.Hour() != int(ts[4]) || tm.Minute() != int(ts[5]) || tm.Second() != int(ts[6]) {
		return nil, fmt.Errorf("efivar: variable %s: EFI_TIME %x is not a valid date", name, ts[:7])
	}
	wc := auth[efiTimeSize:]
	length := binary.LittleEndian.Uint32(wc)
	if length < winCertSize || uint64(length) > uint64(len(wc)) {
		return nil, fmt.Errorf("efivar: variable %s: WIN_CERTIFICATE dwLength %d: not between %d and the %d bytes left", name, length, winCertSize, len(wc))
	}
	if r := binary.LittleEndian.Uint16(wc[4:]); r != winCertRevision {
		return nil, fmt.Errorf("efivar: variable %s: WIN_CERTIFICATE wRevision %#x, not %#x", name, r, winCertRevision)
	}
	if ty := binary.LittleEndian.Uint16(wc[6:]); ty != winCertTypeGUID {
		return nil, fmt.Errorf("efivar: variable %s: WIN_CERTIFICATE wCertificateType %#x, not WIN_CERT_TYPE_EFI_GUID", name, ty)
	}
	if g := GUID(wc[8:24]); g != CertTypePKCS7 {
		return nil, fmt.Errorf("efivar: variable %s: CertType %s, not EFI_CERT_TYPE_PKCS7_GUID", name, g)
	}
	p7, data := wc[winCertSize:length], wc[length:]

	var sd signedDataASN
	rest, err := asn1.Unmarshal(p7, &sd)
	if err != nil {
		return nil, fmt.Errorf("efivar: variable %s: PKCS#7 SignedData: %w", name, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("efivar: variable %s: %d bytes after the PKCS#7 SignedData", name, len(rest))
	}
	if sd.Version != 1 || len(sd.DigestAlgorithms) != 1 || !isAlg(sd.DigestAlgorithms[0], oidSHA256) {
		return nil, fmt.Errorf("efivar: variable %s: PKCS#7 SignedData version %d with %d digest algorithms, want version 1 with sha256", name, sd.Version, len(sd.DigestAlgorithms))
	}
	if _, err := x509.ParseCertificates(sd.Certificates.Bytes); err != nil {
		return nil, fmt.Errorf("efivar: variable %s: PKCS#7 certificates: %w", name, err)
	}
	if !sd.ContentInfo.ContentType.Equal(oidData) || len(sd.ContentInfo.Content.FullBytes) != 0 {
		return nil, fmt.Errorf("efivar: variable %s: PKCS#7 content is not detached data", name)
	}
	if len(sd.SignerInfos) != 1 {
		return nil, fmt.Errorf("efivar: variable %s: %d PKCS#7 signers, want 1", name, len(sd.SignerInfos))
	}
	si := sd.SignerInfos[0]
	if si.Version != 1 {
		return nil, fmt.Errorf("efivar: variable %s: PKCS#7 SignerInfo version %d, want 1", name, si.Version)
	}
	if !isAlg(si.DigestAlgorithm, oidSHA256) || !isAlg(si.DigestEncryptionAlgorithm, oidRSAEncryption) {
		return nil, fmt.Errorf("efivar: variable %s: signer algorithms %v with %v, not sha256 with rsaEncryption", name, si.DigestAlgorithm.Algorithm, si.DigestEncryptionAlgorithm.Algorithm)
	}
	if len(si.AuthenticatedAttributes.FullBytes) != 0 {
		return nil, fmt.Errorf("efivar: variable %s: signed attributes, which kiln does not read", name)
	}
	var signer *x509.Certificate
	for _, c := range trusted {
		if c != nil && bytes.Equal(c.RawIssuer, si.IssuerAndSerial.Issuer.FullBytes) && si.IssuerAndSerial.Serial != nil && c.SerialNumber.Cmp(si.IssuerAndSerial.Serial) == 0 {
			signer = c
			break
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("efivar: variable %s: signed by serial %v, which is none of the %d trusted certificates", name, si.IssuerAndSerial.Serial, len(trusted))
	}
	pub, err := rsaKey(signer)
	if err != nil {
		return nil, err
	}
	msg, err := signedBytes(name, vendor, attrs, ts, data)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], si.Signature); err != nil {
		return nil, fmt.Errorf("efivar: variable %s: signature does not verify with %q: %w", name, signer.Subject, err)
	}
	return &Update{Time: tm, Signer: signer, Data: data}, nil
}

// isAlg reports whether a is the algorithm o with NULL or absent
// parameters.
func isAlg(a pkix.AlgorithmIdentifier, o asn1.ObjectIdentifier) bool {
	p := a.Parameters.FullBytes
	return a.Algorithm.Equal(o) && (len(p) == 0 || bytes.Equal(p, []byte{tagNull, 0}))
}
