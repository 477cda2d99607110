package sign

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// testKey is a 2048 to 4096-bit RSA key with a self-signed db
// certificate (CN "kiln test db"), made at test time by testkit.
type testKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	sk   *testkit.SigningKey
}

// newKey returns the process's RSA key of the given size, made once.
func newKey(t testing.TB, bits int) *testKey {
	t.Helper()
	k := testkit.NewSigningKey(t, bits, "db")
	return &testKey{k.Key, k.Cert, k}
}

// files writes the key and certificate as PEM into dir (db.key, db.crt)
// and returns their paths.
func (k *testKey) files(t testing.TB, dir string) (keyPath, certPath string) {
	t.Helper()
	return k.sk.Write(t, dir, "db")
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
