package fat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// blkidValue returns the value of key in `blkid -p -o export img`, and
// whether blkid reported it.
func blkidValue(t *testing.T, img, key string) (string, bool) {
	t.Helper()
	out, code := judge.Run(t, nil, "blkid", "-p", "-o", "export", img)
	if code != 0 {
		t.Fatalf("blkid -p %s: exit %d\n%s", img, code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return unescapeExport(v), true
		}
	}
	return "", false
}

// unescapeExport undoes blkid -o export's escaping: a backslash before
// blanks and shell characters, and M-x / ^x for bytes with the high bit
// and control bytes (util-linux's safe-print form).
func unescapeExport(v string) string {
	var b []byte
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			b = append(b, v[i])
		case strings.HasPrefix(v[i:], "M-^") && i+3 < len(v):
			b = append(b, 0x80|(v[i+3]^0x40))
			i += 3
		case strings.HasPrefix(v[i:], "M-") && i+2 < len(v):
			b = append(b, 0x80|v[i+2])
			i += 2
		case v[i] == '^' && i+1 < len(v):
			b = append(b, v[i+1]^0x40)
			i++
		default:
			b = append(b, v[i])
		}
	}
	return string(b)
}

// TestLabelLikeBlkid makes volumes with mkfs.vfat, edits the root
// directory's label entry and the boot sector's label, and checks that
// Probe's Label is blkid's LABEL and BootLabel its LABEL_FATBOOT.
func TestLabelLikeBlkid(t *testing.T) {
	judge.Need(t, "mkfs.vfat", "blkid")
	type vol struct {
		boot []byte // the boot sector
		root []byte // the first root directory entries (FAT12/16), or the root cluster's
		lab  []byte // the boot sector's label field
	}
	set := func(b []byte, s string) { copy(b, s+strings.Repeat(" ", 11-len(s))) }
	for _, fat := range []string{"16", "32"} {
		for _, c := range []struct {
			name string
			edit func(v vol)
		}{
			{"as made", func(v vol) {}},
			{"erased root label", func(v vol) { v.root[0] = 0xE5 }},
			{"root label NO NAME", func(v vol) { set(v.root, "NO NAME") }},
			{"boot label NO NAME", func(v vol) { set(v.lab, "NO NAME") }},
			{"both NO NAME", func(v vol) { set(v.lab, "NO NAME"); set(v.root, "NO NAME") }},
			{"no root label", func(v vol) { clear(v.root[:32]) }},
			{"no root label, boot NO NAME", func(v vol) { clear(v.root[:32]); set(v.lab, "NO NAME") }},
			{"root label 0x05", func(v vol) { v.root[0] = 0x05 }},
			{"root label with a cluster", func(v vol) { v.root[26] = 3 }},
			{"root label with directory bit", func(v vol) { v.root[11] |= 0x10 }},
			{"root label as LFN", func(v vol) { v.root[11] = 0x0F }},
			{"root label with archive bit", func(v vol) { v.root[11] |= 0x20 }},
			{"root label after a deleted entry", func(v vol) {
				copy(v.root[32:64], v.root[:32])
				set(v.root[32:], "SECOND")
				v.root[0] = 0xE5
			}},
			{"lower-case and inner spaces", func(v vol) { set(v.root, "a b  c") }},
			{"trailing NULs", func(v vol) { copy(v.root[:11], "NUL\x00\x00\x00\x00\x00\x00\x00\x00") }},
			{"empty boot label", func(v vol) { set(v.lab, "") }},
			{"no extended boot signature", func(v vol) {
				if fat == "32" {
					v.boot[0x42] = 0
				} else {
					v.boot[0x26] = 0
				}
			}},
			{"old extended boot signature", func(v vol) {
				if fat == "32" {
					v.boot[0x42] = 0x28
				} else {
					v.boot[0x26] = 0x28
				}
			}},
		} {
			t.Run("FAT"+fat+"/"+c.name, func(t *testing.T) {
				img := filepath.Join(t.TempDir(), "img")
				if out, code := judge.Run(t, toolEnv, "mkfs.vfat", "-C", "-F", fat, "-i", "1234ABCD", "-n", "ROOTLBL", img, "40000"); code != 0 {
					t.Fatalf("mkfs.vfat: exit %d\n%s", code, out)
				}
				b, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				in, err := Probe(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				rootOff := int64(in.ReservedSectors+uint32(in.NumFATs)*in.FATSectors) * int64(in.SectorSize)
				labOff := 0x2B
				if in.FATType == 32 {
					rootOff += int64(in.RootCluster-2) * int64(in.ClusterSize)
					labOff = 0x47
				}
				v := vol{boot: b[:512], root: b[rootOff : rootOff+64], lab: b[labOff : labOff+11]}
				set(v.lab, "BOOTLBL")
				c.edit(v)
				if err := os.WriteFile(img, b, 0o644); err != nil {
					t.Fatal(err)
				}
				in, err = Probe(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				label, _ := blkidValue(t, img, "LABEL")
				boot, _ := blkidValue(t, img, "LABEL_FATBOOT")
				if in.Label != label || in.BootLabel != boot {
					t.Errorf("Probe: label %q, boot label %q; blkid: LABEL %q, LABEL_FATBOOT %q", in.Label, in.BootLabel, label, boot)
				}
				// The serial: blkid's UUID, or none (and VolumeID 0).
				uuid, ok := blkidValue(t, img, "UUID")
				if got := fmt.Sprintf("%04X-%04X", in.VolumeID>>16, in.VolumeID&0xFFFF); ok && got != uuid || !ok && in.VolumeID != 0 {
					t.Errorf("Probe: volume ID %s; blkid: UUID %q (%v)", got, uuid, ok)
				}
			})
		}
	}
}

// TestLabelDeepInFAT32Root puts the label entry in the 99th or 100th
// cluster of a FAT32 root directory: blkid looks at 99 clusters.
func TestLabelDeepInFAT32Root(t *testing.T) {
	judge.Need(t, "blkid")
	const eoc = 0x0FFFFFFF
	for _, at := range []uint32{98, 99} {
		t.Run(fmt.Sprint("cluster index ", at), func(t *testing.T) {
			const n = 110
			fat := make([]uint32, 2+n+1)
			fat[0], fat[1] = 0x0FFFFFF8, eoc
			for i := uint32(0); i < n-1; i++ {
				fat[2+i] = 3 + i
			}
			fat[2+n-1] = eoc
			var root []byte
			for i := uint32(0); i < n*16; i++ {
				e := fileEntry(fmt.Sprintf("F%07d", i), 0, 0)
				if i == at*16 {
					e = fileEntry("DEEPLABEL", 0, 0)
					e[11] = attrVolumeID
				}
				root = append(root, e...)
			}
			v := fat32Vol(70000, fat, root)
			img := filepath.Join(t.TempDir(), "img")
			b := make([]byte, v.size)
			if _, err := v.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(img, b, 0o644); err != nil {
				t.Fatal(err)
			}
			in, err := Probe(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			label, _ := blkidValue(t, img, "LABEL")
			if typ, _ := blkidValue(t, img, "TYPE"); typ != "vfat" {
				t.Fatalf("blkid TYPE %q, want vfat", typ)
			}
			if in.Label != label {
				t.Errorf("Probe: label %q; blkid: %q", in.Label, label)
			}
		})
	}
}
