package main

import (
	"bytes"
	"crypto/x509"
	"debug/pe"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/build"
	"github.com/kiln-build/kiln/pkg/fs/fat"
)

// debFile extracts one file (a tar glob) of a .deb to dst.
func debFile(t *testing.T, deb, glob, dst string) {
	t.Helper()
	judge.Need(t, "dpkg-deb", "tar")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if msg, code := judge.Run(t, nil, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO --wildcards "$2" > "$3"`, "sh", deb, glob, dst); code != 0 {
		t.Fatalf("extracting %s from %s: %s", glob, deb, msg)
	}
}

// inspectReport runs kiln inspect --json with args and decodes the report.
func inspectReport(t *testing.T, img string, args ...string) *report {
	t.Helper()
	so, se, code := kiln(t, "", nil, append([]string{"inspect", "--json", img}, args...)...)
	if code != 0 {
		t.Fatalf("kiln inspect --json %s: exit %d: %s", img, code, se)
	}
	var rep report
	if err := json.Unmarshal([]byte(so), &rep); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, so)
	}
	return &rep
}

// inspectPEs is the PE files of the ESP (partition 1) by upper-cased
// path, and the paths mcopy finds PEs at (the judge of which files are
// PEs), upper-cased, which must be the same.
func inspectPEs(t *testing.T, rep *report, img string) map[string]peReport {
	t.Helper()
	got := map[string]peReport{}
	var paths []string
	for _, p := range rep.Partitions {
		for _, f := range p.PEs {
			if p.Number != 1 {
				t.Errorf("a PE on partition %d: %s", p.Number, f.Path)
			}
			got[strings.ToUpper(f.Path)] = f
			paths = append(paths, strings.ToUpper(f.Path))
		}
	}
	var want []string
	for p, f := range espPEs(t, img) {
		// espPEs has every file starting with MZ; Go's debug/pe judges
		// which are PEs.
		if pf, err := pe.Open(f); err == nil {
			pf.Close()
			want = append(want, strings.ToUpper(p))
		}
	}
	sort.Strings(paths)
	sort.Strings(want)
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("inspect lists PEs %v; mcopy finds %v", paths, want)
	}
	return got
}

// sbverifySigners is sbverify --list's signers' issuers, one per
// signature, with the whole subject line of the first certificate.
func sbverifyIssuers(t *testing.T, file string) []string {
	t.Helper()
	out, code := judge.Run(t, nil, "sbverify", "--list", file)
	if code != 0 {
		t.Fatalf("sbverify --list %s: exit %d\n%s", file, code, out)
	}
	var issuers []string
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "image signature issuers:" && i+1 < len(lines) {
			issuers = append(issuers, strings.TrimPrefix(strings.TrimSpace(lines[i+1]), "- "))
		}
	}
	return issuers
}

// TestInspectSignedPEs: kiln inspect lists every PE of the ESP with its
// signatures. Debian's shim (Microsoft's two signatures, signers issued by
// the intermediates they carry), GRUB and kernel (Debian's) and an
// unsigned systemd-boot, placed by a layer: signers and issuers as
// sbverify --list names them, each valid; --cert with the Microsoft 2011
// CA (taken from shim's own signature) says the 2011 signature chains to
// it and the 2023 one and Debian's do not.
func TestInspectSignedPEs(t *testing.T) {
	judge.Need(t, "sbverify", "mcopy")
	_, debs := demoDebs(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	efi := filepath.Join(rootfs, "boot/efi/EFI")
	debFile(t, filepath.Join(debs, "shim-signed.deb"), "./usr/lib/shim/shimx64.efi.signed", filepath.Join(efi, "debian/shimx64.efi"))
	debFile(t, filepath.Join(debs, "grub-efi-amd64-signed.deb"), "./usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", filepath.Join(efi, "debian/grubx64.efi"))
	debFile(t, filepath.Join(debs, "linux-image-amd64.deb"), "./boot/vmlinuz-*", filepath.Join(efi, "debian/vmlinuz.efi"))
	debFile(t, filepath.Join(debs, "systemd-boot-efi.deb"), "./usr/lib/systemd/boot/efi/systemd-bootx64.efi", filepath.Join(efi, "systemd/systemd-bootx64.efi"))
	writeFile(t, filepath.Join(efi, "debian/README.txt"), []byte("MZ, but not a PE"))
	writeFile(t, filepath.Join(rootfs, "etc/hostname"), []byte("kiln\n"))
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(`epoch: 1700000000
layers:
  - path: rootfs
disk:
  table: gpt
  size: auto
  partitions:
    - {name: esp, type: esp, size: 64MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, size: 8MiB, filesystem: ext4, mount: /}
output:
  path: out/vendors.img
`))
	if _, se, code := kiln(t, dir, nil, "build", "-q"); code != 0 {
		t.Fatalf("build: exit %d: %s", code, se)
	}
	img := filepath.Join(dir, "out/vendors.img")
	files := espPEs(t, img)
	pes := inspectPEs(t, inspectReport(t, img), img)
	if len(pes) != 4 {
		t.Fatalf("%d PEs, want shim, GRUB, the kernel and systemd-boot", len(pes))
	}
	if sd := pes["/EFI/SYSTEMD/SYSTEMD-BOOTX64.EFI"]; sd.Signed || len(sd.Signatures) != 0 || sd.Problem != "" {
		t.Errorf("systemd-boot: %+v, want unsigned", sd)
	}
	for _, name := range []string{"shimx64.efi", "grubx64.efi", "vmlinuz.efi"} {
		p := "/EFI/DEBIAN/" + strings.ToUpper(name)
		r := pes[p]
		want := sbverifyIssuers(t, files["/EFI/debian/"+name])
		if !r.Signed || len(r.Signatures) != len(want) || r.Problem != "" {
			t.Fatalf("%s: signed %v, %d signatures (%s), sbverify lists %d", p, r.Signed, len(r.Signatures), r.Problem, len(want))
		}
		for i, s := range r.Signatures {
			if !s.Valid || s.Reason != "" || s.DigestAlgorithm != "sha256" || s.Trusted != nil {
				t.Errorf("%s signature %d: %+v", p, i, s)
			}
			// sbverify prints /C=US/.../CN=X; the issuer's CN is X.
			if !strings.HasSuffix(want[i], "/CN="+s.Issuer) {
				t.Errorf("%s signature %d: issuer %q, sbverify %q", p, i, s.Issuer, want[i])
			}
		}
	}
	shim := pes["/EFI/DEBIAN/SHIMX64.EFI"].Signatures
	if len(shim) != 2 || shim[0].Signer != "Microsoft Windows UEFI Driver Publisher" || shim[1].Signer != "Microsoft UEFI CA 2023 signer" ||
		len(shim[0].Chain) != 2 || shim[0].Chain[1] != "Microsoft Corporation UEFI CA 2011" || shim[1].Entry != 1 {
		t.Errorf("shim's signatures: %+v", shim)
	}
	if s := pes["/EFI/DEBIAN/GRUBX64.EFI"].Signatures[0]; s.Signer != "Debian Secure Boot Signer 2022 - grub2" || s.Issuer != "Debian Secure Boot CA" {
		t.Errorf("GRUB's signature: %+v", s)
	}

	// --cert: Microsoft's 2011 CA, from shim's first WIN_CERTIFICATE
	// entry (osslsigncode refuses shim's table of two), by openssl.
	judge.Need(t, "openssl")
	shimPE, err := os.ReadFile(files["/EFI/debian/shimx64.efi"])
	if err != nil {
		t.Fatal(err)
	}
	pf, err := pe.NewFile(bytes.NewReader(shimPE))
	if err != nil {
		t.Fatal(err)
	}
	dd := pf.OptionalHeader.(*pe.OptionalHeader64).DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY]
	entryLen := binary.LittleEndian.Uint32(shimPE[dd.VirtualAddress:])
	p7 := filepath.Join(dir, "shim.p7")
	writeFile(t, p7, shimPE[dd.VirtualAddress+8:dd.VirtualAddress+entryLen])
	certs, code := judge.Run(t, nil, "openssl", "pkcs7", "-inform", "DER", "-in", p7, "-print_certs")
	if code != 0 {
		t.Fatalf("openssl pkcs7: %s", certs)
	}
	ca := ""
	for _, blk := range strings.SplitAfter(certs, "-----END CERTIFICATE-----") {
		if strings.Contains(blk, "subject=C = US, ST = Washington, L = Redmond, O = Microsoft Corporation, CN = Microsoft Corporation UEFI CA 2011") {
			ca = blk[strings.Index(blk, "-----BEGIN"):]
		}
	}
	if ca == "" {
		t.Fatalf("no UEFI CA 2011 in shim's signature:\n%s", certs)
	}
	caFile := filepath.Join(dir, "ms-uefi-ca-2011.pem")
	writeFile(t, caFile, []byte(ca+"\n"))
	pes = inspectPEs(t, inspectReport(t, img, "--cert", caFile), img)
	for p, want := range map[string][]bool{
		"/EFI/DEBIAN/SHIMX64.EFI": {true, false},
		"/EFI/DEBIAN/GRUBX64.EFI": {false},
		"/EFI/DEBIAN/VMLINUZ.EFI": {false},
	} {
		for i, s := range pes[p].Signatures {
			if s.Trusted == nil || *s.Trusted != want[i] {
				t.Errorf("%s signature %d with --cert the 2011 CA: trusted %v, want %v", p, i, s.Trusted, want[i])
			}
		}
	}
	so, se, code := kiln(t, "", nil, "inspect", "--cert", caFile, img)
	if code != 0 {
		t.Fatalf("kiln inspect: exit %d: %s", code, se)
	}
	for _, want := range []string{
		"PE files on partition 1:",
		"/EFI/debian/shimx64.efi: signed (2 signatures)",
		`signature 1: valid, sha256, signer "Microsoft Windows UEFI Driver Publisher" issued by "Microsoft Corporation UEFI CA 2011", chain "Microsoft Windows UEFI Driver Publisher" <- "Microsoft Corporation UEFI CA 2011"; chains to a --cert`,
		`signature 2: valid, sha256, signer "Microsoft UEFI CA 2023 signer" issued by "Microsoft UEFI CA 2023", chain "Microsoft UEFI CA 2023 signer" <- "Microsoft UEFI CA 2023"; does NOT chain to any --cert`,
		"/EFI/systemd/systemd-bootx64.efi: unsigned",
	} {
		if !strings.Contains(so, want) {
			t.Errorf("kiln inspect lacks %q:\n%s", want, so)
		}
	}
	if strings.Contains(so, "README") {
		t.Errorf("a text file starting with MZ listed as a PE:\n%s", so)
	}
	// A hostile ESP: its first FAT zeroed after the media and end-of-chain
	// entries, so every cluster chain ends at once. inspect still reports
	// the disk, and says what it could not read.
	parts := twoPartitions(t, img, "gpt")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bpb [512]byte
	if _, err := f.ReadAt(bpb[:], parts[0].Start*512); err != nil {
		t.Fatal(err)
	}
	fatAt := parts[0].Start*512 + int64(binary.LittleEndian.Uint16(bpb[14:]))*512
	if _, err := f.WriteAt(make([]byte, 4096), fatAt+12); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep := inspectReport(t, img)
	t.Logf("inspect of the broken ESP: problems %q", rep.Problems)
	if len(rep.Partitions) != 2 || len(rep.Partitions[0].PEs) != 0 || len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "partition 1 (vfat)") {
		t.Errorf("inspect of a broken ESP: %d partitions, PEs %v, problems %q", len(rep.Partitions), rep.Partitions[0].PEs, rep.Problems)
	}

	// A --cert file with no certificate is a usage error naming it.
	if _, se, code := kiln(t, "", nil, "inspect", "--cert", filepath.Join(dir, "kiln.yaml"), img); code != 2 || !strings.Contains(se, "kiln.yaml") {
		t.Errorf("--cert kiln.yaml: exit %d: %s", code, se)
	}
}

// TestInspectSecureBoot: for an image kiln signed (boot.secureboot with a
// db key from kiln keys generate), inspect shows every PE of the ESP
// signed once by the db certificate, valid and, with --cert db.crt,
// chaining to it (with an unrelated certificate, not); one byte changed
// in the data of a section of BOOTX64.EFI makes that signature INVALID
// with an image hash mismatch (and sbverify refuses it), while the other
// PEs stay valid.
func TestInspectSecureBoot(t *testing.T) {
	judge.Need(t, "sbverify", "mcopy")
	repo, debs := demoDebs(t)
	keys := generatedKeys(t)
	dbCrt := filepath.Join(keys, "db.crt")
	dbCert, err := x509.ParseCertificate(readPEM(t, dbCrt, "CERTIFICATE"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, other := testKeys(t, dir, "other")
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(secureBootSpec(repo, debs, "systemd-boot",
		"    key: "+filepath.Join(keys, "db.key")+"\n    cert: "+dbCrt+"\n")))
	if _, se, code := kiln(t, dir, nil, "build", "-q"); code != 0 {
		t.Fatalf("build: exit %d: %s", code, se)
	}
	img := filepath.Join(dir, "out/boot.img")
	pes := inspectPEs(t, inspectReport(t, img, "--cert", dbCrt), img)
	if len(pes) < 3 {
		t.Fatalf("%d PEs, want systemd-boot's two copies and the kernel", len(pes))
	}
	for p, r := range pes {
		if !r.Signed || len(r.Signatures) != 1 {
			t.Fatalf("%s: signed %v, %d signatures", p, r.Signed, len(r.Signatures))
		}
		// Debian's kernel keeps no signature of Debian's: kiln replaces it.
		s := r.Signatures[0]
		if !s.Valid || s.Signer != dbCert.Subject.CommonName || s.Issuer != dbCert.Issuer.CommonName || s.DigestAlgorithm != "sha256" || s.Trusted == nil || !*s.Trusted {
			t.Errorf("%s: %+v", p, s)
		}
	}
	for p, r := range inspectPEs(t, inspectReport(t, img, "--cert", other), img) {
		if s := r.Signatures[0]; s.Trusted == nil || *s.Trusted {
			t.Errorf("%s: trusted by an unrelated certificate: %+v", p, s)
		}
	}

	// One byte of BOOTX64.EFI's largest section, changed in the image.
	parts := twoPartitions(t, img, "gpt")
	espOff, espSize := parts[0].Start*512, parts[0].Size*512
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const target = "/EFI/BOOT/BOOTX64.EFI"
	ext, size, err := fat.FileExtents(io.NewSectionReader(f, espOff, espSize), espSize, target)
	if err != nil {
		t.Fatal(err)
	}
	var at int64 // the byte's offset in the file
	{
		b, err := os.ReadFile(espPEs(t, img)[target])
		if err != nil {
			t.Fatal(err)
		}
		pf, err := pe.NewFile(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		var big *pe.Section
		for _, s := range pf.Sections {
			if big == nil || s.Size > big.Size {
				big = s
			}
		}
		at = int64(big.Offset) + int64(big.Size)/2
		if int64(len(b)) != size || at >= size {
			t.Fatalf("%s: %d bytes copied, %d in the FAT, offset %d", target, len(b), size, at)
		}
	}
	imgAt := int64(-1)
	for rest := at; len(ext) > 0; ext = ext[1:] {
		if n := int64(ext[0].Count) * 512; rest < n {
			imgAt = espOff + int64(ext[0].Sector)*512 + rest
			break
		} else {
			rest -= n
		}
	}
	if imgAt < 0 {
		t.Fatalf("offset %d is not in %s's extents", at, target)
	}
	var one [1]byte
	if _, err := f.ReadAt(one[:], imgAt); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x01
	if _, err := f.WriteAt(one[:], imgAt); err != nil {
		t.Fatal(err)
	}
	pes = inspectPEs(t, inspectReport(t, img, "--cert", dbCrt), img)
	for p, r := range pes {
		s := r.Signatures[0]
		if p == target {
			if s.Valid || !strings.Contains(s.Reason, "image hash mismatch") || s.Trusted == nil || *s.Trusted {
				t.Errorf("%s changed: %+v, want invalid with an image hash mismatch", p, s)
			}
			if out, code := judge.Run(t, nil, "sbverify", "--cert", dbCrt, espPEs(t, img)[target]); code == 0 {
				t.Errorf("sbverify accepts the changed %s:\n%s", p, out)
			}
		} else if !s.Valid {
			t.Errorf("%s: %+v, untouched but not valid", p, s)
		}
	}
	so, _, code := kiln(t, "", nil, "inspect", img)
	if code != 0 || !strings.Contains(so, "/EFI/BOOT/BOOTX64.EFI: signed (1 signature)\n    signature 1: INVALID (image hash mismatch") {
		t.Errorf("kiln inspect of the changed image: exit %d\n%s", code, so)
	}
}

// TestVerifySecureBoot: kiln verify says reproducible for a spec signed
// inline (keys from kiln keys generate, given relative to the spec's
// folder); for signer external it refuses to run without --signatures
// (exit 2, naming the flag), and with the signatures of the request (and
// --init, both relative to the working folder) it says reproducible, and
// the image is the inline one.
func TestVerifySecureBoot(t *testing.T) {
	judge.Need(t, "openssl")
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	keys := generatedKeys(t)
	for _, f := range []string{"db.key", "db.crt"} {
		b, err := os.ReadFile(filepath.Join(keys, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "keys", f), b)
	}
	inline := filepath.Join(dir, "inline")
	writeFile(t, filepath.Join(inline, "kiln.yaml"), []byte(secureBootSpec(repo, debs, "uki", "    key: ../keys/db.key\n    cert: ../keys/db.crt\n")))
	sums := func(out string) []string {
		var s []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[1] == "build" {
				s = append(s, f[0])
			}
		}
		return s
	}
	so, se, code := kiln(t, "", nil, "verify", "-q", filepath.Join(inline, "kiln.yaml"))
	inlineSums := sums(so)
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(so), "reproducible") || strings.Contains(so, "NOT") || len(inlineSums) != 2 {
		t.Fatalf("kiln verify of an inline-signed spec: exit %d\n%s%s", code, so, se)
	}

	ext := filepath.Join(dir, "external")
	spec := filepath.Join(ext, "kiln.yaml")
	writeFile(t, spec, []byte(secureBootSpec(repo, debs, "uki", "    cert: ../keys/db.crt\n    signer: external\n")))
	so, se, code = kiln(t, "", nil, "verify", "-q", spec)
	if code != 2 || !strings.Contains(se, "--signatures") || !strings.Contains(se, "external") {
		t.Errorf("kiln verify of an external-signer spec without --signatures: exit %d, want 2 naming --signatures\n%s%s", code, so, se)
	}
	// --signatures with an inline signer is refused too.
	if _, se, code := kiln(t, "", nil, "verify", "-q", "--signatures", spec, filepath.Join(inline, "kiln.yaml")); code != 2 || !strings.Contains(se, "signer is inline") {
		t.Errorf("kiln verify --signatures of an inline spec: exit %d: %s", code, se)
	}

	// The request, signed with openssl as the README shows.
	if _, se, code := kiln(t, ext, nil, "build", "-q"); code != 5 {
		t.Fatalf("external build: exit %d, want 5: %s", code, se)
	}
	var req build.SigningRequest
	b, err := os.ReadFile(filepath.Join(ext, "out/boot.img.signing-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	sigs := build.Signatures{Version: 1}
	for i, f := range req.Files {
		d, err := hex.DecodeString(f.Digest)
		if err != nil {
			t.Fatal(err)
		}
		in, out := filepath.Join(dir, fmt.Sprintf("d%d.bin", i)), filepath.Join(dir, fmt.Sprintf("s%d.bin", i))
		writeFile(t, in, d)
		if o, code := judge.Run(t, nil, "openssl", "pkeyutl", "-sign", "-inkey", filepath.Join(dir, "keys/db.key"), "-pkeyopt", "digest:sha256", "-in", in, "-out", out); code != 0 {
			t.Fatalf("openssl pkeyutl: %s", o)
		}
		s, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sigs.Signatures = append(sigs.Signatures, build.FileSignature{Path: f.Path, Digest: f.Digest, Signature: base64.StdEncoding.EncodeToString(s)})
	}
	sb, err := json.Marshal(sigs)
	if err != nil {
		t.Fatal(err)
	}
	// Relative to the working folder, as a user gives it.
	writeFile(t, filepath.Join(ext, "signatures.json"), sb)
	// And --init relative too: the second build runs elsewhere.
	relInit, err := filepath.Rel(ext, filepath.Join(filepath.Dir(kilnBin), "kiln-init"))
	if err != nil {
		t.Fatal(err)
	}
	so, se, code = kiln(t, ext, nil, "verify", "-q", "--init", relInit, "--signatures", "signatures.json", "kiln.yaml")
	extSums := sums(so)
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(so), "reproducible") || strings.Contains(so, "NOT") || len(extSums) != 2 {
		t.Fatalf("kiln verify --signatures: exit %d\n%s%s", code, so, se)
	}
	if extSums[0] != inlineSums[0] {
		t.Errorf("externally signed image %s, inline %s: want the same", extSums[0], inlineSums[0])
	}
}
