package efivar

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testKey is an RSA key with a self-signed certificate, made at test
// time (no private key is committed).
type testKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

var (
	keysMu sync.Mutex
	keys   = map[string]*testKey{}
)

// newKey returns the process's 2048-bit key named cn (CN "kiln test
// <cn>") with its self-signed certificate, made once.
func newKey(t testing.TB, cn string) *testKey {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k := keys[cn]; k != nil {
		return k
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(0x6b696c6e00 + len(keys))),
		Subject:               pkix.Name{CommonName: "kiln test " + cn},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2049, 12, 31, 0, 0, 0, 0, time.UTC),
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
	k := &testKey{key: key, cert: cert}
	keys[cn] = k
	return k
}

// write writes k's key and certificate as PEM into dir, as
// <name>.key and <name>.crt, and returns their paths.
func (k *testKey) write(t testing.TB, dir, name string) (keyPath, certPath string) {
	t.Helper()
	keyPath, certPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".crt")
	kb := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.key)})
	cb := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw})
	if err := os.WriteFile(keyPath, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, cb, 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}
