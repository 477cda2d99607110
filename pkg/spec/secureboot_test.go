package spec

import (
	"strings"
	"testing"
)

// sbBoot is a boot: section with secureboot keys appended by each case;
// boot: is on line 24 of good+sbBoot, secureboot: on line 27.
const sbBoot = "boot:\n  loader: uki\n  kernel: /boot/vmlinuz-*\n  secureboot:\n"

// TestParseSecureBoot: boot.secureboot is read with its defaults, and
// every rule is an error naming the key and its line.
func TestParseSecureBoot(t *testing.T) {
	s, err := Parse("kiln.yaml", []byte(good+sbBoot+"    key: keys/db.key\n    cert: keys/db.crt\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sb := s.Boot.SecureBoot; sb == nil || sb.Key != "keys/db.key" || sb.Cert != "keys/db.crt" || sb.Signer != "inline" {
		t.Fatalf("secureboot: %+v", sb)
	}
	ext, err := Parse("kiln.yaml", []byte(good+sbBoot+"    cert: keys/db.crt\n    signer: external\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sb := ext.Boot.SecureBoot; sb.Signer != "external" || sb.Key != "" {
		t.Fatalf("external: %+v", sb)
	}
	for _, loader := range []string{"systemd-boot", "hybrid"} {
		src := good + strings.Replace(sbBoot, "uki", loader, 1) + "    key: k\n    cert: c\n"
		if _, err := Parse("kiln.yaml", []byte(src)); err != nil {
			t.Errorf("loader %s: %v", loader, err)
		}
		// systemd-boot enrols keys: enroll: is taken with it.
		s, err := Parse("kiln.yaml", []byte(src+"    enroll: keys/\n"))
		if err != nil || s.Boot.SecureBoot.Enroll != "keys/" {
			t.Errorf("loader %s with enroll: %v", loader, err)
		}
	}
	for _, tc := range []struct{ add, want string }{
		{"    key: k\n", "kiln.yaml:27: boot.secureboot.cert: missing"},
		{"    cert: c\n", "kiln.yaml:27: boot.secureboot.key: missing"},
		{"    cert: c\n    signer: inline\n", "kiln.yaml:27: boot.secureboot.key: missing"},
		{"    key: k\n    cert: c\n    signer: hsm\n", `kiln.yaml:30: boot.secureboot.signer: "hsm" is not one of inline, external`},
		{"    key: k\n    cert: c\n    signer: external\n", "kiln.yaml:28: boot.secureboot.key: signer external"},
		{"    key: k\n    cert: c\n    enroll: keys/\n", `kiln.yaml:30: boot.secureboot.enroll: systemd-boot enrols the keys, and this image's UEFI loader is a UKI alone`},
		{"    key: k\n    cert: c\n    enrol: keys/\n", `kiln.yaml:30: unknown key "enrol" in boot.secureboot`},
		{"    - k\n", "boot.secureboot: want a mapping"},
	} {
		if _, err := Parse("kiln.yaml", []byte(good+sbBoot+tc.add)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.add, err, tc.want)
		}
	}
	for _, loader := range []string{"syslinux", "none"} {
		src := good + strings.Replace(sbBoot, "uki", loader, 1) + "    key: k\n    cert: c\n"
		if _, err := Parse("kiln.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "kiln.yaml:27: boot.secureboot: loader "+loader) {
			t.Errorf("loader %s: got %v", loader, err)
		}
	}
}

// TestSecureBootIDs: the signer's mode and the key's and certificate's
// paths change no ID (an external signer's image is bit-identical to the
// inline one's), and the signer's mode and the key's path not even the
// spec's digest; signing at all does change the IDs, since a signed and
// an unsigned image differ.
func TestSecureBootIDs(t *testing.T) {
	parse := func(src string) *Spec {
		t.Helper()
		s, err := Parse("kiln.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	d := []string{"tar:sha256:aa", "dir:sha256:bb"}
	inline := parse(good + sbBoot + "    key: keys/db.key\n    cert: keys/db.crt\n")
	external := parse(good + sbBoot + "    cert: keys/db.crt\n    signer: external\n")
	otherKey := parse(good + sbBoot + "    key: /secret/other.key\n    cert: keys/db.crt\n    signer: inline\n")
	moved := parse(good + sbBoot + "    key: k\n    cert: /etc/kiln/db.pem\n")
	unsigned := parse(good + strings.TrimSuffix(sbBoot, "  secureboot:\n"))
	base := inline.IDSeed(d)
	for name, s := range map[string]*Spec{"external": external, "another key path": otherKey, "another cert path": moved} {
		if got := s.IDSeed(d); got != base {
			t.Errorf("%s changes the ID seed: %s, want %s", name, got, base)
		}
	}
	if external.Digest() != inline.Digest() || otherKey.Digest() != inline.Digest() {
		t.Error("the signer's mode or the key's path changes the spec's digest")
	}
	if moved.Digest() == inline.Digest() {
		t.Error("the certificate's path is not in the spec's canonical form")
	}
	if unsigned.IDSeed(d) == base {
		t.Error("a signed and an unsigned spec give the same ID seed")
	}
	if strings.Contains(inline.Digest(), "db.key") {
		t.Error("BUG: digest is hex")
	}
}

// TestParseUKIAndShim: boot.uki goes with systemd-boot (alone or as
// hybrid's UEFI half) and nothing else; loader shim takes secureboot (its
// key signs the kernel, for MOK) but not enroll (shim boots on the
// firmware's keys); its paths are patterns checked like the others.
func TestParseUKIAndShim(t *testing.T) {
	const boot = "boot:\n  loader: %s\n  kernel: /boot/vmlinuz-*\n%s"
	parse := func(loader, rest string) error {
		_, err := Parse("kiln.yaml", []byte(good+strings.Replace(strings.Replace(boot, "%s", loader, 1), "%s", rest, 1)))
		return err
	}
	for _, ok := range []struct{ loader, rest string }{
		{"systemd-boot", "  uki: true\n"},
		{"hybrid", "  uki: true\n"},
		{"hybrid", "  uefi: systemd-boot\n  uki: true\n"},
		{"shim", ""},
		{"shim", "  secureboot:\n    key: k\n    cert: c\n"},
		{"shim", "  paths:\n    shim: /usr/lib/shim/shimx64.efi.signed\n    mok_manager: /x/mm*.efi\n    grub: /g/grub*.signed\n"},
	} {
		if err := parse(ok.loader, ok.rest); err != nil {
			t.Errorf("%s %q: %v", ok.loader, ok.rest, err)
		}
	}
	for _, tc := range []struct{ loader, rest, want string }{
		{"uki", "  uki: true\n", "kiln.yaml:27: boot.uki: puts the kernel in a UKI that systemd-boot lists"},
		{"hybrid", "  uefi: uki\n  uki: true\n", "kiln.yaml:28: boot.uki:"},
		{"syslinux", "  uki: true\n", "kiln.yaml:27: boot.uki:"},
		{"shim", "  uki: true\n", "kiln.yaml:27: boot.uki:"},
		{"shim", "  secureboot:\n    key: k\n    cert: c\n    enroll: keys/\n", "kiln.yaml:30: boot.secureboot.enroll: shim boots on the firmware's own keys"},
		{"shim", "  paths:\n    grub: /g/[x\n", "kiln.yaml:28: boot.paths.grub:"},
		{"shim", "  paths:\n    shimm: /x\n", `unknown key "shimm" in boot.paths`},
	} {
		if err := parse(tc.loader, tc.rest); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: got %v, want %q", tc.loader, tc.rest, err, tc.want)
		}
	}
}

// TestParseBIOSLoaderArch: syslinux and hybrid boot PC BIOS, which only
// x86 has; an arm64 disk with either is refused on the loader's line.
func TestParseBIOSLoaderArch(t *testing.T) {
	for _, loader := range []string{"syslinux", "hybrid"} {
		src := strings.Replace(good, "disk:\n", "disk:\n  arch: arm64\n", 1) + "boot:\n  loader: " + loader + "\n  kernel: /boot/vmlinuz-*\n"
		_, err := Parse("kiln.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), "boot.loader: "+loader+" boots through PC BIOS (syslinux), which arm64 machines do not have") {
			t.Errorf("%s on arm64: %v", loader, err)
		}
		if _, err := ParseWith("kiln.yaml", []byte(good+"boot:\n  loader: "+loader+"\n  kernel: /boot/vmlinuz-*\n"), Options{Arch: "aarch64"}); err == nil {
			t.Errorf("%s with the arch overridden to aarch64 accepted", loader)
		}
		if _, err := Parse("kiln.yaml", []byte(good+"boot:\n  loader: "+loader+"\n  kernel: /boot/vmlinuz-*\n")); err != nil {
			t.Errorf("%s on x86-64: %v", loader, err)
		}
	}
	for _, loader := range []string{"systemd-boot", "uki", "shim"} {
		src := strings.Replace(good, "disk:\n", "disk:\n  arch: arm64\n", 1) + "boot:\n  loader: " + loader + "\n  kernel: /boot/vmlinuz-*\n"
		if _, err := Parse("kiln.yaml", []byte(src)); err != nil {
			t.Errorf("%s on arm64: %v", loader, err)
		}
	}
}
