package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// chainInit replaces the demo's /sbin/init: it prints the command line the
// kernel got and how / is mounted, then powers off.
const chainInit = `#!/bin/busybox sh
bb=/bin/busybox
echo "chain: cmdline $($bb cat /proc/cmdline)"
echo "chain: root $($bb awk '$2 == "/" { split($4, o, ","); print $1, $3, o[1] }' /proc/mounts | $bb tail -n 1)"
echo "KILN-CHAIN-BOOTED"
$bb poweroff -f
`

// sealedUKISpec is the whole chain: systemd-boot enrols keys/ and boots a
// signed UKI (boot.uki) whose command line carries the sealed root's
// hash. With signed false, the same image unsigned.
func sealedUKISpec(t *testing.T, dir, repo, debs string, signed bool) string {
	writeFile(t, filepath.Join(dir, "init/sbin/init"), []byte(chainInit))
	if err := os.Chmod(filepath.Join(dir, "init/sbin/init"), 0o755); err != nil {
		t.Fatal(err)
	}
	layers := demoLayers(repo, debs, []string{"linux-image-amd64", "busybox-static", "systemd-boot-efi"}, "init/")
	sb, out := "  secureboot:\n    key: keys/db.key\n    cert: keys/db.crt\n    enroll: keys/\n", "out/signed.img"
	if !signed {
		sb, out = "", "out/unsigned.img"
	}
	return fmt.Sprintf(`epoch: 1700000000
layers:
%sdisk:
  table: gpt
  partitions:
    - {name: esp, type: esp, size: 64MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, filesystem: erofs, verity: true, size: auto, mount: /}
boot:
  loader: systemd-boot
  uki: true
  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=ttyS0 ro no_timer_check
%soutput:
  path: %s
`, layers, sb, out)
}

// needSecureBootFirmware makes the test Missing without OVMF's Secure Boot
// build and variable stores.
func needSecureBootFirmware(t *testing.T) {
	t.Helper()
	judge.Need(t, "qemu-system-x86_64")
	for _, f := range []string{"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"} {
		if _, err := os.Stat(f); err != nil {
			testkit.Missing(t, "%s (Debian's ovmf package)", f)
		}
	}
}

// TestBootSecureBootSealedUKI proves the chain firmware -> signed UKI
// (command line with the root hash) -> verified root, on one variable
// store kept across boots (kiln run --efi-vars):
//
//  1. the signed image: systemd-boot enrols the keys in setup mode and
//     resets; the firmware then checks the UKI, the kernel says Secure
//     Boot is on, the command line it got carries roothash=, and / is
//     EROFS from /dev/mapper/root;
//  2. the same image with one byte of the UKI's .cmdline changed: the
//     firmware refuses the UKI ("Access Denied"), nothing boots;
//  3. the image built unsigned: the firmware refuses systemd-boot itself.
func TestBootSecureBootSealedUKI(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	needSecureBootFirmware(t)
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	if _, se, code := kiln(t, dir, nil, "keys", "generate", "keys", "--epoch", "1700000000", "--name", "kiln-chain"); code != 0 {
		t.Fatalf("kiln keys generate: %s", se)
	}
	writeFile(t, filepath.Join(dir, "signed.yaml"), []byte(sealedUKISpec(t, dir, repo, debs, true)))
	writeFile(t, filepath.Join(dir, "unsigned.yaml"), []byte(sealedUKISpec(t, dir, repo, debs, false)))
	for _, s := range []string{"signed.yaml", "unsigned.yaml"} {
		if _, se, code := kiln(t, dir, nil, "build", "-q", s); code != 0 {
			t.Fatalf("build %s: %s", s, se)
		}
	}
	signed := filepath.Join(dir, "out/signed.img")
	rootHash := rootHashOf(t, signed)
	vars := filepath.Join(dir, "vars.fd")
	run := func(img string, args ...string) (string, int) {
		t.Helper()
		args = append([]string{"run", "--secure-boot", "--efi-vars", vars, "--accel", "tcg", "--timeout", "240s"}, append(args, img)...)
		out, se, code := kiln(t, "", nil, args...)
		if m := bootSeconds.FindStringSubmatch(se); m != nil {
			t.Logf("%s: expected text %s s after QEMU started", filepath.Base(img), m[1])
		}
		return out + se, code
	}

	out, code := run(signed, "--expect", "KILN-CHAIN-BOOTED", "--fail-on", "Access Denied", "--fail-on", "Security Violation", "--fail-on", "Kernel panic", "--fail-on", "kiln-init: starting /bin/sh")
	if code != 0 {
		t.Fatalf("the signed sealed UKI did not boot under Secure Boot (exit %d):\n%s", code, out)
	}
	for _, want := range []string{
		"Enrolling secure boot keys",
		"secureboot: Secure boot enabled",
		"Kernel is locked down from EFI Secure Boot",
		"kiln-init: verity: created /dev/mapper/root",
		"chain: cmdline console=ttyS0 ro no_timer_check root=/dev/mapper/root rootfstype=erofs roothash=" + rootHash,
		"chain: root /dev/mapper/root erofs ro",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}

	// One byte of the UKI's .cmdline: "ttyS0" becomes "ttyS1". The
	// command line is in the image once, in the UKI on the ESP.
	tampered := filepath.Join(dir, "out/tampered.img")
	copyFile(t, signed, tampered)
	img, err := os.ReadFile(tampered)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("console=ttyS0 ro no_timer_check root=/dev/mapper/root rootfstype=erofs roothash=" + rootHash)
	if n := bytes.Count(img, line); n != 1 {
		t.Fatalf("the command line is in the image %d times, want once (in the UKI's .cmdline)", n)
	}
	i := bytes.Index(img, line) + len("console=ttyS")
	f, err := os.OpenFile(tampered, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'1'}, int64(i)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	img = nil
	for _, c := range []struct{ img, what, want string }{
		{tampered, "a UKI with one byte of .cmdline changed", `Error loading \EFI\Linux\`},
		{filepath.Join(dir, "out/unsigned.img"), "an unsigned image", `BdsDxe: failed to load Boot0001`},
	} {
		out, code := run(c.img, "--expect", "Access Denied", "--fail-on", "KILN-CHAIN-BOOTED", "--fail-on", "Linux version")
		if code != 0 || !strings.Contains(out, c.want) || strings.Contains(out, "secureboot: Secure boot enabled") {
			t.Errorf("%s was not refused by the firmware (exit %d, want %q then Access Denied):\n%s", c.what, code, c.want, out)
		}
	}
}

// shimSpec boots the demo's kernel and busybox through Debian's signed
// shim and GRUB; sb is a boot.secureboot section or "".
func shimSpec(repo, debs, sb, out string) string {
	layers := demoLayers(repo, debs, []string{"linux-image-amd64", "busybox-static", "shim-signed", "shim-helpers-amd64-signed", "grub-efi-amd64-signed"})
	return fmt.Sprintf(`epoch: 1700000000
layers:
%sdisk:
  table: gpt
  size: auto
  free: 16MiB
  partitions:
    - {name: esp, type: esp, size: 64MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
boot:
  loader: shim
  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=ttyS0 rw no_timer_check
%soutput:
  path: %s
`, layers, sb, out)
}

// TestBootShim: the stock-firmware path. On OVMF's store with Microsoft's
// keys enrolled and Secure Boot on (kiln run --microsoft-keys), Debian's
// Microsoft-signed shim boots Debian's signed GRUB, which boots Debian's
// signed kernel to the demo's marker with Secure Boot enforced. The same
// image with the kernel re-signed by a key shim does not know (its MOK
// list is empty) stops before the kernel: shim checks it.
func TestBootShim(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	needSecureBootFirmware(t)
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	if _, se, code := kiln(t, dir, nil, "keys", "generate", "keys", "--epoch", "1700000000", "--name", "kiln-mok"); code != 0 {
		t.Fatalf("kiln keys generate: %s", se)
	}
	writeFile(t, filepath.Join(dir, "shim.yaml"), []byte(shimSpec(repo, debs, "", "out/shim.img")))
	writeFile(t, filepath.Join(dir, "mok.yaml"), []byte(shimSpec(repo, debs, "  secureboot:\n    key: keys/db.key\n    cert: keys/db.crt\n", "out/mok.img")))
	for _, s := range []string{"shim.yaml", "mok.yaml"} {
		if _, se, code := kiln(t, dir, nil, "build", "-q", s); code != 0 {
			t.Fatalf("build %s: %s", s, se)
		}
	}
	run := func(img string, args ...string) (string, int) {
		t.Helper()
		args = append([]string{"run", "--microsoft-keys", "--accel", "tcg", "--timeout", "240s"}, append(args, img)...)
		out, se, code := kiln(t, "", nil, args...)
		if m := bootSeconds.FindStringSubmatch(se); m != nil {
			t.Logf("%s: expected text %s s after QEMU started", filepath.Base(img), m[1])
		}
		return out + se, code
	}
	out, code := run(filepath.Join(dir, "out/shim.img"), "--expect", "KILN-DEMO-BOOTED firmware=uefi", "--fail-on", "Access Denied", "--fail-on", "Kernel panic")
	if code != 0 {
		t.Fatalf("the shim image did not boot on the Microsoft store (exit %d):\n%s", code, out)
	}
	for _, want := range []string{
		"EFI stub: UEFI Secure Boot is enabled.",
		"secureboot: Secure boot enabled",
		"Kernel is locked down from EFI Secure Boot",
		"KILN-DEMO-BOOTED firmware=uefi",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	out, code = run(filepath.Join(dir, "out/mok.img"), "--expect", "bad shim signature", "--fail-on", "KILN-DEMO-BOOTED", "--fail-on", "Linux version")
	if code != 0 || strings.Contains(out, "secureboot: Secure boot enabled") {
		t.Errorf("a kernel signed with a key outside shim's lists was not refused (exit %d):\n%s", code, out)
	}
}

// TestSecureBootNoPrivateKey (must-show 5): keys are generated at test
// time; an inline-signed build (systemd-boot with a UKI entry, keys to
// enrol, the sealed root) writes no part of the private key into the
// image, its output, its JSON summary or its progress lines: neither the PEM,
// nor the PKCS#8 DER, nor the private exponent or a prime as big-endian
// bytes. And no file git tracks holds a PEM private key.
func TestSecureBootNoPrivateKey(t *testing.T) {
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	if _, se, code := kiln(t, dir, nil, "keys", "generate", "keys", "--epoch", "1700000000", "--name", "kiln-leak"); code != 0 {
		t.Fatalf("kiln keys generate: %s", se)
	}
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(sealedUKISpec(t, dir, repo, debs, true)))
	so, se, code := kiln(t, dir, nil, "build", "--progress", "always", "--json", "kiln.yaml")
	if code != 0 {
		t.Fatalf("build: %s", se)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "keys/db.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		t.Fatal("keys/db.key holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk := k.(*rsa.PrivateKey)
	secrets := map[string][]byte{
		"the key's PEM":              bytes.TrimSpace(keyPEM),
		"the key's DER":              blk.Bytes,
		"the private exponent":       rk.D.Bytes(),
		"the first prime":            rk.Primes[0].Bytes(),
		"the second prime":           rk.Primes[1].Bytes(),
		"a PEM private key's header": []byte("PRIVATE " + "KEY-----"),
	}
	img, err := os.ReadFile(filepath.Join(dir, "out/signed.img"))
	if err != nil {
		t.Fatal(err)
	}
	if len(img) < 1<<20 {
		t.Fatalf("the image has %d bytes", len(img))
	}
	for where, b := range map[string][]byte{"the image": img, "stdout": []byte(so), "stderr": []byte(se)} {
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s holds %s", where, what)
			}
		}
	}
	// The signing did happen: the certificate is in the image.
	crt, _ := pem.Decode(mustRead(t, filepath.Join(dir, "keys/db.crt")))
	if crt == nil || !bytes.Contains(img, crt.Bytes) {
		t.Error("the image lacks the db certificate: was it signed?")
	}

	out, err := exec.Command("git", "-C", repo, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 100 {
		t.Fatalf("git ls-files lists %d files", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted in the work tree, not yet committed
			}
			t.Fatal(err)
		}
		if bytes.Contains(b, secrets["a PEM private key's header"]) {
			t.Errorf("%s (tracked by git) holds a PEM private key", f)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
