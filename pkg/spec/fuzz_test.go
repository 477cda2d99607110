package spec_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/spec"
)

// FuzzParse parses arbitrary text as a spec. It must not panic or hang;
// its errors are *spec.Error naming the file; a spec it accepts keeps the
// promises of validation, and has a digest.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`epoch: 1700000000
layers:
  - path: base.tar.xz
    sha256: 9f2c000000000000000000000000000000000000000000000000000000000000
  - {path: overlay/, uid: 0, gid: 0}
disk:
  table: gpt
  size: 1GiB
  partitions:
    - {name: esp, type: esp, size: 64MiB, filesystem: vfat, mount: /boot/efi, volume_id: 1234abcd}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
boot: {loader: hybrid, kernel: /boot/vmlinuz-*, cmdline: console=ttyS0}
output: {path: out/x.img}
`))
	f.Add([]byte("layers: [{path: a}]\ndisk: {size: auto, free: 1.5G, partitions: [{name: r, type: root, size: auto, filesystem: ext4, mount: /}]}\n"))
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := spec.Parse("fuzz.yaml", data)
		if err != nil {
			var se *spec.Error
			if !errors.As(err, &se) || se.File != "fuzz.yaml" || se.Line < 0 {
				t.Fatalf("error %T is not a *spec.Error naming the file: %v", err, err)
			}
			return
		}
		checkSpec(t, s)
		again, err := spec.Parse("fuzz.yaml", data)
		if err != nil {
			t.Fatalf("the second parse of the same bytes fails: %v", err)
		}
		if s.Digest() != again.Digest() {
			t.Fatal("two parses of the same bytes give different digests")
		}
	})
}

// checkSpec checks what validation promises of an accepted spec.
func checkSpec(t *testing.T, s *spec.Spec) {
	t.Helper()
	if s.Epoch != nil && *s.Epoch < 0 {
		t.Fatalf("negative epoch %d", *s.Epoch)
	}
	if len(s.Layers) == 0 || len(s.Disk.Partitions) == 0 {
		t.Fatalf("%d layers, %d partitions", len(s.Layers), len(s.Disk.Partitions))
	}
	for _, l := range s.Layers {
		if l.Path == "" {
			t.Fatal("a layer without a path")
		}
	}
	if !slices.Contains(spec.Tables, s.Disk.Table) {
		t.Fatalf("table %q", s.Disk.Table)
	}
	if s.Disk.SizeBytes < 0 || s.Disk.FreeBytes < 0 {
		t.Fatalf("disk size %d, free %d", s.Disk.SizeBytes, s.Disk.FreeBytes)
	}
	rest, names, mounts := 0, map[string]bool{}, map[string]bool{}
	for _, p := range s.Disk.Partitions {
		if p.Name == "" || names[p.Name] {
			t.Fatalf("partition name %q missing or twice", p.Name)
		}
		names[p.Name] = true
		if p.Rest {
			rest++
		}
		if !p.Rest && !p.Auto && p.SizeBytes <= 0 {
			t.Fatalf("partition %s: size %d", p.Name, p.SizeBytes)
		}
		if !slices.Contains(spec.Filesystems, p.Filesystem) {
			t.Fatalf("partition %s: filesystem %q", p.Name, p.Filesystem)
		}
		if p.Mount != "" {
			if !strings.HasPrefix(p.Mount, "/") || mounts[p.Mount] || p.Filesystem == "none" {
				t.Fatalf("partition %s: mount %q", p.Name, p.Mount)
			}
			mounts[p.Mount] = true
		}
	}
	if rest > 1 {
		t.Fatalf("%d partitions take the rest", rest)
	}
	if !slices.Contains(spec.Formats, s.Output.Format) {
		t.Fatalf("output format %q", s.Output.Format)
	}
}
