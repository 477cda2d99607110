package syslinux

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

func newTree() *tree.Tree { return tree.New(testEpoch) }

// put adds n at p, creating the parent directories.
func put(tr *tree.Tree, p string, n *tree.Inode) { trees.Put(tr, testEpoch, p, n) }

// render lists the paths of a tree.
func render(tr *tree.Tree) string {
	var b strings.Builder
	tr.Walk(func(p string, d tree.Dirent) error {
		fmt.Fprintf(&b, "%s %s\n", p, d.Inode.Kind)
		return nil
	})
	return b.String()
}

func symlink(target string) *tree.Inode {
	return &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Target: target, Size: int64(len(target))}
}

// seq returns n consecutive sectors from first.
func seq(first uint64, n int) []uint64 {
	var s []uint64
	for i := 0; i < n; i++ {
		s = append(s, first+uint64(i))
	}
	return s
}

func TestExtents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sectors []uint64
		want    []extent
	}{
		{"none", nil, nil},
		{"one", []uint64{7}, []extent{{7, 1}}},
		// A run stays below 64 KiB: at most 127 sectors. (syslinux's
		// test for crossing a 64 KiB boundary compares a sector's
		// address with its own last byte, so it never cuts a run.)
		{"contiguous", seq(100, 112), []extent{{100, 112}}},
		{"long", seq(100, 127+127+3), []extent{{100, 127}, {227, 127}, {354, 3}}},
		{"gaps", append(append(seq(10, 3), seq(20, 2)...), 22, 40), []extent{{10, 3}, {20, 3}, {40, 1}}},
		{"backwards", []uint64{9, 8, 7}, []extent{{9, 1}, {8, 1}, {7, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := extents(tc.sectors); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("extents = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEmptyADV checks the ADV against syslinux's own test of it
// (adv_consistent) and against its known bytes.
func TestEmptyADV(t *testing.T) {
	b := emptyADV()
	if len(b) != 1024 || !bytes.Equal(b[:512], b[512:]) {
		t.Fatalf("want two equal 512-byte copies, got %d bytes", len(b))
	}
	var sum uint32
	for i := 4; i < advSize-4; i += 4 {
		sum += binary.LittleEndian.Uint32(b[i:])
	}
	if binary.LittleEndian.Uint32(b) != advMagic1 || binary.LittleEndian.Uint32(b[508:]) != advMagic3 || sum != advMagic2 {
		t.Fatalf("inconsistent ADV: % x", b[:16])
	}
	if got := fmt.Sprintf("% x", b[:8]); got != "a5 2f 2d 5a 67 17 04 a3" {
		t.Fatalf("ADV head % x", got)
	}
}

// fakeImage is a small image with the structures patch uses: 3 sectors of
// ldlinux.sys, room for 2 extents.
func fakeImage() *Image {
	img := &Image{LDLinux: make([]byte, 3*sectorSize), pa: 24, bytes: 3*sectorSize - 5}
	for i := range img.LDLinux {
		img.LDLinux[i] = byte(i * 7)
	}
	img.epa = extPatchArea{ADVPtrOffset: 600, DirOffset: 700, DirLen: 16, SubvolOffset: 720, SubvolLen: 16,
		SecPtrOffset: 800, SecPtrCnt: 2, Sect1Ptr0: 0x100, Sect1Ptr1: 0x104, RAIDPatch: 0x108}
	putPatchArea(img.LDLinux[img.pa:], &patchArea{Magic: ldlinuxMagic, Instance: 0x1234, MaxTransfer: 127, EPAOffset: 40})
	clear(img.LDLinux[800:820])
	binary.LittleEndian.PutUint32(img.BootSector[0x100:], sect1Ptr0Val)
	binary.LittleEndian.PutUint32(img.BootSector[0x104:], sect1Ptr1Val)
	return img
}

func TestPatch(t *testing.T) {
	img := fakeImage()
	orig := bytes.Clone(img.LDLinux)
	sectors := []uint64{1 << 33, 50, 51, 90, 91} // 3 of the image, 2 of the ADV
	sys, boot, err := img.patch(sectors)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.LDLinux, orig) {
		t.Fatal("patch changed the image")
	}
	var pa patchArea
	mustDecode(sys[img.pa:], &pa)
	if pa.DataSectors != 3 || pa.ADVSectors != 2 || pa.Dwords != 3*sectorSize/4 || pa.Instance != 0x1234 || pa.MaxTransfer != 127 {
		t.Fatalf("patch area %+v", pa)
	}
	var sum uint32
	for i := 0; i < len(sys); i += 4 {
		sum += binary.LittleEndian.Uint32(sys[i:])
	}
	if sum != ldlinuxMagic {
		t.Fatalf("dwords sum to %#x, want LDLINUX_MAGIC", sum)
	}
	if got := binary.LittleEndian.Uint64(sys[800:]); got != 50 || binary.LittleEndian.Uint16(sys[808:]) != 2 {
		t.Fatalf("first extent %d+%d", got, binary.LittleEndian.Uint16(sys[808:]))
	}
	if !bytes.Equal(sys[810:820], make([]byte, 10)) {
		t.Fatalf("second extent not empty: % x", sys[810:820])
	}
	if a, b := binary.LittleEndian.Uint64(sys[600:]), binary.LittleEndian.Uint64(sys[608:]); a != 90 || b != 91 {
		t.Fatalf("ADV at %d and %d", a, b)
	}
	if lo, hi := binary.LittleEndian.Uint32(boot[0x100:]), binary.LittleEndian.Uint32(boot[0x104:]); lo != 0 || hi != 2 {
		t.Fatalf("first sector %#x:%#x in the boot sector", hi, lo)
	}
	// Everything else is untouched.
	for i := range sys {
		in := func(off, n int) bool { return i >= off && i < off+n }
		if !in(img.pa, patchAreaSize) && !in(800, 20) && !in(600, 16) && sys[i] != orig[i] {
			t.Fatalf("byte %d changed", i)
		}
	}

	// Too many pieces for the extent table.
	small := *img
	small.epa.SecPtrCnt = 1
	_, _, err = small.patch([]uint64{1, 10, 20, 30, 31})
	testkit.ErrContains(t, err, "2 pieces", "room for 1")
	// BUG: the wrong number of sectors.
	_, _, err = img.patch([]uint64{1, 2})
	testkit.ErrContains(t, err, "BUG")
}

func TestMakeBootSector(t *testing.T) {
	var vol, boot [sectorSize]byte
	for i := range vol {
		vol[i], boot[i] = 'v', 'b'
	}
	got := makeBootSector(vol, boot)
	for i, c := range got {
		want := byte('v')
		if i < 11 || i >= 0x5A && i < 0x1FE {
			want = 'b'
		}
		if c != want {
			t.Fatalf("byte %#x is %q, want %q", i, c, want)
		}
	}
}

// TestCheckBootSector runs syslinux's checks on volumes of every FAT type
// that pkg/fs/fat writes, and on broken boot sectors.
func TestCheckBootSector(t *testing.T) {
	tr := newTree()
	for _, tc := range []struct {
		size int64
		typ  int
	}{{2 * mib, 12}, {16 * mib, 16}, {40 * mib, 32}} {
		p := writeFAT(t, tc.size, tr, fat.Options{FATType: tc.typ})
		b := testkit.ReadAt(t, p, 0, sectorSize)
		if err := checkBootSector(b); err != nil {
			t.Fatalf("FAT%d: %v", tc.typ, err)
		}
		for _, e := range []struct {
			off  int
			v    []byte
			want string
		}{
			{0x15, []byte{0x12}, "media"},
			{0x0B, []byte{0x00, 0x10}, "4096-byte sectors"},
			{0x0D, []byte{3}, "3 sectors per cluster"},
		} {
			bad := bytes.Clone(b)
			copy(bad[e.off:], e.v)
			testkit.ErrContains(t, checkBootSector(bad), e.want)
		}
		bad := bytes.Clone(b)
		if tc.typ == 32 {
			copy(bad[0x52:], "FAT16   ")
			testkit.ErrContains(t, checkBootSector(bad), "no FAT32 signature")
		} else {
			copy(bad[0x36:], "FAT32   ")
			testkit.ErrContains(t, checkBootSector(bad), "says FAT32")
		}
	}
}

func TestConfig(t *testing.T) {
	good := Config{Kernel: "/vmlinuz", Initrd: "/initrd.img", Cmdline: "console=ttyS0 root=PARTUUID=x ro", Serial: "0 115200"}
	if err := good.check(); err != nil {
		t.Fatal(err)
	}
	want := "SERIAL 0 115200\nPROMPT 0\nTIMEOUT 0\nDEFAULT linux\n\nLABEL linux\n\tLINUX /vmlinuz\n\tINITRD /initrd.img\n\tAPPEND console=ttyS0 root=PARTUUID=x ro\n"
	if got := string(good.configText()); got != want {
		t.Fatalf("config:\n%s\nwant:\n%s", got, want)
	}
	bare := Config{Kernel: "/boot/linux"}
	if got := string(bare.configText()); got != "PROMPT 0\nTIMEOUT 0\nDEFAULT linux\n\nLABEL linux\n\tLINUX /boot/linux\n" {
		t.Fatalf("config:\n%s", got)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no kernel", func(c *Config) { c.Kernel = "" }, "kernel path"},
		{"relative", func(c *Config) { c.Kernel = "vmlinuz" }, "kernel path"},
		{"space", func(c *Config) { c.Initrd = "/my initrd" }, "initrd path"},
		{"unclean", func(c *Config) { c.Kernel = "/boot/../vmlinuz" }, "clean"},
		{"newline", func(c *Config) { c.Cmdline = "quiet\nLABEL evil" }, "control character"},
		{"same", func(c *Config) { c.Initrd = c.Kernel }, "both"},
		{"initrd file without path", func(c *Config) { c.Initrd, c.InitrdFile = "", memFile(nil) }, "without a path"},
		{"serial", func(c *Config) { c.Serial = "ttyS0" }, "SERIAL"},
		{"own file", func(c *Config) { c.Initrd = "/LDLINUX.SYS" }, "syslinux's own file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			testkit.ErrContains(t, c.check(), tc.want)
		})
	}
}

func TestResolve(t *testing.T) {
	tr := newTree()
	put(tr, "/usr/lib/syslinux/mbr/mbr.bin", memFile([]byte("mbr")))
	put(tr, "/lib", symlink("usr/lib"))
	put(tr, "/usr/share/mbr.bin", symlink("../lib/syslinux/mbr/mbr.bin"))
	put(tr, "/abs", symlink("/usr/share/mbr.bin"))
	put(tr, "/up", symlink("../../../../usr"))
	put(tr, "/loop", symlink("loop"))
	for _, tc := range []struct {
		path, want string
	}{
		{"/usr/lib/syslinux/mbr/mbr.bin", "mbr"},
		{"/lib/syslinux/mbr/mbr.bin", "mbr"},
		{"/usr/share/mbr.bin", "mbr"},
		{"/abs", "mbr"},
		{"/up/lib/syslinux/mbr/mbr.bin", "mbr"},
		{"/loop", "too many levels"},
		{"/usr/share/mbr.bin/x", "not a directory"},
		{"/nothere", "not found"},
	} {
		n, err := lookupFile(tr, tc.path, 1<<20, "syslinux-common")
		if err != nil {
			testkit.ErrContains(t, err, tc.want)
			continue
		}
		if got := string(trees.Read(t, n)); got != tc.want {
			t.Fatalf("%s: %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestMBRCode(t *testing.T) {
	mbrBin, gptBin := bytes.Repeat([]byte{0xAA}, 440), bytes.Repeat([]byte{0xBB}, 440)
	src := Sources{Tree: newTree()}
	put(src.Tree, DefaultMBR, memFile(mbrBin))
	put(src.Tree, DefaultGPTMBR, memFile(gptBin))
	guid := func(n int) repro.UUID { return repro.Derive("syslinux-test", fmt.Sprint(n)) }
	plan := func(table disk.Table, boot1, boot2 bool) *disk.Layout {
		l, err := disk.Plan(table, 16*mib, []disk.PartitionSpec{
			{Name: "a", Type: "linux", Size: 4 * mib, GUID: guid(1), Bootable: boot1},
			{Name: "esp", Type: "esp", Size: 4 * mib, GUID: guid(2), Bootable: boot2},
		}, disk.PlanOptions{DiskGUID: guid(0), DiskSignature: 0x1234})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, tc := range []struct {
		name   string
		layout *disk.Layout
		part   int
		src    Sources
		want   []byte
		errs   string
	}{
		{"mbr", plan(disk.MBR, false, true), 2, src, mbrBin, ""},
		{"gpt", plan(disk.GPT, false, true), 2, src, gptBin, ""},
		{"mbr not active", plan(disk.MBR, true, false), 2, src, nil, "not active"},
		{"gpt no attribute", plan(disk.GPT, false, false), 2, src, nil, "legacy-BIOS-bootable"},
		{"gpt another first", plan(disk.GPT, true, true), 2, src, nil, "partition 1 is legacy-BIOS-bootable too"},
		{"no partition", plan(disk.MBR, false, true), 3, src, nil, "no partition 3"},
		{"missing file", plan(disk.MBR, false, true), 2, Sources{Tree: newTree()}, nil, "syslinux-common"},
		{"other path", plan(disk.GPT, false, true), 2, Sources{Tree: src.Tree, GPTMBR: DefaultMBR}, mbrBin, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MBRCode(tc.layout, tc.part, tc.src)
			if tc.errs != "" {
				testkit.ErrContains(t, err, tc.errs)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes % x..., want % x...", len(got), got[:4], tc.want[:4])
			}
		})
	}
	big := Sources{Tree: newTree()}
	put(big.Tree, DefaultMBR, memFile(make([]byte, 446)))
	_, err := MBRCode(plan(disk.MBR, false, true), 2, big)
	testkit.ErrContains(t, err, "446 bytes")
}

// TestMBRCodeDebian reads the real files of syslinux-common.
func TestMBRCodeDebian(t *testing.T) {
	src := syslinuxSources(t)
	for _, table := range []disk.Table{disk.MBR, disk.GPT} {
		l, err := disk.Plan(table, 16*mib, []disk.PartitionSpec{{Name: "esp", Type: "esp", Size: 8 * mib,
			GUID: repro.Derive("t", "p"), Bootable: true}}, disk.PlanOptions{DiskGUID: repro.Derive("t", "d")})
		if err != nil {
			t.Fatal(err)
		}
		code, err := MBRCode(l, 1, src)
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != 440 || !bytes.Contains(code, []byte("Missing OS")) && !bytes.Contains(code, []byte("Missing operating system")) {
			t.Fatalf("%v: %d bytes of boot code", table, len(code))
		}
		file := DefaultMBR
		if table == disk.GPT {
			file = DefaultGPTMBR
		}
		if !bytes.Equal(code, treeFile(t, src.Tree, file)) {
			t.Fatalf("%v: not %s", table, file)
		}
	}
}

// TestPrepare checks what Prepare adds to the ESP, and what it refuses.
func TestPrepare(t *testing.T) {
	src := syslinuxSources(t)
	cfg := Config{Kernel: "/linux/vmlinuz", KernelFile: memFile([]byte("kernel")), Cmdline: "quiet", Epoch: testEpoch}
	esp := newTree()
	img, err := Prepare(esp, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		mode uint32
		data []byte
	}{
		{"/ldlinux.sys", 0o444, img.FileBytes()},
		{"/ldlinux.c32", 0o444, treeFile(t, src.Tree, DefaultLDLinuxC32)},
		{"/syslinux.cfg", 0o644, cfg.configText()},
		{"/linux/vmlinuz", 0o644, []byte("kernel")},
	} {
		n := esp.Lookup(f.path)
		if n == nil || n.Mode != f.mode || n.Mtime != testEpoch || !bytes.Equal(trees.Read(t, n), f.data) {
			t.Fatalf("%s: %+v", f.path, n)
		}
	}

	for _, tc := range []struct {
		name  string
		setup func(esp *tree.Tree, src *Sources, cfg *Config)
		want  string
	}{
		{"config there", func(esp *tree.Tree, _ *Sources, _ *Config) { put(esp, "/SYSLINUX.CFG", memFile(nil)) }, "already has /SYSLINUX.CFG"},
		{"extlinux.conf", func(esp *tree.Tree, _ *Sources, _ *Config) { put(esp, "/extlinux.conf", memFile(nil)) }, "/extlinux.conf"},
		{"ldlinux.sys", func(esp *tree.Tree, _ *Sources, _ *Config) { put(esp, "/ldlinux.sys", memFile(nil)) }, "/ldlinux.sys"},
		{"kernel missing", func(_ *tree.Tree, _ *Sources, c *Config) { c.KernelFile = nil }, "not on the ESP"},
		{"kernel there too", func(esp *tree.Tree, _ *Sources, _ *Config) { put(esp, "/linux/vmlinuz", memFile(nil)) }, "on the ESP already"},
		{"kernel dir is a file", func(esp *tree.Tree, _ *Sources, _ *Config) { put(esp, "/linux", memFile(nil)) }, "not a directory"},
		{"no ldlinux.c32", func(_ *tree.Tree, s *Sources, _ *Config) { s.LDLinuxC32 = "/nothere" }, "syslinux-common"},
		{"wrong ldlinux.c32", func(_ *tree.Tree, s *Sources, _ *Config) { s.LDLinuxC32 = DefaultMBR }, "not a 32-bit x86 ELF"},
		{"bad config", func(_ *tree.Tree, _ *Sources, c *Config) { c.Cmdline = "a\x00b" }, "control character"},
		{"initrd a dir", func(_ *tree.Tree, _ *Sources, c *Config) {
			c.Initrd, c.InitrdFile = "/initrd/x", tree.NewDir(0o755, 0, 0, testEpoch)
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			esp, s, c := newTree(), src, cfg
			tc.setup(esp, &s, &c)
			before := render(esp)
			_, err := Prepare(esp, s, c)
			testkit.ErrContains(t, err, tc.want)
			if after := render(esp); after != before {
				t.Fatalf("a failed Prepare changed the ESP:\n%s\nwas:\n%s", after, before)
			}
		})
	}
	// A kernel already on the ESP needs no file.
	esp = newTree()
	put(esp, "/vmlinuz", memFile([]byte("k")))
	if _, err := Prepare(esp, src, Config{Kernel: "/vmlinuz"}); err != nil {
		t.Fatal(err)
	}
}

// TestInstallErrors checks that Install refuses what it must, and then
// writes nothing.
func TestInstallErrors(t *testing.T) {
	src := syslinuxSources(t)
	const size, start = 40 * mib, 2048
	esp := newTree()
	img, err := Prepare(esp, src, Config{Kernel: "/vmlinuz", KernelFile: memFile([]byte("k")), Epoch: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	good, exts := writeESP(t, size, esp, fat.Options{HiddenSectors: start})
	sysData, sectors := fatFile(t, good, "/ldlinux.sys")
	if !bytes.Equal(sysData, img.FileBytes()) {
		t.Fatal("the FAT does not hold what Prepare put in the tree")
	}
	// The writer's report and a read of the volume agree.
	if len(exts) != 1 || exts[0].Offset != int64(sectors[0])*sectorSize || exts[0].Length != int64(len(sysData)) {
		t.Fatalf("the FAT writer reports %v; the volume has /ldlinux.sys at sectors %d.. (%d bytes)", exts, sectors[0], len(sysData))
	}
	plain := writeFAT(t, size, newTree(), fat.Options{HiddenSectors: start})
	e := exts[0]
	half := e.Length / 2 / sectorSize * sectorSize
	for _, tc := range []struct {
		name  string
		img   string
		start uint64
		exts  []fs.Extent
		edit  func(f *os.File)
		want  string
	}{
		{"start", good, 4096, exts, nil, "starts at sector 2048"},
		{"no ldlinux.sys", plain, start, nil, nil, "the extents hold 0 bytes"},
		{"short", good, start, []fs.Extent{{Offset: e.Offset, Length: half}}, nil, "not the " + strconv.Itoa(len(sysData))},
		{"long", good, start, []fs.Extent{{Offset: e.Offset, Length: e.Length + 1}}, nil, "more than"},
		{"unaligned", good, start, []fs.Extent{{Offset: e.Offset + 1, Length: e.Length}}, nil, "not a sector-aligned range"},
		{"outside", good, start, []fs.Extent{{Offset: size - half, Length: e.Length}}, nil, "not a sector-aligned range"},
		{"elsewhere", good, start, []fs.Extent{{Offset: e.Offset + sectorSize, Length: e.Length}}, nil, "not the one of this image"},
		{"changed", good, start, exts, func(f *os.File) { f.WriteAt([]byte{1}, int64(sectors[3])*sectorSize+9) }, "not the one of this image"},
		{"media", good, start, exts, func(f *os.File) { f.WriteAt([]byte{0x12}, 0x15) }, "media"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := copyFile(t, tc.img)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tc.edit != nil {
				tc.edit(f)
			}
			before := judge.SHA256File(t, p)
			testkit.ErrContains(t, Install(f, size, tc.start, img, tc.exts), tc.want)
			if judge.SHA256File(t, p) != before {
				t.Fatal("a failed Install wrote to the volume")
			}
		})
	}
}

func TestLZO1XLength(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in            []byte
		max           int
		outLen, inLen int
		err           string
	}{
		{"first-byte literals", []byte{17 + 5, 'a', 'b', 'c', 'd', 'e', 0x11, 0, 0}, 100, 5, 9, ""},
		{"literal run", []byte{0x01, 'w', 'x', 'y', 'z', 0x11, 0, 0}, 100, 4, 8, ""},
		// After the run, an M2 match: length 3, 4 bytes back.
		{"match", []byte{0x01, 'w', 'x', 'y', 'z', 0x4C, 0x00, 0x11, 0, 0, 0xFF}, 100, 7, 10, ""},
		{"long literal run", append(append([]byte{0x00, 0x00, 0x01}, make([]byte, 3+15+255+1)...), 0x11, 0, 0), 1000, 274, 280, ""},
		{"too far back", []byte{0x01, 'w', 'x', 'y', 'z', 0x5C, 0x00, 0x11, 0, 0}, 100, 0, 0, "refers 8 bytes back"},
		{"too long", []byte{0x01, 'w', 'x', 'y', 'z', 0x4C, 0x00, 0x11, 0, 0}, 5, 0, 0, "longer than 5"},
		{"no end", []byte{0x01, 'w', 'x', 'y', 'z'}, 100, 0, 0, "ends before"},
		{"cut literals", []byte{0x01, 'w', 'x'}, 100, 0, 0, "ends before"},
		{"bad end", []byte{0x01, 'w', 'x', 'y', 'z', 0x12, 0, 0}, 100, 0, 0, "end marker"},
		{"empty", nil, 100, 0, 0, "ends before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, in, err := lzo1xLength(tc.in, tc.max)
			if tc.err != "" {
				testkit.ErrContains(t, err, tc.err)
				return
			}
			if err != nil || out != tc.outLen || in != tc.inLen {
				t.Fatalf("lzo1xLength = %d, %d, %v; want %d, %d", out, in, err, tc.outLen, tc.inLen)
			}
		})
	}
}
