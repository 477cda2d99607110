package disk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestCHS(t *testing.T) {
	tests := []struct {
		lba  int64
		want [3]byte // head, sector|cyl-high, cyl-low
	}{
		{0, [3]byte{0, 1, 0}},
		{1, [3]byte{0, 2, 0}},
		{62, [3]byte{0, 63, 0}},
		{63, [3]byte{1, 1, 0}},
		{2048, [3]byte{32, 33, 0}},         // sfdisk's bytes for a 1 MiB start: 20 21 00
		{18431, [3]byte{37, 36, 1}},        // 25 24 01
		{255 * 63, [3]byte{0, 1, 1}},       // cylinder 1
		{256 * 16065, [3]byte{0, 0x41, 0}}, // cylinder 256: bit 8 goes to bit 6 of the sector byte
		{1024*16065 - 1, [3]byte{0xFE, 0xFF, 0xFF}},
		{1024 * 16065, [3]byte{0xFE, 0xFF, 0xFF}}, // beyond: clamped
		{1 << 40, [3]byte{0xFE, 0xFF, 0xFF}},
	}
	for _, tc := range tests {
		if got := chs(tc.lba); got != tc.want {
			t.Errorf("chs(%d) = % x, want % x", tc.lba, got, tc.want)
		}
	}
}

func TestGUIDMixedEndian(t *testing.T) {
	u := mustUUID("00112233-4455-6677-8899-aabbccddeeff")
	want := [16]byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if got := guidToDisk(u); got != want {
		t.Errorf("guidToDisk = % x, want % x", got, want)
	}
	if back := guidFromDisk(want); back != u {
		t.Errorf("guidFromDisk = %s, want %s", back, u)
	}
}

func TestProtectiveMBR(t *testing.T) {
	tests := []struct {
		sectors int64
		size    uint32
		last    [3]byte
	}{
		{131072, 131071, chs(131071)},
		{1024 * 16065, 1024*16065 - 1, [3]byte{0xFE, 0xFF, 0xFF}}, // last sector still in cylinder 1023
		{1024*16065 + 1, 1024 * 16065, [3]byte{0xFF, 0xFF, 0xFF}}, // beyond: not representable
		{1 << 32, 0xFFFFFFFF, [3]byte{0xFF, 0xFF, 0xFF}},          // 2 TiB: size exactly fits
		{3 << 31, 0xFFFFFFFF, [3]byte{0xFF, 0xFF, 0xFF}},          // 3 TiB: clamped
	}
	for _, tc := range tests {
		m := protectiveMBR(tc.sectors, 0)
		e := m.Entries[0]
		if e.Type != 0xEE || e.Status != 0 || e.FirstLBA != 1 || e.FirstCHS != [3]byte{0, 2, 0} || e.Sectors != tc.size || e.LastCHS != tc.last {
			t.Errorf("%d sectors: entry %+v, want size %d last CHS % x", tc.sectors, e, tc.size, tc.last)
		}
		b := m.encode()
		if b[510] != 0x55 || b[511] != 0xAA || !bytes.Equal(b[:446], make([]byte, 446)) || !bytes.Equal(b[462:510], make([]byte, 48)) {
			t.Errorf("%d sectors: protective MBR bytes wrong:\n%s", tc.sectors, hexRows(b[0x1b0:]))
		}
	}
}

// TestWriteDeterministic writes each test layout twice, through separately
// planned layouts, and wants identical bytes and identical plans.
func TestWriteDeterministic(t *testing.T) {
	for _, c := range append(append([]planCase(nil), gptCases[:2]...), mbrCases[0]) {
		t.Run(c.name, func(t *testing.T) {
			l1, l2 := c.plan(t), c.plan(t)
			if !reflect.DeepEqual(l1, l2) {
				t.Fatalf("two plans differ:\n%+v\n%+v", l1, l2)
			}
			a, b := &memImage{}, &memImage{}
			if err := Write(a, l1); err != nil {
				t.Fatal(err)
			}
			if err := Write(b, l2); err != nil {
				t.Fatal(err)
			}
			if len(a.chunks) == 0 || !reflect.DeepEqual(a.chunks, b.chunks) {
				t.Fatalf("two writes differ (or wrote nothing)")
			}
		})
	}
}

// memImage records writes by offset.
type memImage struct{ chunks map[int64][]byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if m.chunks == nil {
		m.chunks = map[int64][]byte{}
	}
	m.chunks[off] = append([]byte(nil), p...)
	return len(p), nil
}

// TestWriteTouchesOnlyTableSectors checks that Write writes the table's
// sectors and nothing else (partition contents belong to other packages).
func TestWriteTouchesOnlyTableSectors(t *testing.T) {
	for _, c := range []planCase{gptCases[0], mbrCases[0]} {
		l := c.plan(t)
		m := &memImage{}
		if err := Write(m, l); err != nil {
			t.Fatal(err)
		}
		var offs []int64
		for off := range m.chunks {
			offs = append(offs, off)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		var got []string
		for _, off := range offs {
			got = append(got, fmt.Sprintf("%d+%d", off/SectorSize, len(m.chunks[off])/SectorSize))
		}
		n := l.Size / SectorSize
		want := []string{"0+1"}
		if l.Table == GPT {
			want = []string{"0+1", "1+1", "2+32", fmt.Sprintf("%d+32", n-33), fmt.Sprintf("%d+1", n-1)}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: wrote sectors %v, want %v", c.name, got, want)
		}
	}
}

func TestWriteBootCode(t *testing.T) {
	for _, c := range []planCase{gptCases[0], mbrCases[0]} {
		t.Run(c.name, func(t *testing.T) {
			l := c.plan(t)
			img := writeImage(t, l)
			before := readSectors(t, img, 0, 1)
			code := bytes.Repeat([]byte{0xEB, 0xFE, 0x90}, 440/3) // 438 bytes
			code = append(code, 0xCC, 0xCD)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteBootCode(f, code); err != nil {
				t.Fatal(err)
			}
			if err := WriteBootCode(f, make([]byte, 441)); err == nil || !strings.Contains(err.Error(), "441 bytes, the MBR has room for 440") {
				t.Errorf("WriteBootCode of 441 bytes: %v", err)
			}
			f.Close()
			after := readSectors(t, img, 0, 1)
			if !bytes.Equal(after[:440], code) {
				t.Errorf("boot code area not written")
			}
			if !bytes.Equal(after[440:], before[440:]) {
				t.Errorf("WriteBootCode changed bytes 440-511:\n%s\nwas:\n%s", hexRows(after[440:]), hexRows(before[440:]))
			}
			if d := diffLayouts(readImage(t, img), withoutNamesIfMBR(l)); d != "" {
				t.Errorf("Read after WriteBootCode: %s", d)
			}
		})
	}
}

func withoutNamesIfMBR(l *Layout) *Layout {
	if l.Table == MBR {
		return withoutNames(l)
	}
	return l
}

// goldenCases are small images whose exact bytes are pinned by
// testdata/golden.sha256. That file holds "<name> <sha256 of the whole
// image>" lines and was made by
//
//	go test ./pkg/disk -run TestGolden -update
//
// after checking the images with the tool-judged tests. A change of hash
// means a change of kiln's output: bump it only on purpose.
var goldenCases = []planCase{
	{name: "gpt-8MiB", table: GPT, disk: 8 * MiB, opts: testOpts, parts: []PartitionSpec{
		{Name: "esp", Type: "esp", Size: 2 * MiB, GUID: pguid(1), Bootable: true},
		{Name: "root", Type: "root", Rest: true, GUID: pguid(2), Attributes: 1 << 59},
	}},
	{name: "mbr-8MiB", table: MBR, disk: 8 * MiB, opts: testOpts, parts: []PartitionSpec{
		{Name: "esp", Type: "esp", Size: 2 * MiB, Bootable: true},
		{Name: "root", Type: "root", Rest: true},
	}},
}

// goldenHeader opens the golden file, saying how it was made.
const goldenHeader = "# sha256 of whole images written by pkg/disk for goldenCases (encoding_test.go).\n" +
	"# Made by: go test ./pkg/disk -run TestGolden -update\n"

func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "golden.sha256")
	var lines []string
	for _, c := range goldenCases {
		l := c.plan(t)
		img := make([]byte, l.Size)
		if err := Write(sliceWriter(img), l); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(img)
		lines = append(lines, c.name+" "+hex.EncodeToString(sum[:]))
	}
	got := goldenHeader + strings.Join(lines, "\n") + "\n"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("image hashes changed:\ngot:\n%swant:\n%s", got, want)
	}
}

// sliceWriter is an io.WriterAt over a fixed byte slice.
type sliceWriter []byte

func (s sliceWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(s)) {
		return 0, fmt.Errorf("write of %d bytes at %d beyond %d", len(p), off, len(s))
	}
	return copy(s[off:], p), nil
}

// TestGPTHeaderFields decodes the written headers independently of the
// reader: field values and both CRCs.
func TestGPTHeaderFields(t *testing.T) {
	l := goldenCases[0].plan(t)
	img := make([]byte, l.Size)
	if err := Write(sliceWriter(img), l); err != nil {
		t.Fatal(err)
	}
	n := uint64(l.Size / SectorSize)
	for _, h := range []struct {
		lba, alt, entries uint64
	}{{1, n - 1, 2}, {n - 1, 1, n - 33}} {
		b := img[h.lba*SectorSize : (h.lba+1)*SectorSize]
		le := binary.LittleEndian
		if string(b[:8]) != "EFI PART" || le.Uint32(b[8:]) != 0x10000 || le.Uint32(b[12:]) != 92 || le.Uint32(b[20:]) != 0 {
			t.Errorf("LBA %d: bad signature/revision/size/reserved:\n%s", h.lba, hexRows(b[:96]))
		}
		if le.Uint64(b[24:]) != h.lba || le.Uint64(b[32:]) != h.alt || le.Uint64(b[40:]) != 34 || le.Uint64(b[48:]) != n-34 || le.Uint64(b[72:]) != h.entries {
			t.Errorf("LBA %d: my/alternate/first/last/entries LBAs %d %d %d %d %d", h.lba, le.Uint64(b[24:]), le.Uint64(b[32:]), le.Uint64(b[40:]), le.Uint64(b[48:]), le.Uint64(b[72:]))
		}
		if le.Uint32(b[80:]) != 128 || le.Uint32(b[84:]) != 128 {
			t.Errorf("LBA %d: %d entries of %d bytes", h.lba, le.Uint32(b[80:]), le.Uint32(b[84:]))
		}
		if !bytes.Equal(b[92:], make([]byte, 512-92)) {
			t.Errorf("LBA %d: bytes after the header not zero", h.lba)
		}
		hdr := append([]byte(nil), b[:92]...)
		copy(hdr[16:20], []byte{0, 0, 0, 0})
		if crcIEEE(hdr) != le.Uint32(b[16:]) {
			t.Errorf("LBA %d: header CRC wrong", h.lba)
		}
		ents := img[h.entries*SectorSize : (h.entries+32)*SectorSize]
		if crcIEEE(ents) != le.Uint32(b[88:]) {
			t.Errorf("LBA %d: entries CRC wrong", h.lba)
		}
		if g := ents[:16]; !bytes.Equal(g, []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}) {
			t.Errorf("LBA %d: ESP type GUID on disk % x", h.lba, g)
		}
		if !bytes.Equal(ents[2*128:], make([]byte, 126*128)) {
			t.Errorf("LBA %d: unused entries not zero", h.lba)
		}
	}
}

// crcIEEE is a bitwise CRC-32 (IEEE 802.3, reflected, as UEFI uses),
// written out here so the test does not trust hash/crc32 through the code
// under test.
func crcIEEE(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}
