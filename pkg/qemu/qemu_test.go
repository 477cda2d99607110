package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
