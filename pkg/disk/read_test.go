package disk

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestReadSgdisk reads a GPT made by sgdisk: unused slots between entries,
// an unnamed partition, a partition up to the last usable sector.
func TestReadSgdisk(t *testing.T) {
	judge.Need(t, "sgdisk")
	t.Parallel()
	disk := mustUUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
	g1, g3, g5 := pguid(1), pguid(3), pguid(5)
	img := emptyImage(t, 64*MiB)
	mustRun(t, "", "sgdisk", "-U", disk.String(),
		"-n1:2048:+4M", "-t1:ef00", "-u1:"+g1.String(), "-c1:EFI System", "-A1:set:0",
		"-n3:0:+8M", "-t3:8200", "-u3:"+g3.String(), "-A3:set:63",
		"-n5:0:0", "-t5:8305", "-u5:"+g5.String(), "-c5:root fs ä", "-A5:set:2",
		img)
	sectors := int64(64 * 2048)
	want := &Layout{Table: GPT, DiskGUID: disk, Size: 64 * MiB, FirstUsableLBA: 34, LastUsableLBA: sectors - 34,
		Partitions: []Partition{
			{Number: 1, Name: "EFI System", TypeGUID: mustUUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), GUID: g1,
				Attributes: AttrRequired, Start: 2048 * 512, Size: 4 * MiB},
			{Number: 3, TypeGUID: mustUUID("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"), GUID: g3,
				Attributes: 1 << 63, Start: 10240 * 512, Size: 8 * MiB},
			{Number: 5, Name: "root fs ä", TypeGUID: mustUUID("b921b045-1df0-41c3-af44-4c6f280d3fae"), GUID: g5,
				Attributes: AttrLegacyBIOSBootable, Bootable: true, Start: 26624 * 512, Size: (sectors - 34 - 26624 + 1) * 512},
		}}
	got := readImage(t, img)
	if d := diffLayouts(got, want); d != "" {
		t.Error(d)
	}
	if got.FromBackup || len(got.Problems) > 0 {
		t.Errorf("from backup %v, problems %q", got.FromBackup, got.Problems)
	}
	if n := got.Partitions[2].Type().Name; n != "root-arm64" {
		t.Errorf("partition 5 type %q, want root-arm64", n)
	}
}

// TestReadSfdiskGPT reads a GPT made by sfdisk, whose header says the first
// usable LBA is 2048.
func TestReadSfdiskGPT(t *testing.T) {
	judge.Need(t, "sfdisk")
	disk := mustUUID("a0b1c2d3-e4f5-4607-8819-2a3b4c5d6e7f")
	img := emptyImage(t, 32*MiB)
	mustRun(t, `label: gpt
label-id: `+disk.String()+`
start=2048, size=8192, type=U, uuid=`+pguid(1).String()+`, name="esp", attrs="RequiredPartition LegacyBIOSBootable"
start=10240, size=4096, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=`+pguid(2).String()+`, attrs="GUID:48,60"
start=20480, type=L, uuid=`+pguid(3).String()+`, name="data"
`, "sfdisk", "--no-reread", "--no-tell-kernel", img)
	sectors := int64(32 * 2048)
	d := sfdiskJSON(t, img).PartitionTable
	want := &Layout{Table: GPT, DiskGUID: disk, Size: 32 * MiB, FirstUsableLBA: d.FirstLBA, LastUsableLBA: sectors - 34,
		Partitions: []Partition{
			{Number: 1, Name: "esp", TypeGUID: mustUUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), GUID: pguid(1),
				Attributes: AttrRequired | AttrLegacyBIOSBootable, Bootable: true, Start: 2048 * 512, Size: 8192 * 512},
			{Number: 2, TypeGUID: mustUUID("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"), GUID: pguid(2),
				Attributes: 1<<48 | 1<<60, Start: 10240 * 512, Size: 4096 * 512},
			{Number: 3, Name: "data", TypeGUID: mustUUID("0fc63daf-8483-4772-8e79-3d69d8477de4"), GUID: pguid(3),
				Start: 20480 * 512, Size: d.Partitions[2].Size * 512},
		}}
	if d.FirstLBA != 2048 {
		t.Logf("sfdisk wrote first-lba %d (2.38 writes 2048)", d.FirstLBA)
	}
	if want.Partitions[2].LastLBA() > sectors-34 || want.Partitions[2].Size < 10*MiB {
		t.Fatalf("sfdisk made partition 3 %d sectors long", d.Partitions[2].Size)
	}
	got := readImage(t, img)
	if diff := diffLayouts(got, want); diff != "" {
		t.Error(diff)
	}
	if len(got.Problems) > 0 {
		t.Errorf("problems %q", got.Problems)
	}
}

// TestReadSfdiskDos reads an MBR made by sfdisk with an extended partition
// and two logical partitions.
func TestReadSfdiskDos(t *testing.T) {
	judge.Need(t, "sfdisk")
	img := emptyImage(t, 64*MiB)
	mustRun(t, `label: dos
label-id: 0x0badcafe
start=2048, size=16384, type=83, bootable
start=18432, size=100000, type=5
start=20480, size=8192, type=82
start=30720, size=8192, type=83
start=118432, type=c
`, "sfdisk", "--no-reread", "--no-tell-kernel", img)
	sectors := int64(64 * 2048)
	want := &Layout{Table: MBR, DiskSignature: 0x0badcafe, Size: 64 * MiB, FirstUsableLBA: 1, LastUsableLBA: sectors - 1,
		Partitions: []Partition{
			{Number: 1, MBRType: 0x83, Bootable: true, Start: 2048 * 512, Size: 16384 * 512},
			{Number: 2, MBRType: 0x05, Start: 18432 * 512, Size: 100000 * 512},
			{Number: 3, MBRType: 0x0c, Start: 118432 * 512, Size: (sectors - 118432) * 512},
			{Number: 5, MBRType: 0x82, Start: 20480 * 512, Size: 8192 * 512},
			{Number: 6, MBRType: 0x83, Start: 30720 * 512, Size: 8192 * 512},
		}}
	got := readImage(t, img)
	if d := diffLayouts(got, want); d != "" {
		t.Error(d)
	}
	if len(got.Problems) > 0 {
		t.Errorf("problems %q", got.Problems)
	}
	if got := got.PartUUID(got.Partitions[4]); got != "0badcafe-06" {
		t.Errorf("PartUUID = %q, want 0badcafe-06", got)
	}
}

// TestReadDamagedGPT damages a GPT written by Write in various ways and
// checks that Read falls back to the backup (or reports the damage), and
// that sgdisk agrees the image is damaged.
func TestReadDamagedGPT(t *testing.T) {
	l := goldenCases[0].plan(t)
	sectors := l.Size / SectorSize
	flip := func(off int64) func([]byte) {
		return func(b []byte) { b[off] ^= 0x40 }
	}
	zero := func(from, to int64) func([]byte) {
		return func(b []byte) {
			for i := from; i < to; i++ {
				b[i] = 0
			}
		}
	}
	tests := []struct {
		name       string
		damage     func([]byte)
		fromBackup bool
		problem    string // substring of Problems[0]; "" means none
		wantErr    string
	}{
		{name: "primary header CRC", damage: flip(512 + 60), fromBackup: true, problem: "primary GPT unusable (header at LBA 1: CRC32"},
		{name: "primary entries CRC", damage: flip(2*512 + 130), fromBackup: true, problem: "primary GPT unusable (entries at LBA 2: CRC32"},
		{name: "primary header wiped", damage: zero(512, 1024), fromBackup: true, problem: "no GPT header signature"},
		{name: "backup header CRC", damage: flip((sectors-1)*512 + 60), problem: "backup GPT: header at LBA"},
		{name: "backup entries CRC", damage: flip((sectors-33)*512 + 200), problem: "backup GPT: entries at LBA"},
		{name: "no protective MBR", damage: zero(0, 512), problem: "no protective MBR"},
		{name: "both headers", damage: func(b []byte) { flip(512 + 60)(b); flip((sectors-1)*512 + 60)(b) },
			wantErr: "read GPT: primary: header at LBA 1: CRC32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := writeImage(t, l)
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(b)
			if err := os.WriteFile(img, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := exec.LookPath("sgdisk"); err == nil {
				if out, _ := run(t, "", "sgdisk", "-v", img); !regexp.MustCompile(`ERROR|Warning|Caution|corrupt MBR|Creating new GPT`).MatchString(out) {
					t.Errorf("sgdisk -v finds no problem in the damaged image: the damage is not real\n%s", out)
				}
			}
			got, err := Read(bytes.NewReader(b), int64(len(b)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Read = %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if d := diffLayouts(got, l); d != "" {
				t.Errorf("Read differs from the written layout: %s", d)
			}
			if got.FromBackup != tc.fromBackup {
				t.Errorf("FromBackup = %v, want %v", got.FromBackup, tc.fromBackup)
			}
			if len(got.Problems) == 0 || !strings.Contains(got.Problems[0], tc.problem) {
				t.Errorf("Problems = %q, want the first to contain %q", got.Problems, tc.problem)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	mbrWith := func(entries ...mbrEntry) []byte {
		m := mbrSector{Signature: mbrSignature}
		copy(m.Entries[:], entries)
		b := make([]byte, 4*MiB)
		copy(b, m.encode())
		return b
	}
	// An extended partition at LBA 2048 whose one EBR holds a logical
	// partition and no link: fine.
	oneEBR := mbrWith(mbrEntry{Type: 0x05, FirstLBA: 2048, Sectors: 4096})
	ebr := mbrSector{Signature: mbrSignature}
	ebr.Entries[0] = mbrEntry{Type: 0x83, FirstLBA: 1, Sectors: 9}
	copy(oneEBR[2048*512:], ebr.encode())
	// The same linking forward to an EBR at 2058 that links back to 2053.
	backLink := append([]byte(nil), oneEBR...)
	ebr.Entries[1] = mbrEntry{Type: 0x05, FirstLBA: 10, Sectors: 10}
	copy(backLink[2048*512:], ebr.encode())
	ebr.Entries[1].FirstLBA = 5
	copy(backLink[2058*512:], ebr.encode())

	tests := []struct {
		name    string
		img     []byte
		wantErr string
	}{
		{"all zero", make([]byte, 4*MiB), "no MBR signature in sector 0 and no GPT header"},
		{"one sector", make([]byte, 512), "too small"},
		{"protective MBR without GPT", mbrWith(mbrEntry{Type: 0xEE, FirstLBA: 1, Sectors: 8191}), "protective MBR found: read GPT: primary: header at LBA 1: no GPT header signature"},
		{"EBR links backwards", backLink, "extended boot record at LBA 2058 links back to LBA 2053"},
		{"EBR outside the extended partition", mbrWith(mbrEntry{Type: 0x05, FirstLBA: 9000, Sectors: 100}), "outside the extended partition"},
		{"EBR without signature", mbrWith(mbrEntry{Type: 0x0f, FirstLBA: 100, Sectors: 100}), "no 0x55AA signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Read(bytes.NewReader(tc.img), int64(len(tc.img)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Read = %+v, %v; want error containing %q", l, err, tc.wantErr)
			}
		})
	}
	l, err := Read(bytes.NewReader(oneEBR), int64(len(oneEBR)))
	if err != nil {
		t.Fatalf("Read of a one-EBR chain: %v", err)
	}
	if len(l.Partitions) != 2 || l.Partitions[1].Number != 5 || l.Partitions[1].Start != (2048+1)*512 {
		t.Errorf("one-EBR chain: %+v", l.Partitions)
	}
}

// TestReadReportsOverlaps reads tables with overlapping partitions, which
// Write refuses to make, and wants Read to name them in Problems.
func TestReadReportsOverlaps(t *testing.T) {
	gpt := goldenCases[0].plan(t)
	gpt.Partitions[1].Start -= MiB // into the ESP
	gptImg := make([]byte, gpt.Size)
	if err := writeGPT(sliceWriter(gptImg), gpt); err != nil {
		t.Fatal(err)
	}
	mbr := goldenCases[1].plan(t)
	mbr.Partitions = append(mbr.Partitions, Partition{Number: 4, MBRType: 0x83, Start: 2 * MiB, Size: MiB}) // inside partition 1
	mbrImg := make([]byte, mbr.Size)
	if err := writeMBR(sliceWriter(mbrImg), mbr); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"gpt", gptImg, "partition 2 (LBAs 4096-12287) overlaps partition 1 (LBAs 2048-6143)"},
		{"mbr", mbrImg, "partition 4 (LBAs 4096-6143) overlaps partition 1 (LBAs 2048-6143)"},
	} {
		l, err := Read(bytes.NewReader(tc.img), int64(len(tc.img)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(l.Problems) != 1 || l.Problems[0] != tc.want {
			t.Errorf("%s: Problems = %q, want [%q]", tc.name, l.Problems, tc.want)
		}
	}
}
