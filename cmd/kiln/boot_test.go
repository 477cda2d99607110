package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// demoDebs fetches the demo's Debian packages (kernel, busybox-static,
// systemd-boot-efi, syslinux, syslinux-common) into .cache/debs with
// scripts/fetch-debs.sh, as make demo does, and returns the folder.
func demoDebs(t *testing.T) (repo, debs string) {
	t.Helper()
	return fetchDebs(t, "layers/demo/debs.txt", "debs")
}

// fetchDebs fetches the packages of list (relative to the repository)
// into .cache/NAME with scripts/fetch-debs.sh and returns the repository
// and that folder.
func fetchDebs(t *testing.T, list, name string) (repo, debs string) {
	t.Helper()
	repo, _ = filepath.Abs("../..")
	debs = filepath.Join(repo, ".cache", name)
	cmd := exec.Command(filepath.Join(repo, "scripts", "fetch-debs.sh"), filepath.Join(repo, list), debs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fetch-debs.sh %s: %v\n%s", list, err, out)
	}
	return repo, debs
}

// demoLayers is the body of a spec's layers: list: the .debs named pkgs
// (as fetched into debs), the demo's rootfs, then the extra paths.
func demoLayers(repo, debs string, pkgs []string, extra ...string) string {
	var b strings.Builder
	for _, d := range pkgs {
		fmt.Fprintf(&b, "  - path: %s\n", filepath.Join(debs, d+".deb"))
	}
	for _, p := range append([]string{filepath.Join(repo, "layers/demo/rootfs")}, extra...) {
		fmt.Fprintf(&b, "  - path: %s\n", p)
	}
	return b.String()
}

// bootSpec is a spec booting the demo's layers with a given table and loader.
func bootSpec(repo, debs, table, loader, uefi string) string {
	layers := demoLayers(repo, debs, []string{"linux-image-amd64", "busybox-static", "systemd-boot-efi", "syslinux", "syslinux-common"})
	extra := ""
	if uefi != "" {
		extra = "  uefi: " + uefi + "\n"
	}
	return fmt.Sprintf(`epoch: 1700000000
layers:
%sdisk:
  table: %s
  size: auto
  free: 16MiB
  partitions:
    - {name: esp, type: esp, size: 64MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
boot:
  loader: %s
%s  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=ttyS0 rw no_timer_check
output:
  path: out/boot.img
`, layers, table, loader, extra)
}

var bootSeconds = regexp.MustCompile(`seen ([0-9.]+)s after QEMU started`)

// bootAndExpect boots img with kiln run and checks that the kiln
// initramfs mounted the ext4 root and the image's init ran.
func bootAndExpect(t *testing.T, img, firmware string) {
	t.Helper()
	out, stderr, code := kiln(t, "", nil, "run", "--firmware", firmware, "--accel", "tcg", "--expect", "KILN-DEMO-BOOTED firmware="+firmware, "--timeout", "240s", img)
	if code != 0 {
		t.Fatalf("kiln run --firmware %s: exit %d: %s\nserial console:\n%s", firmware, code, stderr, out)
	}
	for _, want := range []string{
		"kiln-init: switching to /sbin/init on /dev/vda2", // the kiln initramfs found and mounted the root
		"root is /dev/vda2 ext4",                          // what the image's init sees as /
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serial console lacks %q:\n%s", want, out)
		}
	}
	if m := bootSeconds.FindStringSubmatch(stderr); m != nil {
		t.Logf("%s: marker %s s after QEMU started", firmware, m[1])
	}
}

// checkBootImage runs the foundation's judges on a bootable image.
func checkBootImage(t *testing.T, img, table string) {
	t.Helper()
	parts := twoPartitions(t, img, table)
	judge.FsckVfat(t, judge.Extract(t, img, parts[0].Start*512, parts[0].Size*512))
	judge.E2fsck(t, judge.Extract(t, img, parts[1].Start*512, parts[1].Size*512))
}

func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	judge.Need(t, "qemu-system-x86_64", "sgdisk", "sfdisk", "e2fsck", "fsck.vfat")
	repo, debs := demoDebs(t)
	cases := []struct {
		name, table, loader, uefi string
		firmwares                 []string
		twice                     bool // build twice, in another environment: same bytes
	}{
		{"uefi-systemd-boot", "gpt", "systemd-boot", "", []string{"uefi"}, false},
		{"uefi-uki", "gpt", "uki", "", []string{"uefi"}, true},
		{"bios-syslinux-mbr", "mbr", "syslinux", "", []string{"bios"}, false},
		{"hybrid-gpt", "gpt", "hybrid", "", []string{"bios", "uefi"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(bootSpec(repo, debs, tc.table, tc.loader, tc.uefi)))
			so, se, code := kiln(t, dir, nil, "build", "-q", "--json")
			if code != 0 {
				t.Fatalf("build: %s", se)
			}
			// The summary names the kiln-init whose bytes are in the
			// initramfs: the one kiln carries, which is this tree's
			// (the same bytes as the kiln-init TestMain built beside it).
			var sum buildSummary
			if err := json.Unmarshal([]byte(so), &sum); err != nil {
				t.Fatalf("build --json: %v\n%s", err, so)
			}
			initBin := filepath.Join(filepath.Dir(kilnBin), "kiln-init")
			if sum.Kiln.Init == nil || sum.Kiln.Init.Path != "embedded kiln-init-amd64" || sum.Kiln.Init.SHA256 != "sha256:"+judge.SHA256File(t, initBin) {
				t.Errorf("kiln_init %+v, want the embedded kiln-init-amd64 with the sha256 of %s", sum.Kiln.Init, initBin)
			}
			img := filepath.Join(dir, "out/boot.img")
			checkBootImage(t, img, tc.table)
			if tc.twice {
				other := filepath.Join(t.TempDir(), "again.img")
				env := []string{"TZ=Asia/Kathmandu", "LC_ALL=C.UTF-8", "GOMAXPROCS=1", "TMPDIR=" + t.TempDir()}
				if _, se, code := kiln(t, t.TempDir(), env, "build", "-q", "-o", other, filepath.Join(dir, "kiln.yaml")); code != 0 {
					t.Fatalf("second build: %s", se)
				}
				if a, b := judge.SHA256File(t, img), judge.SHA256File(t, other); a != b {
					t.Fatalf("two builds differ (initramfs, UKI or loader files are not reproducible): %s vs %s", a, b)
				}
			}
			for _, fw := range tc.firmwares {
				bootAndExpect(t, img, fw)
			}
			if tc.name == "hybrid-gpt" {
				// The same spec as qcow2 with zstd: equal to the raw image
				// for qemu-img, and it boots.
				q := filepath.Join(t.TempDir(), "boot.qcow2")
				if _, se, code := kiln(t, dir, nil, "build", "-q", "--format", "qcow2", "--compression", "zstd", "-o", q); code != 0 {
					t.Fatalf("qcow2 build: %s", se)
				}
				if out, code := judge.Run(t, nil, "qemu-img", "compare", "-f", "qcow2", "-F", "raw", q, img); code != 0 {
					t.Fatalf("qcow2 differs from raw: %s", out)
				}
				bootAndExpect(t, q, "uefi")
			}
		})
	}
}

// TestBootErrors: what is missing for a boot setup is named, with the
// package that ships it; ambiguous kernel globs are refused.
func TestBootErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "root/boot/vmlinuz-6.1.0-1-amd64"), []byte("not really a kernel"))
	spec := func(loader, kernel string) string {
		return fmt.Sprintf(`layers: [{path: root/}]
disk:
  size: 128MiB
  partitions:
    - {name: esp, type: esp, size: 32MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
boot: {loader: %s, kernel: "%s", initrd: none}
output: {path: out.img}
`, loader, kernel)
	}
	for _, tc := range []struct{ loader, kernel, want string }{
		{"systemd-boot", "/boot/vmlinuz-*", "systemd-bootx64.efi matches nothing in the merged tree (Debian ships it in systemd-boot-efi"},
		{"uki", "/boot/vmlinuz-*", "linuxx64.efi.stub matches nothing in the merged tree (Debian ships it in systemd-boot-efi"},
		{"systemd-boot", "/boot/nothing-*", "boot: kernel: /boot/nothing-* matches nothing"},
	} {
		writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(spec(tc.loader, tc.kernel)))
		_, se, code := kiln(t, dir, nil, "build", "-q")
		if code != 2 || !strings.Contains(se, tc.want) {
			t.Errorf("%s %s: exit %d, %q; want exit 2 and %q", tc.loader, tc.kernel, code, se, tc.want)
		}
	}
	writeFile(t, filepath.Join(dir, "root/boot/vmlinuz-6.1.0-2-amd64"), []byte("another"))
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(spec("systemd-boot", "/boot/vmlinuz-*")))
	if _, se, code := kiln(t, dir, nil, "build", "-q"); code != 2 || !strings.Contains(se, "matches 2 files (/boot/vmlinuz-6.1.0-1-amd64, /boot/vmlinuz-6.1.0-2-amd64)") {
		t.Errorf("two kernels: exit %d, %q", code, se)
	}
}
