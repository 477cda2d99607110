package disk

import (
	"fmt"
	"hash/crc32"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// sparseDisk is a disk of any size that reads as zeros except for the
// sectors in secs.
type sparseDisk struct {
	size int64
	secs map[int64][]byte // by LBA, SectorSize bytes each
}

func (d *sparseDisk) ReadAt(b []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, fmt.Errorf("offset %d past the end", off)
	}
	n := int(min(int64(len(b)), d.size-off))
	clear(b[:n])
	for lba, s := range d.secs {
		o := lba * SectorSize
		lo, hi := max(o, off), min(o+SectorSize, off+int64(n))
		if lo < hi {
			copy(b[lo-off:hi-off], s[lo-o:hi-o])
		}
	}
	return n, nil
}

func diskAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestReadBoundedHeaders reads crafted tables on a 2 TiB sparse disk
// whose headers claim huge entry arrays or long EBR chains: each is read
// or refused, naming the field, allocating at most testkit.ReadBound.
func TestReadBoundedHeaders(t *testing.T) {
	const size = 2 << 40
	last := int64(size/SectorSize - 1)
	protective := mbrSector{Signature: mbrSignature}
	protective.Entries[0] = mbrEntry{Type: 0xEE, FirstLBA: 1, Sectors: 0xFFFFFFFF}
	gpt := func(n, sz uint32, crc uint32) *sparseDisk {
		h := gptHeader{Revision: 0x00010000, HeaderSize: gptHeaderSize, MyLBA: 1, AlternateLBA: uint64(last),
			FirstUsableLBA: 34, LastUsableLBA: uint64(last - 33), PartitionEntryLBA: 2,
			NumberOfPartitionEntries: n, SizeOfPartitionEntry: sz, PartitionEntryArrayCRC32: crc}
		copy(h.Signature[:], gptSignature)
		return &sparseDisk{size: size, secs: map[int64][]byte{0: protective.encode(), 1: gptHeaderSector(h)}}
	}
	zerosCRC := crc32.ChecksumIEEE(make([]byte, gptMaxEntries*gptMaxEntrySz))
	// An extended partition of 300 EBRs, each linking to the next.
	chain := &sparseDisk{size: size, secs: map[int64][]byte{}}
	ext := mbrSector{Signature: mbrSignature}
	ext.Entries[0] = mbrEntry{Type: 0x05, FirstLBA: 2048, Sectors: 1 << 20}
	chain.secs[0] = ext.encode()
	for i := uint32(0); i < 300; i++ {
		e := mbrSector{Signature: mbrSignature}
		e.Entries[0] = mbrEntry{Type: 0x83, FirstLBA: 1, Sectors: 8}
		e.Entries[1] = mbrEntry{Type: 0x05, FirstLBA: 16 * (i + 1), Sectors: 16}
		chain.secs[2048+16*int64(i)] = e.encode()
	}
	for _, c := range []struct {
		name string
		d    *sparseDisk
		want string // "" to read
	}{
		{"2^32-1 entries", gpt(0xFFFFFFFF, 128, 0), "NumberOfPartitionEntries 4294967295"},
		{"entries of 4 GiB", gpt(128, 0xFFFFFFF8, 0), "SizeOfPartitionEntry 4294967288"},
		{"the largest array read", gpt(gptMaxEntries, gptMaxEntrySz, zerosCRC), ""},
		{"300 logical partitions", chain, "more than 256 logical partitions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			before := diskAllocs()
			testkit.BoundAlloc(t, testkit.ReadBound, func() {
				_, err = Read(c.d, c.d.size)
			})
			t.Logf("allocated %d MiB: %v", (diskAllocs()-before)>>20, err)
			if c.want == "" && err != nil {
				t.Fatalf("Read: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Read: %v, want an error with %q", err, c.want)
			}
		})
	}
}
