package imgfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/repro"
)

// TestOutputContract checks, for every format, what the build relies on:
// reads of what was never written are zeros, reads see what was written
// (across chunk boundaries, after patches), reads past the end say io.EOF,
// writes outside the disk fail, the destination appears only at Commit,
// and after Commit every write, read or second Commit is an error.
func TestOutputContract(t *testing.T) {
	for _, fc := range formatCases {
		t.Run(fc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "sub", "disk.img")
			const size = 3*mib + 512
			out, err := Create(dst, fc.format, size, fc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Abort()

			got := make([]byte, 200*kib)
			if _, err := out.ReadAt(got, mib); err != nil || !isZero(got) {
				t.Fatalf("untouched read: %v, zero %v", err, isZero(got))
			}
			data := textBytesFixed(100 * kib)
			if _, err := out.WriteAt(data, mib-30*kib); err != nil {
				t.Fatal(err)
			}
			if _, err := out.WriteAt([]byte("patch"), mib+10); err != nil {
				t.Fatal(err)
			}
			copy(data[30*kib+10:], "patch")
			got = make([]byte, 120*kib)
			if _, err := out.ReadAt(got, mib-40*kib); err != nil {
				t.Fatal(err)
			}
			if !isZero(got[:10*kib]) || !bytes.Equal(got[10*kib:110*kib], data) || !isZero(got[110*kib:]) {
				t.Fatal("read back differs from what was written")
			}
			tail := make([]byte, 1024)
			if n, err := out.ReadAt(tail, size-512); n != 512 || err != io.EOF {
				t.Fatalf("read across the end: %d bytes, %v", n, err)
			}
			if _, err := out.WriteAt([]byte{1}, size); err == nil {
				t.Fatal("write past the end succeeded")
			}
			if _, err := out.WriteAt([]byte{1}, -1); err == nil {
				t.Fatal("write at a negative offset succeeded")
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("destination exists before Commit: %v", err)
			}

			if err := out.Commit(); err != nil {
				t.Fatal(err)
			}
			if _, err := out.WriteAt([]byte{1}, 0); err == nil {
				t.Fatal("WriteAt after Commit succeeded")
			}
			if _, err := out.ReadAt(got, 0); err == nil {
				t.Fatal("ReadAt after Commit succeeded")
			}
			if err := out.Commit(); err == nil {
				t.Fatal("second Commit succeeded")
			}
			out.Abort() // a no-op after Commit
			if names := dirEntries(t, filepath.Dir(dst)); !slices.Equal(names, []string{"disk.img"}) {
				t.Fatalf("folder holds %v", names)
			}
			img, err := Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			all := readAll(t, img)
			want := make([]byte, size)
			copy(want[mib-30*kib:], data)
			if !bytes.Equal(all, want) {
				t.Fatalf("committed image: %s", firstDiff(all, want))
			}
		})
	}
}

// TestAbortLeavesNothing checks that Abort removes every file it made and
// leaves an existing destination untouched, for every format.
func TestAbortLeavesNothing(t *testing.T) {
	for _, fc := range formatCases {
		t.Run(fc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "disk.img")
			if err := os.WriteFile(dst, []byte("old image"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := Create(dst, fc.format, 4*mib, fc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := out.WriteAt(textBytesFixed(mib), mib); err != nil {
				t.Fatal(err)
			}
			out.Abort()
			out.Abort()
			if err := out.Commit(); err == nil {
				t.Fatal("Commit after Abort succeeded")
			}
			if _, err := out.WriteAt([]byte{1}, 0); err == nil {
				t.Fatal("WriteAt after Abort succeeded")
			}
			b, _ := os.ReadFile(dst)
			if string(b) != "old image" {
				t.Fatalf("destination changed: %q", b)
			}
			if names := dirEntries(t, dir); !slices.Equal(names, []string{"disk.img"}) {
				t.Fatalf("folder holds %v", names)
			}
		})
	}
}

// TestCreateRejects checks that options that do not fit are errors.
func TestCreateRejects(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		size         int64
		opts         []Options
		want         string
	}{
		{"unknown format", "vdi", mib, nil, "not supported"},
		{"two options", "qcow2", mib, []Options{{}, {}}, "at most one"},
		{"size not sectors", "qcow2", mib + 1, nil, "multiple of 512"},
		{"size zero", "vmdk", 0, nil, "positive"},
		{"raw negative", "raw", -1, nil, "negative"},
		{"qcow2 compression", "qcow2", mib, []Options{{Compression: "lz4"}}, "compression"},
		{"qcow2 cluster not power of two", "qcow2", mib, []Options{{ClusterSize: 3 * 4096}}, "cluster size"},
		{"qcow2 cluster too big", "qcow2", mib, []Options{{ClusterSize: 4 * mib}}, "cluster size"},
		{"qcow2 L1 over qemu's limit", "qcow2", 256 << 30, []Options{{ClusterSize: 512}}, "L1 table"},
		{"qcow2 subformat", "qcow2", mib, []Options{{Subformat: "fixed"}}, "Subformat"},
		{"vmdk compression", "vmdk", mib, []Options{{Compression: "zlib"}}, "always deflated"},
		{"vmdk cluster size", "vmdk", mib, []Options{{ClusterSize: 4096}}, "ClusterSize"},
		{"vmdk too big", "vmdk", 3 << 40, nil, "2 TiB"},
		{"vhd subformat", "vhd", mib, []Options{{Subformat: "differencing"}}, "subformat"},
		{"vhd compression", "vhd", mib, []Options{{Compression: "zstd"}}, "Compression"},
		{"vhd too big", "vhd", 2041 << 30, nil, "2040 GiB"},
		{"azure dynamic", "vhd", mib, []Options{{Azure: true, Subformat: "dynamic"}}, "fixed"},
		{"azure not MiB", "vhd", mib + 512, []Options{{Azure: true}}, "whole MiB"},
		{"raw compression", "raw", mib, []Options{{Compression: "zlib"}}, "Compression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, err := Create(filepath.Join(dir, "x.img"), tc.format, tc.size, tc.opts...)
			if err == nil {
				out.Abort()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if names := dirEntries(t, dir); len(names) != 0 {
				t.Fatalf("folder holds %v", names)
			}
		})
	}
}

// TestIdentity checks the identity fields: derived from the content (the
// same disk written in another order gets the same ID, another disk
// another one), or taken from Options.ID; the VHD time stamp from
// Options.Epoch.
func TestIdentity(t *testing.T) {
	disks := testDisks()
	sparse, tail := disks[1], disks[2]
	given := repro.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	for _, fc := range formatCases {
		if fc.format != "vmdk" && fc.format != "vhd" {
			continue // qcow2 has no identity field
		}
		t.Run(fc.name, func(t *testing.T) {
			id := func(d *testDisk, o Options, shuffled bool) (repro.UUID, uint32) {
				path := tempPath(t, "disk")
				build(t, path, fc.format, d, o, 2, shuffled)
				return imageID(t, fc.format, path)
			}
			a, _ := id(sparse, fc.opts, false)
			b, _ := id(sparse, fc.opts, true)
			c, _ := id(tail, fc.opts, false)
			if a != b || a == c || a.IsZero() {
				t.Fatalf("content IDs: %v, shuffled %v, other disk %v", a, b, c)
			}
			o := fc.opts
			o.ID, o.Epoch = given, 1700000000
			g, stamp := id(sparse, o, false)
			want := given
			if fc.format == "vmdk" {
				// The CID is the first 4 bytes with the top bit cleared.
				want = repro.UUID{}
				binary.BigEndian.PutUint32(want[:], binary.BigEndian.Uint32(given[:4])&^(1<<31))
			} else if stamp != 1700000000-946684800 {
				t.Fatalf("time stamp %d", stamp)
			}
			if g != want {
				t.Fatalf("ID %v, want %v", g, want)
			}
		})
	}
}

// imageID reads the VHD unique ID and time stamp, or the VMDK CID (in the
// first 4 bytes), of an image kiln wrote.
func imageID(t *testing.T, format, path string) (repro.UUID, uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u repro.UUID
	switch format {
	case "vhd":
		var f vhdFooter
		if err := binary.Read(bytes.NewReader(b[len(b)-512:]), binary.BigEndian, &f); err != nil {
			t.Fatal(err)
		}
		return f.UniqueID, f.TimeStamp
	case "vmdk":
		desc := string(b[512 : 21*512])
		i := strings.Index(desc, "\nCID=")
		if i < 0 {
			t.Fatalf("no CID in %q", desc)
		}
		var cid uint32
		for _, c := range desc[i+5 : i+13] {
			cid = cid<<4 | uint32(strings.IndexRune("0123456789abcdef", c))
		}
		binary.BigEndian.PutUint32(u[:], cid)
		return u, 0
	}
	t.Fatalf("no ID in %s", format)
	return u, 0
}

// TestOpenRejects checks that what the readers do not support is an error
// rather than a raw disk or a wrong one.
func TestOpenRejects(t *testing.T) {
	qcow := func(mod func(h *qcow2Header)) []byte {
		h := qcow2Header{Magic: qcow2Magic, Version: 3, ClusterBits: 16, Size: mib, L1Size: 1, L1TableOffset: 64 * kib,
			RefcountOrder: 4, HeaderLength: qcow2HeaderLength}
		mod(&h)
		b := make([]byte, 128*kib)
		copy(b, encodeBE(&h))
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"qcow2 backing file", qcow(func(h *qcow2Header) { h.BackingFileOffset = 512; h.BackingFileSize = 4 }), "backing file"},
		{"qcow2 encrypted", qcow(func(h *qcow2Header) { h.CryptMethod = 2 }), "encrypted"},
		{"qcow2 extended L2", qcow(func(h *qcow2Header) { h.IncompatibleFeatures = qcow2IncompatExtendedL2 }), "extended L2"},
		{"qcow2 unknown feature", qcow(func(h *qcow2Header) { h.IncompatibleFeatures = 1 << 20 }), "unknown incompatible"},
		{"qcow2 small L1", qcow(func(h *qcow2Header) { h.Size = 1 << 40 }), "L1 table"},
		{"qcow2 version", qcow(func(h *qcow2Header) { h.Version = 4 }), "version"},
		{"vmdk descriptor", []byte("# Disk DescriptorFile\nversion=1\n"), "descriptor"},
		{"vhd bad checksum", func() []byte {
			f := (&vhdParams{size: mib}).footer(vhdTypeFixed, repro.UUID{})
			f.Checksum++
			return append(make([]byte, mib), encodeBE(&f)...)
		}(), "checksum"},
		{"vhd differencing", func() []byte {
			f := (&vhdParams{size: mib}).footer(vhdTypeDiff, repro.UUID{})
			return append(make([]byte, mib), encodeBE(&f)...)
		}(), "differencing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t, "img")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := Open(path)
			if err == nil {
				img.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
	// A file that is no image is raw.
	path := tempPath(t, "raw")
	os.WriteFile(path, []byte("just bytes"), 0o644)
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "raw" || img.Size() != 10 {
		t.Fatalf("%s of %d bytes", img.Format(), img.Size())
	}
	if _, err := img.ReadAt(make([]byte, 1), 10); !errors.Is(err, io.EOF) {
		t.Fatalf("read past the end: %v", err)
	}
}

// TestVHDGeometry checks the specification's CHS algorithm and the choice
// of the maximum geometry when CHS cannot hold the disk exactly.
func TestVHDGeometry(t *testing.T) {
	for _, tc := range []struct {
		size    int64
		c       uint16
		h, s    uint8
		maxGeom bool // the footer has the maximum geometry
	}{
		// 17 sectors, 4 heads, 15 cylinders: 1020 sectors exactly.
		{1020 * 512, 15, 4, 17, false},
		{mib, 30, 4, 17, true}, // 2048 sectors, CHS gives 30*4*17 = 2040
		{127 << 30, 65278, 16, 255, true},
		{65535 * 16 * 255 * 512, 65535, 16, 255, true}, // exact, and the maximum
	} {
		c, h, s := vhdGeometry(tc.size / 512)
		if c != tc.c || h != tc.h || s != tc.s {
			t.Errorf("%d bytes: CHS %d/%d/%d, want %d/%d/%d", tc.size, c, h, s, tc.c, tc.h, tc.s)
		}
		f := (&vhdParams{size: tc.size}).footer(vhdTypeFixed, repro.UUID{})
		isMax := f.Cylinders == vhdMaxCylinders && f.Heads == vhdMaxHeads && f.SectorsPerTrack == vhdMaxSPT
		if isMax != tc.maxGeom {
			t.Errorf("%d bytes: footer geometry %d/%d/%d", tc.size, f.Cylinders, f.Heads, f.SectorsPerTrack)
		}
	}
}
