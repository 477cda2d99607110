package build

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// TestEveryFilesystemRegistered checks that each filesystem the spec
// accepts has a writer in the table, and the table nothing the spec
// refuses.
func TestEveryFilesystemRegistered(t *testing.T) {
	want := map[string]bool{}
	for _, name := range spec.Filesystems {
		if name == "none" {
			continue
		}
		want[name] = true
		if _, err := filesystems.Lookup(name); err != nil {
			t.Errorf("spec filesystem %q: %v", name, err)
		}
	}
	for _, name := range filesystems.Names() {
		if !want[name] {
			t.Errorf("writer %q is registered but the spec does not accept it", name)
		}
	}
}

// TestFilesystemParams checks the identity pkg/build gives writers: the
// spec's IDs where it gives them, else partition/NAME/PURPOSE derived
// from the seed, and the writers' default labels.
func TestFilesystemParams(t *testing.T) {
	given := repro.Derive("test", "given")
	vid := uint32(0xdeadbeef)
	p := &spec.Partition{Name: "a-rather-long-partition-name", UUIDValue: &given, VolumeIDValue: &vid}
	fp := filesystemParams(p, "seed", 42)
	if fp.Epoch != 42 || fp.Name != p.Name || fp.Label != "" {
		t.Fatalf("params %+v", fp)
	}
	if got := repro.UUID(fp.UUID("fs-uuid")); got != given {
		t.Errorf("fs-uuid %s, want the spec's %s", got, given)
	}
	if got, want := repro.UUID(fp.UUID("hash-seed")), repro.Derive("seed", "partition/a-rather-long-partition-name/hash-seed"); got != want {
		t.Errorf("hash-seed %s, want %s", got, want)
	}
	if got := fp.ID32("volume-id"); got != vid {
		t.Errorf("volume-id %#x, want the spec's %#x", got, vid)
	}
	q := &spec.Partition{Name: "esp"}
	if got, want := filesystemParams(q, "seed", 0).ID32("volume-id"), repro.Derive32("seed", "partition/esp/volume-id"); got != want {
		t.Errorf("derived volume-id %#x, want %#x", got, want)
	}

	for _, tc := range []struct{ fs, label, uuid string }{
		{"ext4", "a-rather-long-pa", given.String()},
		{"vfat", "A-RATHER-LO", "DEAD-BEEF"},
	} {
		p.Filesystem = tc.fs
		w, err := newFilesystem(p, "seed", 42)
		if err != nil {
			t.Fatal(err)
		}
		tr := tree.New(42)
		size, err := w.MinSize(tr)
		if err != nil {
			t.Fatal(err)
		}
		img := &memImage{}
		rep, err := w.Write(img, fs.Region{Size: size}, tr)
		if err != nil {
			t.Fatalf("%s: %v", tc.fs, err)
		}
		if rep.Label != tc.label || rep.UUID != tc.uuid {
			t.Errorf("%s: reported label %q uuid %s, want %q %s", tc.fs, rep.Label, rep.UUID, tc.label, tc.uuid)
		}
		if tc.fs == "ext4" {
			// ext4 does not report extents: asking for them is an error, not silence.
			_, err := w.Write(&memImage{}, fs.Region{Size: size, Locate: []string{"/ldlinux.sys"}}, tr)
			if err == nil || !strings.Contains(err.Error(), "not implemented") {
				t.Errorf("ext4 with Locate: err %v, want not implemented", err)
			}
		}
	}
	p.Filesystem = "none"
	if w, err := newFilesystem(p, "seed", 0); w != nil || err != nil {
		t.Errorf("none: %v, %v", w, err)
	}
}

// memImage is a growing in-memory io.WriterAt.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, bytes.Repeat([]byte{0}, int(end)-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}
