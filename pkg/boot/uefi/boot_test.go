package uefi

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// The boot tests build a GPT disk with only an ESP, written by kiln
// (pkg/disk, pkg/fs/fat, this package), holding Debian's kernel and a
// busybox initramfs made here, and boot it under QEMU with OVMF (see
// /work/shared/BOOT-NOTES.md). The initramfs prints a marker line with
// /proc/cmdline and powers off: the marker proves the firmware found the
// loader, the loader the kernel and initrd, and the kernel the command line
// kiln put in the entry or the UKI.

const (
	ovmfCode   = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars   = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	bootLimit  = 150 // seconds to the marker at most
	espSize    = 64 << 20
	bootMarker = "KILN-UEFI-MARKER"
)

// TestBootSystemdBoot boots systemd-boot with a type #1 entry.
func TestBootSystemdBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under QEMU (TCG), about 30 s")
	}
	needBootTools(t)
	kernel := kernelOf(t)
	kver, err := KernelVersion(kernel)
	if err != nil {
		t.Fatal(err)
	}
	if debTreeOf(t, debKernel).Lookup("/boot/vmlinuz-"+kver) != kernel {
		t.Errorf("KernelVersion %q does not name the package's /boot/vmlinuz-*", kver)
	}
	esp := tree.New(testEpoch)
	files, err := InstallSystemdBoot(esp, SystemdBoot{
		Loader:    debFile(t, debSystemdBoot, loaderPath),
		Kernel:    kernel,
		Initrd:    testInitramfs(t),
		Cmdline:   "console=ttyS0 panic=-1 kiln.boot=systemd-boot",
		Title:     "kiln boot test",
		EntryName: "kiln",
		Epoch:     testEpoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("installed %+v", *files)
	secs := bootUEFI(t, espDisk(t, esp), "kiln.boot=systemd-boot")
	t.Logf("systemd-boot: marker after %.1f s", secs)
}

// TestBootUKI boots a UKI as /EFI/BOOT/BOOTX64.EFI, after binutils have
// judged it: the sections objdump lists, and the .linux and .cmdline
// objcopy dumps.
func TestBootUKI(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under QEMU (TCG), about 30 s")
	}
	needBootTools(t)
	kernel := kernelOf(t)
	kver, err := KernelVersion(kernel)
	if err != nil {
		t.Fatal(err)
	}
	const cmdline = "console=ttyS0 panic=-1 kiln.boot=uki"
	u := UKI{
		Stub:      debFile(t, debSystemdBoot, stubPath),
		Kernel:    kernel,
		Initrd:    testInitramfs(t),
		Cmdline:   cmdline,
		OSRelease: []byte("ID=kiln\nPRETTY_NAME=\"kiln boot test\"\n"),
		Epoch:     testEpoch,
	}
	esp := tree.New(testEpoch)
	if err := InstallUKI(esp, u, "kiln-"+kver); err != nil {
		t.Fatal(err)
	}
	n := esp.Lookup("/EFI/BOOT/BOOTX64.EFI")
	if n == nil {
		t.Fatal("no /EFI/BOOT/BOOTX64.EFI")
	}
	uki := readFile(t, n)
	if again := readFile(t, esp.Lookup("/EFI/Linux/kiln-"+kver+".efi")); !bytes.Equal(again, uki) {
		t.Fatal("the two UKI files differ")
	}
	var built bytes.Buffer
	if err := BuildUKI(&built, u); err != nil || !bytes.Equal(built.Bytes(), uki) {
		t.Fatalf("BuildUKI again: %v, or different bytes", err)
	}
	h, err := parseHeaders(uki, int64(len(uki)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range h.sections {
		names = append(names, h.sections[i].name())
	}
	if got := strings.Join(names, " "); got != ".text .reloc .data .dynamic .rela .dynsym .sbat .sdmagic .osrel .cmdline .uname .initrd .linux" {
		t.Errorf("sections %s", got)
	}
	checkObjdump(t, uki, wantObjdump(h))
	p := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(p, uki, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := objcopyDump(t, p, ".linux"); !bytes.Equal(got, readFile(t, kernel)) {
		t.Errorf(".linux (%d bytes) is not the kernel (%d bytes)", len(got), kernel.Size)
	}
	if got := string(objcopyDump(t, p, ".cmdline")); got != cmdline {
		t.Errorf(".cmdline %q, want %q", got, cmdline)
	}
	if got := string(objcopyDump(t, p, ".uname")); got != kver {
		t.Errorf(".uname %q, want %q", got, kver)
	}
	secs := bootUEFI(t, espDisk(t, esp), "kiln.boot=uki")
	t.Logf("UKI: marker after %.1f s", secs)
}

// needBootTools skips the test, or under CI fails it, without QEMU, OVMF
// or cpio.
func needBootTools(t *testing.T) {
	t.Helper()
	judge.Need(t, "qemu-system-x86_64", "timeout", "cpio")
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s: %v (apt-get install ovmf)", f, err)
			}
			t.Skipf("%s: %v (apt-get install ovmf)", f, err)
		}
	}
}

// testInitramfs is a gzip-compressed newc cpio (made by cpio) holding
// busybox-static's busybox and an /init script that mounts devtmpfs (an
// archive made without root has no /dev/console), prints the marker and
// the kernel command line to the console, and powers off.
func testInitramfs(t *testing.T) *File {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin", "dev", "proc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/busybox sh\n" +
		"/bin/busybox mount -t devtmpfs dev /dev\n" +
		"exec >/dev/console 2>&1\n" +
		"/bin/busybox mount -t proc proc /proc\n" +
		"echo \"" + bootMarker + " $(/bin/busybox cat /proc/cmdline)\"\n" +
		"/bin/busybox poweroff -f\n"
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	busybox := readFile(t, debFile(t, debBusybox, busyboxPath))
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("bin\nbin/busybox\ndev\ninit\nproc\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio: %v: %s", err, errb.String())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return Bytes(gz.Bytes())
}

// espDisk writes a GPT disk image whose only partition is a FAT32 ESP
// holding esp, and returns its path.
func espDisk(t *testing.T, esp *tree.Tree) string {
	t.Helper()
	o := disk.PlanOptions{DiskGUID: repro.Derive("kiln-uefi-test", "disk")}
	size, err := disk.MinDiskSize(disk.GPT, []int64{espSize}, o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := disk.Plan(disk.GPT, size, []disk.PartitionSpec{{Name: "esp", Type: "esp", Size: espSize, GUID: repro.Derive("kiln-uefi-test", "esp")}}, o)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := disk.Write(f, l); err != nil {
		t.Fatal(err)
	}
	part := l.Partitions[0]
	fo := fat.Options{Label: "ESP", VolumeID: repro.Derive32("kiln-uefi-test", "esp"), Epoch: testEpoch, HiddenSectors: uint32(part.FirstLBA())}
	if err := fat.Write(io.NewOffsetWriter(f, part.Start), part.Size, esp, fo); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// bootUEFI boots img under QEMU (TCG) with OVMF and waits for the marker
// line of testInitramfs, which must show token in the kernel's command
// line. It returns the seconds from QEMU's start to the marker.
func bootUEFI(t *testing.T, img, token string) float64 {
	t.Helper()
	dir := t.TempDir()
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	b, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serial.log")
	// timeout(1) ends QEMU even if this test process dies; SIGTERM, which
	// it passes on, lets QEMU exit cleanly.
	cmd := exec.Command("timeout", "-s", "TERM", "160",
		"qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "1024",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:"+logPath,
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+img+",format=raw,if=virtio,snapshot=on")
	var qout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qout, &qout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	stop := func() {
		if !exited {
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
			exited = true
		}
	}
	defer stop()

	markerRe := regexp.MustCompile(bootMarker + ` ([^\r\n]*)`)
	var secs float64
	var line []string
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for line == nil {
		select {
		case err := <-done:
			exited = true
			log, _ := os.ReadFile(logPath)
			if line = markerRe.FindStringSubmatch(string(log)); line == nil {
				t.Fatalf("QEMU exited (%v) after %.1f s without the marker; QEMU said %q; serial log:\n%s", err, time.Since(start).Seconds(), qout.String(), tail(log))
			}
			secs = time.Since(start).Seconds()
		case <-tick.C:
			log, _ := os.ReadFile(logPath)
			if line = markerRe.FindStringSubmatch(string(log)); line != nil {
				secs = time.Since(start).Seconds()
				continue
			}
			if time.Since(start) > bootLimit*time.Second {
				stop()
				t.Fatalf("no marker after %d s; serial log:\n%s", bootLimit, tail(log))
			}
		}
	}
	if !strings.Contains(" "+line[1]+" ", " "+token+" ") {
		t.Errorf("the kernel booted with command line %q, want one with %s", line[1], token)
	}
	if exited {
		return secs
	}
	// The initramfs powers off; give it a moment before stopping QEMU.
	select {
	case <-done:
		exited = true
	case <-time.After(20 * time.Second):
		log, _ := os.ReadFile(logPath)
		t.Logf("QEMU did not power off within 20 s of the marker; stopping it. Serial log:\n%s", tail(log))
	}
	return secs
}

// tail is the end of a serial log, for messages.
func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
