package sign

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// Signed PEs from Debian, signed by other tools and other keys: shim with
// Microsoft's 2011 and 2023 signatures (two WIN_CERTIFICATE entries, each
// signer issued by an intermediate the signature carries), GRUB and the
// kernel signed by Debian (the signer's issuer not carried).
var signedFixtures = []fixture{
	{"shim", "shim-signed_*.deb", "./usr/lib/shim/shimx64.efi.signed"},
	{"grub", "grub-efi-amd64-signed_*.deb", "./usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"},
	{"kernel", "linux-image-6.1.0-*-amd64_*.deb", "./boot/vmlinuz-*"},
}

// opensslName writes a name as sbverify and osslsigncode print it:
// /C=US/O=.../CN=..., in the certificate's order.
func opensslName(t *testing.T, raw []byte) string {
	t.Helper()
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		t.Fatalf("name: %v", err)
	}
	short := map[string]string{"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU"}
	var b strings.Builder
	for _, rdn := range rdns {
		for _, a := range rdn {
			s, ok := short[a.Type.String()]
			if !ok {
				t.Fatalf("name attribute %v: no short name for it", a.Type)
			}
			fmt.Fprintf(&b, "/%s=%v", s, a.Value)
		}
	}
	return b.String()
}

// sbverifyList runs sbverify --list and returns, per signature, its
// issuers line and its certificates as "subject <- issuer".
func sbverifyList(t *testing.T, path string) (issuers []string, certs [][]string) {
	t.Helper()
	out, code := judge.Run(t, nil, "sbverify", "--list", path)
	if code != 0 {
		t.Fatalf("sbverify --list %s: exit %d:\n%s", path, code, out)
	}
	var subject string
	section := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "signature "):
			issuers, certs = append(issuers, ""), append(certs, nil)
		case l == "image signature issuers:" || l == "image signature certificates:":
			section = l
		case strings.HasPrefix(l, "- subject: "):
			subject = strings.TrimPrefix(l, "- subject: ")
		case strings.HasPrefix(l, "issuer: "):
			certs[len(certs)-1] = append(certs[len(certs)-1], subject+" <- "+strings.TrimSpace(strings.TrimPrefix(l, "issuer: ")))
		case strings.HasPrefix(l, "- ") && section == "image signature issuers:":
			issuers[len(issuers)-1] = strings.TrimPrefix(l, "- ")
		}
	}
	return issuers, certs
}

// TestSignaturesDebian: every signature of Debian's signed shim, GRUB and
// kernel is found and valid, with the signers and certificates
// sbverify --list names (shim: two, Microsoft's 2011 and 2023, each
// chained to the intermediate CA it carries); a signature chains to a
// certificate given as trusted only where it should.
func TestSignaturesDebian(t *testing.T) {
	judge.Need(t, "sbverify")
	for _, f := range signedFixtures {
		t.Run(f.name, func(t *testing.T) {
			pe := f.load(t)
			path := filepath.Join(t.TempDir(), f.name+".efi")
			write(t, path, pe)
			sigs, err := Signatures(pe)
			if err != nil {
				t.Fatal(err)
			}
			issuers, certs := sbverifyList(t, path)
			if len(sigs) != len(issuers) || len(sigs) == 0 {
				t.Fatalf("%d signatures, sbverify --list found %d", len(sigs), len(issuers))
			}
			for i, s := range sigs {
				if !s.Valid || s.Reason != "" || s.DigestAlgorithm != "sha256" || s.Signer == nil {
					t.Fatalf("signature %d: valid %v (%s), digest %s, signer %v", i, s.Valid, s.Reason, s.DigestAlgorithm, s.Signer)
				}
				if got := opensslName(t, s.Signer.RawIssuer); got != issuers[i] {
					t.Errorf("signature %d: signer's issuer %s, sbverify %s", i, got, issuers[i])
				}
				var got []string
				for _, c := range s.Certificates {
					got = append(got, opensslName(t, c.RawSubject)+" <- "+opensslName(t, c.RawIssuer))
				}
				want := append([]string(nil), certs[i]...)
				sort.Strings(got)
				sort.Strings(want)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("signature %d: certificates\n%s\nsbverify:\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				if s.Chain[0] != s.Signer || len(s.Chain) != len(s.Certificates) {
					t.Errorf("signature %d: chain of %d from the signer, %d certificates", i, len(s.Chain), len(s.Certificates))
				}
			}
			switch f.name {
			case "shim":
				if len(sigs) != 2 || sigs[0].Entry != 0 || sigs[1].Entry != 1 {
					t.Fatalf("shim: want Microsoft's two signatures in two entries, got %d", len(sigs))
				}
				for i, cn := range []string{"Microsoft Corporation UEFI CA 2011", "Microsoft UEFI CA 2023"} {
					if got := sigs[i].Chain[1].Subject.CommonName; got != cn {
						t.Errorf("shim signature %d: chain goes to %q, want %q", i, got, cn)
					}
				}
				ca2011 := sigs[0].Chain[1]
				if !sigs[0].Trusted(ca2011) || sigs[1].Trusted(ca2011) || !sigs[1].Trusted(sigs[1].Chain[1]) {
					t.Errorf("shim: trusting the 2011 CA: %v %v; the 2023 CA: %v", sigs[0].Trusted(ca2011), sigs[1].Trusted(ca2011), sigs[1].Trusted(sigs[1].Chain[1]))
				}
			default:
				if len(sigs) != 1 || !strings.HasPrefix(sigs[0].Signer.Subject.CommonName, "Debian Secure Boot Signer") {
					t.Errorf("%s: %d signatures, signer %q", f.name, len(sigs), sigs[0].Signer.Subject.CommonName)
				}
				if k := newKey(t, 2048); sigs[0].Trusted(k.cert) || !sigs[0].Trusted(sigs[0].Signer) {
					t.Errorf("%s: trusted by an unrelated certificate, or not by its signer's", f.name)
				}
			}
		})
	}
}

// encryptedDigest returns the signature value of the first signature of
// a signed PE, for tests to flip.
func encryptedDigest(t *testing.T, pe []byte) []byte {
	t.Helper()
	im, err := parse(pe)
	if err != nil {
		t.Fatal(err)
	}
	var ci p7ContentInfo
	if _, err := asn1.Unmarshal(pe[im.certOff+winCertHdrLen:], &ci); err != nil {
		t.Fatal(err)
	}
	var sd p7SignedDataAny
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		t.Fatal(err)
	}
	var si p7SignerInfoAny
	if _, err := asn1.Unmarshal(sd.SignerInfos.Bytes, &si); err != nil {
		t.Fatal(err)
	}
	return si.EncryptedDigest
}

// tamper returns copies of a signed PE with a byte flipped in its first
// section (after signing) and in its first signature's RSA value.
func tamper(t *testing.T, pe []byte) (section, signature []byte) {
	t.Helper()
	im, err := parse(pe)
	if err != nil {
		t.Fatal(err)
	}
	section = bytes.Clone(pe)
	section[(im.sections[0].off+im.sections[0].end)/2] ^= 0x01
	ed := encryptedDigest(t, pe)
	at := bytes.Index(pe, ed)
	if at < im.certOff {
		t.Fatal("the signature value is not in the certificate table")
	}
	signature = bytes.Clone(pe)
	signature[at+len(ed)/2] ^= 0x01
	return section, signature
}

// TestSignaturesTampered: a byte changed in a section makes a signature
// invalid with an image hash mismatch, a byte changed in the RSA
// signature makes it fail verification; sbverify and osslsigncode refuse
// both as well, and accept the untouched file. Debian's GRUB too.
func TestSignaturesTampered(t *testing.T) {
	judge.Need(t, "sbverify", "osslsigncode")
	k := newKey(t, 2048)
	dir := t.TempDir()
	_, certPath := k.files(t, dir)
	signed, err := Sign(minimalPE(true), k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ours := signed
	grub := signedFixtures[1].load(t)
	for _, tc := range []struct {
		name string
		pe   []byte
		own  bool // signed with k: judges can check it against certPath
	}{{"kiln", ours, true}, {"grub", grub, false}} {
		section, signature := tamper(t, tc.pe)
		for _, c := range []struct {
			name string
			pe   []byte
			want string // the reason; "" valid
		}{
			{"untouched", tc.pe, ""},
			{"section", section, "image hash mismatch"},
			{"signature", signature, "RSA signature verification failed"},
		} {
			sigs, err := Signatures(c.pe)
			if err != nil || len(sigs) != 1 {
				t.Fatalf("%s %s: %d signatures, %v", tc.name, c.name, len(sigs), err)
			}
			s := sigs[0]
			if s.Valid != (c.want == "") || !strings.Contains(s.Reason, c.want) || s.Signer == nil {
				t.Errorf("%s %s: valid %v, reason %q; want %q", tc.name, c.name, s.Valid, s.Reason, c.want)
			}
			if s.Trusted(s.Signer) != (c.want == "") {
				t.Errorf("%s %s: trusted %v", tc.name, c.name, s.Trusted(s.Signer))
			}
			path := filepath.Join(dir, tc.name+"-"+c.name+".efi")
			write(t, path, c.pe)
			if tc.own {
				_, code := judge.Run(t, nil, "sbverify", "--cert", certPath, path)
				_, ocode := judge.Run(t, nil, "osslsigncode", "verify", "-CAfile", certPath, "-in", path)
				if (code == 0) != (c.want == "") || (ocode == 0) != (c.want == "") {
					t.Errorf("%s %s: sbverify exit %d, osslsigncode exit %d; kiln says valid %v", tc.name, c.name, code, ocode, s.Valid)
				}
			} else if c.name != "signature" {
				cur, calc, _, _ := osslDigests(t, "", path)
				if (cur == calc) != (c.want == "") {
					t.Errorf("%s %s: osslsigncode: signed digest %s, calculated %s; kiln says valid %v", tc.name, c.name, cur, calc, s.Valid)
				}
			}
		}
	}
}

// TestSignaturesNested: a signature osslsigncode nests into a kiln-signed
// PE (sign -nest: the nested-signature attribute) is found, after the
// outer one, and both are valid; osslsigncode verify agrees.
func TestSignaturesNested(t *testing.T) {
	judge.Need(t, "osslsigncode")
	k := newKey(t, 2048)
	other := newKey(t, 3072)
	dir := t.TempDir()
	keyPath, certPath := other.files(t, dir)
	signed, err := Sign(minimalPE(true), k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, out := filepath.Join(dir, "in.efi"), filepath.Join(dir, "nested.efi")
	write(t, in, signed)
	if o, code := judge.Run(t, nil, "osslsigncode", "sign", "-nest", "-h", "sha256", "-certs", certPath, "-key", keyPath, "-in", in, "-out", out); code != 0 {
		t.Fatalf("osslsigncode sign -nest: %s", o)
	}
	nested, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := Signatures(nested)
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 2 {
		t.Fatalf("%d signatures, want the outer and the nested one", len(sigs))
	}
	for i, want := range []struct {
		nested int
		cert   *x509.Certificate
	}{{0, k.cert}, {1, other.cert}} {
		s := sigs[i]
		if !s.Valid || s.Nested != want.nested || s.Entry != 0 || s.Signer == nil || !s.Signer.Equal(want.cert) {
			t.Errorf("signature %d: valid %v (%s), nested %d, entry %d", i, s.Valid, s.Reason, s.Nested, s.Entry)
		}
	}
	// Both certificates trusted: osslsigncode then verifies both.
	both := filepath.Join(dir, "both.pem")
	write(t, both, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.cert.Raw})...))
	if o, code := judge.Run(t, nil, "osslsigncode", "verify", "-CAfile", both, "-in", out); code != 0 || !strings.Contains(o, "Number of verified signatures: 2") {
		t.Errorf("osslsigncode verify: exit %d, did not count two signatures:\n%s", code, o)
	}
}

// withTwoEntries returns a signed PE with its WIN_CERTIFICATE entry
// followed by a copy of it: a certificate table of two entries.
func withTwoEntries(t testing.TB, signed []byte) []byte {
	t.Helper()
	im, err := parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	entry := signed[im.certOff:]
	out := append(bytes.Clone(signed), entry...)
	binary.LittleEndian.PutUint32(out[im.certDirAt+4:], uint32(2*len(entry)))
	return out
}

// TestSignaturesEntries: each WIN_CERTIFICATE entry is read; a table
// whose entry overruns it, or that is not PKCS#7, says so; an unsigned PE
// has none.
func TestSignaturesEntries(t *testing.T) {
	k := newKey(t, 2048)
	pe := minimalPE(false)
	if sigs, err := Signatures(pe); err != nil || len(sigs) != 0 {
		t.Fatalf("unsigned: %d signatures, %v", len(sigs), err)
	}
	signed, err := Sign(pe, k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	two := withTwoEntries(t, signed)
	sigs, err := Signatures(two)
	if err != nil || len(sigs) != 2 || !sigs[0].Valid || !sigs[1].Valid || sigs[1].Entry != 1 {
		t.Fatalf("two entries: %d signatures, %v", len(sigs), err)
	}
	im, _ := parse(two)
	second := im.certOff + (len(two)-im.certOff)/2

	overrun := bytes.Clone(two)
	binary.LittleEndian.PutUint32(overrun[second:], 1<<31)
	if _, err := Signatures(overrun); err == nil || !strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), "dwLength") {
		t.Errorf("overrunning entry: %v", err)
	}
	notPKCS7 := bytes.Clone(two)
	binary.LittleEndian.PutUint16(notPKCS7[second+6:], 0x0001)
	if sigs, err := Signatures(notPKCS7); err != nil || len(sigs) != 2 || sigs[1].Valid || !strings.Contains(sigs[1].Reason, "type 0x1") {
		t.Errorf("an X.509 entry: %v", err)
	}
	garbage := bytes.Clone(two)
	garbage[second+winCertHdrLen] = 0x04
	if sigs, err := Signatures(garbage); err != nil || len(sigs) != 2 || sigs[1].Valid || !strings.Contains(sigs[1].Reason, "ContentInfo") || !sigs[0].Valid {
		t.Errorf("a garbled entry: %v", err)
	}
}
