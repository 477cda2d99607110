package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/erofs"
)

// sealedInit replaces the demo's /sbin/init: it reports how / and /var
// are mounted, counts its boots in /var, tries to write to /, and powers
// off.
const sealedInit = `#!/bin/busybox sh
bb=/bin/busybox
mnt() { $bb awk -v m="$1" '$2 == m { split($4, o, ","); print $1, $3, o[1] }' /proc/mounts | $bb tail -n 1; }
echo "sealed: root $(mnt /)"
echo "sealed: var $(mnt /var)"
echo boot >> /var/boots
echo "sealed: boots=$($bb wc -l < /var/boots)"
if $bb touch /etc/written 2>/dev/null; then echo "sealed: / is writable"; else echo "sealed: / refuses writes"; fi
if [ -d /sys/firmware/efi ]; then fw=uefi; else fw=bios; fi
# kiln run stops QEMU when it sees the marker: /var's write must be on
# the disk before.
$bb sync
echo "KILN-SEALED-BOOTED firmware=$fw"
$bb poweroff -f
`

// sealedBootSpec boots the demo's packages from a sealed EROFS root with a
// writable ext4 /var, through systemd-boot (UEFI) and syslinux (BIOS).
func sealedBootSpec(t *testing.T, dir, repo, debs, compression string) string {
	writeFile(t, filepath.Join(dir, "init/sbin/init"), []byte(sealedInit))
	if err := os.Chmod(filepath.Join(dir, "init/sbin/init"), 0o755); err != nil {
		t.Fatal(err)
	}
	layers := demoLayers(repo, debs, []string{"linux-image-amd64", "busybox-static", "systemd-boot-efi", "syslinux", "syslinux-common"}, "init/")
	return fmt.Sprintf(`epoch: 1700000000
layers:
%sdisk:
  table: gpt
  partitions:
    - {name: esp, type: esp, size: 64MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, filesystem: erofs, compression: %s, verity: true, size: auto, mount: /}
    - {name: var, type: var, filesystem: ext4, size: 16MiB, mount: /var}
boot:
  loader: hybrid
  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=ttyS0 ro no_timer_check
output:
  path: out/sealed.img
`, layers, compression)
}

// runSealed boots img (written, not a snapshot) and returns the console;
// ok is whether the marker appeared.
func runSealed(t *testing.T, img, firmware string, extra ...string) (string, bool) {
	t.Helper()
	args := append([]string{"run", "--write", "--firmware", firmware, "--accel", "tcg", "--timeout", "240s",
		"--expect", "KILN-SEALED-BOOTED firmware=" + firmware,
		"--fail-on", "kiln-init: no shell to drop to", "--fail-on", "kiln-init: starting /bin/sh", "--fail-on", "Kernel panic"}, extra...)
	args = append(args, img)
	out, stderr, code := kiln(t, "", nil, args...)
	if m := bootSeconds.FindStringSubmatch(stderr); m != nil {
		t.Logf("%s: marker %s s after QEMU started", firmware, m[1])
	}
	return out + stderr, code == 0
}

// TestBootSealed boots a sealed root under UEFI and then BIOS from the
// same disk, and its lz4-compressed variant under UEFI: kiln-init sets dm-verity up from roothash=, / is EROFS
// read-only from /dev/mapper/root, /var is ext4 read-write and keeps what
// the first boot wrote. A byte flipped in a file's data of the root
// partition (the tamper test) and one in the hash tree's top block each
// stop the boot before the marker: the first at the kernel's verity error
// when the file is read, the second at kiln-init's root hash check.
func TestBootSealed(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	judge.Need(t, "qemu-system-x86_64", "fsck.erofs", "veritysetup")
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(sealedBootSpec(t, dir, repo, debs, "none")))
	if _, se, code := kiln(t, dir, nil, "build", "-q"); code != 0 {
		t.Fatalf("build: %s", se)
	}
	img := filepath.Join(dir, "out/sealed.img")
	pristine := filepath.Join(t.TempDir(), "pristine.img")
	copyFile(t, img, pristine)
	l := readLayout(t, img)
	root, hash := l.Partitions[1], l.Partitions[2]

	for i, fw := range []string{"uefi", "bios"} {
		out, ok := runSealed(t, img, fw)
		if !ok {
			t.Fatalf("%s boot %d did not reach the marker:\n%s", fw, i+1, out)
		}
		for _, want := range []string{
			"kiln-init: verity: created /dev/mapper/root",
			"sealed: root /dev/mapper/root erofs ro",
			"sealed: var /dev/vda4 ext4 rw",
			fmt.Sprintf("sealed: boots=%d", i+1), // what the UEFI boot wrote, the BIOS boot reads
			"sealed: / refuses writes",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s boot %d: console lacks %q:\n%s", fw, i+1, want, out)
			}
		}
	}
	// The boots wrote to /var only: the sealed pair is as built.
	data := judge.Extract(t, img, root.Start, root.Size)
	if out, ok := judge.VeritysetupVerify(t, data, judge.Extract(t, img, hash.Start, hash.Size), rootHashOf(t, img)); !ok {
		t.Fatalf("after two boots, veritysetup verify refuses the root:\n%s", out)
	}

	// lz4: Debian 12's 6.1 kernel reads kiln's compressed layout (the
	// kernel modules, busybox and the init are compressed files).
	lz := t.TempDir()
	writeFile(t, filepath.Join(lz, "kiln.yaml"), []byte(sealedBootSpec(t, lz, repo, debs, "lz4")))
	if _, se, code := kiln(t, lz, nil, "build", "-q"); code != 0 {
		t.Fatalf("build (lz4): %s", se)
	}
	lzImg := filepath.Join(lz, "out/sealed.img")
	if lr := readLayout(t, lzImg).Partitions[1]; lr.Size >= root.Size*3/4 {
		t.Errorf("the lz4 root partition is %d bytes, the uncompressed one %d: want it at least a quarter smaller", lr.Size, root.Size)
	}
	out, ok := runSealed(t, lzImg, "uefi")
	if !ok || !strings.Contains(out, "sealed: root /dev/mapper/root erofs ro") || !strings.Contains(out, "sealed: boots=1") {
		t.Fatalf("the lz4 sealed root did not boot:\n%s", out)
	}

	// Tamper: one byte of /bin/busybox's first block (which exec reads),
	// found with kiln's EROFS reader, flipped in the partition.
	tampered := filepath.Join(t.TempDir(), "tampered.img")
	copyFile(t, pristine, tampered)
	off := fileOffset(t, tampered, root, "/bin/busybox", 200)
	testkit.FlipByte(t, tampered, off, 0x20)
	out, ok = runSealed(t, tampered, "uefi")
	if ok || strings.Contains(out, "KILN-SEALED-BOOTED") {
		t.Fatalf("a tampered root reached the marker:\n%s", out)
	}
	if !strings.Contains(out, "device-mapper: verity") || !strings.Contains(out, "is corrupted") {
		t.Errorf("no verity error on the console of the tampered boot:\n%s", out)
	}

	// A changed top hash block: kiln-init refuses before mounting.
	badTree := filepath.Join(t.TempDir(), "badtree.img")
	copyFile(t, pristine, badTree)
	testkit.FlipByte(t, badTree, hash.Start+4096+5, 0x20)
	out, ok = runSealed(t, badTree, "uefi")
	if ok || strings.Contains(out, "KILN-SEALED-BOOTED") {
		t.Fatalf("a root with a changed hash tree reached the marker:\n%s", out)
	}
	if !strings.Contains(out, "kiln-init: verity:") || !strings.Contains(out, "root hash mismatch") || strings.Contains(out, "switching to /sbin/init") {
		t.Errorf("kiln-init did not refuse the changed hash tree before switching root:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLayout(t *testing.T, img string) *disk.Layout {
	t.Helper()
	f, size := testkit.Open(t, img)
	l, err := disk.Read(f, size)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rootHashOf is the root hash kiln inspect reads from the image.
func rootHashOf(t *testing.T, img string) string {
	t.Helper()
	rep, err := inspectImage(img)
	if err != nil || len(rep.Verity) != 1 {
		t.Fatalf("inspect: %v %+v", err, rep)
	}
	return rep.Verity[0].RootHash
}

// fileOffset finds where byte at of a file's data lies in the image: the
// file is read with kiln's EROFS reader, and 64 bytes of it from at are
// looked for in the partition (they must occur once).
func fileOffset(t *testing.T, img string, p disk.Partition, path string, at int64) int64 {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	part := io.NewSectionReader(f, p.Start, p.Size)
	tr, err := erofs.ReadTree(part, p.Size)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := tr.Resolve(path, true)
	if err != nil || n.Content == nil {
		t.Fatalf("%s: %v", path, err)
	}
	r, err := n.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	needle := content[at : at+64]
	all, err := io.ReadAll(io.NewSectionReader(f, p.Start, p.Size))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(all, needle)
	if i < 0 || bytes.Contains(all[i+1:], needle) {
		t.Fatalf("%s's bytes at %d are not found exactly once in the partition", path, at)
	}
	return p.Start + int64(i)
}
