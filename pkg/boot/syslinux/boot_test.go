package syslinux

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

const bootMarker = "KILN-SYSLINUX-BOOTED"

// window is a partition of a disk image file.
type window struct {
	f   *os.File
	off int64
}

func (w window) ReadAt(b []byte, off int64) (int, error)  { return w.f.ReadAt(b, w.off+off) }
func (w window) WriteAt(b []byte, off int64) (int, error) { return w.f.WriteAt(b, w.off+off) }

// needTool skips the test without the tool, or fails it under CI.
func needTool(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s is not installed", tool)
		}
	}
}

// testInitramfs makes a gzip'd newc cpio archive with busybox-static's
// busybox and an /init that prints bootMarker on the console and powers
// off, with the host's cpio and gzip.
func testInitramfs(t *testing.T) []byte {
	t.Helper()
	needTool(t, "cpio", "gzip")
	bb := debTree(t, debBusybox)
	dir := t.TempDir()
	for _, d := range []string{"bin", "dev"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), treeFile(t, bb, "/bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/busybox sh\n" +
		"/bin/busybox mount -t devtmpfs devtmpfs /dev\n" +
		"exec >/dev/console 2>&1\n" +
		"echo " + bootMarker + "\n" +
		"/bin/busybox poweroff -f\n"
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n -9")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio | gzip: %v\n%s", err, stderr.String())
	}
	return out
}

// testKernel returns the vmlinuz of the Debian kernel package.
func testKernel(t *testing.T) *tree.Inode {
	t.Helper()
	boot := debTree(t, debKernel).Lookup("/boot")
	if boot != nil {
		for _, c := range boot.Children() {
			if strings.HasPrefix(c.Name, "vmlinuz-") && c.Inode.Kind == tree.Regular {
				return c.Inode
			}
		}
	}
	t.Fatalf("%s: no /boot/vmlinuz-*", debKernel)
	return nil
}

// bootImage makes a disk with one FAT partition holding syslinux, the
// Debian kernel and a marker initramfs, and the MBR code for the table.
func bootImage(t *testing.T, table disk.Table, fatType int) string {
	t.Helper()
	src := syslinuxSources(t)
	esp := tree.New(testEpoch)
	img, err := Prepare(esp, src, Config{
		Kernel: "/vmlinuz", KernelFile: testKernel(t),
		Initrd: "/initrd.img", InitrdFile: memFile(testInitramfs(t)),
		Cmdline: "console=ttyS0 panic=-1", Serial: "0 115200", Epoch: testEpoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	const diskSize = 64 * mib
	l, err := disk.Plan(table, diskSize, []disk.PartitionSpec{{
		Name: "esp", Type: "esp", Rest: true, Bootable: true, GUID: repro.Derive("syslinux-boot", "esp"),
	}}, disk.PlanOptions{DiskGUID: repro.Derive("syslinux-boot", "disk"), DiskSignature: 0x4b494c4e})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	if err := disk.Write(f, l); err != nil {
		t.Fatal(err)
	}
	part := l.Partitions[0]
	w := window{f, part.Start}
	if err := fat.Write(w, part.Size, esp, fat.Options{Label: "ESP", VolumeID: 0x4b494c4e,
		HiddenSectors: uint32(part.FirstLBA()), FATType: fatType, Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	if err := Install(w, part.Size, uint64(part.FirstLBA()), img); err != nil {
		t.Fatal(err)
	}
	code, err := MBRCode(l, part.Number, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := disk.WriteBootCode(f, code); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// bootBIOS boots img under SeaBIOS (TCG) and waits for bootMarker on the
// serial console. SeaBIOS's and the MBR's messages go to the serial port
// too (etc/sercon-port), so that a failed boot says why.
func bootBIOS(t *testing.T, img string) {
	t.Helper()
	needTool(t, "qemu-system-x86_64", "timeout")
	dir := t.TempDir()
	port := filepath.Join(dir, "sercon-port")
	if err := os.WriteFile(port, []byte{0xf8, 0x03}, 0o644); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "serial.log")
	const limit = 120 * time.Second
	cmd := exec.Command("timeout", "-s", "TERM", "150",
		"qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:"+logf, "-fw_cfg", "name=etc/sercon-port,file="+port,
		"-drive", "file="+img+",format=raw,if=virtio,snapshot=on")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) // timeout passes it on to QEMU
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("QEMU did not stop on SIGTERM")
		}
	}
	log := func() string { b, _ := os.ReadFile(logf); return string(b) }
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if l := log(); strings.Contains(l, bootMarker) {
				t.Logf("QEMU exited after %.1f s with the marker on the console", time.Since(start).Seconds())
				checkBanner(t, l)
				return
			}
			t.Fatalf("QEMU exited (%v) without the marker after %.1f s\n%s\nserial:\n%s", err, time.Since(start).Seconds(), out.String(), log())
		case <-tick.C:
			if l := log(); strings.Contains(l, bootMarker) {
				t.Logf("marker after %.1f s", time.Since(start).Seconds())
				checkBanner(t, l)
				select {
				case <-done: // the initramfs powers off
					t.Logf("QEMU exited after %.1f s", time.Since(start).Seconds())
				case <-time.After(15 * time.Second):
					stop()
				}
				return
			}
			if time.Since(start) > limit {
				stop()
				t.Fatalf("no marker after %v; serial:\n%s", limit, log())
			}
		}
	}
}

// checkBanner checks that syslinux, not something else, loaded the
// kernel: its banner is on the serial console before the marker.
func checkBanner(t *testing.T, log string) {
	t.Helper()
	i, j := strings.Index(log, "SYSLINUX "), strings.Index(log, bootMarker)
	if i < 0 || i > j {
		t.Errorf("no syslinux banner on the serial console before the marker:\n%s", log)
	}
}

// TestBootMBR boots an MBR disk whose active FAT32 partition holds
// syslinux, with mbr.bin in the MBR.
func TestBootMBR(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM (about 10-20 s under TCG)")
	}
	bootBIOS(t, bootImage(t, disk.MBR, 32))
}

// TestBootGPT boots a GPT disk whose legacy-BIOS-bootable FAT16 partition
// holds syslinux, with gptmbr.bin in the protective MBR.
func TestBootGPT(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM (about 10-20 s under TCG)")
	}
	bootBIOS(t, bootImage(t, disk.GPT, 16))
}
