package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/verity"
)

// memDev is an in-memory device: a WriterAt that grows, read back with
// bytes.Reader.
type memDev struct{ b []byte }

func (m *memDev) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

// sealed is a data partition and the hash partition pkg/verity made of it.
type sealed struct {
	data, hash []byte
	root       string
}

// seal formats blocks data blocks of mixed content (some zero, as sparse
// images have) with p; the data partition gets extra bytes past the
// covered blocks, as a partition rounded up to its alignment has.
func seal(t *testing.T, blocks int, p verity.Params) *sealed {
	t.Helper()
	dbs := p.DataBlockSize
	if dbs == 0 {
		dbs = verity.DefaultBlockSize
	}
	data := make([]byte, blocks*dbs+3*dbs)
	for i := 0; i < blocks; i++ {
		if i%3 == 2 {
			continue
		}
		for j := 0; j < dbs; j += 64 {
			data[i*dbs+j] = byte(i*7 + j/64)
		}
	}
	var h memDev
	res, err := verity.Format(&h, bytes.NewReader(data), int64(blocks*dbs), p)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(h.b)) != res.Size {
		t.Fatalf("BUG: Format wrote %d bytes, says %d", len(h.b), res.Size)
	}
	// The hash partition is larger than the tree, as a partition is.
	return &sealed{data: data, hash: append(h.b, make([]byte, 8192)...), root: hex.EncodeToString(res.RootHash)}
}

func (s *sealed) check(root string) (*verityGeometry, error) {
	return checkVerity(bytes.NewReader(s.data), int64(len(s.data)), bytes.NewReader(s.hash), int64(len(s.hash)), root)
}

var testSalt = []byte("kiln salt: derived from the data in a build")

func TestCheckVerityAccepts(t *testing.T) {
	tests := []struct {
		name   string
		blocks int
		p      verity.Params
		table  string // with %s for the root hash
	}{
		{"sha256 4k, two levels", 300, verity.Params{Salt: testSalt},
			"1 254:1 254:2 4096 4096 300 1 sha256 %s " + hex.EncodeToString(testSalt)},
		{"sha256, three levels", 128*128 + 1, verity.Params{Salt: testSalt},
			"1 254:1 254:2 4096 4096 16385 1 sha256 %s " + hex.EncodeToString(testSalt)},
		{"one data block: no tree", 1, verity.Params{Salt: testSalt},
			"1 254:1 254:2 4096 4096 1 1 sha256 %s " + hex.EncodeToString(testSalt)},
		{"sha512, 512-byte blocks, no salt", 40, verity.Params{DataBlockSize: 512, HashBlockSize: 512, Algorithm: "sha512"},
			"1 254:1 254:2 512 512 40 1 sha512 %s -"},
		{"sha1, hash blocks larger than data blocks", 100, verity.Params{DataBlockSize: 1024, HashBlockSize: 8192, Algorithm: "sha1", Salt: []byte{1}},
			"1 254:1 254:2 1024 8192 100 1 sha1 %s 01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := seal(t, tc.blocks, tc.p)
			g, err := s.check(s.root)
			if err != nil {
				t.Fatalf("pre-check refuses the pair Format made: %v", err)
			}
			if g.DataBlocks != int64(tc.blocks) || g.HashStart != 1 {
				t.Errorf("data blocks %d, hash start %d; want %d, 1", g.DataBlocks, g.HashStart, tc.blocks)
			}
			tb := g.table("254:1", "254:2", s.root)
			want := fmt.Sprintf(tc.table, s.root)
			if tb.Type != "verity" || tb.Start != 0 || tb.Params != want {
				t.Errorf("table %+v\nwant params %q", tb, want)
			}
			if dbs := max(tc.p.DataBlockSize, 4096*btoi(tc.p.DataBlockSize == 0)); tb.Length != uint64(tc.blocks*dbs/512) {
				t.Errorf("table length %d sectors, want %d", tb.Length, tc.blocks*dbs/512)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCheckVerityRefuses(t *testing.T) {
	p := verity.Params{Salt: testSalt, UUID: [16]byte{0xde, 0xad}}
	tests := []struct {
		name    string
		blocks  int
		p       verity.Params
		change  func(s *sealed) string // returns the roothash= to check with
		wantErr string
	}{
		{"flipped byte in the top hash block", 300, p, func(s *sealed) string {
			s.hash[4096+17] ^= 0x01
			return s.root
		}, "root hash mismatch: the kernel command line says roothash="},
		{"flipped byte in the salt", 300, p, func(s *sealed) string {
			s.hash[88] ^= 0x80 // the salt field starts at 88
			return s.root
		}, "root hash mismatch"},
		{"flipped byte of the only data block", 1, p, func(s *sealed) string {
			s.data[100] ^= 0x01
			return s.root
		}, "root hash mismatch"},
		{"wrong roothash", 300, p, func(s *sealed) string {
			w := []byte(s.root)
			w[63] = "10"[btoi(w[63] == '1')]
			return string(w)
		}, "refusing to boot it"},
		{"roothash of another algorithm's length", 300, verity.Params{Algorithm: "sha1", Salt: testSalt}, func(s *sealed) string {
			return strings.Repeat("ab", 32)
		}, "roothash= has 64 hex digits, but the hash partition's superblock says sha1, whose digests have 40"},
		{"no superblock", 300, p, func(s *sealed) string {
			clear(s.hash[:512])
			return s.root
		}, "hash partition: superblock signature"},
		{"data partition too small", 300, p, func(s *sealed) string {
			s.data = s.data[:299*4096+4095]
			return s.root
		}, "data partition of 1228799 bytes is smaller than the 300 blocks of 4096 bytes"},
		{"hash partition truncated", 300, p, func(s *sealed) string {
			s.hash = s.hash[:4*4096]
			return s.root
		}, "hash partition of 16384 bytes is smaller than the superblock and hash tree of 300 data blocks (20480 bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := seal(t, tc.blocks, tc.p)
			if _, err := s.check(s.root); err != nil {
				t.Fatalf("BUG: the untouched pair is refused: %v", err)
			}
			root := tc.change(s)
			_, err := s.check(root)
			t.Logf("%v", err)
			testkit.WantErr(t, err, tc.wantErr)
			if strings.Contains(tc.wantErr, "mismatch") && err != nil {
				// The message names both hashes.
				if !strings.Contains(err.Error(), "roothash="+root) || strings.Count(err.Error(), "root hash ") != 2 {
					t.Errorf("mismatch message does not name both hashes: %v", err)
				}
			}
		})
	}
}

func TestVerityDMUUID(t *testing.T) {
	g := &verityGeometry{Params: verity.Params{UUID: [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}}}
	if got, want := g.dmUUID("root"), "CRYPT-VERITY-0123456789abcdeffedcba9876543210-root"; got != want {
		t.Errorf("dm uuid %q, want %q (cryptsetup's dm_prepare_uuid)", got, want)
	}
}
