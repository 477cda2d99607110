package initramfs

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/ext4"
	"github.com/kiln-build/kiln/pkg/qemu"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

const (
	bootMarker = "KILN-BOOT-MARKER"
	// bootEnd follows the marker line: once it is on the console, the
	// marker line is whole.
	bootEnd = "KILN-BOOT-END"
)

// bootInit is the root filesystem's /sbin/init: it proves it runs as PID
// 1 on a root mounted read-write, prints the marker, then bootEnd, and
// powers off.
const bootInit = `#!/bin/busybox sh
bb=/bin/busybox
rw=no
$bb touch /kiln-rw-test && rw=yes
echo "` + bootMarker + ` pid=$$ rw=$rw args=$* root=$($bb awk '$2 == "/" {print $3}' /proc/mounts | $bb tail -n 1)"
echo ` + bootEnd + `
$bb poweroff -f
`

// TestBoot boots Debian's kernel under QEMU with an initramfs from Build
// and a GPT disk whose ext4 root kiln's own packages wrote: kiln-init
// loads the modules, finds the root by PARTUUID, switches to it and runs
// its /sbin/init, which prints the marker. Then the same with a PARTUUID
// no disk has: kiln-init must say what it saw.
func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU: not with -short")
	}
	testkit.NeedQEMU(t, "bios")
	busybox := testkit.FindDeb(t, testkit.DebBusybox)
	kt := kernelTree(t)
	dir := t.TempDir()

	kver, err := KernelVersion(kt, "")
	if err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	writeTreeFile(t, kt, "/boot/vmlinuz-"+kver, kernel)

	initBin := buildKilnInit(t, dir)
	initrd := filepath.Join(dir, "initrd.xz")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(f, kt, kver, Options{Epoch: testEpoch, Init: initBin}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(initrd); err == nil {
		t.Logf("initramfs with kiln-init (%d bytes) and the default modules: %d bytes, xz", len(initBin), st.Size())
	}

	// How many modules kiln-init must load: whatever the resolver finds
	// in this kernel package (TestRealKernel judges that list).
	mods, err := ResolveModules(kt, kver, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, partUUID := writeRootDisk(t, busybox)

	t.Run("marker", func(t *testing.T) {
		log, secs := bootQEMU(t, kernel, initrd, img, "root=PARTUUID="+partUUID+" rw kiln.timeout=60 -- one two", bootEnd)
		t.Logf("marker after %.1f s; kiln-init said:\n%s", secs, initLines(log))
		checkLog(t, log,
			fmt.Sprintf("kiln-init: loaded %d modules (0 failed)", len(mods)),
			"kiln-init: found root=PARTUUID="+partUUID+": /dev/vda1",
			"kiln-init: switching to /sbin/init on /dev/vda1",
			bootMarker+" pid=1 rw=yes args=one two root=ext4",
		)
	})

	t.Run("wrong PARTUUID", func(t *testing.T) {
		wrong := "0badc0de-0000-4000-8000-000000000001"
		log, secs := bootQEMU(t, kernel, initrd, img, "root=PARTUUID="+wrong+" kiln.timeout=3", "sleeping forever")
		t.Logf("message after %.1f s; kiln-init said:\n%s", secs, initLines(log))
		checkLog(t, log,
			"kiln-init: waiting up to 3s for root=PARTUUID="+wrong+" (rootfstype=ext4)",
			"kiln-init: timed out after 3s waiting for root=PARTUUID="+wrong,
			"kiln-init:   block devices: vda vda1",
			"kiln-init:   vda (67108864 bytes): GPT disk GUID ",
			"kiln-init:     partition 1 PARTUUID="+partUUID+` "root"`,
			"kiln-init: no shell to drop to: sleeping forever",
		)
	})
}

// checkLog checks that a serial log holds every one of want and no kernel
// panic, and shows the whole log when it does not.
func checkLog(t *testing.T, log string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Errorf("serial log lacks %q", w)
		}
	}
	if strings.Contains(log, "Kernel panic") {
		t.Error("the kernel panicked")
	}
	if t.Failed() {
		t.Logf("serial log:\n%s", log)
	}
}

// initLines are kiln-init's lines of a serial log.
func initLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "kiln-init") || strings.Contains(l, bootMarker) {
			out = append(out, strings.TrimRight(l, "\r"))
		}
	}
	return strings.Join(out, "\n")
}

// buildKilnInit builds cmd/kiln-init as a static binary.
func buildKilnInit(t *testing.T, dir string) []byte {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out := filepath.Join(dir, "kiln-init")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/kiln-build/kiln/cmd/kiln-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build kiln-init: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTreeFile copies a file of the tree to the host.
func writeTreeFile(t *testing.T, tr *tree.Tree, p, dst string) {
	t.Helper()
	n, _, err := tr.Resolve(p, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readContent(n, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRootDisk writes a 64 MiB GPT disk with one ext4 root partition
// holding busybox-static and /sbin/init, and returns its path and the
// partition's PARTUUID.
func writeRootDisk(t *testing.T, busyboxDeb string) (string, string) {
	t.Helper()
	root := trees.Merge(t, testEpoch, busyboxDeb)
	for _, d := range []string{"dev", "proc", "sys", "sbin"} {
		root.Root.SetChild(d, tree.NewDir(0o755, 0, 0, testEpoch))
	}
	addFile(root, "/sbin/init", 0o755, []byte(bootInit))

	const seed = "initramfs-boot-test"
	partGUID := repro.Derive(seed, "root")
	l, err := disk.Plan(disk.GPT, 64<<20, []disk.PartitionSpec{{Name: "root", Type: "root", Rest: true, GUID: partGUID}},
		disk.PlanOptions{Arch: "x86-64", DiskGUID: repro.Derive(seed, "disk")})
	if err != nil {
		t.Fatal(err)
	}
	f := testkit.SparseFile(t, "disk.img", l.Size)
	if err := disk.Write(f, l); err != nil {
		t.Fatal(err)
	}
	p := l.Partitions[0]
	if err := ext4.Write(io.NewOffsetWriter(f, p.Start), p.Size, root, ext4.Options{UUID: repro.Derive(seed, "fs"), Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name(), l.PartUUID(p)
}

// bootQEMU boots the kernel and initramfs directly (pkg/qemu's Kernel,
// Initrd and Append) with the disk attached, under TCG, until expect is on
// the serial console (or 120 s pass), and returns the console's output and
// the seconds from QEMU's start to expect.
func bootQEMU(t *testing.T, kernel, initrd, img, cmdline, expect string) (string, float64) {
	t.Helper()
	return testkit.Boot(t, qemu.Options{
		Image: img, Firmware: "bios", Accel: "tcg",
		Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 panic=-1 no_timer_check " + cmdline,
		Expect: expect, Timeout: 120 * time.Second,
	})
}
