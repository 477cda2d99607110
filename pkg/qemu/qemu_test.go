package qemu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	code := filepath.Join(dir, "CODE.fd")
	vars := filepath.Join(dir, "VARS.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	os.WriteFile(vars, []byte("vars"), 0o644)

	uefi, err := Args(Options{Image: img, Accel: "tcg", OVMFCode: code, OVMFVars: vars}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(uefi, " ")
	for _, want := range []string{
		"-accel tcg", "-m 1024", "-nodefaults", "-display none", "-no-reboot", "-serial file:LOG", "-machine q35",
		"if=pflash,format=raw,readonly=on,file=" + code,
		"if=pflash,format=raw,file=" + filepath.Join(dir, "OVMF_VARS.fd"),
		"file=" + img + ",format=raw,if=virtio,snapshot=on",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("UEFI command line lacks %q:\n%s", want, line)
		}
	}
	// The firmware's variables are a private copy, never the system's file.
	if b, _ := os.ReadFile(filepath.Join(dir, "OVMF_VARS.fd")); string(b) != "vars" {
		t.Errorf("variables not copied: %q", b)
	}

	bios, err := Args(Options{Image: img, Firmware: "bios", Accel: "tcg", MemoryMB: 512}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	line = strings.Join(bios, " ")
	if strings.Contains(line, "pflash") || !strings.Contains(line, "-m 512") || !strings.Contains(line, "name=etc/sercon-port,file=") {
		t.Errorf("BIOS command line: %s", line)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sercon-port.bin")); string(b) != "\xf8\x03" {
		t.Errorf("sercon port file: %x", b)
	}

	for _, bad := range []Options{{Image: img, Firmware: "coreboot"}, {Image: img, Accel: "hvf"}} {
		if _, err := Args(bad, dir, "LOG"); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "a.qcow2")
	os.WriteFile(q, []byte("QFI\xfb\x00\x00\x00\x03"), 0o644)
	r := filepath.Join(dir, "a.img")
	os.WriteFile(r, make([]byte, 512), 0o644)
	if f, _ := DetectFormat(q); f != "qcow2" {
		t.Errorf("qcow2 detected as %s", f)
	}
	if f, _ := DetectFormat(r); f != "raw" {
		t.Errorf("raw detected as %s", f)
	}
}

// TestArgsDirectKernel checks -kernel, -initrd and -append, which only
// come with Kernel.
func TestArgsDirectKernel(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)

	args, err := Args(Options{Image: img, Firmware: "bios", Accel: "tcg", Kernel: "K", Initrd: "I", Append: "console=ttyS0 root=/dev/vda1"}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, "\x00")
	if !strings.Contains(line, "\x00-kernel\x00K\x00-initrd\x00I\x00-append\x00console=ttyS0 root=/dev/vda1\x00") {
		t.Errorf("direct kernel boot: %q", args)
	}
	if !strings.Contains(line, "file="+img+",format=raw,if=virtio,snapshot=on") {
		t.Errorf("the image is not attached: %q", args)
	}

	args, err = Args(Options{Image: img, Firmware: "bios", Accel: "tcg", Kernel: "K"}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.Join(args, " "); !strings.Contains(line, "-kernel K") || strings.Contains(line, "-initrd") || strings.Contains(line, "-append") {
		t.Errorf("kernel alone: %s", line)
	}

	args, err = Args(Options{Image: img, Firmware: "bios", Accel: "tcg"}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.Join(args, " "); strings.Contains(line, "-kernel") || strings.Contains(line, "-initrd") || strings.Contains(line, "-append") {
		t.Errorf("no kernel given, yet: %s", line)
	}

	for _, bad := range []Options{{Image: img, Firmware: "bios", Initrd: "I"}, {Image: img, Firmware: "bios", Append: "quiet"}} {
		if _, err := Args(bad, dir, "LOG"); err == nil {
			t.Errorf("%+v accepted without a kernel", bad)
		}
	}
}

// TestOVMF checks that OVMF names the files a UEFI run without OVMFCode
// and OVMFVars uses, or none when Args finds none.
func TestOVMF(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	code, vars := OVMF()
	args, err := Args(Options{Image: img, Accel: "tcg"}, dir, "LOG")
	if code == "" || vars == "" {
		if err == nil {
			t.Fatalf("OVMF finds no firmware (%q, %q), yet Args does: %q", code, vars, args)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.Join(args, " "); !strings.Contains(line, "if=pflash,format=raw,readonly=on,file="+code+" ") {
		t.Errorf("OVMF says %s, Args uses: %s", code, line)
	}
	want, _ := os.ReadFile(vars)
	if got, _ := os.ReadFile(filepath.Join(dir, "OVMF_VARS.fd")); string(got) != string(want) {
		t.Errorf("the variables Args copied are not %s", vars)
	}
}

// TestArgsWriteAndNet: Write drops the snapshot; Forward and Net give a
// virtio NIC on user-mode networking with the forwards on 127.0.0.1 only;
// a malformed forward is refused; without either there is no NIC.
func TestArgsWriteAndNet(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	o := Options{Image: img, Firmware: "bios", Accel: "tcg"}
	plain, err := Args(o, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.Join(plain, " "); strings.Contains(line, "-netdev") || !strings.Contains(line, "snapshot=on") {
		t.Errorf("default: %s", line)
	}
	o.Write, o.Forward = true, []string{"18080:80", "2222:22"}
	args, err := Args(o, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"file=" + img + ",format=raw,if=virtio ", "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:18080-:80,hostfwd=tcp:127.0.0.1:2222-:22", "-device virtio-net-pci,netdev=net0"} {
		if !strings.Contains(line+" ", want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "snapshot") {
		t.Errorf("Write still snapshots: %s", line)
	}
	if args, _ := Args(Options{Image: img, Firmware: "bios", Accel: "tcg", Net: true}, dir, "LOG"); !strings.Contains(strings.Join(args, " "), "-netdev user,id=net0 -device virtio-net-pci") {
		t.Errorf("Net: %s", strings.Join(args, " "))
	}
	for _, bad := range []string{"80", "0:80", "x:80", "80:70000", "127.0.0.1:80:80"} {
		if _, err := Args(Options{Image: img, Firmware: "bios", Accel: "tcg", Forward: []string{bad}}, dir, "LOG"); err == nil {
			t.Errorf("forward %q accepted", bad)
		}
	}
}

// fakeQEMU writes a script that stands in for QEMU: it writes text to the
// serial log its command line names, then sleeps until stopped.
func fakeQEMU(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu")
	script := "#!/bin/sh\nwhile [ $# -gt 0 ]; do case \"$1\" in file:*) log=${1#file:};; esac; shift; done\n" +
		"printf '%s' '" + text + "' >> \"$log\"\nexec sleep 60\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunFailOn: a FailOn text ends the run with ErrFailOn, without waiting
// for the timeout; the expected text still wins when it appears.
func TestRunFailOn(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	o := Options{Image: img, Format: "raw", Firmware: "bios", Accel: "tcg", Expect: "MARKER", FailOn: []string{"Kernel panic"}, Timeout: time.Minute}
	o.QEMU = fakeQEMU(t, "booting\nKernel panic - not syncing\n")
	var serial bytes.Buffer
	o.Serial = &serial
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrFailOn) || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("Run: %v, want ErrFailOn naming the text", err)
	}
	if !strings.Contains(serial.String(), "not syncing") {
		t.Errorf("serial not copied: %q", serial.String())
	}
	o.QEMU = fakeQEMU(t, "booting\nMARKER\n")
	res, err := Run(context.Background(), o)
	if err != nil || !res.Found {
		t.Fatalf("Run with the marker: %+v, %v", res, err)
	}
}

// TestArgsSecureBoot: the Secure Boot firmware with SMM and secure flash,
// a private copy of the blank variables (setup mode), and no -no-reboot
// (systemd-boot resets after enrolling); BIOS is refused.
func TestArgsSecureBoot(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	vars := filepath.Join(dir, "VARS.fd")
	os.WriteFile(vars, []byte("vars"), 0o644)
	code := filepath.Join(dir, "CODE.secboot.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	args, err := Args(Options{Image: img, Accel: "tcg", SecureBoot: true, OVMFCode: code, OVMFVars: vars}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"-machine q35,smm=on", "-global driver=cfi.pflash01,property=secure,value=on", "readonly=on,file=" + code} {
		if !strings.Contains(line, want) {
			t.Errorf("lacks %q: %s", want, line)
		}
	}
	if strings.Contains(line, "-no-reboot") {
		t.Errorf("-no-reboot would stop the reset after enrolment: %s", line)
	}
	plain, _ := Args(Options{Image: img, Accel: "tcg", OVMFCode: code, OVMFVars: vars}, dir, "LOG")
	if l := strings.Join(plain, " "); !strings.Contains(l, "-no-reboot") || strings.Contains(l, "smm") {
		t.Errorf("without SecureBoot: %s", l)
	}
	if _, err := Args(Options{Image: img, Accel: "tcg", Firmware: "bios", SecureBoot: true}, dir, "LOG"); err == nil {
		t.Error("secure boot with bios accepted")
	}
}

// TestArgsVarsStore: a VarsStore that does not exist is made from the
// template and given to the firmware; one that exists is used as it is
// (what an earlier boot enrolled stays); one of another size is refused.
// MicrosoftKeys needs SecureBoot.
func TestArgsVarsStore(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	tmpl := filepath.Join(dir, "VARS.fd")
	os.WriteFile(tmpl, []byte("blank-vars"), 0o644)
	code := filepath.Join(dir, "CODE.secboot.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	store := filepath.Join(dir, "kept", "vars.fd")
	os.Mkdir(filepath.Dir(store), 0o755)
	o := Options{Image: img, Accel: "tcg", SecureBoot: true, OVMFCode: code, OVMFVars: tmpl, VarsStore: store}
	args, err := Args(o, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.Join(args, " "); !strings.Contains(l, "if=pflash,format=raw,file="+store) {
		t.Errorf("the store is not the firmware's variables: %s", l)
	}
	if b, _ := os.ReadFile(store); string(b) != "blank-vars" {
		t.Fatalf("new store holds %q", b)
	}
	os.WriteFile(store, []byte("enrolled!!"), 0o600) // same size, other bytes
	if _, err := Args(o, dir, "LOG"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(store); string(b) != "enrolled!!" {
		t.Errorf("an existing store was replaced: %q", b)
	}
	os.WriteFile(store, []byte("short"), 0o600)
	if _, err := Args(o, dir, "LOG"); err == nil || !strings.Contains(err.Error(), "another firmware") {
		t.Errorf("a store of another size: %v", err)
	}
	if _, err := Args(Options{Image: img, Accel: "tcg", MicrosoftKeys: true, OVMFCode: code, OVMFVars: tmpl}, dir, "LOG"); err == nil {
		t.Error("microsoft keys without secure boot accepted")
	}
}

// TestArgsArm64: an arm64 guest runs on the virt machine with a
// Cortex-A72 and 2 CPUs under TCG, AAVMF as pflash with a private copy of
// its variables, the disk on virtio-blk-pci (snapshot unless Write) and
// the serial console as for x86; the x86 machine, SeaBIOS and OVMF's
// files are not on its command line.
func TestArgsArm64(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	code := filepath.Join(dir, "AA_CODE.fd")
	vars := filepath.Join(dir, "AA_VARS.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	os.WriteFile(vars, []byte("aavmf-vars"), 0o644)
	for _, spelling := range []string{"arm64", "aarch64", "ARM64"} {
		args, err := Args(Options{Image: img, Arch: spelling, Accel: "tcg", OVMFCode: code, OVMFVars: vars}, dir, "LOG")
		if err != nil {
			t.Fatalf("%s: %v", spelling, err)
		}
		line := strings.Join(args, "\x00") + "\x00"
		for _, want := range []string{
			"-accel\x00tcg\x00", "-machine\x00virt\x00", "-cpu\x00cortex-a72\x00", "-smp\x002\x00", "-m\x001024\x00",
			"-nodefaults\x00", "-no-reboot\x00", "-serial\x00file:LOG\x00",
			"-drive\x00if=pflash,format=raw,readonly=on,file=" + code + "\x00",
			"-drive\x00if=pflash,format=raw,file=" + filepath.Join(dir, "AAVMF_VARS.fd") + "\x00",
			"-drive\x00file=" + img + ",format=raw,if=none,id=disk0,snapshot=on\x00",
			"-device\x00virtio-blk-pci,drive=disk0\x00",
		} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: lacks %q:\n%q", spelling, want, args)
			}
		}
		for _, not := range []string{"q35", "sercon", "if=virtio", "-netdev"} {
			if strings.Contains(line, not) {
				t.Errorf("%s: has %q: %q", spelling, not, args)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "AAVMF_VARS.fd")); string(b) != "aavmf-vars" {
		t.Errorf("AAVMF variables not copied: %q", b)
	}

	// --write, --forward and the kernel options as for x86.
	args, err := Args(Options{Image: img, Arch: "arm64", Accel: "tcg", OVMFCode: code, OVMFVars: vars, Write: true, Forward: []string{"2222:22"}, Kernel: "K", Append: "console=ttyAMA0"}, dir, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"file=" + img + ",format=raw,if=none,id=disk0 ", "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22", "-device virtio-net-pci,netdev=net0", "-kernel K -append console=ttyAMA0"} {
		if !strings.Contains(line, want) {
			t.Errorf("lacks %q: %s", want, line)
		}
	}
	if strings.Contains(line, "snapshot") {
		t.Errorf("Write still snapshots: %s", line)
	}

	// A kept variable store as for OVMF: made from AAVMF's template.
	store := filepath.Join(dir, "kept.fd")
	if args, err = Args(Options{Image: img, Arch: "arm64", Accel: "tcg", OVMFCode: code, OVMFVars: vars, VarsStore: store}, dir, "LOG"); err != nil {
		t.Fatal(err)
	}
	if l := strings.Join(args, " "); !strings.Contains(l, "if=pflash,format=raw,file="+store) {
		t.Errorf("the store is not the firmware's variables: %s", l)
	}
	if b, _ := os.ReadFile(store); string(b) != "aavmf-vars" {
		t.Errorf("new store holds %q", b)
	}
}

// TestArgsArm64Refused: BIOS, Secure Boot and Microsoft's keys are
// refused for arm64 with a message that says why; an unknown
// architecture is refused.
func TestArgsArm64Refused(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	code := filepath.Join(dir, "AA_CODE.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Firmware: "bios"}, "arm64 has no BIOS"},
		{Options{SecureBoot: true}, "no Secure Boot for arm64"},
		{Options{SecureBoot: true, MicrosoftKeys: true}, "no Secure Boot for arm64"},
		{Options{Firmware: "coreboot"}, "want uefi"},
	} {
		o := c.o
		o.Image, o.Arch, o.Accel, o.OVMFCode, o.OVMFVars = img, "arm64", "tcg", code, code
		if _, err := Args(o, dir, "LOG"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error saying %q", c.o, err, c.want)
		}
	}
	if _, err := Args(Options{Image: img, Arch: "riscv64", Accel: "tcg"}, dir, "LOG"); err == nil || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("riscv64: %v", err)
	}
	// KVM runs the host's own architecture only; auto is TCG for the other.
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	if _, err := Args(Options{Image: img, Arch: other, Accel: "kvm", OVMFCode: code, OVMFVars: code}, dir, "LOG"); err == nil || !strings.Contains(err.Error(), "KVM cannot run") {
		t.Errorf("kvm for a foreign %s guest: %v", other, err)
	}
	args, err := Args(Options{Image: img, Arch: other, Accel: "auto", OVMFCode: code, OVMFVars: code}, dir, "LOG")
	if err != nil || !strings.Contains(strings.Join(args, " "), "-accel tcg") {
		t.Errorf("auto for a foreign %s guest: %v, %q", other, err, args)
	}
}

// TestBinary: the emulator and its Debian package follow the architecture.
func TestBinary(t *testing.T) {
	for _, c := range []struct{ arch, bin, pkg string }{
		{"", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "qemu-system-x86_64", "qemu-system-x86"},
		{"arm64", "qemu-system-aarch64", "qemu-system-arm"},
	} {
		if bin, pkg, err := Binary(c.arch); err != nil || bin != c.bin || pkg != c.pkg {
			t.Errorf("Binary(%q) = %s, %s, %v", c.arch, bin, pkg, err)
		}
	}
}
