package sign

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// The PKCS#7 structures Signatures reads, as encoding/asn1 sees them.
type p7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue // [0] EXPLICIT: its Bytes are the inner element
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
// does, on what Signatures reads: exactly one signature, sha256, valid
// (the image hash it signs is the hash of pe, the messageDigest attribute
// matches the signed content, the signature over the signed attributes
// verifies with the signer's certificate), and trusted: its chain reaches
// one of db (validity dates are not checked, as UEFI does not). It returns
// the signer's certificate.
func Verify(pe []byte, db ...*x509.Certificate) (*x509.Certificate, error) {
	sigs, err := Signatures(pe)
	if err != nil {
		return nil, err
	}
	switch {
	case len(sigs) == 0:
		return nil, errors.New("signature: the PE has no certificate table")
	case len(sigs) != 1:
		return nil, fmt.Errorf("signature: %d signatures, want 1", len(sigs))
	}
	s := sigs[0]
	if !s.Valid {
		return nil, fmt.Errorf("signature: %s", s.Reason)
	}
	if s.DigestAlgorithm != "sha256" {
		return nil, fmt.Errorf("signature: digest algorithm %s is not sha256", s.DigestAlgorithm)
	}
	if !s.Trusted(db...) {
		return s.Signer, fmt.Errorf("signature: signer %q is not trusted by the given certificates", s.Signer.Subject)
	}
	return s.Signer, nil
}
