package sign

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

var digestLine = regexp.MustCompile(`(Current|Calculated) message digest\s*:\s*([0-9A-Fa-f]{64})`)

// osslDigests runs `osslsigncode verify` on a signed file and returns the
// digest it read from the signature (Current) and the one it computed
// over the file (Calculated), with its output and exit code.
func osslDigests(t *testing.T, caFile, path string) (current, calculated string, out string, code int) {
	t.Helper()
	args := []string{"verify", "-in", path}
	if caFile != "" {
		args = []string{"verify", "-CAfile", caFile, "-in", path}
	}
	out, code = judge.Run(t, nil, "osslsigncode", args...)
	for _, m := range digestLine.FindAllStringSubmatch(out, -1) {
		switch m[1] {
		case "Current":
			current = strings.ToUpper(m[2])
		case "Calculated":
			calculated = strings.ToUpper(m[2])
		}
	}
	if current == "" || calculated == "" {
		t.Fatalf("osslsigncode verify %s printed no digests (exit %d):\n%s", path, code, out)
	}
	return current, calculated, out, code
}

func hexDigest(t *testing.T, pe []byte) string {
	t.Helper()
	d, err := AuthenticodeDigest(pe)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(hex.EncodeToString(d))
}

func pad8(b []byte) []byte {
	return append(append([]byte(nil), b...), make([]byte, roundUp8(len(b))-len(b))...)
}

// TestDigestMatchesOsslsigncode: for Debian's systemd-boot, stub and
// kernel (its signature removed by osslsigncode), the Authenticode hash
// osslsigncode signs and recomputes equals AuthenticodeDigest of the
// unsigned file padded to 8 bytes and of osslsigncode's signed file; and
// for Debian's signed kernel, the hash in Debian's signature equals
// AuthenticodeDigest of the kernel as shipped.
func TestDigestMatchesOsslsigncode(t *testing.T) {
	judge.Need(t, "osslsigncode")
	k := newKey(t, 2048)
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			keyPath, certPath := k.files(t, dir)
			pe := f.load(t)
			in := filepath.Join(dir, "in.efi")
			write(t, in, pe)
			if f.name == "kernel" {
				cur, calc, _, _ := osslDigests(t, "", in)
				if got := hexDigest(t, pe); cur != got || calc != got {
					t.Fatalf("Debian's kernel: osslsigncode current %s calculated %s, kiln %s", cur, calc, got)
				}
				unsigned := filepath.Join(dir, "unsigned.efi")
				if out, code := judge.Run(t, nil, "osslsigncode", "remove-signature", "-in", in, "-out", unsigned); code != 0 {
					t.Fatalf("osslsigncode remove-signature: %s", out)
				}
				in = unsigned
			}
			unsigned, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			signed := filepath.Join(dir, "oss.efi")
			if out, code := judge.Run(t, nil, "osslsigncode", "sign", "-h", "sha256", "-certs", certPath, "-key", keyPath,
				"-time", "1700000000", "-in", in, "-out", signed); code != 0 {
				t.Fatalf("osslsigncode sign: %s", out)
			}
			cur, calc, out, code := osslDigests(t, certPath, signed)
			if code != 0 {
				t.Fatalf("osslsigncode rejects its own signature:\n%s", out)
			}
			want := hexDigest(t, pad8(unsigned))
			b, err := os.ReadFile(signed)
			if err != nil {
				t.Fatal(err)
			}
			if cur != want || calc != want || hexDigest(t, b) != want {
				t.Fatalf("%s: osslsigncode current %s calculated %s; kiln unsigned+pad %s, kiln signed %s", f.name, cur, calc, want, hexDigest(t, b))
			}
			t.Logf("%s (%d bytes): %s", f.name, len(unsigned), want)
		})
	}
}

// TestJudgesAcceptSignatures: sbverify and osslsigncode accept kiln's
// signatures of systemd-boot, the stub and the kernel with the db
// certificate (RSA 2048, and 4096 for the stub), and sbverify refuses the signed file with one byte of a
// section flipped.
func TestJudgesAcceptSignatures(t *testing.T) {
	judge.Need(t, "sbverify", "osslsigncode")
	for _, c := range []struct {
		f    fixture
		bits int
	}{{fixtures[0], 2048}, {fixtures[1], 2048}, {fixtures[2], 2048}, {fixtures[1], 4096}} {
		f, k := c.f, newKey(t, c.bits)
		t.Run(fmt.Sprintf("%s-rsa%d", f.name, c.bits), func(t *testing.T) {
			dir := t.TempDir()
			_, certPath := k.files(t, dir)
			signed, err := Sign(f.load(t), k.key, k.cert, Options{})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "signed.efi")
			write(t, path, signed)
			if out, code := judge.Run(t, nil, "sbverify", "--cert", certPath, path); code != 0 || !strings.Contains(out, "Signature verification OK") {
				t.Fatalf("sbverify refuses kiln's signature of %s (exit %d):\n%s", f.name, code, out)
			}
			cur, calc, out, code := osslDigests(t, certPath, path)
			if code != 0 || !strings.Contains(out, "Signature verification: ok") || cur != calc {
				t.Fatalf("osslsigncode refuses kiln's signature of %s (exit %d):\n%s", f.name, code, out)
			}
			if !strings.Contains(out, "PE checksum") {
				t.Fatalf("osslsigncode printed no PE checksum:\n%s", out)
			}
			if _, err := Verify(signed, k.cert); err != nil {
				t.Fatalf("Verify: %v", err)
			}

			// One byte flipped in the middle of the first section's data.
			im, err := parse(signed)
			if err != nil {
				t.Fatal(err)
			}
			s := im.sections[0]
			bad := bytes.Clone(signed)
			bad[(s.off+s.end)/2] ^= 0x01
			badPath := filepath.Join(dir, "bad.efi")
			write(t, badPath, bad)
			if out, code := judge.Run(t, nil, "sbverify", "--cert", certPath, badPath); code == 0 {
				t.Fatalf("sbverify accepts %s with a flipped byte:\n%s", f.name, out)
			}
			if _, err := Verify(bad, k.cert); err == nil {
				t.Fatal("Verify accepts a flipped byte")
			}
		})
	}
}

// TestPEChecksumMatchesOsslsigncode: osslsigncode finds the checksum kiln
// writes valid, and finds it invalid once one bit of it is changed (so the
// check can fail).
func TestPEChecksumMatchesOsslsigncode(t *testing.T) {
	judge.Need(t, "osslsigncode")
	k := newKey(t, 2048)
	dir := t.TempDir()
	_, certPath := k.files(t, dir)
	for _, f := range fixtures {
		signed, err := Sign(f.load(t), k.key, k.cert, Options{})
		if err != nil {
			t.Fatal(err)
		}
		im, err := parse(signed)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, f.name+".efi")
		write(t, path, signed)
		if _, _, out, _ := osslDigests(t, certPath, path); strings.Contains(out, "invalid PE checksum") || !strings.Contains(out, "PE checksum") {
			t.Errorf("%s: osslsigncode finds kiln's PE checksum invalid:\n%s", f.name, out)
		}
		signed[im.checksumAt] ^= 1
		write(t, path, signed)
		if _, _, out, _ := osslDigests(t, certPath, path); !strings.Contains(out, "invalid PE checksum") {
			t.Errorf("%s: osslsigncode accepts a changed checksum:\n%s", f.name, out)
		}
	}
}
