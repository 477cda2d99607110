package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/build"
)

// testKeys writes an RSA 2048 key (PKCS#8) and its self-signed
// certificate as PEM files into dir: NAME.key and NAME.crt. No key is
// committed: each test process makes its own (testkit.NewSigningKey).
func testKeys(t *testing.T, dir, name string) (key, cert string) {
	t.Helper()
	return testkit.NewSigningKey(t, 2048, name).Write(t, dir, name)
}

// secureBootSpec is bootSpec with boot.secureboot lines added.
func secureBootSpec(repo, debs, loader, secureboot string) string {
	uefi := ""
	if l, u, ok := strings.Cut(loader, "+"); ok {
		loader, uefi = l, u
	}
	return strings.Replace(bootSpec(repo, debs, "gpt", loader, uefi), "  initrd: kiln\n", "  initrd: kiln\n  secureboot:\n"+secureboot, 1)
}

// espPEs copies the ESP of img out with mcopy and returns the files on it
// that are PEs (start with MZ), by path, in a folder of their own.
func espPEs(t *testing.T, img string) map[string]string {
	t.Helper()
	parts := twoPartitions(t, img, "gpt")
	dst := t.TempDir()
	env := []string{"MTOOLS_SKIP_CHECK=1", "TZ=UTC"}
	if out, code := judge.Run(t, env, "mcopy", "-s", "-n", "-i", fmt.Sprintf("%s@@%d", img, parts[0].Start*512), "::/", dst+"/"); code != 0 {
		t.Fatalf("mcopy exited %d:\n%s", code, out)
	}
	pes := map[string]string{}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, []byte("MZ")) {
			pes["/"+filepath.ToSlash(strings.TrimPrefix(p, dst+"/"))] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pes
}

// checkSigned has sbverify and osslsigncode check every PE on the ESP of
// img against cert, and checks that the PEs are the ones wanted.
func checkSigned(t *testing.T, img, cert string, want []string) {
	t.Helper()
	pes := espPEs(t, img)
	var got []string
	for p := range pes {
		got = append(got, strings.ToUpper(p))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, strings.ToUpper(w)) {
				found = true
			}
		}
		if !found {
			t.Errorf("no PE %s* on the ESP (PEs: %v)", w, got)
		}
	}
	if len(pes) < len(want) {
		t.Errorf("%d PEs on the ESP, want at least %d: %v", len(pes), len(want), got)
	}
	for p, f := range pes {
		if out, code := judge.Run(t, nil, "sbverify", "--cert", cert, f); code != 0 {
			t.Errorf("sbverify --cert %s: exit %d:\n%s", p, code, out)
		}
		if out, code := judge.Run(t, nil, "osslsigncode", "verify", "-CAfile", cert, "-in", f); code != 0 {
			t.Errorf("osslsigncode verify %s: exit %d:\n%s", p, code, out)
		}
	}
}

// TestSecureBoot: boot.secureboot signs every PE kiln puts on the ESP
// (the UKI's two copies; systemd-boot's two copies and the entry's
// kernel), as sbverify and osslsigncode judge; two signed builds are
// bit-identical; signer external writes a signing request, exits 5 and
// writes no image, and the digests signed with openssl pkeyutl give an
// image bit-identical to the inline one; missing, stale and wrong
// signatures are refused with the file named.
func TestSecureBoot(t *testing.T) {
	judge.Need(t, "sbverify", "osslsigncode", "openssl", "mcopy", "sfdisk", "sgdisk", "fsck.vfat")
	repo, debs := demoDebs(t)
	root := t.TempDir()
	keys := filepath.Join(root, "keys")
	keyFile, certFile := testKeys(t, keys, "db")
	otherKey, _ := testKeys(t, keys, "other")

	for _, tc := range []struct {
		loader   string   // hybrid+UEFI for loader hybrid
		want     []string // PEs on the ESP, by path prefix
		external bool     // also the hash-only round trip
	}{
		{"uki", []string{"/EFI/BOOT/BOOTX64.EFI", "/EFI/Linux/kiln-demo-"}, true},
		{"systemd-boot", []string{"/EFI/BOOT/BOOTX64.EFI", "/EFI/systemd/systemd-bootx64.efi", "/kiln-demo/"}, true},
		// syslinux boots the signed kernel of the systemd-boot entry;
		// its patches to the FAT come after signing.
		{"hybrid+systemd-boot", []string{"/EFI/BOOT/BOOTX64.EFI", "/EFI/systemd/systemd-bootx64.efi", "/kiln-demo/"}, false},
	} {
		t.Run(tc.loader, func(t *testing.T) {
			inline := filepath.Join(root, tc.loader+"-inline")
			writeFile(t, filepath.Join(inline, "kiln.yaml"), []byte(secureBootSpec(repo, debs, tc.loader, "    key: ../keys/db.key\n    cert: ../keys/db.crt\n")))
			if _, se, code := kiln(t, inline, nil, "build", "-q"); code != 0 {
				t.Fatalf("inline build: exit %d: %s", code, se)
			}
			img := filepath.Join(inline, "out/boot.img")
			checkSigned(t, img, certFile, tc.want)
			again := filepath.Join(t.TempDir(), "again.img")
			if _, se, code := kiln(t, inline, []string{"TZ=Asia/Kathmandu", "GOMAXPROCS=1"}, "build", "-q", "-o", again); code != 0 {
				t.Fatalf("second build: %s", se)
			}
			sum := judge.SHA256File(t, img)
			if s := judge.SHA256File(t, again); s != sum {
				t.Fatalf("two signed builds differ: %s vs %s", sum, s)
			}
			if !tc.external {
				parts := twoPartitions(t, img, "gpt")
				judge.FsckVfat(t, judge.Extract(t, img, parts[0].Start*512, parts[0].Size*512))
				return
			}

			// signer: external, without the key.
			ext := filepath.Join(root, tc.loader+"-external")
			writeFile(t, filepath.Join(ext, "kiln.yaml"), []byte(secureBootSpec(repo, debs, tc.loader, "    cert: ../keys/db.crt\n    signer: external\n")))
			out := filepath.Join(ext, "out/boot.img")
			reqPath := out + ".signing-request.json"
			so, se, code := kiln(t, ext, nil, "build")
			if code != 5 {
				t.Fatalf("external build: exit %d, want 5: %s", code, se)
			}
			// Printed as the image's path would be: here relative to the
			// working folder, where the spec is.
			if strings.TrimSpace(so) != "out/boot.img.signing-request.json" || !strings.Contains(se, "signing request") {
				t.Errorf("external build: stdout %q, stderr %q; want the request's path %s", so, se, reqPath)
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
				t.Errorf("the external build left %v in out/, want the request alone", entries)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("the external build wrote an image: %v", err)
			}
			var req build.SigningRequest
			b, err := os.ReadFile(reqPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &req); err != nil {
				t.Fatalf("request: %v\n%s", err, b)
			}
			if req.Version != 1 || req.Algorithm != "sha256" || req.Signature != "RSASSA-PKCS1-v1_5" || len(req.Files) != len(tc.want) || len(req.CertificateSHA256) != 64 {
				t.Fatalf("request:\n%s", b)
			}
			for i, f := range req.Files {
				if i > 0 && req.Files[i-1].Path >= f.Path {
					t.Errorf("request not sorted by path: %s before %s", req.Files[i-1].Path, f.Path)
				}
			}
			if strings.Contains(string(b), "PRIVATE") {
				t.Error("the request holds a private key")
			}

			// Sign each digest as an HSM or another machine would.
			sigs := build.Signatures{Version: 1}
			for i, f := range req.Files {
				d, err := hex.DecodeString(f.Digest)
				if err != nil || len(d) != 32 {
					t.Fatalf("digest %q: %v", f.Digest, err)
				}
				in, sig := filepath.Join(root, fmt.Sprintf("%s-d%d.bin", tc.loader, i)), filepath.Join(root, fmt.Sprintf("%s-s%d.bin", tc.loader, i))
				writeFile(t, in, d)
				if o, code := judge.Run(t, nil, "openssl", "pkeyutl", "-sign", "-inkey", keyFile, "-pkeyopt", "digest:sha256", "-in", in, "-out", sig); code != 0 {
					t.Fatalf("openssl pkeyutl: %s", o)
				}
				s, err := os.ReadFile(sig)
				if err != nil {
					t.Fatal(err)
				}
				sigs.Signatures = append(sigs.Signatures, build.FileSignature{Path: f.Path, Digest: f.Digest, Signature: base64.StdEncoding.EncodeToString(s)})
			}
			sigFile := filepath.Join(root, tc.loader+"-signatures.json")
			writeSigs := func(s build.Signatures) {
				b, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, sigFile, b)
			}

			// Refused: a missing, a stale and a wrong signature.
			missing := sigs
			missing.Signatures = sigs.Signatures[1:]
			stale := sigs
			stale.Signatures = append([]build.FileSignature(nil), sigs.Signatures...)
			stale.Signatures[0].Digest = strings.Repeat("0", 64)
			wrong := sigs
			wrong.Signatures = append([]build.FileSignature(nil), sigs.Signatures...)
			wrongSig := make([]byte, 256)
			wrongSig[255] = 1
			wrong.Signatures[0].Signature = base64.StdEncoding.EncodeToString(wrongSig)
			for _, bad := range []struct {
				name string
				s    build.Signatures
				want string
			}{
				{"missing", missing, "no signature for " + sigs.Signatures[0].Path},
				{"stale", stale, "stale"},
				{"wrong", wrong, "does not verify"},
			} {
				writeSigs(bad.s)
				_, se, code := kiln(t, ext, nil, "build", "-q", "--signatures", sigFile)
				if code == 0 || code == 5 || !strings.Contains(se, sigFile) || !strings.Contains(se, bad.want) {
					t.Errorf("%s signature: exit %d, %q; want a failure naming %s and %q", bad.name, code, se, sigFile, bad.want)
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Fatalf("%s signature: an image was written: %v", bad.name, err)
				}
			}

			writeSigs(sigs)
			if _, se, code := kiln(t, ext, nil, "build", "-q", "--signatures", sigFile); code != 0 {
				t.Fatalf("build --signatures: exit %d: %s", code, se)
			}
			if s := judge.SHA256File(t, out); s != sum {
				t.Fatalf("externally signed image %s differs from the inline one %s", s, sum)
			}
		})
	}

	// A key that is not the certificate's is refused, naming both files,
	// before any layer is read.
	dir := filepath.Join(root, "mismatch")
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(secureBootSpec(repo, debs, "uki", "    key: "+otherKey+"\n    cert: "+certFile+"\n")))
	if _, se, code := kiln(t, dir, nil, "build", "-q"); code == 0 || !strings.Contains(se, otherKey) || !strings.Contains(se, certFile) || !strings.Contains(se, "is not the key of certificate") {
		t.Errorf("mismatched key: exit %d, %q", code, se)
	}
	// --signatures with an inline signer is refused.
	if _, se, code := kiln(t, filepath.Join(root, "uki-inline"), nil, "build", "-q", "--signatures", filepath.Join(root, "uki-signatures.json")); code != 2 || !strings.Contains(se, "signer is inline") {
		t.Errorf("--signatures with signer inline: exit %d, %q", code, se)
	}
}
