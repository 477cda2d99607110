package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/qemu"
)

// archSpec is a spec without a boot loader: table, the layer and the
// partitions vary.
func archSpec(arch, table, parts string) string {
	a := ""
	if arch != "" {
		a = "\n  arch: " + arch
	}
	return fmt.Sprintf(`epoch: 1700000000
layers: [{path: root/}]
disk:
  table: %s
  size: 96MiB%s
  partitions:
%s
boot: {loader: none}
output: {path: out.img}
`, table, a, parts)
}

const (
	archESP  = "    - {name: esp, type: esp, size: 32MiB, filesystem: vfat, mount: /boot/efi}\n"
	archRoot = "    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}"
	archData = "    - {name: data, type: linux, size: rest, filesystem: ext4, mount: /}"
)

// TestRunImageArch: kiln run reads an image's architecture from its
// partition types (a root-arm64 built with disk.arch: arm64; root-x86-64
// by default), else from the removable-media loader on its ESP
// (BOOTAA64.EFI, any case, as FAT names compare); an image that names
// two architectures is refused with both named, and one that names
// none is x86-64.
func TestRunImageArch(t *testing.T) {
	for _, tc := range []struct {
		name, arch, table, parts string
		loaders                  []string // files put in /boot/efi/EFI/BOOT
		want, wantErr            string
	}{
		{name: "gpt root-arm64", arch: "arm64", table: "gpt", parts: archESP + archRoot, want: "arm64"},
		{name: "gpt root-x86-64", table: "gpt", parts: archESP + archRoot, want: "x86-64"},
		{name: "gpt root-arm64 beats the loader", arch: "aarch64", table: "gpt", parts: archESP + archRoot, loaders: []string{"BOOTX64.EFI"}, want: "arm64"},
		{name: "mbr BOOTAA64.EFI", table: "mbr", parts: archESP + archData, loaders: []string{"BOOTAA64.EFI"}, want: "arm64"},
		{name: "mbr bootaa64.efi", table: "mbr", parts: archESP + archData, loaders: []string{"bootaa64.efi"}, want: "arm64"},
		{name: "gpt linux BOOTX64.EFI", table: "gpt", parts: archESP + archData, loaders: []string{"BOOTX64.EFI"}, want: "x86-64"},
		{name: "two loaders", table: "gpt", parts: archESP + archData, loaders: []string{"BOOTAA64.EFI", "BOOTX64.EFI"},
			wantErr: "is for more than one architecture: arm64 (partition 1 has /EFI/BOOT/BOOTAA64.EFI); x86-64 (partition 1 has /EFI/BOOT/BOOTX64.EFI); choose one with --arch"},
		{name: "no evidence", table: "mbr", parts: archData, want: "x86-64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "root/etc/hostname"), []byte("arch\n"))
			for _, l := range tc.loaders {
				writeFile(t, filepath.Join(dir, "root/boot/efi/EFI/BOOT", l), []byte("MZ not really a loader"))
			}
			writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(archSpec(tc.arch, tc.table, tc.parts)))
			if _, se, code := kiln(t, dir, nil, "build", "-q"); code != 0 {
				t.Fatalf("build: exit %d: %s", code, se)
			}
			got, err := imageArch(filepath.Join(dir, "out.img"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("imageArch = %q, %v; want an error saying %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("imageArch = %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestRunArm64CommandLine runs kiln run on an arm64 image with a stand-in
// qemu-system-aarch64 first on PATH that records its arguments and
// prints the marker where -serial says: the image's architecture chooses
// the emulator and the virt machine; --arch riscv64 and --firmware bios
// are refused, the latter before any QEMU starts; --arch x86-64 forces
// the x86 emulator.
func TestRunArm64CommandLine(t *testing.T) {
	if code, vars := qemu.AAVMF(); code == "" || vars == "" {
		testkit.Missing(t, "no AAVMF firmware found (apt-get install qemu-efi-aarch64)")
	}
	if code, vars := qemu.OVMF(); code == "" || vars == "" {
		testkit.Missing(t, "no OVMF firmware found (apt-get install ovmf)")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "root/etc/hostname"), []byte("arch\n"))
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(archSpec("arm64", "gpt", archESP+archRoot)))
	if _, se, code := kiln(t, dir, nil, "build", "-q"); code != 0 {
		t.Fatalf("build: exit %d: %s", code, se)
	}
	img := filepath.Join(dir, "out.img")
	bin := filepath.Join(dir, "bin")
	argsFile := filepath.Join(dir, "args")
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\" >> " + argsFile + "; case \"$a\" in file:*) log=${a#file:};; esac; done\n" +
		"printf 'FAKE-MARKER\\n' >> \"$log\"\nexec sleep 60\n"
	for _, name := range []string{"qemu-system-aarch64", "qemu-system-x86_64"} {
		s := strings.Replace(script, "FAKE-MARKER", "FAKE-MARKER "+name, 1)
		writeFile(t, filepath.Join(bin, name), []byte(s))
		os.Chmod(filepath.Join(bin, name), 0o755)
	}
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}

	out, se, code := kiln(t, dir, env, "run", "--accel", "tcg", "--expect", "FAKE-MARKER", "--timeout", "60s", img)
	if code != 0 || !strings.Contains(out, "FAKE-MARKER qemu-system-aarch64") {
		t.Fatalf("kiln run: exit %d, %q, %q; want the arm64 emulator", code, out, se)
	}
	b, _ := os.ReadFile(argsFile)
	line := "\n" + string(b)
	for _, want := range []string{"\n-machine\nvirt\n", "\n-cpu\ncortex-a72\n", "\n-device\nvirtio-blk-pci,drive=disk0\n", "\nif=pflash,format=raw,readonly=on,file="} {
		if !strings.Contains(line, want) {
			t.Errorf("arguments lack %q:\n%s", want, b)
		}
	}
	os.Remove(argsFile)

	if _, se, code := kiln(t, dir, env, "run", "--firmware", "bios", "--accel", "tcg", "--expect", "FAKE-MARKER", img); code == 0 || !strings.Contains(se, "arm64 has no BIOS") {
		t.Errorf("--firmware bios on arm64: exit %d, %q", code, se)
	}
	if _, se, code := kiln(t, dir, env, "run", "--secure-boot", "--accel", "tcg", "--expect", "FAKE-MARKER", img); code == 0 || !strings.Contains(se, "no Secure Boot for arm64") {
		t.Errorf("--secure-boot on arm64: exit %d, %q", code, se)
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("a refused run started QEMU")
	}
	if _, se, code := kiln(t, dir, env, "run", "--arch", "riscv64", "--expect", "FAKE-MARKER", img); code == 0 || !strings.Contains(se, `architecture "riscv64"`) {
		t.Errorf("--arch riscv64: exit %d, %q", code, se)
	}
	if out, se, code := kiln(t, dir, env, "run", "--arch", "amd64", "--accel", "tcg", "--expect", "FAKE-MARKER", "--timeout", "60s", img); code != 0 || !strings.Contains(out, "FAKE-MARKER qemu-system-x86_64") {
		t.Errorf("--arch amd64: exit %d, %q, %q; want the x86 emulator", code, out, se)
	}
}
