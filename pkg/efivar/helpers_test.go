package efivar

import (
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// testKey is a 2048-bit RSA key with a self-signed certificate (CN
// "kiln test <cn>"), made at test time by testkit.
type testKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	sk   *testkit.SigningKey
}

// newKey returns the process's key named cn, made once.
func newKey(t testing.TB, cn string) *testKey {
	t.Helper()
	k := testkit.NewSigningKey(t, 2048, cn)
	return &testKey{k.Key, k.Cert, k}
}

// write writes k's key and certificate as PEM into dir, as <name>.key
// and <name>.crt, and returns their paths.
func (k *testKey) write(t testing.TB, dir, name string) (keyPath, certPath string) {
	t.Helper()
	return k.sk.Write(t, dir, name)
}
