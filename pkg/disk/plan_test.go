package disk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/repro"
)

var (
	testDiskGUID = mustUUID("5a1e0b6c-3d2f-4e81-9c07-d1e2f3a4b5c6")
	testOpts     = PlanOptions{DiskGUID: testDiskGUID, DiskSignature: 0x1234abcd}
)

// pguid returns a distinct, asymmetric partition GUID for test partition n.
func pguid(n int) repro.UUID {
	return repro.Derive("disk-test", fmt.Sprintf("partition/%d", n))
}

// spec is a shorthand for a PartitionSpec with a derived GUID.
func spec(n int, name, typ string, size int64) PartitionSpec {
	return PartitionSpec{Name: name, Type: typ, Size: size, GUID: pguid(n)}
}

func rest(n int, name, typ string) PartitionSpec {
	return PartitionSpec{Name: name, Type: typ, Rest: true, GUID: pguid(n)}
}

type span struct{ start, size int64 } // bytes

func TestPlan(t *testing.T) {
	const K, M, G = 1 << 10, MiB, 1 << 30
	many := func(n int) []PartitionSpec {
		ps := make([]PartitionSpec, n)
		for i := range ps {
			ps[i] = spec(i+1, fmt.Sprintf("p%d", i+1), "linux", M)
		}
		return ps
	}
	emoji := func(n int) string { return strings.Repeat("\U0001F600", n) } // 2 UTF-16 units each
	withGUID := func(s PartitionSpec, g repro.UUID) PartitionSpec { s.GUID = g; return s }
	withAttrs := func(s PartitionSpec, a uint64) PartitionSpec { s.Attributes = a; return s }
	boot := func(s PartitionSpec) PartitionSpec { s.Bootable = true; return s }

	tests := []struct {
		name    string
		table   Table
		disk    int64
		parts   []PartitionSpec
		opts    *PlanOptions
		want    []span
		wantErr string
	}{
		{name: "gpt single rest ends aligned before backup", table: GPT, disk: 64 * M,
			parts: []PartitionSpec{rest(1, "root", "root")},
			want:  []span{{1 * M, 62 * M}}},
		{name: "gpt esp and rest like sfdisk", table: GPT, disk: 64 * M,
			parts: []PartitionSpec{spec(1, "esp", "esp", 8*M), rest(2, "root", "root")},
			want:  []span{{1 * M, 8 * M}, {9 * M, 54 * M}}},
		{name: "mbr rest reaches the end", table: MBR, disk: 64 * M,
			parts: []PartitionSpec{spec(1, "boot", "esp", 8*M), rest(2, "root", "root")},
			want:  []span{{1 * M, 8 * M}, {9 * M, 55 * M}}},
		{name: "sizes round up to the alignment", table: GPT, disk: 64 * M,
			parts: []PartitionSpec{spec(1, "a", "linux", 1), spec(2, "b", "linux", M+1), spec(3, "c", "linux", 3*M)},
			want:  []span{{1 * M, 1 * M}, {2 * M, 2 * M}, {4 * M, 3 * M}}},
		{name: "rest in the middle", table: GPT, disk: 64 * M,
			parts: []PartitionSpec{spec(1, "a", "linux", 4*M), rest(2, "b", "linux"), spec(3, "c", "swap", 4*M)},
			want:  []span{{1 * M, 4 * M}, {5 * M, 54 * M}, {59 * M, 4 * M}}},
		{name: "4 MiB alignment moves the first partition", table: GPT, disk: 64 * M,
			opts:  &PlanOptions{DiskGUID: testDiskGUID, Align: 4 * M},
			parts: []PartitionSpec{spec(1, "a", "esp", 5*M), rest(2, "b", "linux")},
			want:  []span{{4 * M, 8 * M}, {12 * M, 48 * M}}},
		{name: "4 KiB alignment keeps the first at 1 MiB", table: GPT, disk: 64 * M,
			opts:  &PlanOptions{DiskGUID: testDiskGUID, Align: 4 * K},
			parts: []PartitionSpec{spec(1, "a", "esp", 5*K), rest(2, "b", "linux")},
			// the disk's usable end is 64 MiB - 33 sectors, rounded down to 4 KiB
			want: []span{{1 * M, 8 * K}, {M + 8*K, (64*M-33*512)/(4*K)*(4*K) - M - 8*K}}},
		{name: "gpt partition up to the backup fits", table: GPT, disk: 64 * M,
			parts: []PartitionSpec{spec(1, "a", "linux", 62*M)},
			want:  []span{{1 * M, 62 * M}}},
		{name: "gpt disk size not a multiple of 1 MiB", table: GPT, disk: 64*M + 7*512,
			parts: []PartitionSpec{rest(1, "a", "linux")},
			want:  []span{{1 * M, 62 * M}}},
		{name: "mbr partition up to the last sector fits", table: MBR, disk: 64 * M,
			parts: []PartitionSpec{spec(1, "a", "linux", 63*M)},
			want:  []span{{1 * M, 63 * M}}},
		{name: "gpt 128 partitions", table: GPT, disk: 130 * M, parts: many(128),
			want: func() []span {
				s := make([]span, 128)
				for i := range s {
					s[i] = span{int64(i+1) * M, M}
				}
				return s
			}()},
		{name: "gpt name of 36 UTF-16 units", table: GPT, disk: 64 * M,
			parts: []PartitionSpec{spec(1, emoji(18), "linux", M)},
			want:  []span{{M, M}}},
		{name: "mbr 2 TiB disk rest fits the 32-bit fields", table: MBR, disk: 2048 * G,
			parts: []PartitionSpec{rest(1, "a", "linux")},
			want:  []span{{M, 2048*G - M}}},

		{name: "gpt too small names the numbers", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", 63*M)},
			wantErr: "plan: disk of 67108864 bytes (64 MiB) is too small: the partitions end at 67108864 bytes (64 MiB) plus 16896 bytes for the backup GPT; a disk of at least 68157440 bytes (65 MiB) would do"},
		{name: "mbr too small", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", 63*M+1)},
			wantErr: "disk of 67108864 bytes (64 MiB) is too small: the partitions end at 68157440 bytes (65 MiB); a disk of at least 68157440 bytes (65 MiB) would do"},
		{name: "no room for rest", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", 62*M), rest(2, "b", "linux")},
			wantErr: `the partitions need 66060288 bytes (63 MiB) before rest partition "b" gets even 1048576 bytes (1 MiB); a disk of at least 68157440 bytes (65 MiB) would do`},
		{name: "duplicate names", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", M), spec(2, "a", "linux", M)},
			wantErr: `partition 2 ("a"): name already used by partition 1`},
		{name: "empty name", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "", "linux", M)},
			wantErr: "partition 1: empty name"},
		{name: "gpt name of 37 UTF-16 units", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, strings.Repeat("n", 37), "linux", M)},
			wantErr: "is 37 UTF-16 code units long, at most 36 fit"},
		{name: "gpt name of 19 emoji", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, emoji(19), "linux", M)},
			wantErr: "is 38 UTF-16 code units long"},
		{name: "gpt name with NUL", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a\x00b", "linux", M)},
			wantErr: "contains NUL"},
		{name: "two rests", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{rest(1, "a", "linux"), rest(2, "b", "linux")},
			wantErr: `partition 2 ("b"): rest, but partition 1 ("a") already takes the rest`},
		{name: "size and rest", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{func() PartitionSpec { s := rest(1, "a", "linux"); s.Size = M; return s }()},
			wantErr: "both a size (1048576) and rest"},
		{name: "size zero without rest", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", 0)},
			wantErr: "size 0: want a positive size or rest"},
		{name: "negative size", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", -512)},
			wantErr: "size -512"},
		{name: "mbr five partitions", table: MBR, disk: 64 * M, parts: many(5),
			wantErr: "an MBR holds at most 4 primary partitions"},
		{name: "gpt 129 partitions", table: GPT, disk: 200 * M, parts: many(129),
			wantErr: "GPT holds at most 128"},
		{name: "bios-boot on mbr", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "bb", "bios-boot", M)},
			wantErr: `type "bios-boot" has no MBR type byte`},
		{name: "mbr-only type on gpt", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "0x0c", M)},
			wantErr: `type "0x0c" has no GPT type GUID`},
		{name: "extended type on mbr", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "0x05", M)},
			wantErr: "is not for a primary partition"},
		{name: "unknown type", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "rooot", M)},
			wantErr: `unknown partition type "rooot"`},
		{name: "unknown arch", table: GPT, disk: 64 * M, opts: &PlanOptions{DiskGUID: testDiskGUID, Arch: "vax"},
			parts:   []PartitionSpec{spec(1, "a", "root", M)},
			wantErr: `unknown architecture "vax"`},
		{name: "mbr attributes", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{withAttrs(spec(1, "a", "linux", M), AttrRequired)},
			wantErr: "an MBR has no attribute bits"},
		{name: "gpt reserved attribute bits", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{withAttrs(spec(1, "a", "linux", M), 1<<3)},
			wantErr: "reserved bits 3-47"},
		{name: "mbr two bootable", table: MBR, disk: 64 * M,
			parts:   []PartitionSpec{boot(spec(1, "a", "linux", M)), boot(spec(2, "b", "linux", M))},
			wantErr: "an MBR has at most one active partition"},
		{name: "gpt zero disk GUID", table: GPT, disk: 64 * M, opts: &PlanOptions{},
			parts:   []PartitionSpec{spec(1, "a", "linux", M)},
			wantErr: "GPT needs a disk GUID"},
		{name: "gpt zero partition GUID", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{withGUID(spec(1, "a", "linux", M), repro.UUID{})},
			wantErr: "GPT needs a partition GUID"},
		{name: "gpt duplicate partition GUID", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{spec(1, "a", "linux", M), withGUID(spec(2, "b", "linux", M), pguid(1))},
			wantErr: "already used by partition 1"},
		{name: "gpt partition GUID equals disk GUID", table: GPT, disk: 64 * M,
			parts:   []PartitionSpec{withGUID(spec(1, "a", "linux", M), testDiskGUID)},
			wantErr: "is the disk GUID"},
		{name: "disk size not whole sectors", table: GPT, disk: 64*M + 1,
			parts:   []PartitionSpec{spec(1, "a", "linux", M)},
			wantErr: "disk size 67108865: want a positive multiple of 512"},
		{name: "alignment not whole sectors", table: GPT, disk: 64 * M, opts: &PlanOptions{DiskGUID: testDiskGUID, Align: 1000},
			parts:   []PartitionSpec{spec(1, "a", "linux", M)},
			wantErr: "alignment 1000"},
		{name: "unknown table", table: Table(0), disk: 64 * M,
			wantErr: "plan: unknown table"},
		{name: "mbr rest beyond 2 TiB", table: MBR, disk: 3 * 1024 * G,
			parts:   []PartitionSpec{rest(1, "a", "linux")},
			wantErr: "MBR entries hold at most 4294967295 sectors (2 TiB) each; use GPT"},
		{name: "mbr start beyond 2 TiB", table: MBR, disk: 5 * 1024 * G,
			parts:   []PartitionSpec{spec(1, "a", "linux", 2048*G-M), spec(2, "b", "linux", 1024*G)},
			wantErr: `partition 2 ("b"): start 2199023255552 bytes (2048 GiB)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOpts
			if tc.opts != nil {
				o = *tc.opts
			}
			l, err := Plan(tc.table, tc.disk, tc.parts, o)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Plan succeeded, want error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Plan error %q, want it to contain %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "BUG") {
					t.Fatalf("Plan error %q is a BUG error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if len(l.Partitions) != len(tc.want) {
				t.Fatalf("got %d partitions, want %d", len(l.Partitions), len(tc.want))
			}
			for i, p := range l.Partitions {
				if got := (span{p.Start, p.Size}); got != tc.want[i] {
					t.Errorf("partition %d (%s): start/size %v, want %v", i+1, p.Name, got, tc.want[i])
				}
				if p.Number != i+1 || p.Name != tc.parts[i].Name {
					t.Errorf("partition %d: number %d name %q, want %d %q", i+1, p.Number, p.Name, i+1, tc.parts[i].Name)
				}
			}
			if err := l.Validate(); err != nil {
				t.Errorf("planned layout does not validate: %v", err)
			}
		})
	}
}

// TestPlanFields checks what Plan copies and resolves besides positions.
func TestPlanFields(t *testing.T) {
	parts := []PartitionSpec{
		{Name: "esp", Type: "esp", Size: 8 * MiB, GUID: pguid(1), Bootable: true},
		{Name: "root", Type: "root", Rest: true, GUID: pguid(2), Attributes: 1 << 59},
	}
	t.Run("gpt", func(t *testing.T) {
		l, err := Plan(GPT, 64*MiB, parts, PlanOptions{DiskGUID: testDiskGUID, DiskSignature: 7, Arch: "aarch64"})
		if err != nil {
			t.Fatal(err)
		}
		want := &Layout{Table: GPT, DiskGUID: testDiskGUID, Size: 64 * MiB, FirstUsableLBA: 34, LastUsableLBA: 64*2048 - 34,
			Partitions: []Partition{
				{Number: 1, Name: "esp", TypeGUID: mustUUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), GUID: pguid(1),
					Attributes: AttrLegacyBIOSBootable, Bootable: true, Start: MiB, Size: 8 * MiB},
				{Number: 2, Name: "root", TypeGUID: mustUUID("b921b045-1df0-41c3-af44-4c6f280d3fae"), GUID: pguid(2),
					Attributes: 1 << 59, Start: 9 * MiB, Size: 54 * MiB},
			}}
		if d := diffLayouts(l, want); d != "" {
			t.Error(d)
		}
	})
	t.Run("mbr", func(t *testing.T) {
		p := append([]PartitionSpec(nil), parts...)
		p[1].Attributes = 0
		l, err := Plan(MBR, 64*MiB, p, PlanOptions{DiskGUID: testDiskGUID, DiskSignature: 0xdeadbeef})
		if err != nil {
			t.Fatal(err)
		}
		want := &Layout{Table: MBR, DiskSignature: 0xdeadbeef, Size: 64 * MiB, FirstUsableLBA: 1, LastUsableLBA: 64*2048 - 1,
			Partitions: []Partition{
				{Number: 1, Name: "esp", MBRType: 0xEF, Bootable: true, Start: MiB, Size: 8 * MiB},
				{Number: 2, Name: "root", MBRType: 0x83, Start: 9 * MiB, Size: 55 * MiB},
			}}
		if d := diffLayouts(l, want); d != "" {
			t.Error(d)
		}
		if got, want := l.PartUUID(l.Partitions[1]), "deadbeef-02"; got != want {
			t.Errorf("PartUUID = %q, want %q", got, want)
		}
	})
}

// TestPlanNeverOverlaps plans many layouts (a deterministic sweep of sizes,
// alignments and rest positions) and checks the result independently of
// Validate: in order, aligned, without overlap, inside the usable area.
func TestPlanNeverOverlaps(t *testing.T) {
	sizes := []int64{1, 511, 512, 4096, MiB - 1, MiB, MiB + 1, 3*MiB + 17, 8 * MiB}
	aligns := []int64{512, 4096, MiB, 4 * MiB}
	n := 0
	for _, table := range []Table{GPT, MBR} {
		for _, align := range aligns {
			for i := range sizes {
				for restAt := -1; restAt < 4; restAt++ {
					var ps []PartitionSpec
					for j := 0; j < 4; j++ {
						s := spec(j+1, fmt.Sprint("p", j), "linux", sizes[(i+j*3)%len(sizes)])
						if j == restAt {
							s.Size, s.Rest = 0, true
						}
						ps = append(ps, s)
					}
					o := PlanOptions{DiskGUID: testDiskGUID, Align: align}
					disk := int64(100*MiB + 512*(i%5))
					l, err := Plan(table, disk, ps, o)
					if err != nil {
						t.Fatalf("%v align %d sizes %d rest %d: %v", table, align, i, restAt, err)
					}
					n++
					first, last := l.usable()
					prevEnd := int64(0)
					for k, p := range l.Partitions {
						if p.Start%align != 0 || p.Size%align != 0 {
							t.Errorf("%v align %d: partition %d at %d size %d not aligned", table, align, k+1, p.Start, p.Size)
						}
						if ps[k].Size > 0 && (p.Size < ps[k].Size || p.Size-ps[k].Size >= align) {
							t.Errorf("%v: partition %d size %d for requested %d", table, k+1, p.Size, ps[k].Size)
						}
						if p.Start < prevEnd || p.FirstLBA() < first || p.LastLBA() > last {
							t.Errorf("%v: partition %d at LBAs %d-%d overlaps or leaves %d-%d", table, k+1, p.FirstLBA(), p.LastLBA(), first, last)
						}
						prevEnd = p.End()
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no layouts planned")
	}
}

// TestValidateRejects feeds Validate (and so Write, and Plan's BUG check)
// layouts that are wrong in one way each.
func TestValidateRejects(t *testing.T) {
	good := func() *Layout {
		l, err := Plan(GPT, 64*MiB, []PartitionSpec{spec(1, "a", "linux", 4*MiB), spec(2, "b", "linux", 4*MiB)}, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	goodMBR := func() *Layout {
		l, err := Plan(MBR, 64*MiB, []PartitionSpec{spec(1, "a", "linux", 4*MiB), spec(2, "b", "linux", 4*MiB)}, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name    string
		layout  func() *Layout
		wantErr string
	}{
		{"overlap", func() *Layout { l := good(); l.Partitions[1].Start -= 512; return l }, "overlap partition 1"},
		{"past the usable end", func() *Layout { l := good(); l.Partitions[1].Start = 63 * MiB; return l }, "outside the usable"},
		{"before the first usable", func() *Layout { l := good(); l.Partitions[0].Start = 33 * 512; return l }, "outside the usable"},
		{"half sector", func() *Layout { l := good(); l.Partitions[0].Size -= 100; return l }, "want whole sectors"},
		{"zero size", func() *Layout { l := good(); l.Partitions[0].Size = 0; return l }, "positive size"},
		{"same number", func() *Layout { l := good(); l.Partitions[1].Number = 1; return l }, "number used twice"},
		{"number 129", func() *Layout { l := good(); l.Partitions[1].Number = 129; return l }, "number out of range 1-128"},
		{"zero type", func() *Layout { l := good(); l.Partitions[0].TypeGUID = repro.UUID{}; return l }, "zero type GUID"},
		{"same GUID", func() *Layout { l := good(); l.Partitions[1].GUID = l.Partitions[0].GUID; return l }, "also used by partition 1"},
		{"bootable without attribute", func() *Layout { l := good(); l.Partitions[0].Bootable = true; return l }, "legacy BIOS bootable attribute"},
		{"usable overlaps backup", func() *Layout { l := good(); l.LastUsableLBA = l.Size/512 - 2; return l }, "GPT usable LBAs"},
		{"zero disk GUID", func() *Layout { l := good(); l.DiskGUID = repro.UUID{}; return l }, "disk GUID is zero"},
		{"mbr logical", func() *Layout { l := goodMBR(); l.Partitions[1].Number = 5; return l }, "logical MBR partitions"},
		{"mbr empty type", func() *Layout { l := goodMBR(); l.Partitions[1].MBRType = 0; return l }, "marks an unused entry"},
		{"mbr two active", func() *Layout {
			l := goodMBR()
			l.Partitions[0].Bootable, l.Partitions[1].Bootable = true, true
			return l
		}, "2 active partitions"},
		{"mbr past the end", func() *Layout { l := goodMBR(); l.Partitions[1].Start = 61 * MiB; return l }, "outside the usable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.layout()
			err := l.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
			if werr := Write(discard{}, l); werr == nil {
				t.Fatalf("Write accepted the layout Validate rejects")
			}
		})
	}
	if err := good().Validate(); err != nil {
		t.Errorf("the unmodified layout does not validate: %v", err)
	}
}

// discard is an io.WriterAt that drops everything.
type discard struct{}

func (discard) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

func TestMinDiskSize(t *testing.T) {
	tests := []struct {
		table Table
		sizes []int64
		align int64
		want  int64
	}{
		{GPT, nil, 0, 2 * MiB},
		{MBR, nil, 0, 1 * MiB},
		{GPT, []int64{8 * MiB, 0}, 0, 11 * MiB},
		{MBR, []int64{8 * MiB, 0}, 0, 10 * MiB},
		{GPT, []int64{1, MiB + 1}, 0, 5 * MiB},
		{MBR, []int64{4096}, 4096, MiB + MiB},
		{GPT, []int64{4096}, 4096, 2 * MiB},
		{GPT, []int64{5 * MiB, 0}, 4 * MiB, 17 * MiB},
		{MBR, []int64{5 * MiB, 0}, 4 * MiB, 16 * MiB},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%v/%v/align%d", tc.table, tc.sizes, tc.align)
		t.Run(name, func(t *testing.T) {
			o := PlanOptions{DiskGUID: testDiskGUID, Align: tc.align}
			got, err := MinDiskSize(tc.table, tc.sizes, o)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("MinDiskSize = %d (%d MiB), want %d (%d MiB)", got, got/MiB, tc.want, tc.want/MiB)
			}
			// Plan must succeed on exactly that size and fail one MiB less.
			var ps []PartitionSpec
			for i, s := range tc.sizes {
				p := spec(i+1, fmt.Sprint("p", i), "linux", s)
				if s == 0 {
					p.Rest = true
				}
				ps = append(ps, p)
			}
			if _, err := Plan(tc.table, got, ps, o); err != nil {
				t.Errorf("Plan on the minimal size %d: %v", got, err)
			}
			if len(ps) > 0 {
				if _, err := Plan(tc.table, got-MiB, ps, o); err == nil {
					t.Errorf("Plan on %d, 1 MiB less than the minimum, succeeded", got-MiB)
				}
			}
		})
	}
	if _, err := MinDiskSize(GPT, []int64{-1}, PlanOptions{}); err == nil {
		t.Error("MinDiskSize accepted a negative size")
	}
	if _, err := MinDiskSize(GPT, nil, PlanOptions{Align: 100}); err == nil {
		t.Error("MinDiskSize accepted an alignment of 100 bytes")
	}
}
