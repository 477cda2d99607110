package sign

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// testKey is an RSA key with a self-signed db certificate, made at test
// time (no private key is committed).
type testKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

var (
	keysMu sync.Mutex
	keys   = map[int]*testKey{}
)

// newKey returns the process's RSA key of the given size with its
// self-signed certificate (CN=kiln test db), made once.
func newKey(t testing.TB, bits int) *testKey {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k := keys[bits]; k != nil {
		return k
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(0x6b696c6e),
		Subject:               pkix.Name{CommonName: "kiln test db"},
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
	k := &testKey{key, cert}
	keys[bits] = k
	return k
}

// files writes the key and certificate as PEM into dir and returns their
// paths.
func (k *testKey) files(t testing.TB, dir string) (keyPath, certPath string) {
	t.Helper()
	p8, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, certPath = filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	write(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
	write(t, certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw}))
	return keyPath, certPath
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// opaqueSigner holds an RSA key and exposes only Public and Sign: an HSM
// stand-in whose private key the signing code cannot reach.
type opaqueSigner struct {
	sign func(digest []byte, opts crypto.SignerOpts) ([]byte, error)
	pub  crypto.PublicKey
}

func newOpaque(k *rsa.PrivateKey) crypto.Signer {
	return opaqueSigner{
		sign: func(d []byte, o crypto.SignerOpts) ([]byte, error) { return k.Sign(rand.Reader, d, o) },
		pub:  k.Public(),
	}
}

func (o opaqueSigner) Public() crypto.PublicKey { return o.pub }
func (o opaqueSigner) Sign(_ io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.sign(d, opts)
}

// Debian's PE binaries, made by other tools: systemd-boot and the UKI stub
// (unsigned) and the kernel (signed by Debian).
type fixture struct{ name, deb, glob string }

var fixtures = []fixture{
	{"systemd-boot", testkit.DebSystemdBoot, "./usr/lib/systemd/boot/efi/systemd-bootx64.efi"},
	{"stub", testkit.DebSystemdBoot, "./usr/lib/systemd/boot/efi/linuxx64.efi.stub"},
	{"kernel", testkit.DebKernel, "./boot/vmlinuz-*"},
}

var (
	fixMu    sync.Mutex
	fixCache = map[string][]byte{}
)

// load extracts the fixture's file from its .deb with dpkg-deb and tar.
func (f fixture) load(t testing.TB) []byte {
	t.Helper()
	fixMu.Lock()
	defer fixMu.Unlock()
	if b, ok := fixCache[f.name]; ok {
		return b
	}
	deb := testkit.FindDeb(t, f.deb)
	judge.Need(t, "dpkg-deb", "tar")
	out := filepath.Join(t.TempDir(), "pe")
	msg, code := judge.Run(t, nil, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO --wildcards "$2" > "$3"`, "sh", deb, f.glob, out)
	if code != 0 {
		t.Fatalf("extracting %s from %s: %s", f.glob, deb, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1024 {
		t.Fatalf("%s from %s: only %d bytes", f.glob, deb, len(b))
	}
	fixCache[f.name] = b
	return b
}
