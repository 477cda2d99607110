package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/efivar"
)

const keysOwner = "6b696c6e-6b65-4973-8000-0123456789ab"

// readPEM returns the DER of the one PEM block of type typ in file.
func readPEM(t *testing.T, file, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: want one PEM %s block", file, typ)
	}
	return blk.Bytes
}

// generatedKeys runs kiln keys generate into a new folder and returns it.
func generatedKeys(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	so, se, code := kiln(t, t.TempDir(), []string{"SOURCE_DATE_EPOCH="},
		append([]string{"keys", "generate", dir, "--epoch", "1700000000", "--owner", keysOwner}, args...)...)
	if code != 0 {
		t.Fatalf("kiln keys generate: exit %d\n%s%s", code, so, se)
	}
	return dir
}

// TestKeysGenerate checks every file kiln keys generate writes: modes,
// keys matching certificates, names and validity, the lists, and the
// chain of the updates (PK.auth and KEK.auth verify with PK.crt and not
// with KEK.crt, db.auth with KEK.crt and not with PK.crt); then that
// everything but the keys is determined by the keys, epoch and owner.
func TestKeysGenerate(t *testing.T) {
	dir := generatedKeys(t, "--name", "Example Corp", "--bits", "3072")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := "KEK.auth KEK.crt KEK.esl KEK.key PK.auth PK.crt PK.esl PK.key db.auth db.crt db.esl db.key"; strings.Join(names, " ") != want {
		t.Fatalf("files %v, want %s", names, want)
	}
	owner, _ := efivar.ParseGUID(keysOwner)
	epoch := time.Unix(1700000000, 0).UTC()
	keys := map[string]*rsa.PrivateKey{}
	certs := map[string]*x509.Certificate{}
	for _, v := range []string{"PK", "KEK", "db"} {
		fi, err := os.Stat(filepath.Join(dir, v+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: mode %v, want 0600", v, fi.Mode().Perm())
		}
		k, err := x509.ParsePKCS8PrivateKey(readPEM(t, filepath.Join(dir, v+".key"), "PRIVATE KEY"))
		if err != nil {
			t.Fatal(err)
		}
		key, ok := k.(*rsa.PrivateKey)
		if !ok || key.N.BitLen() != 3072 {
			t.Fatalf("%s.key: %T, want a 3072-bit RSA key", v, k)
		}
		cert, err := x509.ParseCertificate(readPEM(t, filepath.Join(dir, v+".crt"), "CERTIFICATE"))
		if err != nil {
			t.Fatal(err)
		}
		if !key.PublicKey.Equal(cert.PublicKey) {
			t.Errorf("%s.crt does not hold %s.key's public key", v, v)
		}
		if err := cert.CheckSignatureFrom(cert); err != nil {
			t.Errorf("%s.crt is not self-signed: %v", v, err)
		}
		if cert.Subject.CommonName != "Example Corp "+v || !cert.NotBefore.Equal(epoch) || !cert.NotAfter.Equal(epoch.AddDate(10, 0, 0)) {
			t.Errorf("%s.crt: CN %q, valid %v to %v", v, cert.Subject.CommonName, cert.NotBefore, cert.NotAfter)
		}
		esl, err := os.ReadFile(filepath.Join(dir, v+".esl"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(esl, efivar.SignatureList(owner, cert.Raw)) {
			t.Errorf("%s.esl is not the signature list of %s.crt owned by %s", v, v, keysOwner)
		}
		keys[v], certs[v] = key, cert
	}
	for _, c := range []struct {
		name, signer, other string
		vendor              efivar.GUID
	}{{"PK", "PK", "KEK", efivar.GlobalVariable}, {"KEK", "PK", "KEK", efivar.GlobalVariable}, {"db", "KEK", "PK", efivar.ImageSecurityDatabase}} {
		auth, err := os.ReadFile(filepath.Join(dir, c.name+".auth"))
		if err != nil {
			t.Fatal(err)
		}
		u, err := efivar.Verify(auth, c.name, c.vendor, efivar.AuthAttributes, certs[c.signer])
		if err != nil {
			t.Errorf("%s.auth with %s.crt: %v", c.name, c.signer, err)
			continue
		}
		if !u.Time.Equal(epoch) || !bytes.Equal(u.Data, efivar.SignatureList(owner, certs[c.name].Raw)) {
			t.Errorf("%s.auth: timestamp %v, or its list is not %s.esl", c.name, u.Time, c.name)
		}
		if _, err := efivar.Verify(auth, c.name, c.vendor, efivar.AuthAttributes, certs[c.other]); err == nil {
			t.Errorf("%s.auth verifies with %s.crt", c.name, c.other)
		}
		// Deterministic given the keys: the certificate and the update
		// made again from the key files are the same bytes.
		cert, err := selfSigned(keys[c.name], "Example Corp "+c.name, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cert.Raw, certs[c.name].Raw) {
			t.Errorf("%s.crt: made again from %s.key, differs", c.name, c.name)
		}
		again, err := efivar.AuthVariable(c.name, c.vendor, efivar.AuthAttributes, epoch, efivar.SignatureList(owner, cert.Raw), keys[c.signer], certs[c.signer])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, auth) {
			t.Errorf("%s.auth: made again from the keys, differs", c.name)
		}
	}
}

// TestKeysGenerateEfitools: efitools, given the generated keys and
// certificates, writes the same .esl and .auth files, byte for byte.
func TestKeysGenerateEfitools(t *testing.T) {
	judge.Need(t, "cert-to-efi-sig-list", "sign-efi-sig-list")
	dir := generatedKeys(t)
	out := t.TempDir()
	for _, c := range []struct{ name, signer string }{{"PK", "PK"}, {"KEK", "PK"}, {"db", "KEK"}} {
		esl, auth := filepath.Join(out, c.name+".esl"), filepath.Join(out, c.name+".auth")
		if o, code := judge.Run(t, nil, "cert-to-efi-sig-list", "-g", keysOwner, filepath.Join(dir, c.name+".crt"), esl); code != 0 {
			t.Fatalf("cert-to-efi-sig-list: exit %d: %s", code, o)
		}
		if o, code := judge.Run(t, nil, "sign-efi-sig-list", "-t", "2023-11-14 22:13:20", "-g", keysOwner,
			"-k", filepath.Join(dir, c.signer+".key"), "-c", filepath.Join(dir, c.signer+".crt"), c.name, esl, auth); code != 0 {
			t.Fatalf("sign-efi-sig-list: exit %d: %s", code, o)
		}
		for _, ext := range []string{".esl", ".auth"} {
			want, err := os.ReadFile(filepath.Join(out, c.name+ext))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, c.name+ext))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s%s differs from efitools'", c.name, ext)
			}
		}
	}
}

// TestKeysGenerateRefuses: existing keys are never overwritten (not
// even one file of the set, and nothing else is written then), and bad
// flags are usage errors.
func TestKeysGenerateRefuses(t *testing.T) {
	dir := generatedKeys(t)
	before := map[string]string{}
	for _, f := range keyFiles {
		before[f] = judge.SHA256File(t, filepath.Join(dir, f))
	}
	_, se, code := kiln(t, dir, []string{"SOURCE_DATE_EPOCH=1"}, "keys", "generate", dir)
	if code != exitFailure || !strings.Contains(se, "exists") {
		t.Errorf("second generate: exit %d, %q; want %d and the file that exists", code, se, exitFailure)
	}
	for _, f := range keyFiles {
		if judge.SHA256File(t, filepath.Join(dir, f)) != before[f] {
			t.Errorf("%s changed", f)
		}
	}

	one := t.TempDir()
	if err := os.WriteFile(filepath.Join(one, "db.auth"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, se, code := kiln(t, one, nil, "keys", "generate", one, "--epoch", "0"); code != exitFailure || !strings.Contains(se, "db.auth exists") {
		t.Errorf("generate over db.auth: exit %d, %q", code, se)
	}
	if ents, _ := os.ReadDir(one); len(ents) != 1 {
		t.Errorf("generate over db.auth wrote %d files beside it", len(ents)-1)
	}

	for _, args := range [][]string{
		{"--epoch", "1", "--bits", "1024"},
		{"--epoch", "1", "--owner", "not-a-guid"},
		{"--epoch", "1", "--name", ""},
		{"--epoch", "-5"},
		{}, // no epoch, no SOURCE_DATE_EPOCH
	} {
		out := filepath.Join(t.TempDir(), "k")
		if _, se, code := kiln(t, t.TempDir(), []string{"SOURCE_DATE_EPOCH="}, append([]string{"keys", "generate", out}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, se)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: %s made", args, out)
		}
	}
}

// TestKeysGenerateOpenssl: openssl, trusting only the signer's
// certificate as a CA (no -noverify), accepts each update's PKCS#7
// signature over the bytes UEFI says it covers: PK.auth and KEK.auth
// with PK.crt, db.auth with KEK.crt; and refuses db.auth with PK.crt.
func TestKeysGenerateOpenssl(t *testing.T) {
	judge.Need(t, "openssl")
	dir := generatedKeys(t)
	out := t.TempDir()
	for _, c := range []struct {
		name, signer string
		vendor       efivar.GUID
		ok           bool
	}{{"PK", "PK", efivar.GlobalVariable, true}, {"KEK", "PK", efivar.GlobalVariable, true},
		{"db", "KEK", efivar.ImageSecurityDatabase, true}, {"db", "PK", efivar.ImageSecurityDatabase, false}} {
		auth, err := os.ReadFile(filepath.Join(dir, c.name+".auth"))
		if err != nil {
			t.Fatal(err)
		}
		n := int(binary.LittleEndian.Uint32(auth[16:]))
		p7, data := auth[40:16+n], auth[16+n:]
		// openssl reads a ContentInfo: SEQUENCE { signedData, [0] SignedData }.
		oid := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}
		inner := append([]byte{0xa0, 0x82, byte(len(p7) >> 8), byte(len(p7))}, p7...)
		body := append(oid, inner...)
		ci := append([]byte{0x30, 0x82, byte(len(body) >> 8), byte(len(body))}, body...)
		var content []byte
		for _, r := range c.name {
			content = append(content, byte(r), 0) // UTF-16LE of an ASCII name
		}
		content = append(content, c.vendor[:]...)
		content = binary.LittleEndian.AppendUint32(content, efivar.AuthAttributes)
		content = append(append(content, auth[:16]...), data...)
		sig, cont := filepath.Join(out, c.name+".p7"), filepath.Join(out, c.name+".content")
		if err := os.WriteFile(sig, ci, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cont, content, 0o644); err != nil {
			t.Fatal(err)
		}
		o, code := judge.Run(t, nil, "openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", cont,
			"-CAfile", filepath.Join(dir, c.signer+".crt"), "-purpose", "any", "-out", os.DevNull)
		if got := code == 0 && strings.Contains(o, "Verification successful"); got != c.ok {
			t.Errorf("%s.auth with %s.crt: exit %d, want success %v: %s", c.name, c.signer, code, c.ok, o)
		}
	}
}
