package syslinux

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/tree"
)

// realInstaller writes the installer of Debian's package syslinux (the
// mtools variant: no root, no mount) to a temporary executable file.
func realInstaller(t *testing.T) string {
	t.Helper()
	judge.Need(t, "mcopy", "mattrib", "mdel")
	src := syslinuxSources(t)
	p := filepath.Join(t.TempDir(), "syslinux")
	if err := os.WriteFile(p, treeFile(t, src.Tree, DefaultInstaller), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runInstaller runs `syslinux --install` on a FAT image file.
func runInstaller(t *testing.T, exe, img string) {
	t.Helper()
	out, code := judge.Run(t, []string{"TMPDIR=" + t.TempDir()}, exe, "--install", img)
	if code != 0 {
		t.Fatalf("syslinux --install exited %d:\n%s", code, out)
	}
}

// TestPatchMatchesInstaller runs the real installer on FATs that pkg/fs/fat
// wrote and checks that, given the sectors the installer put ldlinux.sys
// in, our patch gives exactly the file the installer wrote, and our boot
// sector exactly the one it wrote. The fragmented case makes the installer
// scatter ldlinux.sys over holes, so that the extent table has several
// entries.
func TestPatchMatchesInstaller(t *testing.T) {
	exe := realInstaller(t)
	img, err := Load(syslinuxSources(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		size  int64
		typ   int
		holes bool
	}{
		{"fat32", 40 * mib, 32, false},
		{"fat16", 16 * mib, 16, false},
		{"fat12", 4 * mib, 12, false},
		{"fat16-fragmented", 16 * mib, 16, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tree.New(testEpoch)
			tr.Root.SetChild("dummy.txt", memFile([]byte("a dummy file\n")))
			var holes []string
			if tc.holes {
				// Alternate holes (deleted below) and keepers, in walk
				// order: f0h f0k f1h f1k ...
				for i, n := range []int{3, 1, 2, 4, 1, 8} {
					h, k := fmt.Sprintf("f%dh", i), fmt.Sprintf("f%dk", i)
					tr.Root.SetChild(h, memFile(bytes.Repeat([]byte{'h'}, n*2048)))
					tr.Root.SetChild(k, memFile([]byte("keep")))
					holes = append(holes, h)
				}
			}
			const start = 2048
			fsimg := writeFAT(t, tc.size, tr, fat.Options{FATType: tc.typ, VolumeID: 0x1234abcd, HiddenSectors: start})
			for _, h := range holes {
				if out, code := judge.Run(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mdel", "-i", fsimg, "::/"+h); code != 0 {
					t.Fatalf("mdel: %s", out)
				}
			}
			before := testkit.ReadAt(t, fsimg, 0, sectorSize)
			runInstaller(t, exe, fsimg)

			real, sectors := fatFile(t, fsimg, "/ldlinux.sys")
			if len(real) != len(img.LDLinux)+advSector*advSize {
				t.Fatalf("the installer wrote a %d-byte ldlinux.sys, we make %d + %d", len(real), len(img.LDLinux), advSector*advSize)
			}
			sys, boot, err := img.patch(sectors[:img.sectorCount()])
			if err != nil {
				t.Fatal(err)
			}
			if n := len(extents(sectors[1 : img.sectorCount()-advSector])); tc.holes && n < 4 {
				t.Fatalf("the holes left ldlinux.sys in %d extents; want several", n)
			}
			equalBytes(t, "ldlinux.sys", append(sys, emptyADV()...), real)
			var vol [sectorSize]byte
			copy(vol[:], before)
			bs := makeBootSector(vol, boot)
			equalBytes(t, "boot sector", bs[:], testkit.ReadAt(t, fsimg, 0, sectorSize))
		})
	}
}

// TestInstall runs Prepare, fat.Write and Install on real packages and
// judges the result: fsck.vfat finds nothing wrong, the boot sector is
// the one the real installer makes of the same volume for the same
// sectors, ldlinux.sys checks out as the boot sector checks it, and two
// builds are byte for byte the same.
func TestInstall(t *testing.T) {
	src := syslinuxSources(t)
	for _, tc := range []struct {
		name string
		size int64
		typ  int
	}{
		{"fat32", 40 * mib, 32},
		{"fat16", 16 * mib, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const start = 2048
			// build returns the installed volume and a copy of it from
			// before Install.
			build := func() (string, string, *Image) {
				esp := tree.New(testEpoch)
				img, err := Prepare(esp, src, Config{
					Kernel: "/vmlinuz", KernelFile: memFile(bytes.Repeat([]byte("kernel"), 1000)),
					Initrd: "/boot/initrd.img", InitrdFile: memFile([]byte("initrd")),
					Cmdline: "console=ttyS0 quiet", Serial: "0 115200", Epoch: testEpoch,
				})
				if err != nil {
					t.Fatal(err)
				}
				p, exts := writeESP(t, tc.size, esp, fat.Options{FATType: tc.typ, VolumeID: 0x1234abcd, HiddenSectors: start, Label: "ESP"})
				before := copyFile(t, p)
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := Install(f, tc.size, start, img, exts); err != nil {
					t.Fatal(err)
				}
				return p, before, img
			}
			p, before, img := build()
			p2, _, _ := build()
			if a, b := judge.SHA256File(t, p), judge.SHA256File(t, p2); a != b {
				t.Fatalf("two builds differ: %s and %s", a, b)
			}
			judge.FsckVfat(t, p)

			sys, sectors := fatFile(t, p, "/ldlinux.sys")
			// The boot sector loads the first sector from where it says.
			boot := testkit.ReadAt(t, p, 0, sectorSize)
			lo := le32(boot[img.epa.Sect1Ptr0:])
			hi := le32(boot[img.epa.Sect1Ptr1:])
			if got := uint64(hi)<<32 | uint64(lo); got != sectors[0] {
				t.Fatalf("the boot sector loads sector %d; ldlinux.sys starts at %d", got, sectors[0])
			}
			// The core's checksum: every dword of the image sums to
			// LDLINUX_MAGIC.
			var pa patchArea
			mustDecode(sys[img.pa:], &pa)
			var sum uint32
			for i := 0; i < int(pa.Dwords); i++ {
				sum += le32(sys[4*i:])
			}
			if sum != ldlinuxMagic || int(pa.Dwords)*4 != len(img.LDLinux) {
				t.Fatalf("%d dwords sum to %#x, want %#x over %d", pa.Dwords, sum, ldlinuxMagic, len(img.LDLinux)/4)
			}
			if int(pa.DataSectors) != len(img.LDLinux)/sectorSize || pa.ADVSectors != 2 {
				t.Fatalf("patch area says %d data and %d ADV sectors", pa.DataSectors, pa.ADVSectors)
			}
			if tc.typ == 32 {
				equalBytes(t, "backup boot sector", testkit.ReadAt(t, p, 6*sectorSize, sectorSize), boot)
			}
			// mtools reads the same files; ldlinux.sys and ldlinux.c32
			// are read-only (the installer also makes them hidden and
			// system files, which pkg/fs/fat cannot).
			files := judge.ReadFAT(t, p, 0)
			for name, want := range map[string][]byte{
				"/ldlinux.sys": sys, "/ldlinux.c32": treeFile(t, src.Tree, DefaultLDLinuxC32),
				"/vmlinuz": bytes.Repeat([]byte("kernel"), 1000), "/boot/initrd.img": []byte("initrd"),
			} {
				if got := files[name].SHA256; got != judge.SHA256(want) {
					t.Fatalf("mtools reads %s with sha256 %s, want %s", name, got, judge.SHA256(want))
				}
			}
			if cfg := files["/syslinux.cfg"]; cfg.Size == 0 {
				t.Fatal("mtools finds no /syslinux.cfg")
			}
			for _, name := range []string{"ldlinux.sys", "ldlinux.c32"} {
				out, code := judge.Run(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mattrib", "-i", p, "::/"+name)
				if f := strings.Fields(out); code != 0 || len(f) < 2 || !strings.Contains(f[len(f)-2], "R") {
					t.Fatalf("mattrib %s: %q", name, out)
				}
			}

			// The real installer on the same volume before Install. mcopy
			// rewrites ldlinux.sys, on FAT16 into the clusters it frees
			// (then the volumes must agree), on FAT32 after the last used
			// cluster (then our patch for its sectors must give its bytes).
			runInstaller(t, realInstaller(t), before)
			qsys, qsectors := fatFile(t, before, "/ldlinux.sys")
			wantSys, wantBoot := sys, boot
			if fmt.Sprint(qsectors) != fmt.Sprint(sectors) {
				t.Logf("the installer moved ldlinux.sys from sector %d to %d", sectors[0], qsectors[0])
				psys, pboot, err := img.patch(qsectors)
				if err != nil {
					t.Fatal(err)
				}
				var vol [sectorSize]byte
				copy(vol[:], testkit.ReadAt(t, p2, 0, sectorSize)) // the same BPB
				b := makeBootSector(vol, pboot)
				wantSys, wantBoot = append(psys, emptyADV()...), b[:]
			}
			equalBytes(t, "ldlinux.sys", qsys, wantSys)
			equalBytes(t, "boot sector", testkit.ReadAt(t, before, 0, sectorSize), wantBoot)
		})
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
