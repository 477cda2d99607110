package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// inspectJSON is what TestInspectEveryFormat compares of kiln inspect
// --json: everything but the image's name and format.
type inspectJSON struct {
	Format     string          `json:"format"`
	Size       int64           `json:"size"`
	Table      string          `json:"table"`
	DiskGUID   string          `json:"disk_guid"`
	Problems   []string        `json:"problems"`
	Partitions json.RawMessage `json:"partitions"`
}

// TestInspectEveryFormat: kiln inspect reads every format through the
// same reader as diff and convert. kiln's raw, qcow2 (zlib, zstd), VMDK,
// dynamic and fixed VHD builds of one spec, and qemu-img's conversions of
// the raw build (qcow2, VMDK streamOptimized and monolithicSparse, VPC
// fixed and dynamic), all report the same partitions and filesystems as
// the raw build, with no problem. Before, inspect read the file as raw:
// it failed on every qcow2, VMDK and dynamic VHD, and found a false
// "backup GPT header" problem in a fixed VHD.
func TestInspectEveryFormat(t *testing.T) {
	judge.Need(t, "qemu-img")
	dir := t.TempDir()
	spec := mergeFixture(t, dir, "gpt")
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(spec))
	fixed := strings.Replace(spec, "output:\n", "output:\n  format: vhd\n  subformat: fixed\n", 1)
	writeFile(t, filepath.Join(dir, "fixed.yaml"), []byte(fixed))
	out := filepath.Join(dir, "out")
	raw := filepath.Join(out, "raw.img")
	images := map[string]string{"raw": raw}
	builds := []struct {
		name string
		args []string
	}{
		{"raw", []string{"build", "-q", "-o", raw}},
		{"qcow2-zlib", []string{"build", "-q", "--format", "qcow2", "--compression", "zlib"}},
		{"qcow2-zstd", []string{"build", "-q", "--format", "qcow2", "--compression", "zstd"}},
		{"vmdk", []string{"build", "-q", "--format", "vmdk"}},
		{"vhd-dynamic", []string{"build", "-q", "--format", "vhd"}},
		{"vhd-fixed", []string{"build", "-q", "fixed.yaml"}},
	}
	for _, b := range builds {
		args := b.args
		if b.name != "raw" {
			images["kiln-"+b.name] = filepath.Join(out, b.name+".img")
			args = append(args, "-o", images["kiln-"+b.name])
		}
		if _, se, code := kiln(t, dir, nil, args...); code != 0 {
			t.Fatalf("build %s: exit %d: %s", b.name, code, se)
		}
	}
	for name, args := range map[string][]string{
		"qemu-qcow2":       {"-O", "qcow2"},
		"qemu-vmdk-stream": {"-O", "vmdk", "-o", "subformat=streamOptimized"},
		"qemu-vmdk-sparse": {"-O", "vmdk", "-o", "subformat=monolithicSparse"},
		// force_size keeps the virtual size: without it qemu rounds it up
		// to its CHS geometry and the backup GPT header is no longer last.
		"qemu-vpc-fixed":   {"-O", "vpc", "-o", "subformat=fixed,force_size=on"},
		"qemu-vpc-dynamic": {"-O", "vpc", "-o", "subformat=dynamic,force_size=on"},
	} {
		images[name] = filepath.Join(out, name)
		a := append(append([]string{"convert", "-f", "raw"}, args...), raw, images[name])
		if o, code := judge.Run(t, nil, "qemu-img", a...); code != 0 {
			t.Fatalf("qemu-img %v: %s", a, o)
		}
	}
	inspect := func(t *testing.T, path string) inspectJSON {
		t.Helper()
		so, se, code := kiln(t, "", nil, "inspect", "--json", path)
		if code != 0 {
			t.Fatalf("inspect %s: exit %d: %s", filepath.Base(path), code, se)
		}
		var r inspectJSON
		if err := json.Unmarshal([]byte(so), &r); err != nil {
			t.Fatalf("%v\n%s", err, so)
		}
		return r
	}
	want := inspect(t, raw)
	var parts []struct {
		FS *struct{ Type string } `json:"filesystem"`
	}
	json.Unmarshal(want.Partitions, &parts)
	if want.Table != "gpt" || len(parts) != 2 || parts[0].FS == nil || parts[0].FS.Type != "vfat" || parts[1].FS == nil || parts[1].FS.Type != "ext4" || len(want.Problems) != 0 {
		t.Fatalf("the raw build: %+v %s", want, want.Partitions)
	}
	wantFormat := map[string]string{"raw": "raw", "kiln-qcow2-zlib": "qcow2", "kiln-qcow2-zstd": "qcow2", "kiln-vmdk": "vmdk",
		"kiln-vhd-dynamic": "vhd", "kiln-vhd-fixed": "vhd", "qemu-qcow2": "qcow2", "qemu-vmdk-stream": "vmdk",
		"qemu-vmdk-sparse": "vmdk", "qemu-vpc-fixed": "vhd", "qemu-vpc-dynamic": "vhd"}
	for _, name := range slices.Sorted(maps.Keys(images)) {
		path := images[name]
		t.Run(name, func(t *testing.T) {
			got := inspect(t, path)
			if got.Format != wantFormat[name] {
				t.Errorf("format %q, want %q", got.Format, wantFormat[name])
			}
			if len(got.Problems) != 0 {
				t.Errorf("problems: %q", got.Problems)
			}
			got.Format, want.Format = "", ""
			if !reflect.DeepEqual(got, want) {
				t.Errorf("inspect differs from the raw build's:\n%+v %s\nwant\n%+v %s", got, got.Partitions, want, want.Partitions)
			}
		})
	}
}

// TestForeignFormatsRefused: VHDX, VDI, QED and Parallels images and a
// VHD with the old 511-byte footer are refused by every command that
// reads an image, naming the format, and convert writes nothing. Before,
// convert copied each as a raw disk and exited 0.
func TestForeignFormatsRefused(t *testing.T) {
	judge.Need(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	data := make([]byte, 4<<20)
	copy(data[1<<20:], strings.Repeat("some data ", 1000))
	writeFile(t, raw, data)
	imgs := map[string]string{}
	for _, f := range []string{"vhdx", "vdi", "qed", "parallels"} {
		imgs[f] = filepath.Join(dir, "img."+f)
		if o, code := judge.Run(t, nil, "qemu-img", "convert", "-f", "raw", "-O", f, raw, imgs[f]); code != 0 {
			t.Fatal(o)
		}
	}
	// Virtual PC before 5.0: a fixed VHD whose footer is 511 bytes.
	imgs["511-byte footer"] = filepath.Join(dir, "old.vhd")
	writeFile(t, imgs["511-byte footer"], append(data, vhdFooter(4<<20, 2, 0)[:511]...))
	names := map[string]string{"vhdx": "VHDX", "vdi": "VDI", "qed": "QED", "parallels": "Parallels", "511-byte footer": "511-byte footer"}
	for f, path := range imgs {
		t.Run(f, func(t *testing.T) {
			for _, args := range [][]string{
				{"convert", path, filepath.Join(dir, "out-"+f), "--format", "raw"},
				{"inspect", path},
				{"diff", path, raw},
			} {
				_, se, code := kiln(t, "", nil, args...)
				if code != 1 || !strings.Contains(se, names[f]) || !strings.Contains(se, path) {
					t.Errorf("kiln %s: exit %d, want 1 and a message naming %s and the file: %s", args[0], code, names[f], se)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out-"+f)); !os.IsNotExist(err) {
				t.Errorf("convert wrote an output (%v)", err)
			}
		})
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".kiln-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// vhdFooter is a VHD footer (big-endian, checksum right) of a disk of
// size bytes and type typ (2 fixed, 3 dynamic), the dynamic header at
// dataOffset.
func vhdFooter(size uint64, typ uint32, dataOffset uint64) []byte {
	b := make([]byte, 512)
	copy(b, "conectix")
	binary.BigEndian.PutUint32(b[8:], 2)
	binary.BigEndian.PutUint32(b[12:], 0x00010000)
	if typ == 2 {
		dataOffset = ^uint64(0)
	}
	binary.BigEndian.PutUint64(b[16:], dataOffset)
	binary.BigEndian.PutUint64(b[40:], size)
	binary.BigEndian.PutUint64(b[48:], size)
	binary.BigEndian.PutUint32(b[56:], 0xffff10ff)
	binary.BigEndian.PutUint32(b[60:], typ)
	binary.BigEndian.PutUint32(b[64:], vhdSum(b))
	return b
}

// vhdSum is the VHD checksum: the one's complement of the byte sum.
func vhdSum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return ^s
}

// craftedImages are headers of a few KiB that asked kiln for gigabytes.
func craftedImages() map[string]struct {
	data  []byte
	field string
} {
	vmdk := func(capacity, grain uint64, gtes uint32, gd uint64, flags uint32, compress uint16) []byte {
		b := make([]byte, 8192)
		copy(b, "KDMV")
		binary.LittleEndian.PutUint32(b[4:], 1)
		binary.LittleEndian.PutUint32(b[8:], flags|1)
		binary.LittleEndian.PutUint64(b[12:], capacity)
		binary.LittleEndian.PutUint64(b[20:], grain)
		binary.LittleEndian.PutUint32(b[44:], gtes)
		binary.LittleEndian.PutUint64(b[56:], gd)
		copy(b[73:], "\n \r\n")
		binary.LittleEndian.PutUint16(b[77:], compress)
		return b
	}
	marker := vmdk(1<<21, 1<<21, 512, 8, 1<<16|1<<17, 1)
	binary.LittleEndian.PutUint32(marker[8*512:], 9)
	binary.LittleEndian.PutUint32(marker[9*512:], 14)
	binary.LittleEndian.PutUint32(marker[14*512+8:], 2<<30-1)
	bat := func(size uint64, bs, n uint32, tableOffset uint64) []byte {
		dh := make([]byte, 1024)
		copy(dh, "cxsparse")
		binary.BigEndian.PutUint64(dh[8:], ^uint64(0))
		binary.BigEndian.PutUint64(dh[16:], tableOffset)
		binary.BigEndian.PutUint32(dh[24:], 0x00010000)
		binary.BigEndian.PutUint32(dh[28:], n)
		binary.BigEndian.PutUint32(dh[32:], bs)
		binary.BigEndian.PutUint32(dh[36:], vhdSum(dh))
		ft := vhdFooter(size, 3, 512)
		return append(append(append([]byte(nil), ft...), dh...), ft...)
	}
	return map[string]struct {
		data  []byte
		field string
	}{
		"vmdk-gd-16GiB":     {vmdk(1<<32-1, 1, 1, 1, 0, 0), "gdOffset"},
		"vmdk-grain-marker": {marker, "grainSize"},
		"vhd-bat-17GB":      {bat(0xff000000*512, 512, 0xff000000, 1536), "Table Offset"},
	}
}

// TestCraftedHeadersPeakRSS runs kiln inspect, convert and diff on
// headers of a few KiB that made kiln allocate 16 to 17 GB or, for a VMDK
// grain marker, 1 to 2 GB. As a process with 1 GiB of address space
// (ulimit -v), where such an allocation is a fatal out-of-memory (exit
// 2), as it was before the bounds, each must be refused with exit 1 and an
// error that names the file and the header field. In this process, each
// command must allocate less than testkit.ReadBound (256 MiB) in all, an
// upper bound on its peak heap. (The peak RSS wait4 reports for a child
// of a Go process includes the parent's, so it is not what is checked.)
func TestCraftedHeadersPeakRSS(t *testing.T) {
	dir := t.TempDir()
	for name, c := range craftedImages() {
		path := filepath.Join(dir, name)
		writeFile(t, path, c.data)
		for _, args := range [][]string{
			{"inspect", path},
			{"convert", path, filepath.Join(dir, "out"), "--format", "qcow2"},
			{"diff", path, path},
		} {
			cmd := exec.Command("sh", append([]string{"-c", `ulimit -v 1048576 && exec "$0" "$@"`, kilnBin}, args...)...)
			var se strings.Builder
			cmd.Stderr = &se
			cmd.Run()
			if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(se.String(), path) || !strings.Contains(se.String(), c.field) {
				t.Errorf("kiln %s %s: exit %d, want 1 and an error naming the file and %s: %s", args[0], name, cmd.ProcessState.ExitCode(), c.field, se.String())
			}
			var code int
			var out, errOut strings.Builder
			allocs := testkit.AllocatedBy(func() { code = run(context.Background(), args, &out, &errOut) })
			t.Logf("kiln %s %s: exit %d, allocated %d KiB: %s", args[0], name, code, allocs>>10, strings.TrimSpace(errOut.String()))
			if allocs > testkit.ReadBound {
				t.Errorf("kiln %s %s allocated %d MiB", args[0], name, allocs>>20)
			}
			if code != 1 {
				t.Errorf("kiln %s %s in process: exit %d", args[0], name, code)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("convert wrote an output (%v)", err)
	}
}

// TestRunFormat: kiln run gives QEMU the format imgfmt.Open finds, in
// QEMU's name. Before, pkg/qemu knew only qcow2's magic and gave QEMU
// every VMDK and VHD as raw (and a VHDX too).
func TestRunFormat(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	data := make([]byte, 1<<20)
	copy(data, "boot sector")
	writeFile(t, raw, data)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "qcow2"}, "qcow2"},
		{[]string{"--format", "vmdk"}, "vmdk"},
		{[]string{"--format", "vhd"}, "vpc"},
		{[]string{"--format", "vhd", "--subformat", "fixed"}, "vpc"},
		{[]string{"--format", "raw"}, "raw"},
	} {
		out := filepath.Join(dir, strings.Join(c.args, ""))
		if _, se, code := kiln(t, "", nil, append([]string{"convert", raw, out}, c.args...)...); code != 0 {
			t.Fatal(se)
		}
		if got, err := qemuFormat(out); got != c.want {
			t.Errorf("%v: %q (%v), want %s", c.args, got, err, c.want)
		}
	}
	vhdx := filepath.Join(dir, "a.vhdx")
	writeFile(t, vhdx, append([]byte("vhdxfile"), data...))
	if got, err := qemuFormat(vhdx); err == nil || !strings.Contains(err.Error(), "VHDX") {
		t.Errorf("a VHDX: %q (%v)", got, err)
	}
}
