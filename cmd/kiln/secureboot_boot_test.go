package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// enrollSpec is the demo's packages booting through systemd-boot,
// every PE signed with keyDir's db key, and enrollDir's keys for
// systemd-boot to enrol.
func enrollSpec(repo, debs, keyDir, enrollDir string) string {
	layers := demoLayers(repo, debs, []string{"linux-image-amd64", "busybox-static", "systemd-boot-efi"})
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
  loader: systemd-boot
  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=ttyS0 rw no_timer_check
  secureboot:
    key: %s/db.key
    cert: %s/db.crt
    enroll: %s/
output:
  path: out/sb.img
`, layers, keyDir, keyDir, enrollDir)
}

// TestBootSecureBoot: keys from kiln keys generate; the image carries
// them for systemd-boot to enrol (boot.secureboot.enroll) and every PE is
// signed with the db key. kiln run --secure-boot starts OVMF's Secure Boot
// build in setup mode: systemd-boot enrols the keys, resets, and the
// signed loader and kernel boot with Secure Boot enforced (the kernel says
// so, and locks itself down) to the demo's marker. The same image signed
// with another db key is refused by the firmware after the enrolment
// ("Access Denied") and never reaches the marker.
func TestBootSecureBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	judge.Need(t, "qemu-system-x86_64")
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"); err != nil {
		testkit.Missing(t, "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd (Debian's ovmf package)")
	}
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	for _, k := range []struct{ dir, name string }{{"keys", "kiln-test"}, {"other", "someone-else"}} {
		if _, se, code := kiln(t, dir, nil, "keys", "generate", k.dir, "--epoch", "1700000000", "--name", k.name); code != 0 {
			t.Fatalf("kiln keys generate %s: %s", k.dir, se)
		}
	}
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(enrollSpec(repo, debs, "keys", "keys")))
	writeFile(t, filepath.Join(dir, "other.yaml"), []byte(strings.Replace(enrollSpec(repo, debs, "other", "keys"), "out/sb.img", "out/other.img", 1)))
	for _, s := range []string{"kiln.yaml", "other.yaml"} {
		if _, se, code := kiln(t, dir, nil, "build", "-q", s); code != 0 {
			t.Fatalf("build %s: %s", s, se)
		}
	}
	run := func(img string) (string, int) {
		out, se, code := kiln(t, "", nil, "run", "--secure-boot", "--accel", "tcg", "--timeout", "240s",
			"--expect", "KILN-DEMO-BOOTED firmware=uefi", "--fail-on", "Access Denied", "--fail-on", "Security Violation", "--fail-on", "Kernel panic", img)
		if m := bootSeconds.FindStringSubmatch(se); m != nil {
			t.Logf("%s: marker %s s after QEMU started", filepath.Base(img), m[1])
		}
		return out + se, code
	}
	out, code := run(filepath.Join(dir, "out/sb.img"))
	if code != 0 {
		t.Fatalf("the signed image did not boot under Secure Boot (exit %d):\n%s", code, out)
	}
	for _, want := range []string{"Enrolling secure boot keys", "secureboot: Secure boot enabled", "Kernel is locked down from EFI Secure Boot", "KILN-DEMO-BOOTED firmware=uefi"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	out, code = run(filepath.Join(dir, "out/other.img"))
	if code == 0 || strings.Contains(out, "KILN-DEMO-BOOTED") || !strings.Contains(out, "Access Denied") {
		t.Fatalf("an image signed with a key outside the enrolled db was not refused by the firmware (exit %d):\n%s", code, out)
	}
}
