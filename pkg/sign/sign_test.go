package sign

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// TestSignDeterministic: two signatures of the same image with the same
// key are bit-identical, with and without a signing time; the time, when
// given, changes the bytes (so the comparison can fail).
func TestSignDeterministic(t *testing.T) {
	k := newKey(t, 2048)
	pe := fixtures[0].load(t)
	a, err := Sign(pe, k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Sign(bytes.Clone(pe), k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two signatures of the same image differ")
	}
	epoch := Options{SigningTime: time.Unix(1700000000, 0)}
	c, _ := Sign(pe, k.key, k.cert, epoch)
	d, _ := Sign(pe, k.key, k.cert, epoch)
	if !bytes.Equal(c, d) {
		t.Fatal("two signatures with the same signing time differ")
	}
	if bytes.Equal(a, c) {
		t.Fatal("the signing time changed nothing")
	}
	if _, err := Verify(c, k.cert); err != nil {
		t.Fatalf("Verify with a signing time: %v", err)
	}
}

// TestResign: signing a signed image replaces its signature: the result
// equals signing the unsigned image, and Debian's kernel (signed by
// Debian) re-signed verifies with our key only.
func TestResign(t *testing.T) {
	k := newKey(t, 2048)
	pe := fixtures[0].load(t)
	once, err := Sign(pe, k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	twice, err := Sign(once, k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatal("re-signing a signed image differs from signing it once")
	}
	kernel := fixtures[2].load(t)
	if _, err := Verify(kernel, k.cert); err == nil {
		t.Fatal("Debian's kernel verifies with the test key before re-signing")
	}
	signed, err := Sign(kernel, k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, k.cert); err != nil {
		t.Fatal(err)
	}
}

// TestHashOnlyOpenssl: Prepare, the digest signed by
// `openssl pkeyutl -sign -pkeyopt digest:sha256` (a real external
// signer), Complete: bit-identical to Sign with the same key, for RSA
// 2048 and 4096.
func TestHashOnlyOpenssl(t *testing.T) {
	judge.Need(t, "openssl")
	for _, bits := range []int{2048, 4096} {
		k := newKey(t, bits)
		dir := t.TempDir()
		keyPath, _ := k.files(t, dir)
		for _, f := range fixtures[:2] {
			pe := f.load(t)
			want, err := Sign(pe, k.key, k.cert, Options{})
			if err != nil {
				t.Fatal(err)
			}
			req, err := Prepare(pe, k.cert, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := sha256.Sum256(req.SignedAttributes); !bytes.Equal(d[:], req.Digest) {
				t.Fatal("Request.Digest is not sha256 of the signed attributes")
			}
			in, out := filepath.Join(dir, "digest.bin"), filepath.Join(dir, "sig.bin")
			write(t, in, req.Digest)
			if msg, code := judge.Run(t, nil, "openssl", "pkeyutl", "-sign", "-inkey", keyPath,
				"-pkeyopt", "digest:sha256", "-in", in, "-out", out); code != 0 {
				t.Fatalf("openssl pkeyutl: %s", msg)
			}
			sig, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Complete(req, sig)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("RSA %d, %s: hash-only signing with openssl differs from Sign", bits, f.name)
			}
		}
	}
}

// TestOpaqueSigner: a crypto.Signer that never exposes its key (an HSM
// stand-in) gives the same bytes as the key itself, through Sign and
// through Prepare, Sign of the digest, Complete.
func TestOpaqueSigner(t *testing.T) {
	k := newKey(t, 2048)
	hsm := newOpaque(k.key)
	if _, ok := hsm.(*rsa.PrivateKey); ok {
		t.Fatal("BUG: the stand-in is the key")
	}
	pe := fixtures[1].load(t)
	want, err := Sign(pe, k.key, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sign(pe, hsm, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Sign with the opaque signer differs")
	}
	req, err := Prepare(pe, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := hsm.Sign(rand.Reader, req.Digest, req.Hash)
	if err != nil {
		t.Fatal(err)
	}
	got, err = Complete(req, sig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Prepare+Complete with the opaque signer differs")
	}
}

// TestRefusals: a signature by another key, a truncated signature, a key
// that is not the certificate's, and RSA keys outside 2048-4096 bits are
// refused with errors that say so.
func TestRefusals(t *testing.T) {
	k, other := newKey(t, 2048), newKey(t, 3072)
	pe := fixtures[0].load(t)
	req, err := Prepare(pe, k.cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := other.key.Sign(rand.Reader, req.Digest, req.Hash)
	_, err = Complete(req, bad)
	testkit.ErrContains(t, err, "signature of 384 bytes")
	bad, _ = k.key.Sign(rand.Reader, append([]byte{1}, req.Digest[1:]...), req.Hash)
	_, err = Complete(req, bad)
	testkit.ErrContains(t, err, "does not verify")
	_, err = Sign(pe, other.key, k.cert, Options{})
	testkit.ErrContains(t, err, "not the one of certificate")
	small := newKey(t, 1024)
	_, err = Prepare(pe, small.cert, Options{})
	testkit.ErrContains(t, err, "RSA key of 1024 bits")
	_, err = Complete(&Request{}, nil)
	testkit.ErrContains(t, err, "not made by Prepare")
}

// TestPrepareLeavesInputAlone: Prepare and Sign do not write into pe.
func TestPrepareLeavesInputAlone(t *testing.T) {
	k := newKey(t, 2048)
	pe := fixtures[2].load(t) // signed: Prepare removes the signature from its copy
	before := sha256.Sum256(pe)
	if _, err := Sign(pe, k.key, k.cert, Options{}); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(pe) != before {
		t.Fatal("Sign changed its input")
	}
}

// minimalPE builds a small valid PE32+ (or PE32) image with two sections
// and trailing data, for the header tests.
func minimalPE(pe32Plus bool) []byte {
	const lfanew, nsec = 0x40, 2
	fixed := 112
	magic := uint16(0x20b)
	if !pe32Plus {
		fixed, magic = 96, 0x10b
	}
	optSize := fixed + 16*8
	opt := lfanew + 4 + fileHeaderLen
	secAt := opt + optSize
	headers := 0x200
	b := make([]byte, headers+0x400+0x13)
	b[0], b[1] = 'M', 'Z'
	binary.LittleEndian.PutUint32(b[0x3c:], lfanew)
	copy(b[lfanew:], "PE\x00\x00")
	le := binary.LittleEndian
	le.PutUint16(b[lfanew+4:], 0x8664)
	le.PutUint16(b[lfanew+6:], nsec)
	le.PutUint16(b[lfanew+20:], uint16(optSize))
	le.PutUint16(b[opt:], magic)
	le.PutUint32(b[opt+60:], uint32(headers))
	le.PutUint32(b[opt+fixed-4:], 16)
	for i := 0; i < nsec; i++ {
		s := secAt + i*sectionLen
		copy(b[s:], []string{".text", ".data"}[i])
		le.PutUint32(b[s+16:], 0x200)                       // SizeOfRawData
		le.PutUint32(b[s+20:], uint32(headers+(1-i)*0x200)) // PointerToRawData: out of order on purpose
	}
	for i := headers; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// TestDigestDefinition: the digest excludes exactly the CheckSum and the
// Certificate Table entry: changing either leaves it (when the entry stays
// valid; a signed file's digest equal to its unsigned one, in the judge
// tests, covers a real entry), changing any other
// header byte, a section byte or a trailing byte changes it; PE32 and
// PE32+ alike.
func TestDigestDefinition(t *testing.T) {
	for _, plus := range []bool{true, false} {
		pe := minimalPE(plus)
		im, err := parse(pe)
		if err != nil {
			t.Fatal(err)
		}
		base, _ := AuthenticodeDigest(pe)
		for off := 0; off < len(pe); off++ {
			c := bytes.Clone(pe)
			c[off] ^= 0xff
			excluded := off >= im.checksumAt && off < im.checksumAt+4 || off >= im.certDirAt && off < im.certDirAt+8
			d, err := AuthenticodeDigest(c)
			if err != nil {
				if off >= im.checksumAt && off < im.checksumAt+4 {
					t.Fatalf("PE32+ %v: changing CheckSum byte %#x: %v", plus, off, err)
				}
				continue // a changed header field (the Certificate Table entry too) may make the image invalid
			}
			if excluded != bytes.Equal(d, base) {
				t.Fatalf("PE32+ %v: byte %#x excluded %v, digest unchanged %v", plus, off, excluded, bytes.Equal(d, base))
			}
		}
	}
}

// TestDigestSectionOrder: sections are hashed in file-offset order, not
// table order: the digest equals sha256 over the regions assembled by
// hand.
func TestDigestSectionOrder(t *testing.T) {
	pe := minimalPE(true)
	im, _ := parse(pe)
	h := sha256.New()
	h.Write(pe[:im.checksumAt])
	h.Write(pe[im.checksumAt+4 : im.certDirAt])
	h.Write(pe[im.certDirAt+8 : 0x200])
	h.Write(pe[0x200:0x400]) // the second table entry, first in the file
	h.Write(pe[0x400:0x600])
	h.Write(pe[0x600:]) // trailing data
	got, _ := AuthenticodeDigest(pe)
	if !bytes.Equal(got, h.Sum(nil)) {
		t.Fatal("digest differs from the hand-assembled one")
	}
}

// TestHostileHeaders: each broken field is refused with an error naming
// it.
func TestHostileHeaders(t *testing.T) {
	le := binary.LittleEndian
	const opt = 0x40 + 4 + fileHeaderLen
	cases := []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"short", func(b []byte) []byte { return b[:0x20] }, "shorter than a DOS header"},
		{"mz", func(b []byte) []byte { b[0] = 'X'; return b }, "no MZ signature"},
		{"lfanew", func(b []byte) []byte { le.PutUint32(b[0x3c:], 0xfffffff0); return b }, "e_lfanew"},
		{"pe sig", func(b []byte) []byte { b[0x40] = 'X'; return b }, "no PE signature"},
		{"nsec", func(b []byte) []byte { le.PutUint16(b[0x46:], 0xffff); return b }, "NumberOfSections"},
		{"magic", func(b []byte) []byte { le.PutUint16(b[opt:], 0x107); return b }, "Magic"},
		{"optsize small", func(b []byte) []byte { le.PutUint16(b[0x54:], 50); return b }, "SizeOfOptionalHeader"},
		{"optsize big", func(b []byte) []byte { le.PutUint16(b[0x54:], 0xffff); return b[:0x400] }, "SizeOfOptionalHeader"},
		{"ndirs", func(b []byte) []byte { le.PutUint32(b[opt+108:], 1<<30); return b }, "NumberOfRvaAndSizes"},
		{"headers", func(b []byte) []byte { le.PutUint32(b[opt+60:], 0xffffffff); return b }, "SizeOfHeaders"},
		{"cert table", func(b []byte) []byte {
			le.PutUint32(b[opt+112+32:], 0x300)
			le.PutUint32(b[opt+112+36:], 0x10)
			return b
		}, "Certificate Table"},
		{"section in headers", func(b []byte) []byte { le.PutUint32(b[opt+240+20:], 0x100); return b }, `section 0 (".text") PointerToRawData 0x100 lies inside the headers`},
		{"section", func(b []byte) []byte { le.PutUint32(b[opt+240+16:], 0xfffffff0); return b }, `section 0 (".text") PointerToRawData`},
	}
	for _, c := range cases {
		_, err := AuthenticodeDigest(c.edit(minimalPE(true)))
		testkit.ErrContains(t, err, c.want)
	}
	// Without a Certificate Table entry, the hash is defined but Prepare
	// has nowhere to point.
	b := minimalPE(true)
	le.PutUint32(b[opt+108:], 4)
	if _, err := AuthenticodeDigest(b); err != nil {
		t.Fatal(err)
	}
	_, err := Prepare(b, newKey(t, 2048).cert, Options{})
	testkit.ErrContains(t, err, "no Certificate Table")
}

// TestSignMinimal: the hand-built PE32 and PE32+ images sign and verify
// (and not with another certificate), the certificate table is 8-byte
// aligned, and the signed image's hash is the padded unsigned one's.
func TestSignMinimal(t *testing.T) {
	k := newKey(t, 2048)
	for _, plus := range []bool{true, false} {
		pe := minimalPE(plus)
		signed, err := Sign(pe, k.key, k.cert, Options{})
		if err != nil {
			t.Fatal(err)
		}
		im, err := parse(signed)
		if err != nil {
			t.Fatal(err)
		}
		if im.certOff%8 != 0 || im.certSize%8 != 0 || im.certOff != roundUp8(len(pe)) {
			t.Fatalf("certificate table at %#x size %#x for an image of %#x bytes", im.certOff, im.certSize, len(pe))
		}
		if _, err := Verify(signed, k.cert); err != nil {
			t.Fatal(err)
		}
		// The Certificate Table entry and CheckSum now set are excluded.
		if a, b := hexDigest(t, signed), hexDigest(t, pad8(pe)); a != b {
			t.Fatalf("signed image hashes to %s, the padded unsigned one to %s", a, b)
		}
		if _, err := Verify(signed, newKey(t, 3072).cert); err == nil {
			t.Fatal("Verify trusts a certificate that did not sign")
		}
	}
}

// TestSignedAttributes: the signed attributes are contentType,
// SpcSpOpusInfo, SpcStatementType and messageDigest, with no signingTime
// unless Options gives one, and then exactly that time.
func TestSignedAttributes(t *testing.T) {
	k := newKey(t, 2048)
	pe := minimalPE(true)
	for _, o := range []Options{{}, {SigningTime: time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)}} {
		req, err := Prepare(pe, k.cert, o)
		if err != nil {
			t.Fatal(err)
		}
		var attrs []p7Attribute
		if err := unmarshalAll(append([]byte{tagSequence}, req.SignedAttributes[1:]...), &attrs, "attributes"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range attrs {
			got = append(got, a.Type.String())
			if a.Type.Equal(oidSigningTime) {
				var tm time.Time
				if _, err := asn1.Unmarshal(a.Values.Bytes, &tm); err != nil || !tm.Equal(o.SigningTime) {
					t.Fatalf("signingTime %v (%v), want %v", tm, err, o.SigningTime)
				}
			}
		}
		want := []string{oidContentType.String(), oidSpcSpOpusInfo.String(), oidSpcStatementType.String(), oidMessageDigest.String()}
		if !o.SigningTime.IsZero() {
			want = append(want, oidSigningTime.String())
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("signed attributes %v, want %v", got, want)
		}
	}
}

// TestRefuseGaps: a PE whose sections leave a gap in the file (or
// overlap) is not signed: EDK2 hashes the bytes after the sections from
// SizeOfHeaders plus the sections' sizes, the signing tools otherwise,
// and firmware would refuse the signature (a UKI with a gap was refused
// by OVMF while its signature verified here). Debian's binaries, which
// have none, are signed.
func TestRefuseGaps(t *testing.T) {
	k := newKey(t, 2048)
	for _, f := range fixtures {
		if _, err := Sign(f.load(t), k.key, k.cert, Options{}); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
	}
	pe := fixtures[1].load(t) // the stub
	peAt := int(binary.LittleEndian.Uint32(pe[0x3c:]))
	optSize := int(binary.LittleEndian.Uint16(pe[peAt+4+16:]))
	first := peAt + 4 + 20 + optSize // the first section header
	raw := binary.LittleEndian.Uint32(pe[first+16:])
	for _, c := range []struct {
		what  string
		delta int32
	}{{"a gap", -0x200}, {"an overlap", 0x200}} {
		b := append([]byte(nil), pe...)
		binary.LittleEndian.PutUint32(b[first+16:], uint32(int32(raw)+c.delta))
		_, err := Sign(b, k.key, k.cert, Options{})
		testkit.ErrContains(t, err, "pe: "+c.what+" between the section data")
		testkit.ErrContains(t, err, "refusing to sign it")
		if _, err := AuthenticodeDigest(b); err != nil {
			t.Errorf("%s: the digest (for checking existing signatures) is still computed: %v", c.what, err)
		}
	}
}
