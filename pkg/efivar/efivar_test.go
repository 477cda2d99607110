package efivar

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	testOwner = mustGUID("6b696c6e-0000-4000-8000-0123456789ab")
	testTime  = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
)

func TestGUID(t *testing.T) {
	g, err := ParseGUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")
	if err != nil {
		t.Fatal(err)
	}
	// EFI_GLOBAL_VARIABLE as it is stored: the first three fields little-endian.
	if want := "61dfe48bca93d211aa0d00e098032b8c"; hex.EncodeToString(g[:]) != want {
		t.Errorf("bytes %x, want %s", g[:], want)
	}
	if g != GlobalVariable || g.String() != "8be4df61-93ca-11d2-aa0d-00e098032b8c" {
		t.Errorf("got %s", g)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df61x93ca-11d2-aa0d-00e098032b8c", "8be4df61-93ca-11d2-aa0d-00e098032bzz"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

func TestSignatureListLayout(t *testing.T) {
	a, b := []byte("first certificate"), []byte("second, longer certificate")
	esl := SignatureList(testOwner, a, b)
	off := 0
	for i, der := range [][]byte{a, b} {
		l := esl[off:]
		if GUID(l[:16]) != CertX509 {
			t.Errorf("list %d: type %x", i, l[:16])
		}
		size, hdr, sig := binary.LittleEndian.Uint32(l[16:]), binary.LittleEndian.Uint32(l[20:]), binary.LittleEndian.Uint32(l[24:])
		if hdr != 0 || sig != uint32(16+len(der)) || size != 28+sig {
			t.Errorf("list %d: SignatureListSize %d, SignatureHeaderSize %d, SignatureSize %d", i, size, hdr, sig)
		}
		if GUID(l[28:44]) != testOwner || !bytes.Equal(l[44:44+len(der)], der) {
			t.Errorf("list %d: owner or data wrong: %x", i, l[28:size])
		}
		off += int(size)
	}
	if off != len(esl) {
		t.Errorf("%d bytes, lists end at %d", len(esl), off)
	}
}

func TestEFITime(t *testing.T) {
	// 2024-01-02 03:04:05 UTC, given in another zone and with nanoseconds.
	ts := testTime.Add(999 * time.Millisecond).In(time.FixedZone("x", -5*3600))
	b, err := efiTime(ts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "e807010203040500000000000000000000"[:32]; hex.EncodeToString(b) != want {
		t.Errorf("EFI_TIME %x, want %s", b, want)
	}
	for _, bad := range []time.Time{time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := efiTime(bad); err == nil {
			t.Errorf("efiTime(%v) accepted", bad)
		}
	}
}

// chain returns the three updates of an enrolment with its keys: PK
// signed by PK, KEK by PK, db by KEK.
func chain(t *testing.T) (pk, kek, db *testKey, auth map[string][]byte) {
	t.Helper()
	pk, kek, db = newKey(t, "PK"), newKey(t, "KEK"), newKey(t, "db")
	auth = map[string][]byte{}
	for _, v := range []struct {
		name   string
		vendor GUID
		data   *testKey
		signer *testKey
	}{{"PK", GlobalVariable, pk, pk}, {"KEK", GlobalVariable, kek, pk}, {"db", ImageSecurityDatabase, db, kek}} {
		a, err := AuthVariable(v.name, v.vendor, AuthAttributes, testTime, SignatureList(testOwner, v.data.cert.Raw), v.signer.key, v.signer.cert)
		if err != nil {
			t.Fatal(err)
		}
		auth[v.name] = a
	}
	return pk, kek, db, auth
}

func TestAuthVariableVerifies(t *testing.T) {
	pk, kek, db, auth := chain(t)
	for _, v := range []struct {
		name    string
		vendor  GUID
		data    *testKey
		trusted *testKey
		other   *testKey
	}{{"PK", GlobalVariable, pk, pk, kek}, {"KEK", GlobalVariable, kek, pk, db}, {"db", ImageSecurityDatabase, db, kek, pk}} {
		a := auth[v.name]
		u, err := Verify(a, v.name, v.vendor, AuthAttributes, v.trusted.cert)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if !u.Time.Equal(testTime) || u.Signer != v.trusted.cert || !bytes.Equal(u.Data, SignatureList(testOwner, v.data.cert.Raw)) {
			t.Errorf("%s: read back time %v, signer %q, %d data bytes", v.name, u.Time, u.Signer.Subject, len(u.Data))
		}
		// Signed by the wrong key, for another variable, vendor or
		// attributes: refused.
		if _, err := Verify(a, v.name, v.vendor, AuthAttributes, v.other.cert); err == nil {
			t.Errorf("%s: verified with %q", v.name, v.other.cert.Subject)
		}
		if _, err := Verify(a, v.name+"x", v.vendor, AuthAttributes, v.trusted.cert); err == nil {
			t.Errorf("%s: verified under another name", v.name)
		}
		if _, err := Verify(a, v.name, testOwner, AuthAttributes, v.trusted.cert); err == nil {
			t.Errorf("%s: verified under another vendor", v.name)
		}
		if _, err := Verify(a, v.name, v.vendor, AuthAttributes|0x40, v.trusted.cert); err == nil {
			t.Errorf("%s: verified with other attributes", v.name)
		}
	}
}

func TestAuthVariableDeterministic(t *testing.T) {
	_, _, _, a := chain(t)
	_, _, _, b := chain(t)
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s: two updates of the same input differ", name)
		}
	}
}

func TestAuthVariableRefuses(t *testing.T) {
	pk, kek := newKey(t, "PK"), newKey(t, "KEK")
	esl := SignatureList(testOwner, pk.cert.Raw)
	for _, c := range []struct {
		what  string
		name  string
		attrs uint32
		ts    time.Time
		k     *testKey
	}{
		{"key of another certificate", "PK", AuthAttributes, testTime, kek},
		{"no time-based attribute", "PK", AuthAttributes &^ TimeBasedAuthenticatedWriteAccess, testTime, pk},
		{"empty name", "", AuthAttributes, testTime, pk},
		{"NUL in name", "P\x00K", AuthAttributes, testTime, pk},
		{"year 1800", "PK", AuthAttributes, time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), pk},
	} {
		if _, err := AuthVariable(c.name, GlobalVariable, c.attrs, c.ts, esl, c.k.key, pk.cert); err == nil {
			t.Errorf("%s: accepted", c.what)
		}
	}
}

// TestVerifyHostile changes every part of an update and checks that
// Verify refuses it, naming the variable, without panicking.
func TestVerifyHostile(t *testing.T) {
	pk, _, _, auth := chain(t)
	a := auth["PK"]
	length := int(binary.LittleEndian.Uint32(a[16:]))
	cases := map[string][]byte{
		"empty":            nil,
		"truncated header": a[:39],
		"truncated sig":    a[:16+length-1],
		"no data":          a[:16+length],
	}
	mut := func(name string, f func(b []byte)) {
		b := append([]byte(nil), a...)
		f(b)
		cases[name] = b
	}
	mut("dwLength huge", func(b []byte) { binary.LittleEndian.PutUint32(b[16:], 0xffffffff) })
	mut("dwLength small", func(b []byte) { binary.LittleEndian.PutUint32(b[16:], 23) })
	mut("dwLength short by one", func(b []byte) { binary.LittleEndian.PutUint32(b[16:], uint32(length-1)) })
	mut("revision", func(b []byte) { b[20] = 0x01 })
	mut("cert type", func(b []byte) { b[22] = 0x02 })
	mut("cert type guid", func(b []byte) { b[24] ^= 1 })
	mut("nanosecond", func(b []byte) { b[8] = 1 })
	mut("month 13", func(b []byte) { b[2] = 13 })
	mut("second", func(b []byte) { b[6]++ })
	mut("signature", func(b []byte) { b[16+length-1] ^= 1 })
	mut("data", func(b []byte) { b[len(b)-1] ^= 1 })
	for i := 40; i < 16+length; i += 7 {
		b := append([]byte(nil), a...)
		b[i] ^= 0x80
		cases[fmt.Sprintf("pkcs7 byte %d", i)] = b
	}
	for what, b := range cases {
		_, err := Verify(b, "PK", GlobalVariable, AuthAttributes, pk.cert)
		if err == nil {
			// A flipped bit inside the certificate carried in the
			// SignedData changes nothing Verify trusts: the carried
			// certificate is not used.
			if strings.HasPrefix(what, "pkcs7 byte") && carriedCert(a, b, newKey(t, "PK").cert.Raw) {
				continue
			}
			t.Errorf("%s: accepted", what)
		} else if !strings.Contains(err.Error(), "variable PK") {
			t.Errorf("%s: error does not name the variable: %v", what, err)
		}
	}
}

// carriedCert reports whether a and b differ only inside the certificate
// pk carried in a's SignedData.
func carriedCert(a, b, pk []byte) bool {
	i := bytes.Index(a, pk)
	for j := range a {
		if a[j] != b[j] && (j < i+4 || j >= i+len(pk)) { // the certificate's own tag and length matter
			return false
		}
	}
	return true
}
