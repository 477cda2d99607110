package fat

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

const mib = 1 << 20

// TestLayoutInvariants checks, over many sizes, that no layout has more
// clusters than its FAT has entries or than the volume has room for, and
// that the cluster count gives the FAT type (layout.check).
func TestLayoutInvariants(t *testing.T) {
	for _, typ := range []int{0, 12, 16, 32} {
		ok := 0
		for sectors := uint32(2048); sectors < 6<<21; sectors = sectors*21/20 + 7 {
			l, err := newLayout(sectors, typ, 0)
			if err != nil {
				continue
			}
			ok++
			if err := l.check(); err != nil {
				t.Errorf("FAT%d, %d sectors: %v", typ, sectors, err)
			}
			if typ != 0 && l.fatType != typ {
				t.Errorf("FAT%d forced, %d sectors: got FAT%d", typ, sectors, l.fatType)
			}
			if l.fatType == 32 && l.clusters < minClusters32 {
				t.Errorf("%d sectors: FAT32 with %d clusters", sectors, l.clusters)
			}
		}
		if ok < 10 {
			t.Errorf("FAT%d: only %d sizes gave a layout", typ, ok)
		}
	}
}

func TestAutoType(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{
		{2 * mib, 12},
		{4 * mib, 12},
		{16 * mib, 16},
		{32 * mib, 16}, // too few clusters for FAT32
		{33 * mib, 32},
		{100 * mib, 32},
		{600 * mib, 32},
	} {
		l, err := newLayout(uint32(tc.size/sectorSize), 0, 0)
		if err != nil {
			t.Fatalf("%d MiB: %v", tc.size/mib, err)
		}
		if l.fatType != tc.want {
			t.Errorf("%d MiB: FAT%d, want FAT%d", tc.size/mib, l.fatType, tc.want)
		}
	}
}

// TestClusterSize32 checks fatgen103's FAT32 cluster-size table at its
// edges (mkfs.fat 4.2 agrees for sizes in whole KiB).
func TestClusterSize32(t *testing.T) {
	for _, tc := range []struct {
		sectors uint32
		want    int64
	}{
		{260 * mib / sectorSize, 512},
		{260*mib/sectorSize + 1, 4096},
		{8 << 30 / sectorSize, 4096},
		{8<<30/sectorSize + 1, 8192},
		{16 << 30 / sectorSize, 8192},
		{16<<30/sectorSize + 1, 16384},
		{32 << 30 / sectorSize, 16384},
		{32<<30/sectorSize + 1, 32768},
		{1<<32 - 1, 32768},
	} {
		l, err := layout32(tc.sectors)
		if err != nil {
			t.Fatalf("%d sectors: %v", tc.sectors, err)
		}
		if l.clusterBytes() != tc.want {
			t.Errorf("%d sectors: clusters of %d bytes, want %d", tc.sectors, l.clusterBytes(), tc.want)
		}
	}
}

func TestLayoutErrors(t *testing.T) {
	for _, tc := range []struct {
		size int64
		typ  int
		want string
	}{
		{32 * mib, 32, "too small for FAT32"},
		{2 * mib, 16, "too small for FAT16"},
		{512 * mib, 12, "too large for FAT12"},
		{8 * mib, 24, "FAT type 24"},
		{16 * 1024, 0, "too small for any FAT"},
	} {
		_, err := newLayout(uint32(tc.size/sectorSize), tc.typ, 0)
		testkit.ErrContains(t, err, tc.want)
	}
}

// mkfsGeometry runs mkfs.vfat with args on a sparse file of size bytes and
// probes the result.
func mkfsGeometry(t *testing.T, size int64, args ...string) *Info {
	t.Helper()
	img := filepath.Join(t.TempDir(), "mkfs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, code := judge.Run(t, toolEnv, "mkfs.vfat", append(args, img)...); code != 0 {
		t.Fatalf("mkfs.vfat %v: exit %d\n%s", args, code, out)
	}
	return probeFile(t, img)
}

// TestLayoutMatchesMkfs compares the cluster size, reserved sectors, FAT
// length and cluster count with what mkfs.vfat picks.
func TestLayoutMatchesMkfs(t *testing.T) {
	judge.Need(t, "mkfs.vfat")
	type tc struct {
		size int64
		typ  int
	}
	var cases []tc
	for _, s := range []int64{33 * mib, 33*mib + 512, 40*mib + 3*512, 64 * mib, 100 * mib, 129 * mib,
		260 * mib, 260*mib + 1024, 261 * mib, 333*mib + 512, 512 * mib, 1024 * mib, 2048 * mib, 2049*mib + 7*512} {
		cases = append(cases, tc{s, 32})
	}
	for _, s := range []int64{9 * mib, 16 * mib, 16*mib + 512, 32 * mib, 100 * mib, 257*mib + 512, 511 * mib} {
		cases = append(cases, tc{s, 16})
	}
	for _, s := range []int64{1 * mib, 2 * mib, 4 * mib, 4*mib + 512, 6 * mib} {
		cases = append(cases, tc{s, 12})
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.typ)+"/"+strconv.FormatInt(c.size, 10), func(t *testing.T) {
			m := mkfsGeometry(t, c.size, "-F", strconv.Itoa(c.typ))
			if m.Size != c.size {
				// mkfs.fat 4.2 cuts image files to whole (made-up)
				// tracks; compare at the size it used.
				m = mkfsGeometry(t, m.Size, "-F", strconv.Itoa(c.typ))
			}
			got, err := newLayout(uint32(m.Size/sectorSize), c.typ, 0)
			if err != nil {
				t.Fatal(err)
			}
			if m.FATType != c.typ {
				t.Fatalf("mkfs.vfat made FAT%d", m.FATType)
			}
			for _, f := range []struct {
				name      string
				kiln, mkf uint64
			}{
				{"cluster size", uint64(got.clusterBytes()), uint64(m.ClusterSize)},
				{"reserved sectors", uint64(got.reserved), uint64(m.ReservedSectors)},
				{"FAT sectors", uint64(got.fatSectors), uint64(m.FATSectors)},
				{"root entries", uint64(got.rootEntries), uint64(m.RootEntries)},
				{"clusters", uint64(got.clusters), uint64(m.TotalClusters)},
			} {
				if f.kiln != f.mkf {
					t.Errorf("%s: kiln %d, mkfs.vfat %d", f.name, f.kiln, f.mkf)
				}
			}
		})
	}
}
