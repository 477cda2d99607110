package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/pkg/repro"
)

// ids are the identifiers of a built image.
type ids struct{ disk, part, fs string }

func idsOf(r *Result) ids {
	return ids{r.Layout.DiskGUID.String(), r.Layout.Partitions[0].GUID.String(), r.Filesystems[0].UUID}
}

func (a ids) allDiffer(b ids) bool { return a.disk != b.disk && a.part != b.part && a.fs != b.fs }

// tarOf is a tar of one file.
func tarOf(t *testing.T, name, data string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(data))
	tw.Close()
	return buf.Bytes()
}

// TestIDsFollowLayerContent: default IDs (disk GUID, partition GUID,
// filesystem UUID) come from the spec and the layers' content: a layer
// whose content changed gives new IDs, the same content the same IDs
// (wherever the layer file is), and seed: gives IDs from the seed alone.
// Before, they came from the spec alone: two different images built from
// an unpinned layer that changed had the same IDs.
func TestIDsFollowLayerContent(t *testing.T) {
	build := func(layerFile, hostFile, seed string) ids {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "base.tar"), tarOf(t, "etc/os-release", layerFile), 0o644); err != nil {
			t.Fatal(err)
		}
		checkoutTree(t, filepath.Join(dir, "host"), 0o022, map[string]string{"etc/motd": hostFile})
		_, res := buildSpec(t, dir, imageSpec("  - path: base.tar\n  - path: host/\n", seed))
		return idsOf(res)
	}
	ref := build("ID=one\n", "hello\n", "")
	if again := build("ID=one\n", "hello\n", ""); again != ref {
		t.Errorf("the same layers give other IDs: %+v, %+v", again, ref)
	}
	if tarChanged := build("ID=two\n", "hello\n", ""); !tarChanged.allDiffer(ref) {
		t.Errorf("a tar layer changed (same size) but IDs did not: %+v, %+v", tarChanged, ref)
	}
	if dirChanged := build("ID=one\n", "hellp\n", ""); !dirChanged.allDiffer(ref) {
		t.Errorf("a directory layer changed but IDs did not: %+v, %+v", dirChanged, ref)
	}

	// seed: alone decides, whatever the layers hold.
	seeded := build("ID=one\n", "hello\n", "fleet-v1")
	if other := build("ID=two\n", "hellp\n", "fleet-v1"); other != seeded {
		t.Errorf("with a seed, IDs changed with the layers: %+v, %+v", other, seeded)
	}
	if want := repro.Derive("fleet-v1", "disk/guid").String(); seeded.disk != want {
		t.Errorf("seeded disk GUID %s, want %s (from the seed alone)", seeded.disk, want)
	}
	if want := repro.Derive("fleet-v1", "partition/root/fs-uuid").String(); seeded.fs != want {
		t.Errorf("seeded filesystem UUID %s, want %s", seeded.fs, want)
	}
}

// TestIDsIgnoreLayerPathAndPin: the same content at another path, pinned
// or compressed gives the same IDs; so a spec can move, pin or recompress
// its layers without changing identity.
func TestIDsIgnoreLayerPathAndPin(t *testing.T) {
	tb := tarOf(t, "etc/os-release", "ID=one\n")
	build := func(name, pin string) ids {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), tb, 0o644); err != nil {
			t.Fatal(err)
		}
		l := "  - path: " + name + "\n"
		if pin != "" {
			l += "    sha256: " + pin + "\n"
		}
		_, res := buildSpec(t, dir, imageSpec(l, ""))
		return idsOf(res)
	}
	ref := build("base.tar", "")
	if moved := build("elsewhere.tar", ""); moved != ref {
		t.Errorf("moving the layer changed IDs: %+v, %+v", moved, ref)
	}
	sum := sha256Hex(tb)
	if pinned := build("base.tar", sum); pinned != ref {
		t.Errorf("pinning the layer changed IDs: %+v, %+v", pinned, ref)
	}
	// The same tar, compressed: the same content, the same IDs.
	tb = gzipBytes(t, tb)
	if gz := build("base.tar.gz", ""); gz != ref {
		t.Errorf("compressing the layer changed IDs: %+v, %+v", gz, ref)
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
