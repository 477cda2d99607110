package imgfmt

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/repro"
)

// craftedHeader is a few KiB whose header asks a reader for a huge
// allocation: the class of issue 11 item 2.
type craftedHeader struct {
	name  string
	data  []byte
	field string // what the error must name
}

// craftedVMDK is a hosted sparse extent header (and a grain directory
// and table when gd is not zero) with the given fields.
func craftedVMDK(capacity, grain uint64, gtes uint32, gd uint64, flags uint32, compress uint16) []byte {
	h := vmdkHeader{
		Version: 1, Flags: flags | vmdkFlagNewlineDetect, Capacity: capacity, GrainSize: grain,
		NumGTEsPerGT: gtes, GDOffset: gd, OverHead: 4, SingleEndLineChar: '\n', NonEndLineChar: ' ',
		DoubleEndLineChar1: '\r', DoubleEndLineChar2: '\n', CompressAlgorithm: compress,
	}
	copy(h.MagicNumber[:], vmdkMagic)
	b := make([]byte, 8192)
	copy(b, encodeLE(&h))
	return b
}

// encodeLE is encodeBE's little-endian twin, for VMDK structures.
func encodeLE(v any) []byte {
	var b strings.Builder
	binary.Write(&b, binary.LittleEndian, v)
	return []byte(b.String())
}

// craftedVHD is a dynamic VHD of virtual size size with block size bs and
// n BAT entries at tableOffset, checksums right: 2 KiB of file.
func craftedVHD(size uint64, bs, n uint32, tableOffset uint64) []byte {
	ft := (&vhdParams{size: int64(size)}).footer(vhdTypeDynamic, repro.UUID{})
	ft.DataOffset = 512
	ft.Checksum = 0
	ft.Checksum = vhdChecksum(encodeBE(&ft))
	dh := vhdDynamicHeader{DataOffset: ^uint64(0), TableOffset: tableOffset, HeaderVersion: 0x00010000, MaxTableEntries: n, BlockSize: bs}
	copy(dh.Cookie[:], vhdDynamicCookie)
	dh.Checksum = vhdChecksum(encodeBE(&dh))
	b := append(encodeBE(&ft), encodeBE(&dh)...)
	return append(b, encodeBE(&ft)...)
}

// craftedHeaders are the hostile headers every reader must refuse before
// it allocates: each asked for gigabytes before the bounds.
func craftedHeaders() []craftedHeader {
	// A VMDK grain of 2^21 sectors (1 GiB) whose marker claims 2 GiB.
	grainMarker := craftedVMDK(1<<21, 1<<21, 512, 8, vmdkFlagCompressed|vmdkFlagMarkers, vmdkCompressionDeflate)
	binary.LittleEndian.PutUint32(grainMarker[8*512:], 9)  // GD[0]: the grain table at sector 9
	binary.LittleEndian.PutUint32(grainMarker[9*512:], 14) // GTE 0: the grain at sector 14
	binary.LittleEndian.PutUint32(grainMarker[14*512+8:], 2<<30-1)
	qcow := func(mod func(h *qcow2Header)) []byte {
		h := qcow2Header{Magic: qcow2Magic, Version: 3, ClusterBits: 16, Size: mib, L1Size: 1, L1TableOffset: 64 * kib,
			RefcountOrder: 4, HeaderLength: qcow2HeaderLength}
		mod(&h)
		b := make([]byte, 4096)
		copy(b, encodeBE(&h))
		return b
	}
	return []craftedHeader{
		// 2^32-1 one-sector grains, one per grain table: a grain
		// directory of 16 GiB.
		{"vmdk grain directory of 16 GiB", craftedVMDK(1<<32-1, 1, 1, 1, 0, 0), "gdOffset"},
		{"vmdk grain directory past the end", craftedVMDK(1<<32-1, 128, 512, 1, 0, 0), "gdOffset"},
		{"vmdk 1 GiB grain, 2 GiB marker", grainMarker, "grain"},
		// 2040 GiB of 512-byte blocks: a BAT of 17 GB.
		{"vhd BAT of 17 GB", craftedVHD(vhdMaxSize, 512, 0xff000000, 1536), "Table Offset"},
		{"vhd BAT past the end", craftedVHD(1<<30, 2<<20, 512, 1<<40), "Table Offset"},
		{"vhd dynamic header past the end", func() []byte {
			b := craftedVHD(1<<30, 2<<20, 512, 1536)
			ft := (&vhdParams{size: 1 << 30}).footer(vhdTypeDynamic, repro.UUID{})
			ft.DataOffset = 1 << 50
			ft.Checksum = 0
			ft.Checksum = vhdChecksum(encodeBE(&ft))
			copy(b[len(b)-512:], encodeBE(&ft))
			return b
		}(), "Data Offset"},
		{"qcow2 L1 table past the end", qcow(func(h *qcow2Header) { h.Size = 1 << 40; h.L1Size = 2048; h.L1TableOffset = 1 << 40 }), "l1_table_offset"},
		// 4096 L1 entries on one L2 table: Extents would walk the table
		// again for every entry (with 2 MiB clusters and 4M entries, 2^40
		// entries for a 34 MiB file).
		{"qcow2 L1 entries sharing an L2 table", func() []byte {
			b := qcow(func(h *qcow2Header) {
				h.Size = 4096 << 29
				h.L1Size = 4096
				h.L1TableOffset = 64 << 10
			})
			b = append(b, make([]byte, 192<<10-len(b))...)
			for i := range 4096 {
				binary.BigEndian.PutUint64(b[64<<10+8*i:], 128<<10) // every L1 entry: the L2 table at 128 KiB
			}
			return b
		}(), "L1 table"},
		{"vmdk grain tables shared", func() []byte {
			b := craftedVMDK(1<<26, 128, 512, 1, 0, 0) // 1024 GD entries at sector 1
			for i := range 1024 {
				binary.LittleEndian.PutUint32(b[512+4*i:], 12) // every GD entry: the table at sector 12
			}
			return b
		}(), "grain directory"},
		{"qcow2 L2 table past the end", func() []byte {
			b := qcow(func(h *qcow2Header) { h.L1TableOffset = 4096; h.ClusterBits = 12 })
			b = append(b, make([]byte, 4096)...)
			binary.BigEndian.PutUint64(b[4096:], 1<<40) // L1[0]
			return b
		}(), "L2 table"},
	}
}

// TestCraftedHeaders opens and reads every crafted header under the
// allocation bound: before the bounds the VMDK and VHD ones allocated 1
// to 17 GB (or died of it); now each is refused before it allocates, with
// an error that names the file and the header field.
func TestCraftedHeaders(t *testing.T) {
	for _, c := range craftedHeaders() {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crafted")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			got := testkit.AllocatedBy(func() { err = openAndRead(path) })
			t.Logf("%d-byte file: allocated %d KiB: %v", len(c.data), got>>10, err)
			if got > testkit.ReadBound {
				t.Fatalf("allocated %d MiB, over the bound of %d MiB", got>>20, testkit.ReadBound>>20)
			}
			if err == nil {
				t.Fatal("read without an error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("the error does not name the file and %q: %v", c.field, err)
			}
		})
	}
}

// openAndRead opens the image at path and reads its extents and its first
// 4 MiB; the first error is returned, wrapped with the path.
func openAndRead(path string) error {
	img, err := Open(path)
	if err != nil {
		return err
	}
	defer img.Close()
	n := 0
	err = img.Extents(context.Background(), func(e Extent) error {
		if n++; n > 1<<16 {
			return errors.New("stop")
		}
		return nil
	})
	if err != nil && err.Error() != "stop" {
		return err
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < min(img.Size(), 4<<20); off += int64(len(buf)) {
		if _, err := img.ReadAt(buf[:min(int64(len(buf)), img.Size()-off)], off); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// TestZstdWindowBounded: a zstd frame whose header claims the format's
// largest window (512 MiB, window log 29) with a one-byte RLE block
// must not make the qcow2 reader allocate it: 512 MiB is the most the
// zstd library allows by default, and 512 MiB it is.
func TestZstdWindowBounded(t *testing.T) {
	// Frame header: magic, descriptor 0 (no content size, window
	// descriptor present), window descriptor exponent 19 -> 2^(10+19).
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 19 << 3}
	// One last RLE block of 64 KiB of 'A': header = last | type 1 << 1 | size << 3.
	bh := uint32(1) | 1<<1 | (64<<10)<<3
	frame = append(frame, byte(bh), byte(bh>>8), byte(bh>>16), 'A')
	d, err := newZstdDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	dst := make([]byte, 64<<10)
	var derr error
	got := testkit.AllocatedBy(func() { derr = d.decompress(dst, frame) })
	t.Logf("allocated %d KiB: %v", got>>10, derr)
	if got > 64<<20 {
		t.Fatalf("a 10-byte frame made the decoder allocate %d MiB", got>>20)
	}
}
