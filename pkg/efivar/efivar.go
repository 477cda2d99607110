package efivar

import (
	"crypto"
	"crypto/rand" // repro-ok: only for key.Sign, whose RSA PKCS#1 v1.5 signature is deterministic (the reader blinds)
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// GUID is an EFI_GUID as firmware stores it: the first three fields
// little-endian, the last eight bytes as they are.
type GUID [16]byte

// ParseGUID parses the canonical text form
// 01234567-89ab-cdef-0123-456789abcdef (case-insensitive).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("invalid GUID %q: want the form 01234567-89ab-cdef-0123-456789abcdef", s)
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(strings.ReplaceAll(s, "-", ""))); err != nil {
		return g, fmt.Errorf("invalid GUID %q: %w", s, err)
	}
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return g
}

// String is the canonical text form, lower case.
func (g GUID) String() string {
	b := [16]byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]}
	copy(b[8:], g[8:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// GUIDs of the UEFI specification.
var (
	GlobalVariable        = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c") // EFI_GLOBAL_VARIABLE: PK, KEK
	ImageSecurityDatabase = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f") // EFI_IMAGE_SECURITY_DATABASE_GUID: db, dbx
	CertX509              = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072") // EFI_CERT_X509_GUID
	CertTypePKCS7         = mustGUID("4aafd29d-68df-49ee-8aa9-347d375665a7") // EFI_CERT_TYPE_PKCS7_GUID
)

// Variable attributes.
const (
	NonVolatile                       = 0x01
	BootServiceAccess                 = 0x02
	RuntimeAccess                     = 0x04
	TimeBasedAuthenticatedWriteAccess = 0x20

	// AuthAttributes are those of PK, KEK and db as sign-efi-sig-list
	// writes them: NV|BS|RT|TIME_BASED_AUTHENTICATED_WRITE_ACCESS (0x27).
	AuthAttributes = NonVolatile | BootServiceAccess | RuntimeAccess | TimeBasedAuthenticatedWriteAccess
)

// WIN_CERTIFICATE values of a WIN_CERTIFICATE_UEFI_GUID.
const (
	winCertRevision = 0x0200 // WIN_CERT_REVISION_2_0
	winCertTypeGUID = 0x0EF1 // WIN_CERT_TYPE_EFI_GUID
)

// Sizes of the fixed parts.
const (
	efiTimeSize  = 16
	winCertSize  = 4 + 2 + 2 + 16 // dwLength, wRevision, wCertificateType, CertType
	sigListSize  = 16 + 4 + 4 + 4 // SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize
	maxCertBytes = 1 << 20        // far beyond any certificate; keeps sizes in a u32
)

// SignatureList returns the EFI_SIGNATURE_LISTs of the DER X.509
// certificates certs, each owned by owner: one list per certificate, as
// cert-to-efi-sig-list writes them.
//
//	EFI_SIGNATURE_LIST {
//	    SignatureType       EFI_CERT_X509_GUID
//	    SignatureListSize   u32  28 + SignatureSize
//	    SignatureHeaderSize u32  0
//	    SignatureSize       u32  16 + len(DER)
//	    EFI_SIGNATURE_DATA { SignatureOwner GUID; SignatureData DER } }
func SignatureList(owner GUID, certs ...[]byte) []byte {
	var out []byte
	for _, der := range certs {
		if len(der) == 0 || len(der) > maxCertBytes {
			panic(fmt.Sprintf("BUG: certificate of %d bytes in a signature list", len(der)))
		}
		sigSize := uint32(16 + len(der))
		out = append(out, CertX509[:]...)
		out = binary.LittleEndian.AppendUint32(out, sigListSize+sigSize)
		out = binary.LittleEndian.AppendUint32(out, 0)
		out = binary.LittleEndian.AppendUint32(out, sigSize)
		out = append(out, owner[:]...)
		out = append(out, der...)
	}
	return out
}

// efiTime encodes ts as an EFI_TIME in UTC, to the second:
//
//	Year u16, Month, Day, Hour, Minute, Second, Pad1 u8,
//	Nanosecond u32, TimeZone i16, Daylight u8, Pad2 u8 (all zero)
func efiTime(ts time.Time) ([]byte, error) {
	u := ts.UTC()
	if u.Year() < 1900 || u.Year() > 9999 {
		return nil, fmt.Errorf("efivar: timestamp %s: year outside 1900 to 9999, which EFI_TIME holds", u.Format(time.RFC3339))
	}
	b := make([]byte, efiTimeSize)
	binary.LittleEndian.PutUint16(b, uint16(u.Year()))
	b[2], b[3], b[4], b[5], b[6] = byte(u.Month()), byte(u.Day()), byte(u.Hour()), byte(u.Minute()), byte(u.Second())
	return b, nil
}

// utf16le is name in UTF-16LE without a terminating NUL.
func utf16le(name string) ([]byte, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("efivar: variable name %q: empty or with a NUL", name)
	}
	var b []byte
	for _, r := range utf16.Encode([]rune(name)) {
		b = binary.LittleEndian.AppendUint16(b, r)
	}
	return b, nil
}

// signedBytes is what the PKCS#7 signature of an update covers:
// VariableName || VendorGuid || Attributes || TimeStamp || data.
func signedBytes(name string, vendor GUID, attrs uint32, ts, data []byte) ([]byte, error) {
	n, err := utf16le(name)
	if err != nil {
		return nil, err
	}
	b := append(n, vendor[:]...)
	b = binary.LittleEndian.AppendUint32(b, attrs)
	b = append(b, ts...)
	return append(b, data...), nil
}

// rsaKey returns cert's RSA public key, refusing other kinds.
func rsaKey(cert *x509.Certificate) (*rsa.PublicKey, error) {
	if cert == nil {
		return nil, errors.New("efivar: no certificate")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("efivar: certificate %q: key is %T, not RSA", cert.Subject, cert.PublicKey)
	}
	if b := pub.N.BitLen(); b < 2048 || b > 4096 {
		return nil, fmt.Errorf("efivar: certificate %q: RSA key of %d bits, not 2048 to 4096", cert.Subject, b)
	}
	return pub, nil
}

// AuthVariable returns the authenticated update that sets the variable
// name of vendor to data with attributes attrs at time ts, signed by key
// whose public half cert holds: EFI_VARIABLE_AUTHENTICATION_2 (EFI_TIME,
// WIN_CERTIFICATE_UEFI_GUID with the detached PKCS#7 SignedData), then
// data. It is the .auth file sign-efi-sig-list writes, byte for byte.
//
// PK and KEK live in GlobalVariable, db and dbx in
// ImageSecurityDatabase; attrs is AuthAttributes for all of them. PK's
// first update is signed by PK itself, KEK's by PK, db's by a KEK.
func AuthVariable(name string, vendor GUID, attrs uint32, ts time.Time, data []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	pub, err := rsaKey(cert)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, errors.New("efivar: no key")
	}
	if kp, ok := key.Public().(*rsa.PublicKey); !ok || !kp.Equal(pub) {
		return nil, fmt.Errorf("efivar: the key is not the one of certificate %q", cert.Subject)
	}
	if attrs&TimeBasedAuthenticatedWriteAccess == 0 {
		return nil, fmt.Errorf("efivar: variable %s: attributes %#x lack TIME_BASED_AUTHENTICATED_WRITE_ACCESS", name, attrs)
	}
	t, err := efiTime(ts)
	if err != nil {
		return nil, err
	}
	msg, err := signedBytes(name, vendor, attrs, t, data)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(msg)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("efivar: signing variable %s: %w", name, err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return nil, fmt.Errorf("efivar: signing variable %s: the signature does not verify with certificate %q: %w", name, cert.Subject, err)
	}
	p7 := signedData(cert, sig)
	out := append([]byte(nil), t...)
	out = binary.LittleEndian.AppendUint32(out, uint32(winCertSize+len(p7)))
	out = binary.LittleEndian.AppendUint16(out, winCertRevision)
	out = binary.LittleEndian.AppendUint16(out, winCertTypeGUID)
	out = append(out, CertTypePKCS7[:]...)
	out = append(out, p7...)
	return append(out, data...), nil
}
