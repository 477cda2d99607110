package uefi

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/qemu"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// The boot tests build a GPT disk with only an ESP, written by kiln
// (pkg/disk, pkg/fs/fat, this package), holding Debian's kernel and a
// busybox initramfs made here, and boot it under QEMU with OVMF (see
// /work/shared/BOOT-NOTES.md) with pkg/qemu, the code of kiln run. The
// initramfs prints a marker line with /proc/cmdline, then an end line, and
// powers off: the marker proves the firmware found the loader, the loader
// the kernel and initrd, and the kernel the command line kiln put in the
// entry or the UKI.

const (
	bootLimit  = 150 // seconds to the marker at most
	espSize    = 64 << 20
	bootMarker = "KILN-UEFI-MARKER"
	// bootEnd follows the marker line: once it is on the console, the
	// marker line is whole.
	bootEnd = "KILN-UEFI-END"
)

// TestBootSystemdBoot boots systemd-boot with a type #1 entry.
func TestBootSystemdBoot(t *testing.T) {
	kernel, kver := bootTest(t)
	if trees.Debs(t, testEpoch, testkit.DebKernel).Lookup("/boot/vmlinuz-"+kver) != kernel {
		t.Errorf("KernelVersion %q does not name the package's /boot/vmlinuz-*", kver)
	}
	esp := tree.New(testEpoch)
	files, err := InstallSystemdBoot(esp, SystemdBoot{
		Loader:    debFile(t, testkit.DebSystemdBoot, loaderPath),
		Kernel:    kernel,
		Initrd:    testInitramfs(t),
		Cmdline:   "console=ttyS0 panic=-1 no_timer_check kiln.boot=systemd-boot",
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
	kernel, kver := bootTest(t)
	const cmdline = "console=ttyS0 panic=-1 no_timer_check kiln.boot=uki"
	u := UKI{
		Stub:      debFile(t, testkit.DebSystemdBoot, stubPath),
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
	uki := trees.Read(t, n)
	if again := trees.Read(t, esp.Lookup("/EFI/Linux/kiln-"+kver+".efi")); !bytes.Equal(again, uki) {
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
	if got := strings.Join(names, " "); got != ".text .reloc .data .dynamic .rela .dynsym .sdmagic .osrel .cmdline .uname .initrd .sbat .linux" {
		t.Errorf("sections %s", got)
	}
	checkObjdump(t, uki, wantObjdump(h))
	p := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(p, uki, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := objcopyDump(t, p, ".linux"); !bytes.Equal(got, trees.Read(t, kernel)) {
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

// bootTest starts a boot test, which does not run with -short and is
// skipped, or under CI fails, without QEMU, OVMF or cpio. It returns the
// kernel package's vmlinuz and its version.
func bootTest(t *testing.T) (*tree.Inode, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM under QEMU (TCG), about 30 s")
	}
	judge.Need(t, "qemu-system-x86_64", "cpio")
	testkit.NeedQEMU(t, "uefi")
	kernel := kernelOf(t)
	kver, err := KernelVersion(kernel)
	if err != nil {
		t.Fatal(err)
	}
	return kernel, kver
}

// testInitramfs is a busybox initramfs (testkit.BusyboxInitramfs) whose
// /init prints the marker and the kernel command line to the console,
// then bootEnd, and powers off.
func testInitramfs(t *testing.T) *File {
	t.Helper()
	script := "#!/bin/busybox sh\n" +
		"/bin/busybox mount -t devtmpfs dev /dev\n" +
		"exec >/dev/console 2>&1\n" +
		"/bin/busybox mount -t proc proc /proc\n" +
		"echo \"" + bootMarker + " $(/bin/busybox cat /proc/cmdline)\"\n" +
		"echo " + bootEnd + "\n" +
		"/bin/busybox poweroff -f\n"
	busybox := trees.Read(t, debFile(t, testkit.DebBusybox, busyboxPath))
	return Bytes(testkit.BusyboxInitramfs(t, busybox, script))
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
	f := testkit.SparseFile(t, "disk.img", size)
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
	return f.Name()
}

// bootUEFI boots img with pkg/qemu under OVMF (TCG) until testInitramfs
// has printed its marker line, which must show token in the kernel's
// command line. It returns the seconds from QEMU's start to the marker.
func bootUEFI(t *testing.T, img, token string) float64 {
	t.Helper()
	log, secs := testkit.Boot(t, qemu.Options{Image: img, Firmware: "uefi", Accel: "tcg", Expect: bootEnd, Timeout: bootLimit * time.Second})
	line := regexp.MustCompile(bootMarker + ` ([^\r\n]*)`).FindStringSubmatch(log)
	if line == nil {
		t.Fatalf("no marker line before %s after %.1f s; serial log:\n%s", bootEnd, secs, log)
	}
	if !strings.Contains(" "+line[1]+" ", " "+token+" ") {
		t.Errorf("the kernel booted with command line %q, want one with %s", line[1], token)
	}
	return secs
}
