package spec

import (
	"errors"
	"strings"
	"testing"
)

const good = `
epoch: 1700000000          # comment
layers:
  - path: layers/demo/base.tar.xz
    sha256: 9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c
  - path: layers/demo/overlay/
disk:
  table: gpt
  size: 1GiB
  partitions:
    - name: esp
      type: esp
      size: 64MiB
      filesystem: vfat
      mount: /boot/efi
    - name: root
      type: root
      filesystem: ext4
      size: rest
      mount: /
output:
  path: out/demo.img
  format: raw
`

func TestParseGood(t *testing.T) {
	s, err := Parse("dir/kiln.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if *s.Epoch != 1700000000 || len(s.Layers) != 2 || s.Layers[1].Line != 6 || s.Disk.SizeBytes != 1<<30 {
		t.Fatalf("parsed %+v", s)
	}
	p := s.Disk.Partitions
	if p[0].SizeBytes != 64<<20 || !p[1].Rest || p[0].Line != 11 || p[1].Line != 16 {
		t.Fatalf("partitions %+v", p)
	}
	if s.Resolve("layers/x") != "dir/layers/x" {
		t.Fatalf("resolve: %s", s.Resolve("layers/x"))
	}
	// The digest ignores comments, key order and the output path.
	other := strings.Replace(good, "# comment", "", 1)
	other = strings.Replace(other, "path: out/demo.img", "path: elsewhere.img", 1)
	other = strings.Replace(other, "  table: gpt\n  size: 1GiB\n", "  size: 1GiB\n  table: gpt\n", 1)
	s2, err := Parse("elsewhere/kiln.yaml", []byte(other))
	if err != nil {
		t.Fatal(err)
	}
	if s.Digest() != s2.Digest() {
		t.Fatal("digest depends on formatting or output path")
	}
	s3, _ := Parse("kiln.yaml", []byte(strings.Replace(good, "64MiB", "65MiB", 1)))
	if s3.Digest() == s.Digest() {
		t.Fatal("digest ignores the layout")
	}
	// Time is not identity: another epoch keeps every derived ID, as
	// SOURCE_DATE_EPOCH (not part of the spec) does.
	s4, _ := Parse("kiln.yaml", []byte(strings.Replace(good, "epoch: 1700000000", "epoch: 1800000000", 1)))
	if s4.Digest() != s.Digest() {
		t.Fatal("the epoch changes the digest")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown top key", "epoch:", "epoc:", `kiln.yaml:2: unknown key "epoc" in the spec`},
		{"unknown partition key", "      mount: /boot/efi", "      mount: /boot/efi\n      mountt: /x", `kiln.yaml:16: unknown key "mountt" in disk.partitions[0]`},
		{"unknown layer key", "  - path: layers/demo/overlay/", "  - path: layers/demo/overlay/\n    sha: x", `kiln.yaml:7: unknown key "sha"`},
		{"bad size", "size: 64MiB", "size: 64XB", `kiln.yaml:13: disk.partitions[0].size: invalid size "64XB"`},
		{"two rests", "size: 64MiB", "size: rest", "kiln.yaml:19: disk.partitions[1].size: only one partition may take the rest"},
		{"bad table", "table: gpt", "table: apm", `kiln.yaml:8: disk.table: "apm" is not one of gpt, mbr`},
		{"bad fs", "filesystem: vfat", "filesystem: ntfs", `disk.partitions[0].filesystem: "ntfs"`},
		{"unclean mount", "mount: /boot/efi", "mount: /boot/../efi", "must be a clean absolute path"},
		{"duplicate mount", "mount: /boot/efi", "mount: /", "already the mount of esp"},
		{"duplicate name", "name: esp", "name: root", `"root" is used twice`},
		{"bad sha", "sha256: 9f2c9f2c", "sha256: zz2c9f2c", "layers[0].sha256: want 64 hex digits"},
		{"epoch type", "epoch: 1700000000", "epoch: soon", "kiln.yaml:2: cannot unmarshal"},
		{"layers not a list", "layers:\n  - path: layers/demo/base.tar.xz", "layers: x\nold:\n  - path: layers/demo/base.tar.xz", "layers: want a list"},
		{"bad yaml", "disk:", "disk: [", "kiln.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(good, tc.from, tc.to, 1)
			if src == good {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			_, err := Parse("kiln.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "1KiB": 1024, "64MiB": 64 << 20, "1GiB": 1 << 30, "1G": 1 << 30, "1.5GiB": 3 << 29, "2TB": 2e12, "10MB": 1e7} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "x", "1XiB", "99999999999TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestParseBoot(t *testing.T) {
	src := good + "boot:\n  loader: hybrid\n  kernel: /boot/vmlinuz-*\n  cmdline: console=ttyS0\n  paths:\n    mbr: /x/mbr.bin\n"
	s, err := Parse("kiln.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if b := s.Boot; b.Loader != "hybrid" || b.Initrd != "kiln" || b.UEFI != "systemd-boot" || b.Paths.MBR != "/x/mbr.bin" || b.Line != 25 {
		t.Fatalf("boot: %+v", b)
	}
	for _, tc := range []struct{ add, want string }{
		{"boot:\n  loader: grub\n", `kiln.yaml:25: boot.loader: "grub" is not one of`},
		{"boot:\n  loader: uki\n", "boot.kernel: missing"},
		{"boot:\n  loader: uki\n  kernel: /k\n  uefi: grub\n", "boot.uefi"},
		{"boot:\n  loader: uki\n  kernel: /k\n  paths:\n    lilo: /x\n", `unknown key "lilo" in boot.paths`},
	} {
		if _, err := Parse("kiln.yaml", []byte(good+tc.add)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.add, err, tc.want)
		}
	}
	mbr := strings.Replace(good, "table: gpt", "table: mbr", 1) + "boot:\n  loader: hybrid\n  kernel: /k\n"
	if _, err := Parse("kiln.yaml", []byte(mbr)); err == nil || !strings.Contains(err.Error(), "hybrid needs disk.table gpt") {
		t.Errorf("hybrid on mbr: %v", err)
	}
}

// TestParseIDs: every UUID or GUID the spec gives is checked when the spec
// is read, and a bad one is refused with the line of its key. Before, a
// malformed type GUID was found only after the layers were merged, with
// the line of disk:, and a zero UUID was taken (an ext4 hash seed or
// journal UUID silently replaced by a derived one), as were IDs on a
// filesystem or table that has no such ID.
func TestParseIDs(t *testing.T) {
	const zero = "00000000-0000-0000-0000-000000000000"
	tests := []struct {
		name, from, to, want string
	}{
		{"type GUID with a bad digit", "type: root", "type: 4f68bce3-e8cd-4db1-96e7-fbcaf984b7zz", `kiln.yaml:17: disk.partitions[1].type: invalid UUID`},
		{"type GUID too short", "type: root", "type: 4f68bce3-e8cd-4db1-96e7-fbcaf984b70", `kiln.yaml:17: disk.partitions[1].type: invalid UUID`},
		{"type GUID in braces", "type: root", "type: '{4f68bce3-e8cd-4db1-96e7-fbcaf984b709}'", `kiln.yaml:17: disk.partitions[1].type: invalid UUID`},
		{"type GUID zero", "type: root", "type: " + zero, `kiln.yaml:17: disk.partitions[1].type: "` + zero + `": the zero UUID means none`},
		{"partition guid", "      mount: /\n", "      mount: /\n      guid: 4f68bce3e8cd-4db1-96e7-fbcaf984b709-\n", `kiln.yaml:21: disk.partitions[1].guid: invalid UUID`},
		{"partition guid zero", "      mount: /\n", "      mount: /\n      guid: " + zero + "\n", `kiln.yaml:21: disk.partitions[1].guid: "` + zero},
		{"fs uuid", "      mount: /\n", "      mount: /\n\n      uuid: 4f68bce3-e8cd-4db1-96e7-fbcaf984b7090\n", `kiln.yaml:22: disk.partitions[1].uuid: invalid UUID`},
		{"hash seed zero", "      mount: /\n", "      mount: /\n      hash_seed: " + zero + "\n", `kiln.yaml:21: disk.partitions[1].hash_seed: "` + zero},
		{"journal uuid", "      mount: /\n", "      mount: /\n      journal_uuid: x\n", `kiln.yaml:21: disk.partitions[1].journal_uuid: invalid UUID`},
		{"disk guid", "  size: 1GiB\n", "  size: 1GiB\n  guid: 4f68bce3-e8cd-4db1-96e7-fbcaf984b70g\n", `kiln.yaml:10: disk.guid: invalid UUID`},
		{"disk guid zero", "  size: 1GiB\n", "  size: 1GiB\n  guid: " + zero + "\n", `kiln.yaml:10: disk.guid: "` + zero},
		{"uuid on vfat", "      mount: /boot/efi\n", "      mount: /boot/efi\n      uuid: 4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n", `kiln.yaml:16: disk.partitions[0].uuid: only an ext4 or erofs filesystem has one`},
		{"volume_id on ext4", "      mount: /\n", "      mount: /\n      volume_id: 1234abcd\n", `kiln.yaml:21: disk.partitions[1].volume_id: only a vfat filesystem has one`},
		{"partition guid on mbr", "      mount: /\n", "      mount: /\n      guid: 4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n", `only a GPT partition has a GUID`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(good, tc.from, tc.to, 1)
			if src == good {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			if tc.name == "partition guid on mbr" {
				src = strings.Replace(src, "table: gpt", "table: mbr", 1)
			}
			_, err := Parse("kiln.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("%T is not a *spec.Error (exit 2)", err)
			}
		})
	}
	// Well-formed IDs, any case, are taken.
	ok := strings.Replace(good, "type: root", "type: 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", 1)
	ok = strings.Replace(ok, "      mount: /\n", "      mount: /\n      uuid: 4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n      guid: 4f68bce3-e8cd-4db1-96e7-fbcaf984b70a\n", 1)
	if _, err := Parse("kiln.yaml", []byte(ok)); err != nil {
		t.Fatal(err)
	}
	// An erofs filesystem takes a uuid and a label of 16 bytes, not 17.
	ero := strings.Replace(ok, "filesystem: ext4", "filesystem: erofs", 1)
	if ero == ok {
		t.Fatal("no ext4 partition to make erofs")
	}
	if _, err := Parse("kiln.yaml", []byte(ero)); err != nil {
		t.Fatal(err)
	}
	long := strings.Replace(ero, "      mount: /\n", "      mount: /\n      label: 0123456789abcdefg\n", 1)
	if _, err := Parse("kiln.yaml", []byte(long)); err == nil || !strings.Contains(err.Error(), "an erofs label has at most 16 bytes") {
		t.Errorf("a 17-byte erofs label: %v", err)
	}
}

// TestParseLayerModes: modes: and chmod: of a layer.
func TestParseLayerModes(t *testing.T) {
	layer := "  - path: layers/demo/overlay/\n"
	s, err := Parse("kiln.yaml", []byte(strings.Replace(good, layer, layer+"    modes: preserve\n    chmod:\n      /etc/shadow: \"0640\"\n      /tmp: \"1777\"\n      /: 755\n      /root: 0700\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	l := s.Layers[1]
	if l.Modes != "preserve" || len(l.ChmodModes) != 4 || l.ChmodModes["root"] != 0o700 || l.ChmodModes["etc/shadow"] != 0o640 || l.ChmodModes["tmp"] != 0o1777 || l.ChmodModes["."] != 0o755 {
		t.Fatalf("layer %+v", l)
	}
	base, _ := Parse("kiln.yaml", []byte(good))
	if base.Digest() == s.Digest() {
		t.Error("modes and chmod do not change the spec's digest")
	}
	for _, tc := range []struct{ add, want string }{
		{"    modes: umask\n", `kiln.yaml:7: layers[1].modes: "umask" is not one of git, preserve`},
		{"    chmod:\n      etc/shadow: \"0640\"\n", `layers[1].chmod: "etc/shadow" is not a clean absolute path`},
		{"    chmod:\n      /etc/../shadow: \"0640\"\n", `is not a clean absolute path`},
		{"    chmod:\n      /etc/shadow: \"0948\"\n", `layers[1].chmod: /etc/shadow: "0948" is not an octal mode`},
		{"    chmod:\n      /etc/shadow: \"10640\"\n", `is not an octal mode`},
		{"    chmod:\n      /etc/shadow: rw\n", `is not an octal mode`},
		{"    chmod: [x]\n", `kiln.yaml:7: cannot unmarshal !!seq`},
	} {
		_, err := Parse("kiln.yaml", []byte(strings.Replace(good, layer, layer+tc.add, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.add, err, tc.want)
		}
	}
}

// TestIDSeed: the default seed takes in the layers' content digests, not
// their paths or pins; seed: overrides all.
func TestIDSeed(t *testing.T) {
	s, _ := Parse("kiln.yaml", []byte(good))
	d := []string{"tar:sha256:aa", "dir:sha256:bb"}
	base := s.IDSeed(d)
	if s.IDSeed(d) != base {
		t.Fatal("IDSeed is not a function of its inputs")
	}
	if s.IDSeed([]string{"tar:sha256:aa", "dir:sha256:bc"}) == base {
		t.Error("another layer content gives the same seed")
	}
	moved, _ := Parse("elsewhere/kiln.yaml", []byte(strings.NewReplacer("layers/demo/base.tar.xz", "x/y.tar.xz", "    sha256: 9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c9f2c\n", "").Replace(good)))
	if moved.IDSeed(d) != base {
		t.Error("moving or unpinning a layer changes the seed")
	}
	sized, _ := Parse("kiln.yaml", []byte(strings.Replace(good, "64MiB", "65MiB", 1)))
	if sized.IDSeed(d) == base {
		t.Error("the seed ignores the layout")
	}
	seeded, _ := Parse("kiln.yaml", []byte("seed: fleet\n"+good))
	if seeded.IDSeed(d) != "fleet" || seeded.IDSeed(nil) != "fleet" {
		t.Error("seed: does not decide alone")
	}
}

// TestParseVerity: verity: true adds the hash partition after the root,
// of the root-verity type of disk.arch; the rules that make a sealed root
// possible are errors with the line of the key.
func TestParseVerity(t *testing.T) {
	sealed := strings.Replace(good, "      filesystem: ext4\n      size: rest\n", "      filesystem: erofs\n      verity: true\n      size: auto\n", 1)
	s, err := Parse("kiln.yaml", []byte(sealed))
	if err != nil {
		t.Fatal(err)
	}
	ps := s.Disk.Partitions
	if len(ps) != 3 || ps[2].Name != "root-verity" || ps[2].HashFor != "root" || ps[2].TypeValue.Name != "root-verity-x86-64" || ps[2].Filesystem != "none" {
		t.Fatalf("partitions %+v", ps)
	}
	arm, err := Parse("kiln.yaml", []byte(strings.Replace(sealed, "  table: gpt\n", "  table: gpt\n  arch: arm64\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := arm.Disk.Partitions[2].TypeValue.Name; got != "root-verity-arm64" {
		t.Errorf("arm64 hash partition type %s", got)
	}
	if _, err := Parse("kiln.yaml", []byte(strings.Replace(sealed, "verity: true", "verity: true\n      compression: lz4", 1))); err != nil {
		t.Errorf("compression: lz4 on erofs: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"ext4", "filesystem: erofs", "filesystem: ext4", "kiln.yaml:19: disk.partitions[1].verity: dm-verity seals a read-only filesystem: set filesystem: erofs"},
		{"not root", "      mount: /\n", "      mount: /srv\n", "only the root (mount: /) is sealed"},
		{"type", "      type: root\n", "      type: linux\n", "the sealed root must have type root"},
		{"mbr", "table: gpt", "table: mbr", "verity: needs disk.table gpt"},
		{"rest", "size: auto", "size: rest", "a sealed partition is auto or a fixed size, not rest"},
		{"guid", "verity: true", "verity: true\n      guid: 01234567-89ab-cdef-0123-456789abcdef", "guid: a sealed partition's GUID is the first 128 bits of its root hash"},
		{"name taken", "    - name: esp", "    - name: root-verity", "the name is taken by the hash partition of root"},
		{"compression on ext4", "      mount: /boot/efi\n", "      mount: /boot/efi\n      compression: lz4\n", "disk.partitions[0].compression: only an erofs filesystem is compressed"},
		{"bad compression", "verity: true", "verity: true\n      compression: zstd", `compression: "zstd" is not one of none, lz4`},
		{"hash_for", "verity: true", "verity: true\n      hash_for: x", `unknown key "hash_for"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(sealed, tc.from, tc.to, 1)
			if src == sealed {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			_, err := Parse("kiln.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
