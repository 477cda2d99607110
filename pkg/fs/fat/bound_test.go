package fat

import (
	"encoding/binary"
	"fmt"
	"runtime/metrics"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// sparseVol is a volume of any size that reads as zeros except where
// parts say (parts do not overlap).
type sparseVol struct {
	size  int64
	offs  []int64
	parts map[int64][]byte
}

func (s *sparseVol) put(off int64, b []byte) {
	if s.parts == nil {
		s.parts = map[int64][]byte{}
	}
	s.parts[off] = b
	s.offs = append(s.offs, off)
	sort.Slice(s.offs, func(i, j int) bool { return s.offs[i] < s.offs[j] })
}

func (s *sparseVol) ReadAt(b []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, fmt.Errorf("offset %d past the end", off)
	}
	n := int(min(int64(len(b)), s.size-off))
	clear(b[:n])
	i := sort.Search(len(s.offs), func(i int) bool { return s.offs[i]+int64(len(s.parts[s.offs[i]])) > off })
	for ; i < len(s.offs) && s.offs[i] < off+int64(n); i++ {
		o := s.offs[i]
		d := s.parts[o]
		lo, hi := max(o, off), min(o+int64(len(d)), off+int64(n))
		copy(b[lo-off:hi-off], d[lo-o:hi-o])
	}
	return n, nil
}

func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// fat32Vol is a FAT32 volume of 512-byte clusters: clusters data
// clusters, one FAT, the root directory at cluster 2 holding root.
func fat32Vol(clusters uint32, fat []uint32, root []byte) *sparseVol {
	v, _ := fat32VolAt(clusters, fat, root)
	return v
}

// fat32VolAt is fat32Vol, also returning where cluster c starts.
func fat32VolAt(clusters uint32, fat []uint32, root []byte) (*sparseVol, func(c uint32) int64) {
	const rsvd = 32
	fatSecs := (uint32(len(fat))*4 + 511) / 512
	fatSecs = max(fatSecs, (clusters+2)*4/512+1)
	tot := rsvd + fatSecs + clusters
	bs := make([]byte, 512)
	copy(bs, []byte{0xEB, 0x58, 0x90})
	copy(bs[3:], "CRAFTED ")
	binary.LittleEndian.PutUint16(bs[0x0B:], 512)
	bs[0x0D] = 1
	binary.LittleEndian.PutUint16(bs[0x0E:], rsvd)
	bs[0x10] = 1
	bs[0x15] = 0xF8
	binary.LittleEndian.PutUint32(bs[0x20:], tot)
	binary.LittleEndian.PutUint32(bs[0x24:], fatSecs)
	binary.LittleEndian.PutUint32(bs[0x2C:], 2)
	bs[0x42] = 0x29
	copy(bs[0x47:], "NO NAME    FAT32   ")
	bs[0x1FE], bs[0x1FF] = 0x55, 0xAA
	v := &sparseVol{size: int64(tot) * 512}
	v.put(0, bs)
	fb := make([]byte, 4*len(fat))
	for i, e := range fat {
		binary.LittleEndian.PutUint32(fb[4*i:], e)
	}
	v.put(rsvd*512, fb)
	v.put(int64(rsvd+fatSecs)*512, root)
	return v, func(c uint32) int64 { return int64(rsvd+fatSecs+c-2) * 512 }
}

// fileEntry is a short directory entry of a file.
func fileEntry(name string, cluster, size uint32) []byte {
	e := make([]byte, 32)
	copy(e, name+strings.Repeat(" ", 11-len(name)))
	e[11] = 0x20
	binary.LittleEndian.PutUint16(e[20:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

// TestReadBoundedHeaders reads crafted volumes whose FAT makes huge
// structures: each must fail allocating at most testkit.ReadBound, with
// an error naming what is wrong.
func TestReadBoundedHeaders(t *testing.T) {
	const eoc = 0x0FFFFFFF
	for _, c := range []struct {
		name string
		vol  func() *sparseVol
		want string
	}{
		{"file of 4M scattered clusters", func() *sparseVol {
			// A 2 GiB file whose chain takes every other cluster: a run
			// of bytes per cluster.
			const n = 4 << 20
			fat := make([]uint32, 2*n+4)
			fat[0], fat[1], fat[2] = 0x0FFFFFF8, eoc, eoc
			for i := uint32(0); i < n; i++ {
				fat[3+2*i] = 5 + 2*i
			}
			fat[3+2*(n-1)] = eoc
			return fat32Vol(2*n+2, fat, fileEntry("BIG", 3, n*512))
		}, "runs"},
		{"directories sharing a chain of entries", func() *sparseVol {
			// 64 directories whose chains all continue into one shared
			// chain of 4095 clusters of 16 entries: 4M names from 2 MiB.
			const dirs, shared = 64, 4095
			fat := make([]uint32, 100+shared+1)
			fat[0], fat[1] = 0x0FFFFFF8, eoc
			fat[2], fat[3], fat[4], fat[5] = 3, 4, 5, eoc // the root: 4 clusters
			var root []byte
			for k := uint32(0); k < dirs; k++ {
				e := fileEntry(fmt.Sprintf("D%07d", k), 10+k, 0)
				e[11] = attrDir
				root = append(root, e...)
				fat[10+k] = 100
			}
			for j := uint32(0); j < shared; j++ {
				fat[100+j] = 101 + j
			}
			fat[100+shared-1] = eoc
			v, at := fat32VolAt(1<<18, fat, root)
			for k := uint32(0); k < dirs; k++ {
				var b []byte
				for i := 0; i < 16; i++ {
					b = append(b, fileEntry(fmt.Sprintf("F%07d", i), 0, 0)...)
				}
				v.put(at(10+k), b)
			}
			for j := uint32(0); j < shared; j++ {
				var b []byte
				for i := uint32(0); i < 16; i++ {
					b = append(b, fileEntry(fmt.Sprintf("%08X", 16+16*j+i), 0, 0)...)
				}
				v.put(at(100+j), b)
			}
			return v
		}, "directory entries"},
		{"600 directories of 2 MiB sharing one chain", func() *sparseVol {
			// Each directory is 4096 clusters of 512 bytes: its own first
			// cluster, whose first entry is the end of the directory,
			// then the shared 4095. Each is read whole: 1.2 GiB.
			const dirs, shared = 600, 4095
			fat := make([]uint32, 1000+shared+1)
			fat[0], fat[1] = 0x0FFFFFF8, eoc
			rootClusters := uint32(dirs*32/512 + 1)
			for i := uint32(0); i < rootClusters-1; i++ {
				fat[2+i] = 3 + i
			}
			fat[2+rootClusters-1] = eoc
			var root []byte
			for k := uint32(0); k < dirs; k++ {
				e := fileEntry(fmt.Sprintf("D%07d", k), 1000+shared+1+k, 0)
				e[11] = attrDir
				root = append(root, e...)
			}
			for j := uint32(0); j < shared-1; j++ {
				fat[1000+j] = 1001 + j
			}
			fat[1000+shared-1] = eoc
			for k := uint32(0); k < dirs; k++ {
				fat = append(fat, 1000)
			}
			v, _ := fat32VolAt(dirs*(shared+1)+2000, fat, root)
			return v
		}, "bytes of directories read"},
		{"chain cycling through the FAT", func() *sparseVol {
			// A 32 MiB file whose chain visits 70 parts of the FAT in
			// turn, more than the FAT cache holds, missing it at every
			// cluster.
			const n, parts, per = 64 << 10, 70, fatCacheChunk / 4
			fat := make([]uint32, parts*per+per)
			fat[0], fat[1], fat[2] = 0x0FFFFFF8, eoc, eoc
			at := func(i uint32) uint32 { return per + (i%parts)*per + i/parts }
			for i := uint32(0); i < n-1; i++ {
				fat[at(i)] = at(i + 1)
			}
			fat[at(n-1)] = eoc
			return fat32Vol(uint32(len(fat)), fat, fileEntry("CYCLE", at(0), n*512))
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := c.vol()
			var err error
			before := heapAllocs()
			testkit.BoundAlloc(t, testkit.ReadBound, func() {
				_, err = ReadTree(v, v.size)
			})
			t.Logf("allocated %d MiB: %v", (heapAllocs()-before)>>20, err)
			if c.want == "" && err != nil {
				t.Fatalf("ReadTree: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("ReadTree: %v, want an error about %q", err, c.want)
			}
		})
	}
}
