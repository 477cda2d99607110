package spec

import (
	"errors"
	"strings"
	"testing"
)

// withArch is good with disk.arch: arch.
func withArch(arch string) string {
	return strings.Replace(good, "  table: gpt\n", "  table: gpt\n  arch: "+arch+"\n", 1)
}

// TestArchOverride: --arch (Options.Arch) replaces disk.arch before
// validation: the root type is the one of the architecture built for,
// and the canonical form and the IDs are those of a spec that says it.
func TestArchOverride(t *testing.T) {
	d := []string{"sha256:aa", "sha256:bb"}
	said, err := Parse("kiln.yaml", []byte(withArch("arm64")))
	if err != nil {
		t.Fatal(err)
	}
	x86, err := Parse("kiln.yaml", []byte(withArch("x86-64")))
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"arm64", "aarch64", "AArch64"} {
		s, err := ParseWith("kiln.yaml", []byte(withArch("x86-64")), Options{Arch: flag})
		if err != nil {
			t.Fatalf("--arch %s: %v", flag, err)
		}
		root := s.Disk.Partitions[1].TypeValue
		if s.Disk.Arch != "arm64" || root.Name != "root-arm64" || root.GUID.String() != "b921b045-1df0-41c3-af44-4c6f280d3fae" {
			t.Errorf("--arch %s: disk.arch %q, root type %s %s; want arm64, root-arm64 b921b045-1df0-41c3-af44-4c6f280d3fae", flag, s.Disk.Arch, root.Name, root.GUID)
		}
		if s.Digest() != said.Digest() || s.IDSeed(d) != said.IDSeed(d) {
			t.Errorf("--arch %s: digest or IDs differ from the spec that says arm64", flag)
		}
		if s.Digest() == x86.Digest() || s.IDSeed(d) == x86.IDSeed(d) {
			t.Errorf("--arch %s: the arm64 build shares the digest or IDs of the x86-64 one", flag)
		}
	}

	// The override goes through validation: a sealed root gets the hash
	// partition type of the architecture built for.
	sealed := strings.Replace(good, "      filesystem: ext4\n      size: rest\n", "      filesystem: erofs\n      verity: true\n      size: auto\n", 1)
	s, err := ParseWith("kiln.yaml", []byte(sealed), Options{Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Disk.Partitions[2].TypeValue.Name; got != "root-verity-arm64" {
		t.Errorf("sealed root with --arch arm64: hash partition type %s, want root-verity-arm64", got)
	}

	// The flag wins over a bad value in the file; a bad flag is an error
	// without a line of the file.
	if _, err := ParseWith("kiln.yaml", []byte(withArch("vax")), Options{Arch: "riscv64"}); err != nil {
		t.Errorf("--arch riscv64 over disk.arch vax: %v", err)
	}
	_, err = ParseWith("kiln.yaml", []byte(withArch("arm64")), Options{Arch: "vax"})
	var se *Error
	if !errors.As(err, &se) || se.Line != 0 || !strings.Contains(err.Error(), `--arch: unknown architecture "vax"`) {
		t.Errorf("--arch vax: %v, want a spec error without a line naming --arch", err)
	}
}

// TestArchCanonical: disk.arch counts as the architecture it means, not
// as it is spelt, and x86-64, the default, as no disk.arch at all.
func TestArchCanonical(t *testing.T) {
	d := []string{"sha256:aa"}
	none, err := Parse("kiln.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if none.Disk.Arch != "x86-64" {
		t.Errorf("disk.arch left out is %q after validation, want x86-64", none.Disk.Arch)
	}
	// The digest good had before disk.arch was normalised (pkg/spec of
	// commit 3dff93c): a spec without disk.arch keeps its IDs.
	if got, want := none.Digest(), "497741b02e80da16af569edd1a6201c55614100e01780555aa8d9866fc01c98a"; got != want {
		t.Errorf("digest of a spec without disk.arch %s, want %s (as before)", got, want)
	}
	for _, a := range []string{"x86-64", "amd64", "x86_64", "AMD64"} {
		s, err := Parse("kiln.yaml", []byte(withArch(a)))
		if err != nil {
			t.Fatal(err)
		}
		if s.Disk.Arch != "x86-64" || s.Digest() != none.Digest() || s.IDSeed(d) != none.IDSeed(d) {
			t.Errorf("disk.arch %s: %q, digest or IDs differ from the spec without disk.arch", a, s.Disk.Arch)
		}
	}
	arm, _ := Parse("kiln.yaml", []byte(withArch("arm64")))
	aarch, _ := Parse("kiln.yaml", []byte(withArch("aarch64")))
	if arm.Digest() != aarch.Digest() || arm.Digest() == none.Digest() {
		t.Error("arm64 and aarch64 differ, or arm64 is the default's digest")
	}
}
