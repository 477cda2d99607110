package disk

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/pkg/repro"
)

// Type is a partition type: kiln's name for it, its GPT type GUID and its
// MBR type byte. A zero GUID means the type cannot be used on GPT, a zero MBR
// byte that it cannot be used on an MBR.
type Type struct {
	Name        string     // kiln's name, e.g. "esp", "root-arm64"; empty for unknown raw types
	Description string     // human-readable, e.g. "Linux root (ARM-64)"
	GUID        repro.UUID // GPT partition type GUID
	MBR         byte       // MBR partition type byte
}

// DefaultArch is the architecture LookupType uses for "root", "usr" and the
// other architecture-dependent types when none is given.
const DefaultArch = "x86-64"

// arches are the architectures with root and /usr types in the registry, in
// the spelling of the Discoverable Partitions Specification (with "-" where
// the spec has "_": "x86-64").
var arches = []string{"x86-64", "x86", "arm64", "arm", "riscv64"}

// archAliases maps other common spellings (Go's GOARCH, uname -m, Debian) to
// the names in arches.
var archAliases = []struct{ alias, arch string }{
	{"x86_64", "x86-64"},
	{"amd64", "x86-64"},
	{"aarch64", "arm64"},
	{"i386", "x86"},
	{"i486", "x86"},
	{"i586", "x86"},
	{"i686", "x86"},
	{"386", "x86"},
	{"armhf", "arm"},
	{"armv7l", "arm"},
	{"armv7", "arm"},
	{"riscv-64", "riscv64"},
}

// NormalizeArch returns the registry's name for arch ("" means DefaultArch):
// "amd64" and "x86_64" become "x86-64", "aarch64" becomes "arm64", and so on.
func NormalizeArch(arch string) (string, error) {
	a := strings.ToLower(strings.TrimSpace(arch))
	if a == "" {
		return DefaultArch, nil
	}
	for _, k := range arches {
		if a == k {
			return k, nil
		}
	}
	for _, al := range archAliases {
		if a == al.alias {
			return al.arch, nil
		}
	}
	return "", fmt.Errorf("unknown architecture %q: want one of %s (or amd64, x86_64, aarch64, i686, armhf)", arch, strings.Join(arches, ", "))
}

// typeEntry is one row of the registry. Rows are kept in a slice, never a
// map, so that every search and listing has a fixed order.
type typeEntry struct {
	name string // kiln name; architecture-dependent rows are "<base>-<arch>"
	base string // for architecture-dependent rows: "root", "usr", "root-verity", "usr-verity"
	arch string // for architecture-dependent rows
	guid string // canonical form
	mbr  byte
	desc string
}

// registry lists the well-known types. GUIDs are from the Discoverable
// Partitions Specification and the UEFI specification (checked against
// `sfdisk --label gpt -T` of util-linux 2.38 by TestRegistryKnownToSfdisk).
// Where several rows share an MBR byte, the first one is what TypeByMBR
// reports, so "linux" precedes the other 0x83 rows.
var registry = []typeEntry{
	{name: "esp", guid: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", mbr: 0xEF, desc: "EFI System"},
	{name: "xbootldr", guid: "bc13c2ff-59e6-4262-a352-b275fd6f7172", mbr: 0xEA, desc: "Linux extended boot"},
	{name: "bios-boot", guid: "21686148-6449-6e6f-744e-656564454649", desc: "BIOS boot"},
	{name: "linux", guid: "0fc63daf-8483-4772-8e79-3d69d8477de4", mbr: 0x83, desc: "Linux filesystem"},
	{name: "swap", guid: "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", mbr: 0x82, desc: "Linux swap"},
	{name: "home", guid: "933ac7e1-2eb4-4f13-b844-0e14e2aef915", mbr: 0x83, desc: "Linux home"},
	{name: "srv", guid: "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", mbr: 0x83, desc: "Linux server data"},
	{name: "var", guid: "4d21b016-b534-45c2-a9fb-5c16e091fd2d", mbr: 0x83, desc: "Linux variable data"},
	{name: "tmp", guid: "7ec6f557-3bc5-4aca-b293-16ef5df639d1", mbr: 0x83, desc: "Linux temporary data"},
	{name: "lvm", guid: "e6d6d379-f507-44c2-a23c-238f2a3df928", mbr: 0x8E, desc: "Linux LVM"},
	{name: "raid", guid: "a19d880f-05fc-4d3b-a006-743f0f84911e", mbr: 0xFD, desc: "Linux RAID"},
	{name: "basic-data", guid: "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", desc: "Microsoft basic data"},

	{name: "root-x86-64", base: "root", arch: "x86-64", guid: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", mbr: 0x83, desc: "Linux root (x86-64)"},
	{name: "root-x86", base: "root", arch: "x86", guid: "44479540-f297-41b2-9af7-d131d5f0458a", mbr: 0x83, desc: "Linux root (x86)"},
	{name: "root-arm64", base: "root", arch: "arm64", guid: "b921b045-1df0-41c3-af44-4c6f280d3fae", mbr: 0x83, desc: "Linux root (ARM-64)"},
	{name: "root-arm", base: "root", arch: "arm", guid: "69dad710-2ce4-4e3c-b16c-21a1d49abed3", mbr: 0x83, desc: "Linux root (ARM)"},
	{name: "root-riscv64", base: "root", arch: "riscv64", guid: "72ec70a6-cf74-40e6-bd49-4bda08e8f224", mbr: 0x83, desc: "Linux root (RISC-V-64)"},

	{name: "usr-x86-64", base: "usr", arch: "x86-64", guid: "8484680c-9521-48c6-9c11-b0720656f69e", mbr: 0x83, desc: "Linux /usr (x86-64)"},
	{name: "usr-x86", base: "usr", arch: "x86", guid: "75250d76-8cc6-458e-bd66-bd47cc81a812", mbr: 0x83, desc: "Linux /usr (x86)"},
	{name: "usr-arm64", base: "usr", arch: "arm64", guid: "b0e01050-ee5f-4390-949a-9101b17104e9", mbr: 0x83, desc: "Linux /usr (ARM-64)"},
	{name: "usr-arm", base: "usr", arch: "arm", guid: "7d0359a3-02b3-4f0a-865c-654403e70625", mbr: 0x83, desc: "Linux /usr (ARM)"},
	{name: "usr-riscv64", base: "usr", arch: "riscv64", guid: "beaec34b-8442-439b-a40b-984381ed097d", mbr: 0x83, desc: "Linux /usr (RISC-V-64)"},

	{name: "root-verity-x86-64", base: "root-verity", arch: "x86-64", guid: "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", desc: "Linux root verity (x86-64)"},
	{name: "root-verity-x86", base: "root-verity", arch: "x86", guid: "d13c5d3b-b5d1-422a-b29f-9454fdc89d76", desc: "Linux root verity (x86)"},
	{name: "root-verity-arm64", base: "root-verity", arch: "arm64", guid: "df3300ce-d69f-4c92-978c-9bfb0f38d820", desc: "Linux root verity (ARM-64)"},
	{name: "root-verity-arm", base: "root-verity", arch: "arm", guid: "7386cdf2-203c-47a9-a498-f2ecce45a2d6", desc: "Linux root verity (ARM)"},
	{name: "root-verity-riscv64", base: "root-verity", arch: "riscv64", guid: "b6ed5582-440b-4209-b8da-5ff7c419ea3d", desc: "Linux root verity (RISC-V-64)"},

	{name: "usr-verity-x86-64", base: "usr-verity", arch: "x86-64", guid: "77ff5f63-e7b6-4633-acf4-1565b864c0e6", desc: "Linux /usr verity (x86-64)"},
	{name: "usr-verity-x86", base: "usr-verity", arch: "x86", guid: "8f461b0d-14ee-4e81-9aa9-049b6fb97abd", desc: "Linux /usr verity (x86)"},
	{name: "usr-verity-arm64", base: "usr-verity", arch: "arm64", guid: "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e", desc: "Linux /usr verity (ARM-64)"},
	{name: "usr-verity-arm", base: "usr-verity", arch: "arm", guid: "c215d751-7bcd-4649-be90-6627490a4c05", desc: "Linux /usr verity (ARM)"},
	{name: "usr-verity-riscv64", base: "usr-verity", arch: "riscv64", guid: "8f1056be-9b05-47c4-81d6-be53128e5b54", desc: "Linux /usr verity (RISC-V-64)"},
}

// mbrOnly names MBR type bytes that have no row in registry, for TypeByMBR.
var mbrOnly = []struct {
	mbr  byte
	name string
	desc string
}{
	{0x01, "fat12", "FAT12"},
	{0x05, "extended", "Extended"},
	{0x06, "fat16", "FAT16"},
	{0x07, "ntfs", "HPFS/NTFS/exFAT"},
	{0x0B, "fat32", "W95 FAT32"},
	{0x0C, "fat32-lba", "W95 FAT32 (LBA)"},
	{0x0E, "fat16-lba", "W95 FAT16 (LBA)"},
	{0x0F, "extended-lba", "W95 Ext'd (LBA)"},
	{0x85, "linux-extended", "Linux extended"},
	{0xEE, "gpt-protective", "GPT protective"},
}

func (e typeEntry) typ() Type {
	g, err := repro.ParseUUID(e.guid)
	if err != nil {
		// The registry is a literal checked by TestRegistry.
		panic(fmt.Sprintf("BUG: registry entry %q: %v", e.name, err))
	}
	return Type{Name: e.name, Description: e.desc, GUID: g, MBR: e.mbr}
}

// LookupType resolves a partition type reference:
//
//   - a kiln name: "esp", "xbootldr", "bios-boot", "linux", "swap", "home",
//     "srv", "var", "tmp", "lvm", "raid", "basic-data";
//   - an architecture-dependent name, "root", "usr", "root-verity" or
//     "usr-verity", which takes arch ("" means DefaultArch), or the same
//     with an explicit architecture, "root-arm64", that ignores arch;
//   - a GPT type GUID in canonical form, e.g.
//     "0fc63daf-8483-4772-8e79-3d69d8477de4"; if it is a known one, the
//     result also carries its name and MBR byte;
//   - an MBR type byte as two hex digits with "0x", e.g. "0x83"; if it is a
//     known one, the result also carries its GPT GUID.
//
// Names and hex digits are case-insensitive.
func LookupType(ref, arch string) (Type, error) {
	r := strings.ToLower(strings.TrimSpace(ref))
	if r == "" {
		return Type{}, fmt.Errorf("partition type: empty")
	}
	if strings.HasPrefix(r, "0x") {
		v, err := strconv.ParseUint(r[2:], 16, 8)
		if err != nil || len(r) != 4 {
			return Type{}, fmt.Errorf("partition type %q: want an MBR type as two hex digits, like 0x83", ref)
		}
		if v == 0 {
			return Type{}, fmt.Errorf("partition type %q: 0x00 marks an unused MBR entry", ref)
		}
		if t, ok := TypeByMBR(byte(v)); ok {
			return t, nil
		}
		return Type{MBR: byte(v), Description: fmt.Sprintf("MBR type 0x%02x", v)}, nil
	}
	if len(r) == 36 && strings.Count(r, "-") == 4 {
		g, err := repro.ParseUUID(r)
		if err != nil {
			return Type{}, fmt.Errorf("partition type: %w", err)
		}
		if g.IsZero() {
			return Type{}, fmt.Errorf("partition type %q: the zero GUID marks an unused GPT entry", ref)
		}
		if t, ok := TypeByGUID(g); ok {
			return t, nil
		}
		return Type{GUID: g, Description: "GPT type " + g.String()}, nil
	}
	for _, e := range registry {
		if e.name == r {
			return e.typ(), nil
		}
	}
	a, err := NormalizeArch(arch)
	if err != nil {
		return Type{}, fmt.Errorf("partition type %q: %w", ref, err)
	}
	for _, e := range registry {
		if e.base == r && e.arch == a {
			return e.typ(), nil
		}
	}
	for _, e := range registry {
		if e.base == r {
			return Type{}, fmt.Errorf("partition type %q: no %s type for architecture %s", ref, r, a)
		}
	}
	return Type{}, fmt.Errorf("unknown partition type %q: want a name (%s), a GPT type GUID or an MBR type like 0x83", ref, strings.Join(TypeNames(), ", "))
}

// TypeNames lists the names LookupType accepts, in registry order; the
// architecture-dependent ones appear once, without architecture.
func TypeNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, e := range registry {
		n := e.name
		if e.base != "" {
			n = e.base
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

// TypeByGUID returns the registry's type for a GPT type GUID, for naming
// partitions in `kiln inspect`.
func TypeByGUID(g repro.UUID) (Type, bool) {
	s := g.String()
	for _, e := range registry {
		if e.guid == s {
			return e.typ(), true
		}
	}
	return Type{}, false
}

// TypeByMBR returns the registry's type for an MBR type byte. Several types
// share 0x83; it is reported as "linux".
func TypeByMBR(b byte) (Type, bool) {
	for _, e := range registry {
		if e.mbr != 0 && e.mbr == b {
			return e.typ(), true
		}
	}
	for _, m := range mbrOnly {
		if m.mbr == b {
			return Type{Name: m.name, Description: m.desc, MBR: b}, true
		}
	}
	return Type{}, false
}

// isExtended reports whether an MBR type byte marks an extended partition.
func isExtended(b byte) bool { return b == 0x05 || b == 0x0F || b == 0x85 }
