package layer

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
)

// skopeoArchive builds a docker-archive the way containers/image (skopeo
// copy docker-archive:, podman save --format docker-archive) writes it:
// each layer as HEX.tar at the top, the config as HEX.json, legacy
// HEX/layer.tar symlinks, and manifest.json last. No directory entries.
func skopeoArchive(t testing.TB, tars [][]byte) ([]byte, []string) {
	var ents []tarEntry
	var layers, diffIDs, ids []string
	for _, l := range tars {
		h := judge.SHA256(l)
		ids = append(ids, h)
		diffIDs = append(diffIDs, "sha256:"+h)
		layers = append(layers, h+".tar")
		ents = append(ents, fileE(h+".tar", string(l), 0o444))
	}
	cb := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cfg := judge.SHA256(cb) + ".json"
	ents = append(ents, fileE(cfg, string(cb), 0o444))
	for i, h := range ids {
		legacy := judge.SHA256([]byte("legacy" + h))
		ents = append(ents,
			linkE(legacy+"/layer.tar", "../"+layers[i], tar.TypeSymlink),
			fileE(legacy+"/VERSION", "1.0", 0o444),
			fileE(legacy+"/json", `{"id":"`+legacy+`"}`, 0o444))
	}
	ents = append(ents,
		fileE("manifest.json", string(mustJSON(t, []map[string]any{{"Config": cfg, "RepoTags": []string{"kiln/test:1"}, "Layers": layers}})), 0o444),
		fileE("repositories", `{"kiln/test":{"1":"x"}}`, 0o444))
	return buildTar(t, ents...), ids
}

// TestSkopeoStyleArchive: a docker-archive whose layers are HEX.tar at
// the top is read as the image its manifest.json describes. Before, its
// first member ended the archive detection and the archive was merged as
// a root filesystem (manifest.json and the layer tarballs in the image's
// root), with no error.
func TestSkopeoStyleArchive(t *testing.T) {
	one, two := tarOne(t), tarTwo(t)
	b, ids := skopeoArchive(t, [][]byte{one, two})
	path := writeFile(t, t.TempDir(), "skopeo.tar", b)
	ls, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, ls, []string{path + "@sha256:" + ids[0], path + "@sha256:" + ids[1]})
}

// TestImageArchiveRefused: a tar marked as an image archive (a top-level
// manifest.json or oci-layout, or index.json and blobs/) that cannot be
// read as one is refused, as a bad layer, instead of being merged as a
// root filesystem.
func TestImageArchiveRefused(t *testing.T) {
	one := tarOne(t)
	skopeo, _ := skopeoArchive(t, [][]byte{one})
	im := buildOCI(t, []ociLayer{{mtLayerTar, one, one}}, false)
	noLayout := map[string][]byte{}
	for n, b := range im.files {
		if n != "oci-layout" {
			noLayout[n] = b
		}
	}
	cases := []struct {
		name string
		tar  []byte
	}{
		// A root filesystem holding /manifest.json cannot be told from
		// a broken image archive: kiln does not guess.
		{"rootfs with a manifest.json", buildTar(t, fileE("manifest.json", "[]", 0o644), dirE("etc/", 0o755), fileE("etc/x", "x", 0o644))},
		{"manifest.json after the root filesystem", buildTar(t, dirE("etc/", 0o755), fileE("etc/x", "x", 0o644), fileE("manifest.json", "[]", 0o644))},
		{"oci-layout after the root filesystem", buildTar(t, dirE("etc/", 0o755), fileE("oci-layout", `{"imageLayoutVersion":"1.0.0"}`, 0o644))},
		{"index.json and blobs after the root filesystem", buildTar(t, dirE("etc/", 0o755), fileE("index.json", "{}", 0o644), dirE("blobs/", 0o755))},
		{"manifest.json that is not a manifest", buildTar(t, fileE("layer.tar", string(one), 0o644), fileE("manifest.json", "{not json", 0o644))},
		{"manifest naming a missing layer", buildTar(t, fileE("aa.json", "{}", 0o644), fileE("manifest.json", `[{"Config":"aa.json","Layers":["missing.tar"]}]`, 0o644))},
		{"docker archive compressed with gzip", gz(t, skopeo)},
		{"docker archive compressed with zstd", zstdc(t, skopeo)},
		{"oci archive compressed with xz", xzc(t, packTar(t, im.files))},
		{"oci-layout alone", buildTar(t, fileE("oci-layout", `{"imageLayoutVersion":"1.0.0"}`, 0o644), fileE("hello", "x", 0o644))},
		{"index.json and blobs without oci-layout", packTar(t, noLayout)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "img.tar", c.tar)
			var merged []string
			err := func() error {
				ls, err := Open(path, Options{})
				if err != nil {
					return err
				}
				for _, l := range ls {
					if err := l.Walk(func(e *tree.Entry) error {
						merged = append(merged, e.Path)
						return nil
					}); err != nil {
						return err
					}
				}
				return nil
			}()
			if err == nil {
				t.Fatalf("accepted as a layer of %d entries: %q", len(merged), merged)
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("error %v (%T) is not a *layer.Error (exit 3)", err, err)
			}
			if !strings.HasPrefix(le.Layer, path) {
				t.Errorf("error %q names layer %q, want %s", err, le.Layer, path)
			}
			t.Log(err)
		})
	}
}

// TestImageArchiveMarkerInLayers: inside an image, a layer's own
// /manifest.json is a file of the root filesystem like any other; only a
// tar given as a root filesystem is checked for image markers.
func TestImageArchiveMarkerInLayers(t *testing.T) {
	l := buildTar(t, fileE("manifest.json", "[]", 0o644), fileE("oci-layout", "{}", 0o644))
	b, _ := skopeoArchive(t, [][]byte{l})
	path := writeFile(t, t.TempDir(), "img.tar", b)
	ls, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compare(t, walkAll(t, ls[0]), []want{
		{path: "manifest.json", typ: tree.TypeReg, mode: 0o644, mtime: mt, data: "[]"},
		{path: "oci-layout", typ: tree.TypeReg, mode: 0o644, mtime: mt, data: "{}"},
	})
}

// TestImageArchiveTools reads the archives real tools write of one image:
// skopeo copy to docker-archive: and oci-archive:, and podman save in
// both formats (after podman load of skopeo's archive). The source is an
// OCI image layout written here.
func TestImageArchiveTools(t *testing.T) {
	judge.Need(t, "skopeo", "podman")
	one, two := tarOne(t), tarTwo(t)
	im := buildOCI(t, []ociLayer{{mtLayerTar, one, one}, {mtLayerGzip, gz(t, two), two}}, false)
	im.files["index.json"] = mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []descriptor{im.manifest}})
	src := writeTree(t, im.files)
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		if out, code := judge.Run(t, nil, name, args...); code != 0 {
			t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
		}
	}
	archives := map[string]string{
		"skopeo docker-archive": filepath.Join(dir, "skopeo-docker.tar"),
		"skopeo oci-archive":    filepath.Join(dir, "skopeo-oci.tar"),
		"podman docker-archive": filepath.Join(dir, "podman-docker.tar"),
		"podman oci-archive":    filepath.Join(dir, "podman-oci.tar"),
	}
	run("skopeo", "copy", "--quiet", "oci:"+src, "docker-archive:"+archives["skopeo docker-archive"]+":kiln/test:1")
	run("skopeo", "copy", "--quiet", "oci:"+src, "oci-archive:"+archives["skopeo oci-archive"]+":kiln/test:1")
	// podman with its own storage, in the test's directory.
	store := t.TempDir()
	podman := func(args ...string) {
		t.Helper()
		run("podman", append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)...)
	}
	podman("load", "--quiet", "-i", archives["skopeo docker-archive"])
	podman("save", "--quiet", "--format", "docker-archive", "-o", archives["podman docker-archive"], "kiln/test:1")
	podman("save", "--quiet", "--format", "oci-archive", "-o", archives["podman oci-archive"], "kiln/test:1")

	for name, path := range archives {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			ls, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != 2 {
				t.Fatalf("%d layers, want 2", len(ls))
			}
			for _, l := range ls {
				if !strings.HasPrefix(l.Name(), path+"@sha256:") {
					t.Errorf("layer name %q, want %s@sha256:...", l.Name(), path)
				}
			}
			compare(t, walkAll(t, ls[0]), wantOne)
			compare(t, walkAll(t, ls[1]), wantTwo)
		})
	}
}
