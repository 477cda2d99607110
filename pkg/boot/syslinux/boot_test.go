package syslinux

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/qemu"
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

// testInitramfs is a busybox initramfs (testkit.BusyboxInitramfs) whose
// /init prints bootMarker on the console and powers off.
func testInitramfs(t *testing.T) []byte {
	t.Helper()
	bb := trees.Debs(t, testEpoch, testkit.DebBusybox)
	script := "#!/bin/busybox sh\n" +
		"/bin/busybox mount -t devtmpfs devtmpfs /dev\n" +
		"exec >/dev/console 2>&1\n" +
		"echo " + bootMarker + "\n" +
		"/bin/busybox poweroff -f\n"
	return testkit.BusyboxInitramfs(t, treeFile(t, bb, "/bin/busybox"), script)
}

// testKernel returns the vmlinuz of the Debian kernel package.
func testKernel(t *testing.T) *tree.Inode {
	t.Helper()
	return trees.Kernel(t, trees.Debs(t, testEpoch, testkit.DebKernel))
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
		Cmdline: "console=ttyS0 panic=-1 no_timer_check", Serial: "0 115200", Epoch: testEpoch,
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
	f := testkit.SparseFile(t, "disk.img", diskSize)
	if err := disk.Write(f, l); err != nil {
		t.Fatal(err)
	}
	part := l.Partitions[0]
	w := window{f, part.Start}
	exts, err := fat.WriteLocate(w, part.Size, esp, fat.Options{Label: "ESP", VolumeID: 0x4b494c4e,
		HiddenSectors: uint32(part.FirstLBA()), FATType: fatType, Epoch: testEpoch}, []string{LDLinuxPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := Install(w, part.Size, uint64(part.FirstLBA()), img, exts[LDLinuxPath]); err != nil {
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
	return f.Name()
}

// bootBIOS boots img with pkg/qemu under SeaBIOS (TCG) and waits for
// bootMarker on the serial console, where pkg/qemu mirrors SeaBIOS's and
// the MBR's messages too (etc/sercon-port), so that a failed boot says
// why.
func bootBIOS(t *testing.T, img string) {
	t.Helper()
	testkit.NeedQEMU(t, "bios")
	log, secs := testkit.Boot(t, qemu.Options{Image: img, Firmware: "bios", Accel: "tcg", Expect: bootMarker, Timeout: 120 * time.Second})
	t.Logf("marker after %.1f s", secs)
	checkBanner(t, log)
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
