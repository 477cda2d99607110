package fat

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// TestProbeMkfs probes volumes made by mkfs.vfat, before and after mcopy
// adds a file.
func TestProbeMkfs(t *testing.T) {
	judge.Need(t, "mkfs.vfat", "mcopy")
	for _, tc := range []struct {
		size   int64
		args   []string
		typ    int
		label  string
		id     uint32
		fsinfo bool
	}{
		{64 * mib, []string{"-F", "32", "-i", "12345678", "-n", "LABEL"}, 32, "LABEL", 0x12345678, true},
		{16 * mib, []string{"-F", "16", "-i", "DEADBEEF", "-n", "SMALL"}, 16, "SMALL", 0xDEADBEEF, false},
		{2 * mib, []string{"-i", "0000ABCD"}, 12, "", 0xABCD, false},
	} {
		t.Run(tc.label, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "mkfs.img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, tc.size); err != nil {
				t.Fatal(err)
			}
			if out, code := judge.Run(t, toolEnv, "mkfs.vfat", append(tc.args, img)...); code != 0 {
				t.Fatalf("mkfs.vfat: exit %d\n%s", code, out)
			}
			in := probeFile(t, img)
			root := uint32(0)
			if tc.typ == 32 {
				root = 1
			}
			if in.FATType != tc.typ || in.Label != tc.label || in.BootLabel != tc.label || in.VolumeID != tc.id ||
				in.OEMName != "mkfs.fat" || in.FreeFromFSInfo != tc.fsinfo || in.FreeClusters != in.TotalClusters-root {
				t.Errorf("Probe: %+v", in)
			}

			// mcopy a 100000-byte file in: the free count must drop.
			src := filepath.Join(t.TempDir(), "data.bin")
			if err := os.WriteFile(src, bytes.Repeat([]byte{1}, 100000), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, code := judge.Run(t, toolEnv, "mcopy", "-i", img, src, "::DATA.BIN"); code != 0 {
				t.Fatalf("mcopy: exit %d\n%s", code, out)
			}
			after := probeFile(t, img)
			want := in.FreeClusters - uint32((100000+in.ClusterSize-1)/in.ClusterSize)
			if after.FreeClusters != want {
				t.Errorf("after mcopy: %d clusters free, want %d", after.FreeClusters, want)
			}
		})
	}
}

// TestProbeCounts checks that Probe counts the FAT when FSInfo is invalid.
func TestProbeCounts(t *testing.T) {
	tr := richTree()
	img := mustWriteImage(t, 40*mib, tr, Options{VolumeID: 3})
	in := probeFile(t, img)
	if !in.FreeFromFSInfo {
		t.Fatal("FSInfo not used")
	}
	b := fileBytes(t, img)
	copy(b[sectorSize:], "XXXX") // break the FSInfo lead signature
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	counted := probeFile(t, img)
	if counted.FreeFromFSInfo || counted.FreeClusters != in.FreeClusters {
		t.Errorf("counted %d free (FSInfo %v), FSInfo said %d", counted.FreeClusters, counted.FreeFromFSInfo, in.FreeClusters)
	}
}

func TestProbeErrors(t *testing.T) {
	tr := tree.New(testEpoch)
	put(tr, "/f", newFile(0o644, testEpoch, []byte("x")))
	good := fileBytes(t, mustWriteImage(t, 2*mib, tr, Options{}))
	for _, tc := range []struct {
		name   string
		mangle func(b []byte) []byte
		size   int64
		want   string
	}{
		{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }, 2 * mib, "no boot sector signature"},
		{"no jump", func(b []byte) []byte { b[0] = 0; return b }, 2 * mib, "not a jump"},
		{"sector size", func(b []byte) []byte { b[11], b[12] = 0, 3; return b }, 2 * mib, "bytes per sector"},
		{"cluster size", func(b []byte) []byte { b[13] = 3; return b }, 2 * mib, "not a power of two"},
		{"truncated", func(b []byte) []byte { return b }, mib, "more than the 1048576 given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mangle(bytes.Clone(good))
			_, err := Probe(bytes.NewReader(b), tc.size)
			testkit.ErrContains(t, err, tc.want)
		})
	}
}
