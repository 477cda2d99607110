package fat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// richTree exercises names, sizes, nesting, times and links.
func richTree() *tree.Tree {
	tr := tree.New(testEpoch)
	put(tr, "/EFI/BOOT/BOOTX64.EFI", genFile(1, 3*mib+17))
	put(tr, "/EFI/BOOT/grub.cfg", newFile(0o444, testEpoch+1, []byte("set timeout=0\n")))
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 4097} {
		put(tr, fmt.Sprintf("/sizes/s%d", n), genFile(uint64(n)+7, int64(n)))
	}
	for _, name := range []string{
		"A long file name with spaces.txt",
		"ünïcødé ✓ 日本語.txt",
		".hidden",
		"archive.tar.gz",
		"Mixed.Case",
		"exactly13char",
		"UPPER.TXT",
		"lower.txt",
		strings.Repeat("n", 255),
		"x+y=z[1];2,3",
	} {
		put(tr, "/names/"+name, newFile(0o644, testEpoch, []byte(name)))
	}
	p := "/deep"
	for i := range 30 {
		p += fmt.Sprintf("/level %02d directory", i)
	}
	put(tr, p+"/leaf.txt", newFile(0o644, testEpoch, []byte("leaf")))
	put(tr, "/times/old", newFile(0o644, 0, []byte("1970")))
	put(tr, "/times/future", newFile(0o644, 4102444799, []byte("2099")))  // 2099-12-31 23:59:59
	put(tr, "/times/clamped", newFile(0o644, 7258118400, []byte("2200"))) // 2200-01-01
	put(tr, "/times/odd", newFile(0o644, testEpoch+3, []byte("odd second")))
	link := newFile(0o644, testEpoch, []byte("linked content"))
	put(tr, "/links/a", link)
	put(tr, "/links/b", link)
	mkdirAll(tr, "/empty")
	return tr
}

// TestReadBack writes a rich tree at each FAT type and checks it with
// fsck.vfat, reads it back with mtools, and probes it.
func TestReadBack(t *testing.T) {
	judge.Need(t, "fsck.vfat", "mcopy", "mattrib")
	for _, tc := range []struct {
		size int64
		o    Options
		typ  int
	}{
		{64 * mib, Options{Label: "kiln esp", VolumeID: 0xC0FFEE01, Epoch: testEpoch, HiddenSectors: 2048}, 32},
		{16 * mib, Options{Label: "SMALL", VolumeID: 0x0BADF00D, Epoch: testEpoch}, 16},
		{4 * mib, Options{VolumeID: 7, Epoch: testEpoch}, 12},
	} {
		t.Run(fmt.Sprintf("FAT%d", tc.typ), func(t *testing.T) {
			tr := richTree()
			img := mustWriteImage(t, tc.size, tr, tc.o)
			used, total := fsckClean(t, img)
			compareExtracted(t, tr, extract(t, img))

			in := probeFile(t, img)
			wantLabel := strings.ToUpper(tc.o.Label)
			if in.FATType != tc.typ || in.Label != wantLabel || in.BootLabel != wantLabel || in.VolumeID != tc.o.VolumeID ||
				in.HiddenSectors != tc.o.HiddenSectors || in.Size != tc.size {
				t.Errorf("Probe: %+v", in)
			}
			if in.TotalClusters != total || in.TotalClusters-in.FreeClusters != used {
				t.Errorf("Probe: %d of %d clusters free; fsck.vfat: %d of %d used", in.FreeClusters, in.TotalClusters, used, total)
			}
			if in.FreeFromFSInfo != (tc.typ == 32) {
				t.Errorf("Probe: FreeFromFSInfo = %v", in.FreeFromFSInfo)
			}

			out, code := judge.Run(t, toolEnv, "mattrib", "-/", "-i", img, "::")
			if code != 0 {
				t.Fatalf("mattrib: exit %d\n%s", code, out)
			}
			for _, line := range strings.Split(out, "\n") {
				ro := strings.HasSuffix(line, "::/EFI/BOOT/grub.cfg")
				file := strings.HasPrefix(line, "  A")
				if ro && !strings.HasPrefix(line, "  A    R ") || !ro && file && strings.Contains(line[:12], "R") {
					t.Errorf("mattrib: %q", line)
				}
			}
			if !strings.Contains(out, "  A    R     ::/EFI/BOOT/grub.cfg") {
				t.Errorf("mattrib: grub.cfg is not read-only:\n%s", out)
			}
		})
	}
}

// TestSizes writes a small tree at many volume sizes.
func TestSizes(t *testing.T) {
	judge.Need(t, "fsck.vfat", "mcopy")
	for _, tc := range []struct {
		size int64
		typ  int
	}{
		{33 * mib, 32}, {33*mib + 512, 32}, {64 * mib, 32}, {77*mib + 3*512, 32}, {100 * mib, 32}, {129 * mib, 32},
		{260 * mib, 32}, {261 * mib, 32}, {300*mib + 512, 32}, {512 * mib, 32}, {1024 * mib, 32}, {2048 * mib, 32},
		{32 * mib, 16}, {16 * mib, 16}, {9*mib + 512, 16}, {4 * mib, 12}, {1 * mib, 12}, {512 * 1024, 12},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			tr := tree.New(testEpoch)
			put(tr, "/EFI/BOOT/BOOTX64.EFI", genFile(3, 40000))
			put(tr, "/loader/entries/a long entry name.conf", newFile(0o644, testEpoch, []byte("title x\n")))
			img := mustWriteImage(t, tc.size, tr, Options{Label: "ESP", VolumeID: 1, Epoch: testEpoch})
			used, total := fsckClean(t, img)
			in := probeFile(t, img)
			if in.FATType != tc.typ || in.TotalClusters != total || in.TotalClusters-in.FreeClusters != used {
				t.Errorf("FAT%d, %d/%d clusters free; fsck.vfat: %d/%d used", in.FATType, in.FreeClusters, in.TotalClusters, used, total)
			}
			compareExtracted(t, tr, extract(t, img))
		})
	}
}

// TestEmpty writes an empty tree, without and with a label.
func TestEmpty(t *testing.T) {
	judge.Need(t, "fsck.vfat")
	for _, size := range []int64{2 * mib, 16 * mib, 40 * mib} {
		for _, label := range []string{"", "EMPTY"} {
			img := mustWriteImage(t, size, tree.New(testEpoch), Options{Label: label, VolumeID: 42})
			used, _ := fsckClean(t, img)
			in := probeFile(t, img)
			wantUsed := uint32(0)
			if in.FATType == 32 {
				wantUsed = 1 // the root directory
			}
			if used != wantUsed || in.Label != label {
				t.Errorf("%d bytes, label %q: %d clusters used, label %q", size, label, used, in.Label)
			}
		}
	}
}

func sector(b []byte, n int64) []byte { return b[n*sectorSize : (n+1)*sectorSize] }

// TestOnDiskStructures checks the boot sectors, FSInfo, FATs and the "."
// and ".." entries byte by byte.
func TestOnDiskStructures(t *testing.T) {
	tr := tree.New(testEpoch)
	put(tr, "/EFI/BOOT/BOOTX64.EFI", genFile(3, 1000))
	for _, tc := range []struct {
		size int64
		typ  int
		jump []byte
	}{
		{40 * mib, 32, []byte{0xEB, 0x58, 0x90}},
		{16 * mib, 16, []byte{0xEB, 0x3C, 0x90}},
		{2 * mib, 12, []byte{0xEB, 0x3C, 0x90}},
	} {
		t.Run(fmt.Sprintf("FAT%d", tc.typ), func(t *testing.T) {
			o := Options{Label: "Disk", VolumeID: 0x01020304, Epoch: testEpoch, HiddenSectors: 0x800}
			img := mustWriteImage(t, tc.size, tr, o)
			b := fileBytes(t, img)
			l, err := newLayout(uint32(tc.size/sectorSize), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if l.fatType != tc.typ {
				t.Fatalf("FAT%d", l.fatType)
			}
			boot := sector(b, 0)
			if !bytes.Equal(boot[:3], tc.jump) || boot[510] != 0x55 || boot[511] != 0xAA {
				t.Errorf("boot sector: jump % x, signature % x", boot[:3], boot[510:])
			}
			if boot[0x15] != media || binary.LittleEndian.Uint32(boot[0x1C:]) != 0x800 {
				t.Errorf("media %#x, hidden sectors %#x", boot[0x15], binary.LittleEndian.Uint32(boot[0x1C:]))
			}
			if !bytes.Contains(boot, []byte("This is not a bootable disk")) {
				t.Error("boot sector has no not-bootable message")
			}
			// The boot code's mov si must point at the message.
			code := int(boot[1]) + 2
			msg := int(binary.LittleEndian.Uint16(boot[code+3:])) - 0x7C00
			if boot[code+2] != 0xBE || !bytes.HasPrefix(boot[msg:], []byte("This is not")) {
				t.Errorf("boot code at %#x loads the message from %#x", code, msg)
			}
			fat := func(i int) []byte {
				return b[int64(l.fatStart(i))*sectorSize : int64(l.fatStart(i)+l.fatSectors)*sectorSize]
			}
			if !bytes.Equal(fat(0), fat(1)) {
				t.Error("the two FATs differ")
			}
			var head []byte
			switch tc.typ {
			case 32:
				head = []byte{0xF8, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F}
			case 16:
				head = []byte{0xF8, 0xFF, 0xFF, 0xFF}
			case 12:
				head = []byte{0xF8, 0xFF, 0xFF}
			}
			if !bytes.HasPrefix(fat(0), head) {
				t.Errorf("FAT starts % x, want % x", fat(0)[:8], head)
			}

			root := b[int64(l.rootStart())*sectorSize:]
			if tc.typ == 32 {
				if !bytes.Equal(boot, sector(b, 6)) {
					t.Error("backup boot sector differs")
				}
				info := sector(b, 1)
				if !bytes.Equal(info, sector(b, 7)) {
					t.Error("backup FSInfo differs")
				}
				var fi fsInfo
				if _, err := binary.Decode(info, binary.LittleEndian, &fi); err != nil {
					t.Fatal(err)
				}
				// root, EFI, BOOT: 1 cluster each; the file: 2.
				if fi.LeadSig != fsInfoLeadSig || fi.StrucSig != fsInfoStrucSig || fi.TrailSig != fsInfoTrailSig ||
					fi.FreeCount != l.clusters-5 || fi.NxtFree != 7 {
					t.Errorf("FSInfo: %+v (clusters %d)", fi, l.clusters)
				}
				root = b[l.clusterOffset(2):]
			}
			// Root: label, then EFI.
			if string(root[:11]) != "DISK       " || root[11] != attrVolumeID {
				t.Errorf("label entry % x", root[:32])
			}
			efi := root[32:64]
			if string(efi[:11]) != "EFI        " || efi[11] != attrDir {
				t.Fatalf("EFI entry % x", efi)
			}
			cluster := func(e []byte) uint32 {
				return uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
			}
			efiC := cluster(efi)
			ed := b[l.clusterOffset(efiC):]
			if string(ed[:11]) != ".          " || cluster(ed[:32]) != efiC || string(ed[32:43]) != "..         " || cluster(ed[32:64]) != 0 {
				t.Errorf("EFI's . and ..: % x", ed[:64])
			}
			bootC := cluster(ed[64:96])
			bd := b[l.clusterOffset(bootC):]
			if cluster(bd[:32]) != bootC || cluster(bd[32:64]) != efiC {
				t.Errorf("BOOT's . and ..: % x", bd[:64])
			}
		})
	}
}

// TestDeterministic writes the same tree twice, once built in another
// order, and wants identical bytes.
func TestDeterministic(t *testing.T) {
	build := func(reverse bool) *tree.Tree {
		tr := tree.New(testEpoch)
		var names []string
		for i := range 300 {
			names = append(names, fmt.Sprintf("a rather long name %03d.efi", i))
		}
		names = append(names, "grub.cfg", "Mixed", "BOOT.CSV")
		if reverse {
			for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
				names[i], names[j] = names[j], names[i]
			}
		}
		for i, n := range names {
			put(tr, "/EFI/x/"+n, newFile(0o644, testEpoch+int64(i%3), []byte(n)))
		}
		return tr
	}
	o := Options{Label: "SAME", VolumeID: 99, Epoch: testEpoch}
	sum := func(tr *tree.Tree) [32]byte {
		return sha256.Sum256(fileBytes(t, mustWriteImage(t, 40*mib, tr, o)))
	}
	a, b, c := sum(build(false)), sum(build(false)), sum(build(true))
	if a != b {
		t.Error("two writes of one tree differ")
	}
	// The reversed build gives different mtimes to names, so compare a
	// reversed build with itself and the straight one's names only.
	if c != sum(build(true)) {
		t.Error("two writes of the reversed tree differ")
	}
	if a == c {
		t.Error("different mtimes gave the same image: the test cannot tell images apart")
	}
}

// TestBigDirectory stores 1200 similar long names and literal short names
// that a generator could collide with, in a subdirectory of FAT32 and in
// the fixed root directory of FAT16 (which must grow past 512 entries).
func TestBigDirectory(t *testing.T) {
	judge.Need(t, "fsck.vfat", "mcopy")
	for _, tc := range []struct {
		dir  string
		size int64
		typ  int
	}{{"/big", 40 * mib, 32}, {"", 16 * mib, 16}} {
		t.Run(fmt.Sprint(tc.typ), func(t *testing.T) {
			tr := tree.New(testEpoch)
			for i := range 1200 {
				put(tr, fmt.Sprintf("%s/kernel module number %04d.ko", tc.dir, i), newFile(0o644, testEpoch, []byte{byte(i)}))
			}
			for _, n := range []string{"KERNEL~1.KO", "kernel~2.ko", "KERNE~10.KO", "KERN~100.KO"} {
				put(tr, tc.dir+"/"+n, newFile(0o644, testEpoch, []byte(n)))
			}
			img := mustWriteImage(t, tc.size, tr, Options{VolumeID: 5})
			fsckClean(t, img)
			compareExtracted(t, tr, extract(t, img))
			if in := probeFile(t, img); in.FATType != tc.typ || tc.typ == 16 && in.RootEntries < 4804 {
				t.Errorf("FAT%d, %d root entries", in.FATType, in.RootEntries)
			}
		})
	}
}

// TestFullClusterDirs has directories whose entries fill their clusters
// exactly, so no end-of-directory entry follows the last one.
func TestFullClusterDirs(t *testing.T) {
	judge.Need(t, "fsck.vfat", "mcopy")
	tr := tree.New(testEpoch)
	for i := range 15 { // with the label: 16 entries, one 512-byte cluster
		put(tr, fmt.Sprintf("/R%d", i), newFile(0o644, testEpoch, nil)) // empty: no cluster
	}
	for i := range 14 { // with . and ..: 16 entries
		put(tr, fmt.Sprintf("/R0DIR/F%d", i), newFile(0o644, testEpoch, nil))
	}
	tr.Root.RemoveChild("R0")
	img := mustWriteImage(t, 40*mib, tr, Options{Label: "FULL"})
	fsckClean(t, img)
	compareExtracted(t, tr, extract(t, img))
	if in := probeFile(t, img); in.TotalClusters-in.FreeClusters != 2 {
		t.Errorf("%d clusters used, want 2 (root and R0DIR)", in.TotalClusters-in.FreeClusters)
	}
}

// TestFillExactly adds a file that takes exactly the free clusters.
func TestFillExactly(t *testing.T) {
	judge.Need(t, "fsck.vfat", "mcopy")
	for _, size := range []int64{34 * mib, 16 * mib, 2 * mib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			tr := tree.New(testEpoch)
			put(tr, "/dir/small", newFile(0o644, testEpoch, []byte("x")))
			put(tr, "/fill", genFile(9, 0))
			in := probeFile(t, mustWriteImage(t, size, tr, Options{}))
			free := int64(in.FreeClusters) * int64(in.ClusterSize)

			put(tr, "/fill", genFile(9, free))
			img := mustWriteImage(t, size, tr, Options{})
			used, total := fsckClean(t, img)
			if used != total {
				t.Errorf("fsck.vfat: %d of %d clusters used", used, total)
			}
			if in := probeFile(t, img); in.FreeClusters != 0 {
				t.Errorf("%d clusters free", in.FreeClusters)
			}
			if in.FATType == 32 {
				var fi fsInfo
				if _, err := binary.Decode(sector(fileBytes(t, img), 1), binary.LittleEndian, &fi); err != nil {
					t.Fatal(err)
				}
				if fi.NxtFree != unknown32 {
					t.Errorf("full volume: next free %#x", fi.NxtFree)
				}
			}
			compareExtracted(t, tr, extract(t, img))

			put(tr, "/fill", genFile(9, free+1))
			_, err := writeImage(t, size, tr, Options{})
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("one byte more: %v, want ErrNoSpace", err)
			}
			testkit.ErrContains(t, err, "needs", "clusters")
		})
	}
}

func TestWriteErrors(t *testing.T) {
	with := func(p string, n *tree.Inode) *tree.Tree {
		tr := tree.New(testEpoch)
		put(tr, p, n)
		return tr
	}
	caseTree := tree.New(testEpoch)
	put(caseTree, "/EFI/Boot/a", newFile(0o644, 0, nil))
	put(caseTree, "/EFI/BOOT/b", newFile(0o644, 0, nil))
	small := with("/f", newFile(0o644, 0, []byte("x")))
	for _, tc := range []struct {
		name string
		tr   *tree.Tree
		size int64
		o    Options
		want []string
	}{
		{"symlink", with("/EFI/x", &tree.Inode{Kind: tree.Symlink, Target: "y"}), 4 * mib, Options{},
			[]string{"fat: /EFI/x: symlinks cannot be stored on FAT"}},
		{"chardev", with("/dev/null", &tree.Inode{Kind: tree.CharDev}), 4 * mib, Options{}, []string{"/dev/null: character devices"}},
		{"blockdev", with("/dev/sda", &tree.Inode{Kind: tree.BlockDev}), 4 * mib, Options{}, []string{"/dev/sda: block devices"}},
		{"fifo", with("/run/p", &tree.Inode{Kind: tree.FIFO}), 4 * mib, Options{}, []string{"/run/p: FIFOs"}},
		{"case", caseTree, 4 * mib, Options{}, []string{"fat: /EFI:", `"BOOT"`, `"Boot"`, "differ only in case"}},
		{"bad char", with("/a:b", newFile(0o644, 0, nil)), 4 * mib, Options{}, []string{"/a:b", "':'"}},
		{"label", small, 4 * mib, Options{Label: "a/b"}, []string{"volume label", "'/'"}},
		{"size", small, 4*mib + 1, Options{}, []string{"not a positive multiple of 512"}},
		{"too big", small, 4 << 40, Options{}, []string{"larger than FAT allows"}},
		{"fat32 small", small, 32 * mib, Options{FATType: 32}, []string{"too small for FAT32"}},
		{"fat16 small", small, 2 * mib, Options{FATType: 16}, []string{"too small for FAT16"}},
		{"short content", with("/f", &tree.Inode{Kind: tree.Regular, Size: 10, Content: testkit.Zeros(5)}), 4 * mib, Options{},
			[]string{"/f: content ended after 5 of 10 bytes"}},
		{"long content", with("/f", &tree.Inode{Kind: tree.Regular, Size: 10, Content: testkit.Zeros(11)}), 4 * mib, Options{},
			[]string{"/f: content is longer than its size of 10 bytes"}},
		{"4 GiB", with("/f", &tree.Inode{Kind: tree.Regular, Size: 4 << 30, Content: testkit.Zeros(0)}), 4 * mib, Options{},
			[]string{"/f: 4294967296 bytes is more than a FAT file can hold"}},
		{"no space", with("/f", genFile(1, 5*mib)), 4 * mib, Options{}, []string{"needs", "not enough space"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(t.TempDir() + "/img")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = Write(f, tc.size, tc.tr, tc.o)
			testkit.ErrContains(t, err, tc.want...)
		})
	}
}

// TestMinSize checks that MinSize's size fits the tree and, where FAT
// allows a smaller volume, that 1 MiB less does not.
func TestMinSize(t *testing.T) {
	judge.Need(t, "fsck.vfat")
	many := tree.New(testEpoch)
	for i := range 3000 {
		put(many, fmt.Sprintf("/d%d/file with a long name %d", i%7, i), newFile(0o644, testEpoch, []byte("tiny")))
	}
	big := tree.New(testEpoch)
	put(big, "/a", genFile(1, 300*mib))
	put(big, "/b/c", genFile(2, 77*mib+3))
	for _, tc := range []struct {
		name string
		tr   *tree.Tree
		typ  int
	}{
		{"empty", tree.New(testEpoch), 0},
		{"rich", richTree(), 0},
		{"rich16", richTree(), 16},
		{"rich12", richTree(), 12},
		{"many", many, 0},
		{"many16", many, 16},
		{"big", big, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Label: "MIN", FATType: tc.typ}
			size, err := MinSize(tc.tr, o)
			if err != nil {
				t.Fatal(err)
			}
			if size%mib != 0 {
				t.Fatalf("MinSize %d is not whole MiB", size)
			}
			img := mustWriteImage(t, size, tc.tr, o)
			fsckClean(t, img)
			in := probeFile(t, img)
			if want := tc.typ; want != 0 && in.FATType != want || want == 0 && in.FATType != 32 {
				t.Errorf("MinSize %d: FAT%d", size, in.FATType)
			}
			if o.FATType == 0 {
				o.FATType = 32 // MinSize sizes for FAT32 then
			}
			_, err = writeImage(t, size-mib, tc.tr, o)
			if err == nil {
				t.Errorf("MinSize %d, yet 1 MiB less fits too", size)
			}
			t.Logf("MinSize %d MiB: %v", size/mib, err)
		})
	}
	_, err := MinSize(big, Options{FATType: 12})
	if !errors.Is(err, ErrNoSpace) {
		t.Errorf("378 MiB as FAT12: %v, want ErrNoSpace", err)
	}
}

// TestTimesRaw checks the time fields of entries as stored, for times
// mtools cannot check (it takes 2100 for a leap year).
func TestTimesRaw(t *testing.T) {
	tr := tree.New(testEpoch)
	times := []struct {
		sec                 int64
		nsec                uint32
		date, time, crtTime uint16
		cs                  uint8
	}{
		{0, 0, 0x0021, 0, 0, 0},                                   // 1970: 1980-01-01 00:00:00
		{testEpoch + 1, 250_000_000, 0x576E, 0xB1AA, 0xB1AA, 125}, // 2023-11-14 22:13:21.25
		{7258118400, 0, 0xFF9F, 0xBF7D, 0xBF7D, 199},              // 2200: 2107-12-31 23:59:59.99
	}
	for i, tm := range times {
		n := newFile(0o644, tm.sec, nil)
		n.Nsec = tm.nsec
		put(tr, fmt.Sprintf("/F%d", i), n)
	}
	img := mustWriteImage(t, 2*mib, tr, Options{Label: "T", Epoch: testEpoch})
	b := fileBytes(t, img)
	l, _ := newLayout(2*mib/sectorSize, 0, 0)
	root := b[int64(l.rootStart())*sectorSize:]
	var e dirEntry
	if _, err := binary.Decode(root, binary.LittleEndian, &e); err != nil {
		t.Fatal(err)
	}
	if e.Attr != attrVolumeID || e.WrtDate != 0x576E || e.WrtTime != 0xB1AA {
		t.Errorf("label entry: %+v", e)
	}
	for i, tm := range times {
		if _, err := binary.Decode(root[(i+1)*dirEntrySize:], binary.LittleEndian, &e); err != nil {
			t.Fatal(err)
		}
		if e.WrtDate != tm.date || e.WrtTime != tm.time || e.CrtDate != tm.date || e.CrtTime != tm.crtTime ||
			e.CrtTimeTenth != tm.cs || e.LstAccDate != tm.date {
			t.Errorf("%d: %+v", tm.sec, e)
		}
	}
}

// TestLongNameEntries reads the raw entries of a long name back.
func TestLongNameEntries(t *testing.T) {
	tr := tree.New(testEpoch)
	name := "ünïcødé ✓ 日本語 long name 😀.txt" // 😀 is a surrogate pair
	put(tr, "/"+name, newFile(0o644, testEpoch, []byte("x")))
	img := mustWriteImage(t, 2*mib, tr, Options{})
	b := fileBytes(t, img)
	l, _ := newLayout(2*mib/sectorSize, 0, 0)
	root := b[int64(l.rootStart())*sectorSize:]
	u := utf16.Encode([]rune(name))
	n := lfnSlots(len(u))
	short := root[n*32 : n*32+32]
	var sn shortName
	copy(sn[:], short[:11])
	var got []uint16
	for i := n - 1; i >= 0; i-- {
		e := root[i*32 : i*32+32]
		if e[13] != sn.checksum() {
			t.Fatalf("slot %d: checksum %#x, short name %q has %#x", i, e[13], sn, sn.checksum())
		}
		for _, off := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			got = append(got, binary.LittleEndian.Uint16(e[off:]))
		}
	}
	if string(utf16.Decode(got[:len(u)])) != name || root[0] != byte(n)|lfnLast {
		t.Errorf("long name %q, first order byte %#x", string(utf16.Decode(got[:len(u)])), root[0])
	}
}
