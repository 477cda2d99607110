package efivar

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestSignatureListEfitools: cert-to-efi-sig-list (efitools) writes the
// same bytes for the same certificate and owner.
func TestSignatureListEfitools(t *testing.T) {
	judge.Need(t, "cert-to-efi-sig-list")
	dir := t.TempDir()
	for _, name := range []string{"PK", "KEK", "db"} {
		_, crt := newKey(t, name).write(t, dir, name)
		out := filepath.Join(dir, name+".esl")
		if o, code := judge.Run(t, nil, "cert-to-efi-sig-list", "-g", testOwner.String(), crt, out); code != 0 {
			t.Fatalf("cert-to-efi-sig-list: exit %d: %s", code, o)
		}
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := SignatureList(testOwner, newKey(t, name).cert.Raw); !bytes.Equal(got, want) {
			t.Errorf("%s: signature list differs from cert-to-efi-sig-list's:\n got %x\nwant %x", name, got, want)
		}
	}
}

// TestAuthVariableEfitools: sign-efi-sig-list (efitools) writes the same
// .auth, byte for byte, for PK signed by PK, KEK by PK and db by KEK.
func TestAuthVariableEfitools(t *testing.T) {
	judge.Need(t, "sign-efi-sig-list")
	dir := t.TempDir()
	pk, kek, db, auth := chain(t)
	for _, v := range []struct {
		name         string
		data, signer *testKey
		signerName   string
	}{{"PK", pk, pk, "PK"}, {"KEK", kek, pk, "PK"}, {"db", db, kek, "KEK"}} {
		key, crt := v.signer.write(t, dir, v.signerName)
		esl := filepath.Join(dir, v.name+".esl")
		if err := os.WriteFile(esl, SignatureList(testOwner, v.data.cert.Raw), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, v.name+".auth")
		if o, code := judge.Run(t, nil, "sign-efi-sig-list", "-t", testTime.Format("2006-01-02 15:04:05"),
			"-g", testOwner.String(), "-k", key, "-c", crt, v.name, esl, out); code != 0 {
			t.Fatalf("sign-efi-sig-list %s: exit %d: %s", v.name, code, o)
		}
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(auth[v.name], want) {
			t.Errorf("%s: .auth differs from sign-efi-sig-list's:\n got %x\nwant %x", v.name, auth[v.name], want)
		}
	}
}

// TestAuthVariableOpenssl: openssl checks each update's PKCS#7
// signature over the bytes UEFI says it covers, and refuses it over
// other bytes.
func TestAuthVariableOpenssl(t *testing.T) {
	judge.Need(t, "openssl")
	dir := t.TempDir()
	pk, kek, _, auth := chain(t)
	for _, v := range []struct {
		name   string
		vendor GUID
		signer *testKey
	}{{"PK", GlobalVariable, pk}, {"KEK", GlobalVariable, pk}, {"db", ImageSecurityDatabase, kek}} {
		a := auth[v.name]
		length := int(binary.LittleEndian.Uint32(a[16:]))
		p7 := a[16+winCertSize : 16+length]
		// openssl reads a ContentInfo; UEFI stores the SignedData alone.
		ci := tlv(tagSequence, oid(oidSignedData), tlv(tagContext0, p7))
		content, err := signedBytes(v.name, v.vendor, AuthAttributes, a[:16], a[16+length:])
		if err != nil {
			t.Fatal(err)
		}
		_, crt := v.signer.write(t, dir, "signer-"+v.name)
		sig, good, bad := filepath.Join(dir, v.name+".p7"), filepath.Join(dir, v.name+".content"), filepath.Join(dir, v.name+".bad")
		for p, b := range map[string][]byte{sig: ci, good: content, bad: append(append([]byte(nil), content...), 0)} {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"smime", "-verify", "-binary", "-inform", "DER", "-in", sig, "-noverify", "-certfile", crt, "-out", os.DevNull}
		if o, code := judge.Run(t, nil, "openssl", append(args, "-content", good)...); code != 0 || !strings.Contains(o, "Verification successful") {
			t.Errorf("%s: openssl smime -verify: exit %d: %s", v.name, code, o)
		}
		if o, code := judge.Run(t, nil, "openssl", append(args, "-content", bad)...); code == 0 {
			t.Errorf("%s: openssl verified the signature over other bytes: %s", v.name, o)
		}
	}
}
