package spec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/repro"
)

// TestErrorLines: every value the spec parses is refused with the line of
// its own key, as a *spec.Error (exit 2). Before, disk.size, disk.free,
// disk.signature, a partition's size, label, mount and filesystem, a
// layer's sha256 and modes, chmod entries and boot.uefi named the line of
// their mapping; epoch and every output: error had no line at all; and
// disk.size: 0 and malformed boot patterns were accepted, and an unknown
// partition type or disk.arch was found only when the partitions were
// planned, after the layers were merged, with the line of disk: (0 became auto,
// a bad pattern failed only after the layers were merged).
func TestErrorLines(t *testing.T) {
	const bootAdd = "boot:\n  loader: uki\n  kernel: /boot/vmlinuz-*\n  paths:\n    stub: /usr/lib/stub.efi\n" // lines 24-28
	for _, tc := range []struct {
		name, from, to string
		boot           bool // append bootAdd first
		line           int
		want           string
	}{
		{"epoch", "epoch: 1700000000", "epoch: -1", false, 2, "epoch: must not be negative"},
		{"layer sha256", "sha256: 9f2c9f2c", "sha256: 9f2c9f2x", false, 5, "layers[0].sha256"},
		{"chmod entry", "  - path: layers/demo/overlay/\n", "  - path: layers/demo/overlay/\n    chmod:\n      /a: \"0644\"\n      /b: \"0999\"\n", false, 9, `/b: "0999" is not an octal mode`},
		{"disk size", "size: 1GiB", "size: 1XiB", false, 9, "disk.size: invalid size"},
		{"disk size zero", "size: 1GiB", "size: 0", false, 9, "disk.size: must not be zero"},
		{"disk free", "size: 1GiB", "size: auto\n  free: lots", false, 10, "disk.free: invalid size"},
		{"disk signature", "size: 1GiB", "size: 1GiB\n  signature: 1234567", false, 10, `disk.signature: "1234567": want 8 hex digits`},
		{"disk signature not hex", "size: 1GiB", "size: 1GiB\n  signature: 1234567g", false, 10, "want 8 hex digits"},
		{"partition size", "size: 64MiB", "size: 64 megs", false, 13, "disk.partitions[0].size"},
		{"partition size zero", "size: 64MiB", "size: 0MiB", false, 13, "must not be zero"},
		{"partition type", "type: root", "type: rooot", false, 17, `disk.partitions[1].type: unknown partition type "rooot"`},
		{"partition type for no arch", "type: root", "type: root-vax", false, 17, `disk.partitions[1].type: unknown partition type`},
		{"disk arch", "size: 1GiB", "size: 1GiB\n  arch: vax", false, 10, `disk.arch: unknown architecture "vax"`},
		{"partition filesystem", "filesystem: vfat", "filesystem: fat32", false, 14, "disk.partitions[0].filesystem"},
		{"partition mount", "mount: /boot/efi", "mount: boot/efi", false, 15, "disk.partitions[0].mount"},
		{"partition label", "mount: /boot/efi", "mount: /boot/efi\n      label: TOOLONGFORFAT", false, 16, "disk.partitions[0].label"},
		{"volume id", "mount: /boot/efi", "mount: /boot/efi\n      volume_id: 0x1234", false, 16, `volume_id: "0x1234": want 8 hex digits`},
		{"output format", "format: raw", "format: iso", false, 23, "output.format"},
		{"output compression", "format: raw", "format: qcow2\n  compression: lz4", false, 24, "output.compression"},
		{"output cluster size", "format: raw", "format: qcow2\n  cluster_size: 3KiB", false, 24, "output.cluster_size"},
		{"output subformat", "format: raw", "format: vhd\n  subformat: sparse", false, 24, "output.subformat"},
		{"output azure", "format: raw", "format: vhd\n  subformat: dynamic\n  azure: true", false, 25, "output.azure"},
		{"boot loader", "loader: uki", "loader: lilo", true, 25, "boot.loader"},
		{"boot uefi", "loader: uki", "loader: uki\n  uefi: grub", true, 26, "boot.uefi"},
		{"boot kernel pattern", "kernel: /boot/vmlinuz-*", "kernel: /boot/vmlinuz-[", true, 26, `boot.kernel: "/boot/vmlinuz-[" is not a valid pattern`},
		{"boot initrd pattern", "kernel: /boot/vmlinuz-*", "kernel: /boot/vmlinuz-*\n  initrd: /boot/initrd.img-[\\", true, 27, "boot.initrd"},
		{"boot path pattern", "stub: /usr/lib/stub.efi", "stub: /usr/lib/[stub.efi", true, 28, "boot.paths.stub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := good
			if tc.boot {
				src += bootAdd
			}
			bad := strings.Replace(src, tc.from, tc.to, 1)
			if bad == src {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			_, err := Parse("kiln.yaml", []byte(bad))
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), want a *spec.Error", err, err)
			}
			if se.Line != tc.line || !strings.Contains(se.Msg, tc.want) {
				t.Fatalf("got %v, want line %d and %q", err, tc.line, tc.want)
			}
		})
	}
}

// TestOutputLineFromCommandLine: a value the command line set is not
// blamed on the spec's line for that key.
func TestOutputLineFromCommandLine(t *testing.T) {
	s, err := Parse("kiln.yaml", []byte(strings.Replace(good, "format: raw", "format: qcow2\n  compression: zstd", 1)))
	if err != nil {
		t.Fatal(err)
	}
	s.Output.Compression = "lz4" // as kiln build --compression would
	var se *Error
	if err := s.ValidateOutput(); !errors.As(err, &se) || se.Line != 0 {
		t.Fatalf("got %v, want a spec error without a line", err)
	}
	s.Output.Compression = "zstd"
	if err := s.ValidateOutput(); err != nil {
		t.Fatal(err)
	}
}

// TestParsedValues: IDs and policies reach the build as values, parsed
// once here.
func TestParsedValues(t *testing.T) {
	src := strings.Replace(good, "  size: 1GiB\n", "  size: 1GiB\n  guid: 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n  signature: 0x1A2B3C4D\n", 1)
	src = strings.Replace(src, "      mount: /boot/efi\n", "      mount: /boot/efi\n      volume_id: DEADbeef\n", 1)
	src = strings.Replace(src, "      mount: /\n", "      mount: /\n      guid: 11111111-2222-3333-4444-555555555555\n      uuid: 21111111-2222-3333-4444-555555555555\n      hash_seed: 31111111-2222-3333-4444-555555555555\n      journal_uuid: 41111111-2222-3333-4444-555555555555\n", 1)
	src = strings.Replace(src, "  - path: layers/demo/overlay/\n", "  - path: layers/demo/overlay/\n    modes: preserve\n", 1)
	s, err := Parse("kiln.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	uuid := func(v string) repro.UUID {
		u, err := repro.ParseUUID(v)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	d := s.Disk
	if d.GUIDValue == nil || *d.GUIDValue != uuid("4f68bce3-e8cd-4db1-96e7-fbcaf984b709") {
		t.Errorf("disk GUID %v", d.GUIDValue)
	}
	if d.SignatureValue == nil || *d.SignatureValue != 0x1a2b3c4d {
		t.Errorf("disk signature %v", d.SignatureValue)
	}
	esp, root := d.Partitions[0], d.Partitions[1]
	if d.TableValue != disk.GPT || esp.TypeValue.Name != "esp" || root.TypeValue.Name != "root-x86-64" {
		t.Errorf("table %v, types %+v, %+v", d.TableValue, esp.TypeValue, root.TypeValue)
	}
	if esp.VolumeIDValue == nil || *esp.VolumeIDValue != 0xdeadbeef || esp.GUIDValue != nil {
		t.Errorf("esp: volume ID %v, GUID %v", esp.VolumeIDValue, esp.GUIDValue)
	}
	for _, f := range []struct {
		got  *repro.UUID
		want string
	}{
		{root.GUIDValue, "11111111-2222-3333-4444-555555555555"},
		{root.UUIDValue, "21111111-2222-3333-4444-555555555555"},
		{root.HashSeedValue, "31111111-2222-3333-4444-555555555555"},
		{root.JournalUUIDValue, "41111111-2222-3333-4444-555555555555"},
	} {
		if f.got == nil || *f.got != uuid(f.want) {
			t.Errorf("root: %v, want %s", f.got, f.want)
		}
	}
	if root.VolumeIDValue != nil || !s.Layers[1].PreserveModes || s.Layers[0].PreserveModes {
		t.Errorf("root volume ID %v, layers' preserve %v %v", root.VolumeIDValue, s.Layers[0].PreserveModes, s.Layers[1].PreserveModes)
	}
	// Parsed values are not part of the spec's identity (Digest, IDSeed):
	// only the YAML's fields are.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Value", "KeyLines", "ChmodLines", "PreserveModes", "Line"} {
		if strings.Contains(string(b), name) {
			t.Errorf("the spec's canonical form has %s: %s", name, b)
		}
	}
}
