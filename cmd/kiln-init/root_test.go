package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/repro"
)

const mib = 1 << 20

// fakeSys lays out what the scanner reads: /sys/class/block/<name>/size
// (and <disk>/<part>/partition), and /dev/<name>, where a disk's node is
// an image file with a partition table written by pkg/disk.
type fakeSys struct {
	sys, dev string
}

func newFakeSys(t *testing.T) *fakeSys {
	d := t.TempDir()
	f := &fakeSys{sys: filepath.Join(d, "sys/class/block"), dev: filepath.Join(d, "dev")}
	for _, p := range []string{f.sys, f.dev} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// addDisk writes the disk's image and its sysfs entries; partitions lists
// which of the layout's partitions the kernel shows (with their nodes).
func (f *fakeSys) addDisk(t *testing.T, name string, l *disk.Layout, partitions ...int) {
	t.Helper()
	img, err := os.Create(filepath.Join(f.dev, name))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Truncate(l.Size); err != nil {
		t.Fatal(err)
	}
	if err := disk.Write(img, l); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.sys, name, "size"), fmt.Sprintf("%d\n", l.Size/512))
	for _, n := range partitions {
		part := fmt.Sprintf("%s%d", name, n)
		if strings.HasPrefix(name, "nvme") {
			part = fmt.Sprintf("%sp%d", name, n)
		}
		writeFile(t, filepath.Join(f.sys, name, part, "partition"), fmt.Sprintf("%d\n", n))
		writeFile(t, filepath.Join(f.sys, part, "partition"), fmt.Sprintf("%d\n", n))
		writeFile(t, filepath.Join(f.sys, part, "size"), "2048\n")
		writeFile(t, filepath.Join(f.dev, part), "")
	}
}

func plan(t *testing.T, table disk.Table, seed string) *disk.Layout {
	t.Helper()
	parts := []disk.PartitionSpec{
		{Name: "esp", Type: "esp", Size: 8 * mib, GUID: repro.Derive(seed, "esp")},
		{Name: "root", Type: "root", Rest: true, GUID: repro.Derive(seed, "root")},
	}
	if table == disk.MBR {
		parts[1].Type = "linux"
	}
	l, err := disk.Plan(table, 32*mib, parts, disk.PlanOptions{DiskGUID: repro.Derive(seed, "disk"), DiskSignature: repro.Derive32(seed, "sig")})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestScannerFind(t *testing.T) {
	gptA, gptB, mbr := plan(t, disk.GPT, "a"), plan(t, disk.GPT, "b"), plan(t, disk.MBR, "m")
	f := newFakeSys(t)
	f.addDisk(t, "vda", gptA, 1, 2)
	f.addDisk(t, "nvme0n1", gptB, 1) // partition 2 not shown by the kernel yet
	f.addDisk(t, "sda", mbr, 1, 2)
	writeFile(t, filepath.Join(f.sys, "sr0", "size"), "0\n") // an empty drive: skipped
	writeFile(t, filepath.Join(f.sys, "vdz", "size"), "2048\n")
	writeFile(t, filepath.Join(f.dev, "vdz"), "") // a disk that cannot be read

	mbrUUID := mbr.PartUUID(mbr.Partitions[1])
	if mbrUUID != fmt.Sprintf("%08x-02", repro.Derive32("m", "sig")) {
		t.Fatalf("BUG: pkg/disk says the MBR PARTUUID is %s", mbrUUID)
	}
	tests := []struct {
		name  string
		root  string // the value of root=
		want  string // device found, or "" for none
		tried string // in the report when not found
	}{
		{"gpt root partition", "PARTUUID=" + gptA.Partitions[1].GUID.String(), "vda2", ""},
		{"gpt upper case", "PARTUUID=" + strings.ToUpper(gptA.Partitions[0].GUID.String()), "vda1", ""},
		{"nvme partition name", "PARTUUID=" + gptB.Partitions[0].GUID.String(), "nvme0n1p1", ""},
		{"mbr", "PARTUUID=" + mbrUUID, "sda2", ""},
		{"partition not in sysfs yet", "PARTUUID=" + gptB.Partitions[1].GUID.String(), "",
			"nvme0n1 partition 2 has PARTUUID " + gptB.Partitions[1].GUID.String() + ", but the kernel shows no such partition"},
		{"disk guid is not a partuuid", "PARTUUID=" + gptA.DiskGUID.String(), "", ""},
		{"mbr number mismatch", "PARTUUID=" + strings.TrimSuffix(mbrUUID, "2") + "3", "", ""},
		{"dev path", "/dev/vda1", "vda1", ""},
		{"dev path missing", "/dev/vdq1", "", "/dev/vdq1: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, err := parseRoot(tc.root)
			if err != nil {
				t.Fatal(err)
			}
			if root.Kind == rootDevPath { // the fake tree's /dev
				root.Path = filepath.Join(f.dev, strings.TrimPrefix(root.Path, "/dev/"))
			}
			s := newScanner(f.sys, f.dev)
			dev, ok := s.find(root)
			if tc.want == "" {
				if ok {
					t.Fatalf("found %s, want nothing", dev)
				}
				if tc.tried != "" && !strings.Contains(strings.Join(s.report(), "\n"), tc.tried) {
					t.Errorf("report lacks %q:\n%s", tc.tried, strings.Join(s.report(), "\n"))
				}
				return
			}
			if !ok || dev != filepath.Join(f.dev, tc.want) {
				t.Fatalf("found %q (%v), want %s", dev, ok, tc.want)
			}
		})
	}

	// The report names every disk, its table and partitions.
	s := newScanner(f.sys, f.dev)
	s.find(rootSpec{Kind: rootPartUUID, PartUUID: "00000000-01"})
	rep := strings.Join(s.report(), "\n")
	t.Logf("report:\n%s", rep)
	for _, want := range []string{
		"block devices: nvme0n1 nvme0n1p1 sda sda1 sda2 sr0 vda vda1 vda2 vdz",
		fmt.Sprintf("vda (%d bytes): GPT disk GUID %s", 32*mib, gptA.DiskGUID),
		fmt.Sprintf("partition 2 PARTUUID=%s \"root\"", gptA.Partitions[1].GUID),
		"(vda2)",
		fmt.Sprintf("partition 2 PARTUUID=%s \"root\" %d bytes (not in sysfs)", gptB.Partitions[1].GUID, gptB.Partitions[1].Size),
		fmt.Sprintf("sda (%d bytes): MBR signature %08x", 32*mib, mbr.DiskSignature),
		"partition 2 PARTUUID=" + mbrUUID,
		"vdz (1048576 bytes): no partition table read: ",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(rep, "sr0 (") {
		t.Error("report reads the empty drive sr0")
	}
}

func TestScannerNoDevices(t *testing.T) {
	f := newFakeSys(t)
	s := newScanner(f.sys, f.dev)
	if dev, ok := s.find(rootSpec{Kind: rootPartUUID, PartUUID: "00000000-01"}); ok {
		t.Fatalf("found %s in an empty sysfs", dev)
	}
	if rep := strings.Join(s.report(), "\n"); !strings.Contains(rep, "no block device at all") {
		t.Errorf("report %q does not say there is no block device", rep)
	}
}
