package testkit

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// SigningKey is an RSA key with a self-signed code-signing certificate,
// made at test time: no private key is ever committed.
type SigningKey struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

var (
	keysMu sync.Mutex
	keys   = map[string]*SigningKey{}
)

// NewSigningKey returns the process's RSA key of bits named cn (the
// certificate's CN is "kiln test CN"), made on first use: tests that ask
// for the same name share it, and RSA key generation (seconds at 4096
// bits) is paid once.
func NewSigningKey(t testing.TB, bits int, cn string) *SigningKey {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	id := fmt.Sprint(bits, "/", cn)
	if k := keys[id]; k != nil {
		return k
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(0x6b696c6e00 + len(keys))),
		Subject:               pkix.Name{CommonName: "kiln test " + cn},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2049, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	k := &SigningKey{Key: key, Cert: cert}
	keys[id] = k
	return k
}

// CertPEM is the certificate as PEM.
func (k *SigningKey) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw})
}

// Write writes the key (PKCS#8 PEM, mode 0600) and the certificate (PEM)
// into dir (made if missing) as NAME.key and NAME.crt and returns their
// paths.
func (k *SigningKey) Write(t testing.TB, dir, name string) (keyPath, certPath string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, certPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".crt")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, k.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}
