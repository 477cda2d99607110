package disk

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// gptCase and mbrCase are the layouts the tool-judged tests write.
type planCase struct {
	name  string
	table Table
	disk  int64
	parts []PartitionSpec
	opts  PlanOptions
}

func (c planCase) plan(t testing.TB) *Layout {
	t.Helper()
	l, err := Plan(c.table, c.disk, c.parts, c.opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return l
}

var gptCases = []planCase{
	{name: "esp-bios-root", table: GPT, disk: 64 * MiB, opts: testOpts, parts: []PartitionSpec{
		{Name: "bios", Type: "bios-boot", Size: MiB, GUID: pguid(1)},
		{Name: "EFI system", Type: "esp", Size: 16 * MiB, GUID: pguid(2), Bootable: true, Attributes: AttrRequired | 1<<60},
		{Name: "wurzel-ä-\U0001F600", Type: "root", Rest: true, GUID: pguid(3), Attributes: 1<<59 | 1<<63 | AttrNoBlockIO},
	}},
	{name: "odd-size-arm64", table: GPT, disk: 64*MiB + 7*SectorSize,
		opts:  PlanOptions{DiskGUID: testDiskGUID, Arch: "arm64", Align: 4096},
		parts: []PartitionSpec{{Name: "esp", Type: "esp", Size: 3*MiB + 1, GUID: pguid(1)}, {Name: "usr", Type: "usr", Size: 5 * MiB, GUID: pguid(2)}, {Name: "root", Type: "root", Rest: true, GUID: pguid(3)}}},
	{name: "3TiB-clamped-pmbr", table: GPT, disk: 3 << 40, opts: testOpts, parts: []PartitionSpec{
		{Name: "esp", Type: "esp", Size: 512 * MiB, GUID: pguid(1)},
		{Name: "root", Type: "root", Rest: true, GUID: pguid(2)},
	}},
	{name: "128-partitions", table: GPT, disk: 130 * MiB, opts: testOpts, parts: func() []PartitionSpec {
		ps := make([]PartitionSpec, 128)
		for i := range ps {
			ps[i] = spec(i+1, fmt.Sprintf("part-%03d", i+1), []string{"linux", "swap", "home", "srv", "var"}[i%5], MiB)
		}
		return ps
	}()},
	{name: "empty", table: GPT, disk: 4 * MiB, opts: testOpts},
}

var mbrCases = []planCase{
	{name: "esp-swap-root", table: MBR, disk: 64 * MiB, opts: testOpts, parts: []PartitionSpec{
		{Name: "esp", Type: "esp", Size: 8 * MiB, Bootable: true},
		{Name: "swap", Type: "swap", Size: 16 * MiB},
		{Name: "root", Type: "root", Rest: true},
	}},
	{name: "20GiB-beyond-cylinder-1023", table: MBR, disk: 20 << 30, opts: PlanOptions{DiskSignature: 0xfedcba98}, parts: []PartitionSpec{
		{Name: "boot", Type: "linux", Size: 512 * MiB},
		{Name: "root", Type: "root", Size: 12 << 30, Bootable: true},
		{Name: "x", Type: "0x0c", Size: 1 << 30},
		{Name: "home", Type: "home", Rest: true},
	}},
	{name: "2TiB-rest", table: MBR, disk: 2 << 40, opts: PlanOptions{DiskSignature: 1}, parts: []PartitionSpec{
		{Name: "root", Type: "linux", Rest: true},
	}},
}

// toolWarnings matches what fdisk and sfdisk print about damaged tables.
var toolWarnings = regexp.MustCompile(`(?i)warning|mismatch|corrupt|invalid|error:|differ`)

// TestGPTJudgedByTools writes GPT layouts and has sgdisk, sfdisk and fdisk
// check them and read them back.
func TestGPTJudgedByTools(t *testing.T) {
	judge.Need(t, "sgdisk")
	judge.Need(t, "sfdisk")
	judge.Need(t, "fdisk")
	for _, c := range gptCases {
		t.Run(c.name, func(t *testing.T) {
			l := c.plan(t)
			img := writeImage(t, l)

			out := mustRun(t, "", "sgdisk", "-v", img)
			if !strings.Contains(out, "No problems found") || strings.Contains(out, "Caution") || strings.Contains(out, "Warning") {
				t.Errorf("sgdisk -v:\n%s", out)
			}

			out = mustRun(t, "", "sfdisk", "--verify", img)
			if !strings.Contains(out, "No errors detected") || toolWarnings.MatchString(strings.ReplaceAll(out, "No errors detected", "")) {
				t.Errorf("sfdisk --verify:\n%s", out)
			}

			out = mustRun(t, "", "fdisk", "-l", img)
			if !strings.Contains(out, "Disklabel type: gpt") || !strings.Contains(out, "Disk identifier: "+strings.ToUpper(l.DiskGUID.String())) || toolWarnings.MatchString(out) {
				t.Errorf("fdisk -l:\n%s", out)
			}

			d := sfdiskJSON(t, img).PartitionTable
			sectors := l.Size / SectorSize
			if d.Label != "gpt" || d.ID != strings.ToUpper(l.DiskGUID.String()) || d.FirstLBA != 34 || d.LastLBA != sectors-34 || d.SectorSize != 512 {
				t.Errorf("sfdisk --json table: label %q id %q first %d last %d sector %d; want gpt %s 34 %d 512",
					d.Label, d.ID, d.FirstLBA, d.LastLBA, d.SectorSize, strings.ToUpper(l.DiskGUID.String()), sectors-34)
			}
			if len(d.Partitions) != len(l.Partitions) {
				t.Fatalf("sfdisk --json: %d partitions, want %d", len(d.Partitions), len(l.Partitions))
			}
			for i, p := range l.Partitions {
				s := d.Partitions[i]
				wantNode := fmt.Sprintf("%s%d", img, p.Number)
				if s.Node != wantNode || s.Start != p.FirstLBA() || s.Size != p.Size/SectorSize ||
					s.Type != strings.ToUpper(p.TypeGUID.String()) || s.UUID != strings.ToUpper(p.GUID.String()) ||
					s.Name != p.Name || s.Attrs != sfdiskAttrs(p.Attributes) {
					t.Errorf("sfdisk --json partition %d:\n got  %s %d+%d %s %s %q %q\n want %s %d+%d %s %s %q %q", i+1,
						s.Node, s.Start, s.Size, s.Type, s.UUID, s.Name, s.Attrs,
						wantNode, p.FirstLBA(), p.Size/SectorSize, strings.ToUpper(p.TypeGUID.String()), strings.ToUpper(p.GUID.String()), p.Name, sfdiskAttrs(p.Attributes))
				}
			}

			got := readImage(t, img)
			if diff := diffLayouts(got, l); diff != "" {
				t.Errorf("Read differs from the plan: %s", diff)
			}
			if got.FromBackup || len(got.Problems) > 0 {
				t.Errorf("Read: from backup %v, problems %q", got.FromBackup, got.Problems)
			}
		})
	}
}

// TestMBRJudgedByTools writes MBR layouts and has sfdisk and fdisk check
// them and read them back.
func TestMBRJudgedByTools(t *testing.T) {
	judge.Need(t, "sfdisk")
	judge.Need(t, "fdisk")
	for _, c := range mbrCases {
		t.Run(c.name, func(t *testing.T) {
			l := c.plan(t)
			img := writeImage(t, l)

			out := mustRun(t, "", "sfdisk", "--verify", img)
			if !strings.Contains(out, "No errors detected") || toolWarnings.MatchString(strings.ReplaceAll(out, "No errors detected", "")) {
				t.Errorf("sfdisk --verify:\n%s", out)
			}
			sig := fmt.Sprintf("0x%08x", l.DiskSignature)
			out = mustRun(t, "", "fdisk", "-l", img)
			if !strings.Contains(out, "Disklabel type: dos") || !strings.Contains(out, "Disk identifier: "+sig) || toolWarnings.MatchString(out) {
				t.Errorf("fdisk -l:\n%s", out)
			}

			d := sfdiskJSON(t, img).PartitionTable
			if d.Label != "dos" || d.ID != sig {
				t.Errorf("sfdisk --json: label %q id %q, want dos %s", d.Label, d.ID, sig)
			}
			if len(d.Partitions) != len(l.Partitions) {
				t.Fatalf("sfdisk --json: %d partitions, want %d", len(d.Partitions), len(l.Partitions))
			}
			for i, p := range l.Partitions {
				s := d.Partitions[i]
				if s.Start != p.FirstLBA() || s.Size != p.Size/SectorSize || s.Type != fmt.Sprintf("%x", p.MBRType) || s.Bootable != p.Bootable {
					t.Errorf("sfdisk --json partition %d: %d+%d type %s bootable %v; want %d+%d %x %v", i+1,
						s.Start, s.Size, s.Type, s.Bootable, p.FirstLBA(), p.Size/SectorSize, p.MBRType, p.Bootable)
				}
			}

			got := readImage(t, img)
			if diff := diffLayouts(got, withoutNames(l)); diff != "" {
				t.Errorf("Read differs from the plan: %s", diff)
			}
			if len(got.Problems) > 0 {
				t.Errorf("Read: problems %q", got.Problems)
			}
		})
	}
}

// withoutNames returns a copy of an MBR layout as Read sees it: an MBR has
// no partition names.
func withoutNames(l *Layout) *Layout {
	c := *l
	c.Partitions = append([]Partition(nil), l.Partitions...)
	for i := range c.Partitions {
		c.Partitions[i].Name = ""
	}
	return &c
}

// TestMBRMatchesSfdisk has sfdisk partition an empty image the same way
// and compares sector 0 byte for byte: signature, entries, CHS fields.
func TestMBRMatchesSfdisk(t *testing.T) {
	judge.Need(t, "sfdisk")
	for _, c := range mbrCases {
		t.Run(c.name, func(t *testing.T) {
			l := c.plan(t)
			ours := readSectors(t, writeImage(t, l), 0, 1)

			var script strings.Builder
			fmt.Fprintf(&script, "label: dos\nlabel-id: 0x%08x\n", l.DiskSignature)
			for _, p := range l.Partitions {
				fmt.Fprintf(&script, "start=%d, size=%d, type=%x", p.FirstLBA(), p.Size/SectorSize, p.MBRType)
				if p.Bootable {
					script.WriteString(", bootable")
				}
				script.WriteString("\n")
			}
			img := emptyImage(t, l.Size)
			mustRun(t, script.String(), "sfdisk", "--no-reread", "--no-tell-kernel", img)
			theirs := readSectors(t, img, 0, 1)
			if !bytes.Equal(ours, theirs) {
				t.Errorf("sector 0 differs from sfdisk's:\nours:\n%s\nsfdisk:\n%s", hexRows(ours[0x1b0:]), hexRows(theirs[0x1b0:]))
			}
		})
	}
}

// TestGPTMatchesSgdisk has sgdisk build the same GPT on an empty image and
// compares the protective MBR, both headers and both entry arrays byte for
// byte.
func TestGPTMatchesSgdisk(t *testing.T) {
	judge.Need(t, "sgdisk")
	for _, c := range gptCases {
		if len(c.parts) > 8 {
			continue // the arguments get long; the 128-entry case is judged by TestGPTJudgedByTools
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // sgdisk sleeps a second after writing
			l := c.plan(t)
			ours := writeImage(t, l)

			// -a1: take our starts as they are (sgdisk rounds them up to its
			// own 2048-sector alignment otherwise).
			args := []string{"-a1", "-U", l.DiskGUID.String()}
			for _, p := range l.Partitions {
				n := p.Number
				args = append(args,
					fmt.Sprintf("-n%d:%d:%d", n, p.FirstLBA(), p.LastLBA()),
					fmt.Sprintf("-t%d:%s", n, p.TypeGUID),
					fmt.Sprintf("-u%d:%s", n, p.GUID),
					fmt.Sprintf("-c%d:%s", n, p.Name))
				for bit := 0; bit < 64; bit++ {
					if p.Attributes&(1<<bit) != 0 {
						args = append(args, fmt.Sprintf("-A%d:set:%d", n, bit))
					}
				}
			}
			theirs := emptyImage(t, l.Size)
			mustRun(t, "", "sgdisk", append(args, theirs)...)

			sectors := l.Size / SectorSize
			for _, r := range []struct {
				what     string
				from, to int64
			}{
				{"protective MBR", 0, 1},
				{"primary header", 1, 2},
				{"primary entries", 2, 34},
				{"backup entries", sectors - 33, sectors - 1},
				{"backup header", sectors - 1, sectors},
			} {
				a, b := readSectors(t, ours, r.from, r.to), readSectors(t, theirs, r.from, r.to)
				if !bytes.Equal(a, b) {
					t.Errorf("%s (LBA %d-%d) differs from sgdisk's:\nours:\n%s\nsgdisk:\n%s", r.what, r.from, r.to-1, hexRows(firstDiff(a, b)), hexRows(firstDiff(b, a)))
				}
			}
		})
	}
}

// firstDiff returns the 64 bytes of a around its first difference from b.
func firstDiff(a, b []byte) []byte {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	i = i &^ 15
	end := i + 64
	if end > len(a) {
		end = len(a)
	}
	return a[i:end]
}

func hexRows(b []byte) string {
	var s strings.Builder
	for i := 0; i < len(b); i += 16 {
		end := i + 16
		if end > len(b) {
			end = len(b)
		}
		fmt.Fprintf(&s, "  % x\n", b[i:end])
	}
	return s.String()
}
