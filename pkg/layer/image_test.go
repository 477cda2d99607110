package layer

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Two small layers and what they hold.
var (
	tarOne = func(t testing.TB) []byte {
		return buildTar(t, dirE("./", 0o755), dirE("etc/", 0o755), fileE("etc/one", "one\n", 0o644), linkE("etc/link", "one", tar.TypeSymlink))
	}
	wantOne = []want{
		{path: "etc", typ: tree.TypeDir, mode: 0o755, mtime: mt},
		{path: "etc/one", typ: tree.TypeReg, mode: 0o644, mtime: mt, data: "one\n"},
		{path: "etc/link", typ: tree.TypeSymlink, mode: 0o777, mtime: mt, link: "one"},
	}
	tarTwo = func(t testing.TB) []byte {
		return buildTar(t, fileE("etc/.wh.one", "", 0o644), fileE("etc/two", "two\n", 0o600))
	}
	wantTwo = []want{
		{path: "etc/.wh.one", typ: tree.TypeReg, mode: 0o644, mtime: mt},
		{path: "etc/two", typ: tree.TypeReg, mode: 0o600, mtime: mt, data: "two\n"},
	}
)

const (
	mtLayerTar  = "application/vnd.oci.image.layer.v1.tar"
	mtLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
	mtDockerGz  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// ociLayer is a layer for buildOCI: its blob and the tar inside.
type ociLayer struct {
	mediaType string
	blob, tar []byte
}

// ociImage is the files of an OCI image layout, by slash path.
type ociImage struct {
	files    map[string][]byte
	manifest descriptor // of the image
	config   string     // digest
	layers   []string   // digests
}

func (im *ociImage) add(b []byte) string {
	h := judge.SHA256(b)
	im.files["blobs/sha256/"+h] = b
	return "sha256:" + h
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildOCI makes an OCI image layout of one image, listed in its index
// among decoys: a manifest for linux/arm64 and an attestation manifest,
// whose blobs are absent. With nested, index.json points to an index blob
// that lists them.
func buildOCI(t testing.TB, ls []ociLayer, nested bool) *ociImage {
	im := &ociImage{files: map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)}}
	cfg := map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": func() []string {
		var ids []string
		for _, l := range ls {
			ids = append(ids, "sha256:"+judge.SHA256(l.tar))
		}
		return ids
	}()}}
	cb := mustJSON(t, cfg)
	im.config = im.add(cb)
	m := ociManifest{MediaType: mtOCIManifest, Config: descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: im.config, Size: int64(len(cb))}}
	for _, l := range ls {
		d := im.add(l.blob)
		im.layers = append(im.layers, d)
		m.Layers = append(m.Layers, descriptor{MediaType: l.mediaType, Digest: d, Size: int64(len(l.blob))})
	}
	mb := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": m.MediaType, "config": m.Config, "layers": m.Layers})
	im.manifest = descriptor{MediaType: mtOCIManifest, Digest: im.add(mb), Size: int64(len(mb)), Platform: &Platform{Architecture: "amd64", OS: "linux"}}
	decoys := []descriptor{
		{MediaType: mtOCIManifest, Digest: "sha256:" + strings.Repeat("a", 64), Size: 100, Platform: &Platform{Architecture: "arm64", OS: "linux"}},
		im.manifest,
		{MediaType: mtOCIManifest, Digest: "sha256:" + strings.Repeat("b", 64), Size: 100, Platform: &Platform{Architecture: "unknown", OS: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}},
	}
	idx := map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": decoys}
	if nested {
		ib := mustJSON(t, idx)
		d := im.add(ib)
		idx = map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": []descriptor{{MediaType: mtOCIIndex, Digest: d, Size: int64(len(ib))}}}
	}
	im.files["index.json"] = mustJSON(t, idx)
	return im
}

// writeTree writes files (slash paths) under a new directory.
func writeTree(t testing.TB, files map[string][]byte) string {
	dir := t.TempDir()
	for name, b := range files {
		writeFile(t, dir, filepath.FromSlash(name), b)
	}
	return dir
}

// packTar packs files (and extra entries) into a tar, names sorted,
// parent directories first, as docker save does.
func packTar(t testing.TB, files map[string][]byte, extra ...tarEntry) []byte {
	var ents []tarEntry
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if d, _, ok := strings.Cut(n, "/"); ok && !dirs[d] {
			dirs[d] = true
			ents = append(ents, dirE(d+"/", 0o755))
		}
		if strings.HasPrefix(n, "blobs/sha256/") && !dirs["blobs/sha256"] {
			dirs["blobs/sha256"] = true
			ents = append(ents, dirE("blobs/sha256/", 0o755))
		}
		ents = append(ents, fileE(n, string(files[n]), 0o644))
	}
	return buildTar(t, append(ents, extra...)...)
}

func twoLayers(t testing.TB) []ociLayer {
	one, two := tarOne(t), tarTwo(t)
	return []ociLayer{{mtLayerGzip, gz(t, one), one}, {mtLayerZstd, zstdc(t, two), two}}
}

// checkImage checks the layers of the two-layer image.
func checkImage(t *testing.T, ls []Layer, names []string) {
	t.Helper()
	if len(ls) != 2 {
		t.Fatalf("%d layers, want 2", len(ls))
	}
	for i, l := range ls {
		if l.Name() != names[i] {
			t.Errorf("layer %d: name %q, want %q", i, l.Name(), names[i])
		}
	}
	compare(t, walkAll(t, ls[0]), wantOne)
	compare(t, walkAll(t, ls[1]), wantTwo)
}

func TestOCILayout(t *testing.T) {
	for _, nested := range []bool{false, true} {
		im := buildOCI(t, twoLayers(t), nested)
		dir := writeTree(t, im.files)
		ls, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, ls, []string{dir + "@" + im.layers[0], dir + "@" + im.layers[1]})

		// With a cache, stored (diff_ids checked on the stored stream)
		// and then served, the same.
		cache, err := OpenCache(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"stored", "hit"} {
			ls, err := Open(dir, Options{Cache: cache})
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, ls, []string{dir + "@" + im.layers[0], dir + "@" + im.layers[1]})
			for _, l := range ls {
				if info := Describe(l); info.Format != "tar" && info.Cache != want {
					t.Errorf("%s: %+v, want %s", l.Name(), info, want)
				}
			}
		}

		// The pin of a layout is its manifest's digest.
		if _, err := Open(dir, Options{SHA256: im.manifest.Digest}); err != nil {
			t.Errorf("pin of the manifest: %v", err)
		}
		_, err = Open(dir, Options{SHA256: im.config})
		wantError(t, err, dir, "", ErrDigest)
	}
}

// TestChooseManifest: which manifest of an index is the image.
func TestChooseManifest(t *testing.T) {
	im := buildOCI(t, twoLayers(t), false)
	ours := im.manifest
	bare := ours
	bare.Platform = nil
	arm := descriptor{MediaType: mtOCIManifest, Digest: "sha256:" + strings.Repeat("a", 64), Size: 1, Platform: &Platform{Architecture: "arm64", OS: "linux"}}
	attest := descriptor{MediaType: mtOCIManifest, Digest: "sha256:" + strings.Repeat("b", 64), Size: 1, Platform: &Platform{Architecture: "unknown", OS: "unknown"}}
	attest2 := attest
	attest2.Platform = nil
	attest2.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
	artifact := descriptor{MediaType: "application/vnd.example.sbom", Digest: "sha256:" + strings.Repeat("d", 64), Size: 1}
	cases := []struct {
		name string
		list []descriptor
		ok   bool
	}{
		{"only one, no platform", []descriptor{bare}, true},
		{"only one besides attestations", []descriptor{attest, bare, attest2, artifact}, true},
		{"linux/amd64 among others", []descriptor{arm, ours, attest}, true},
		{"same manifest twice", []descriptor{ours, ours, arm}, true},
		{"none for linux/amd64", []descriptor{arm, bare}, false},
		{"empty", nil, false},
	}
	for _, c := range cases {
		im.files["index.json"] = mustJSON(t, map[string]any{"manifests": c.list})
		dir := writeTree(t, im.files)
		ls, err := Open(dir, Options{})
		if c.ok {
			if err != nil || len(ls) != 2 {
				t.Errorf("%s: %d layers, %v", c.name, len(ls), err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		wantError(t, err, dir, "", nil)
	}
}

// TestOCIErrors: digests are verified, names are checked.
func TestOCIErrors(t *testing.T) {
	one := tarOne(t)
	cases := []struct {
		name    string
		layers  []ociLayer
		edit    func(im *ociImage)
		atWalk  bool  // the error comes from Walk, not Open
		cause   error // or nil
		inError string
	}{
		{
			name:   "blob digest",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit: func(im *ociImage) {
				// Another gzip mtime: still a valid stream of the same tar.
				b := im.files["blobs/sha256/"+im.layers[0][7:]]
				b[4] ^= 1
			},
			atWalk: true, cause: ErrDigest,
		},
		{
			name:   "uncompressed blob digest",
			layers: []ociLayer{{mtLayerTar, one, one}},
			edit: func(im *ociImage) {
				b := im.files["blobs/sha256/"+im.layers[0][7:]]
				i := strings.Index(string(b), "one\n")
				b[i] = 'O'
			},
			atWalk: true, cause: ErrDigest,
		},
		{
			name:   "diff_id",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), tarTwo(t)}},
			atWalk: true, cause: ErrDigest, inError: "diff_id",
		},
		{
			name:   "manifest digest",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit: func(im *ociImage) {
				b := im.files["blobs/sha256/"+im.manifest.Digest[7:]]
				b[len(b)-1] = ' '
			},
			cause: ErrDigest, inError: "manifest",
		},
		{
			name:   "missing blob",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit: func(im *ociImage) {
				delete(im.files, "blobs/sha256/"+im.layers[0][7:])
			},
		},
		{
			name:   "blob size",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit: func(im *ociImage) {
				p := "blobs/sha256/" + im.layers[0][7:]
				im.files[p] = append(im.files[p], 0)
			},
		},
		{
			name:   "media type",
			layers: []ociLayer{{"application/vnd.example.squashfs", gz(t, one), one}},
		},
		{
			name:   "digest escaping",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit: func(im *ociImage) {
				editManifest(t, im, func(m map[string]any) {
					m["layers"].([]any)[0].(map[string]any)["digest"] = "sha256:../../../../etc/passwd"
				})
			},
			inError: "bad digest",
		},
		{
			name:   "ambiguous index",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit: func(im *ociImage) {
				other := im.manifest
				other.Digest = "sha256:" + strings.Repeat("c", 64)
				im.files["index.json"] = mustJSON(t, map[string]any{"manifests": []descriptor{im.manifest, other}})
			},
			inError: "linux/amd64",
		},
		{
			name:   "bad oci-layout",
			layers: []ociLayer{{mtLayerGzip, gz(t, one), one}},
			edit:   func(im *ociImage) { im.files["oci-layout"] = []byte("{}") },
			cause:  ErrFormat,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im := buildOCI(t, c.layers, false)
			if c.edit != nil {
				c.edit(im)
			}
			dir := writeTree(t, im.files)
			err := openWalk(dir, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("%v is not an *Error", err)
			}
			name := dir
			if c.atWalk {
				name = dir + "@" + im.layers[0]
			}
			wantError(t, err, name, "", c.cause)
			if c.inError != "" && !strings.Contains(err.Error(), c.inError) {
				t.Errorf("error %q does not mention %q", err, c.inError)
			}
			if c.atWalk {
				if _, err := Open(dir, Options{}); err != nil {
					t.Errorf("open failed already: %v", err)
				}
				// With a cache: the same error, and nothing stored.
				cache, err2 := OpenCache(t.TempDir())
				if err2 != nil {
					t.Fatal(err2)
				}
				err2 = openWalk(dir, Options{Cache: cache})
				wantError(t, err2, name, "", c.cause)
				if c.inError != "" && (err2 == nil || !strings.Contains(err2.Error(), c.inError)) {
					t.Errorf("with a cache: error %v does not mention %q", err2, c.inError)
				}
				if es, tmps := cacheFiles(t, cache); len(es) != 0 || len(tmps) != 0 {
					t.Errorf("with a cache: %v stored, %v left", es, tmps)
				}
			}
			t.Log(err)
		})
	}
}

// editManifest rewrites the image's manifest (and the index entry for it).
func editManifest(t testing.TB, im *ociImage, edit func(m map[string]any)) {
	p := "blobs/sha256/" + im.manifest.Digest[7:]
	var m map[string]any
	if err := json.Unmarshal(im.files[p], &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	delete(im.files, p)
	b := mustJSON(t, m)
	im.manifest.Digest = im.add(b)
	im.manifest.Size = int64(len(b))
	im.files["index.json"] = mustJSON(t, map[string]any{"manifests": []descriptor{im.manifest}})
}

// dockerLegacy builds the files of a docker save archive of the format
// before docker 25: <id>/layer.tar, <config id>.json, manifest.json.
func dockerLegacy(t testing.TB, layers [][]byte, tars [][]byte) (map[string][]byte, []string) {
	files := map[string][]byte{}
	var paths, diffIDs []string
	for i, l := range layers {
		id := judge.SHA256([]byte{byte(i)}) // any id: it is not a digest of anything
		files[id+"/layer.tar"] = l
		files[id+"/VERSION"] = []byte("1.0")
		files[id+"/json"] = []byte(`{"id":"` + id + `"}`)
		paths = append(paths, id+"/layer.tar")
		diffIDs = append(diffIDs, "sha256:"+judge.SHA256(tars[i]))
	}
	cb := mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	files[judge.SHA256(cb)+".json"] = cb
	files["manifest.json"] = mustJSON(t, []map[string]any{{"Config": judge.SHA256(cb) + ".json", "RepoTags": []string{"kiln:test"}, "Layers": paths}})
	files["repositories"] = []byte(`{"kiln":{"test":"x"}}`)
	var ids []string
	for _, d := range diffIDs {
		ids = append(ids, d[7:])
	}
	return files, ids
}

func TestDockerArchive(t *testing.T) {
	one, two := tarOne(t), tarTwo(t)
	dir := t.TempDir()

	t.Run("legacy", func(t *testing.T) {
		files, ids := dockerLegacy(t, [][]byte{one, gz(t, two)}, [][]byte{one, two})
		path := writeFile(t, dir, "legacy.tar.gz", packTar(t, files))
		ls, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, ls, []string{path + "@sha256:" + ids[0], path + "@sha256:" + ids[1]})
		// The uncompressed layer is read in place, from the archive.
		var c tree.Content
		ls[0].Walk(func(e *tree.Entry) error {
			if e.Path == "etc/one" {
				c = e.Content
			}
			return nil
		})
		if sc, ok := c.(sectionContent); !ok || sc.ra.(*os.File).Name() != path {
			t.Errorf("content of an uncompressed layer is %#v, not a region of the archive", c)
		}
	})

	t.Run("oci inside", func(t *testing.T) {
		// docker 25 and later: an OCI layout with uncompressed layers,
		// manifest.json naming blobs, and legacy names as symlinks.
		im := buildOCI(t, []ociLayer{{mtLayerTar, one, one}, {mtLayerTar, two, two}}, true)
		files := im.files
		legacy := judge.SHA256([]byte("legacy"))
		files["manifest.json"] = mustJSON(t, []map[string]any{{
			"Config": "blobs/sha256/" + im.config[7:],
			"Layers": []string{"blobs/sha256/" + im.layers[0][7:], legacy + "/layer.tar"},
		}})
		link := linkE(legacy+"/layer.tar", "../blobs/sha256/"+im.layers[1][7:], tar.TypeSymlink)
		path := writeFile(t, dir, "docker25.tar", packTar(t, files, dirE(legacy+"/", 0o755), link))
		ls, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, ls, []string{path + "@" + im.layers[0], path + "@" + im.layers[1]})
	})

	t.Run("oci archive", func(t *testing.T) {
		im := buildOCI(t, twoLayers(t), false)
		path := writeFile(t, dir, "image.oci", packTar(t, im.files))
		ls, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, ls, []string{path + "@" + im.layers[0], path + "@" + im.layers[1]})
	})

	// A root filesystem holding /manifest.json used to be merged as one;
	// it cannot be told from a broken image archive, so it is refused:
	// see TestImageArchiveRefused.

	errCases := []struct {
		name   string
		edit   func(files map[string][]byte)
		atWalk bool
		cause  error
	}{
		{"diff_id", func(f map[string][]byte) {
			for n := range f {
				if strings.HasSuffix(n, "/layer.tar") {
					f[n] = tarTwo(t) // same names, another layer
					break
				}
			}
		}, true, ErrDigest},
		{"config digest", func(f map[string][]byte) {
			for n, b := range f {
				if strings.HasSuffix(n, ".json") && len(n) == 69 {
					f[n] = append(b, ' ')
				}
			}
		}, false, ErrDigest},
		{"two images", func(f map[string][]byte) {
			var m []any
			json.Unmarshal(f["manifest.json"], &m)
			f["manifest.json"] = mustJSON(t, append(m, m[0]))
		}, false, nil},
		{"missing layer", func(f map[string][]byte) {
			for n := range f {
				if strings.HasSuffix(n, "/layer.tar") {
					delete(f, n)
				}
			}
		}, false, nil},
		{"escaping layer path", func(f map[string][]byte) {
			var m []map[string]any
			json.Unmarshal(f["manifest.json"], &m)
			m[0]["Layers"] = []string{"../../etc/passwd"}
			f["manifest.json"] = mustJSON(t, m)
		}, false, ErrUnsafePath},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			files, _ := dockerLegacy(t, [][]byte{one}, [][]byte{one})
			c.edit(files)
			path := writeFile(t, t.TempDir(), "img.tar", packTar(t, files))
			err := openWalk(path, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			name := path
			if c.atWalk {
				name = path + "@sha256:" + judge.SHA256(one)
			}
			wantError(t, err, name, "", c.cause)
			t.Log(err)
		})
	}
}
