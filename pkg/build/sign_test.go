package build

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/boot/uefi"
	"github.com/kiln-build/kiln/pkg/sign"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// sbKeys returns the test process's RSA key of bits named name and its
// self-signed certificate as PEM (testkit.NewSigningKey).
func sbKeys(t *testing.T, bits int, name string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k := testkit.NewSigningKey(t, bits, name)
	return k.Key, k.CertPEM()
}

func writeT(t *testing.T, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sbSpec is a parsed spec in dir with boot.secureboot's lines.
func sbSpec(t *testing.T, dir, secureboot string) *spec.Spec {
	t.Helper()
	src := "layers: [{path: root/}]\ndisk:\n  size: 64MiB\n  partitions:\n    - {name: esp, type: esp, size: 32MiB, filesystem: vfat, mount: /boot/efi}\n" +
		"    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}\nboot:\n  loader: uki\n  kernel: /boot/vmlinuz\n  secureboot:\n" + secureboot + "output: {path: out.img}\n"
	p := writeT(t, filepath.Join(dir, "kiln.yaml"), []byte(src))
	s, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLoadSigner: the key and certificate files are read and checked
// before anything is built; each refusal names the file.
func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	k, certPEM := sbKeys(t, 2048, "build db")
	other, _ := sbKeys(t, 2048, "build other")
	writeT(t, filepath.Join(dir, "db.crt"), certPEM)
	writeT(t, filepath.Join(dir, "pkcs1.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	writeT(t, filepath.Join(dir, "pkcs8.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
	writeT(t, filepath.Join(dir, "other.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))
	writeT(t, filepath.Join(dir, "enc.key"), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	writeT(t, filepath.Join(dir, "ec.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	writeT(t, filepath.Join(dir, "small.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))
	writeT(t, filepath.Join(dir, "garbage.crt"), []byte("not a certificate\n"))
	writeT(t, filepath.Join(dir, "sigs.json"), []byte(`{"version":1,"signatures":[]}`))

	for _, key := range []string{"pkcs1.key", "pkcs8.key"} {
		sg, err := loadSigner(sbSpec(t, dir, "    key: "+key+"\n    cert: db.crt\n"), "")
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if sg.key == nil || !k.PublicKey.Equal(sg.key.Public()) {
			t.Errorf("%s: key not read", key)
		}
	}
	for _, tc := range []struct{ sb, sigs, want string }{
		{"    key: other.key\n    cert: db.crt\n", "", "other.key is not the key of certificate " + filepath.Join(dir, "db.crt")},
		{"    key: enc.key\n    cert: db.crt\n", "", filepath.Join(dir, "enc.key") + ": the key is encrypted"},
		{"    key: ec.key\n    cert: db.crt\n", "", filepath.Join(dir, "ec.key") + ": a *ecdsa.PrivateKey key"},
		{"    key: small.key\n    cert: db.crt\n", "", filepath.Join(dir, "small.key") + ": an RSA key of 1024 bits"},
		{"    key: absent.key\n    cert: db.crt\n", "", "absent.key: no such file"},
		{"    key: pkcs1.key\n    cert: garbage.crt\n", "", filepath.Join(dir, "garbage.crt") + ": no PEM CERTIFICATE block"},
		{"    key: pkcs1.key\n    cert: db.crt\n", filepath.Join(dir, "sigs.json"), "signer is inline"},
	} {
		_, err := loadSigner(sbSpec(t, dir, tc.sb), tc.sigs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.sb, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE") {
			t.Errorf("%q: the error quotes key material: %v", tc.sb, err)
		}
	}
	sg, err := loadSigner(sbSpec(t, dir, "    cert: db.crt\n    signer: external\n"), "")
	if err != nil || sg.key != nil || sg.sigs != nil {
		t.Fatalf("external without signatures: %+v, %v", sg, err)
	}
}

// TestReadSignatures: the --signatures file is checked before use.
func TestReadSignatures(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{`{"version":2,"signatures":[]}`, "version 2, want 1"},
		{`{"version":1,"signatures":[{"path":"/a","digest":"00","signature":""},{"path":"/a","digest":"00","signature":""}]}`, "/a is given twice"},
		{`{"version":1,"signatures":[{"digest":"00"}]}`, "signatures[0]: no path"},
		{`{"version":1,"signatures":[],"key":"x"}`, `unknown field "key"`},
		{`not json`, "invalid character"},
	} {
		p := writeT(t, filepath.Join(dir, "sigs.json"), []byte(tc.body))
		if _, err := readSignatures(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want %q naming the file", tc.body, err, tc.want)
		}
	}
	big := writeT(t, filepath.Join(dir, "big.json"), bytes.Repeat([]byte(" "), maxSignaturesFile+1))
	if _, err := readSignatures(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized: %v", err)
	}
}

// loaderPE is Debian's systemd-boot, an unsigned PE made by other tools.
func loaderPE(t *testing.T) []byte {
	t.Helper()
	deb := testkit.FindDeb(t, testkit.DebSystemdBoot)
	judge.Need(t, "dpkg-deb", "tar")
	out := filepath.Join(t.TempDir(), "pe")
	msg, code := judge.Run(t, nil, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/lib/systemd/boot/efi/systemd-bootx64.efi > "$2"`, "sh", deb, out)
	if code != 0 {
		t.Fatalf("extracting systemd-boot from %s: %s", deb, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// espWith is an ESP tree holding pe at the two paths systemd-boot takes
// (one directory in lower case, as a layer may have made it), and the
// boot stage's record of them.
func espWith(t *testing.T, pe []byte) (*tree.Tree, *bootPost, []*tree.Inode) {
	t.Helper()
	esp := tree.New(0)
	f := uefi.Bytes(pe)
	var inodes []*tree.Inode
	for _, p := range [][2]string{{"EFI", "BOOT"}, {"EFI", "systemd"}} {
		d := esp.Root.Child(p[0])
		if d == nil {
			d = tree.NewDir(0o755, 0, 0, 0)
			esp.Root.SetChild(p[0], d)
		}
		sub := tree.NewDir(0o755, 0, 0, 0)
		d.SetChild(p[1], sub)
		n := &tree.Inode{Kind: tree.Regular, Mode: 0o644, Size: f.Size, Content: f.Content}
		name := "BOOTX64.EFI"
		if p[1] == "systemd" {
			name = "systemd-bootx64.efi"
		}
		sub.SetChild(name, n)
		inodes = append(inodes, n)
	}
	post := &bootPost{pes: [][]string{{"/EFI/BOOT/BOOTX64.EFI", "/EFI/SYSTEMD/systemd-bootx64.efi"}}}
	return esp, post, inodes
}

func contentOf(t *testing.T, n *tree.Inode) []byte {
	t.Helper()
	r, err := n.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != n.Size {
		t.Fatalf("content of %d bytes, inode size %d", len(b), n.Size)
	}
	return b
}

// TestSignESP: inline signing replaces both copies with one signed PE that
// pkg/sign.Verify accepts; signer external writes the request and no
// signed file, and the request's digests signed elsewhere give the same
// bytes; a signature for a path the build does not sign is refused.
func TestSignESP(t *testing.T) {
	pe := loaderPE(t)
	k, certPEM := sbKeys(t, 2048, "build db")
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	esp, post, inodes := espWith(t, pe)
	inline := &signer{cert: cert, key: k, keyFile: "db.key"}
	if err := inline.signESP(esp, post, filepath.Join(t.TempDir(), "x.img")); err != nil {
		t.Fatal(err)
	}
	signed := contentOf(t, inodes[0])
	if !bytes.Equal(signed, contentOf(t, inodes[1])) {
		t.Fatal("the two copies of systemd-boot differ after signing")
	}
	if bytes.Equal(signed, pe) {
		t.Fatal("systemd-boot was not changed by signing")
	}
	if _, err := sign.Verify(signed, cert); err != nil {
		t.Fatalf("signed systemd-boot does not verify: %v", err)
	}

	out := filepath.Join(t.TempDir(), "sub", "x.img")
	esp2, post2, inodes2 := espWith(t, pe)
	ext := &signer{cert: cert}
	err = ext.signESP(esp2, post2, out)
	var sr *SigningRequestWritten
	if !errors.As(err, &sr) || sr.Path != out+SigningRequestSuffix || sr.Files != 2 {
		t.Fatalf("external: %v", err)
	}
	if !bytes.Equal(contentOf(t, inodes2[0]), pe) {
		t.Error("external without signatures changed the ESP")
	}
	b, err := os.ReadFile(sr.Path)
	if err != nil {
		t.Fatal(err)
	}
	var req SigningRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.Files) != 2 || req.Files[0].Path != "/EFI/BOOT/BOOTX64.EFI" || req.Files[1].Path != "/EFI/SYSTEMD/systemd-bootx64.efi" || req.Files[0].Digest != req.Files[1].Digest {
		t.Fatalf("request:\n%s", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("left beside the request: %v", entries)
	}
	d, _ := hex.DecodeString(req.Files[0].Digest)
	rsig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
	if err != nil {
		t.Fatal(err)
	}
	sigs := map[string]FileSignature{}
	for _, f := range req.Files {
		sigs[f.Path] = FileSignature{Path: f.Path, Digest: f.Digest, Signature: base64.StdEncoding.EncodeToString(rsig)}
	}
	esp3, post3, inodes3 := espWith(t, pe)
	done := &signer{cert: cert, sigs: sigs, sigFile: "sigs.json"}
	if err := done.signESP(esp3, post3, out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contentOf(t, inodes3[0]), signed) || !bytes.Equal(contentOf(t, inodes3[1]), signed) {
		t.Error("the externally signed PE differs from the inline one")
	}

	sigs["/EFI/BOOT/OTHER.EFI"] = FileSignature{Path: "/EFI/BOOT/OTHER.EFI", Digest: req.Files[0].Digest, Signature: sigs[req.Files[0].Path].Signature}
	esp4, post4, _ := espWith(t, pe)
	if err := (&signer{cert: cert, sigs: sigs, sigFile: "sigs.json"}).signESP(esp4, post4, out); err == nil || !strings.Contains(err.Error(), "sigs.json: /EFI/BOOT/OTHER.EFI is not a PE this build signs") {
		t.Errorf("extra signature: %v", err)
	}
}
