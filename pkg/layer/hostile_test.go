package layer_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/tree"
)

// ociDescriptor is a descriptor of an OCI image, as written in test code.
type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

// TestNestedIndexFanOut opens an OCI archive whose index lists the same
// nested index many times, at every level down to the deepest kiln
// follows: 40^4 paths to one manifest. Each nested index is read once;
// read along every path, opening the archive would not end for hours.
func TestNestedIndexFanOut(t *testing.T) {
	blobs := map[string][]byte{}
	add := func(b []byte) ociDescriptor {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs["blobs/sha256/"+hex.EncodeToString(sum[:])] = b
		return ociDescriptor{Digest: d, Size: len(b)}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var lb bytes.Buffer
	tw := tar.NewWriter(&lb)
	tw.WriteHeader(&tar.Header{Name: "etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: time.Unix(1700000000, 0)})
	tw.Write([]byte("kiln\n"))
	tw.Close()
	ld := add(lb.Bytes())
	ld.MediaType = "application/vnd.oci.image.layer.v1.tar"
	cd := add(mustJSON(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{ld.Digest}}}))
	cd.MediaType = "application/vnd.oci.image.config.v1+json"
	md := add(mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cd, "layers": []ociDescriptor{ld}}))
	md.MediaType = "application/vnd.oci.image.manifest.v1+json"

	index := func(d ociDescriptor, n int) []byte {
		ds := make([]ociDescriptor, n)
		for i := range ds {
			ds[i] = d
		}
		return mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ds})
	}
	// index.json lists the same nested index 40 times, which lists the
	// same one 40 times, and so on, four levels down (as deep as kiln
	// follows), to one that lists the manifest.
	const mtIndex = "application/vnd.oci.image.index.v1+json"
	d := add(index(md, 1))
	d.MediaType = mtIndex
	for range 3 {
		d = add(index(d, 40))
		d.MediaType = mtIndex
	}
	top := index(d, 40)

	var ab bytes.Buffer
	aw := tar.NewWriter(&ab)
	file := func(name string, b []byte) {
		aw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(1700000000, 0)})
		aw.Write(b)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", top)
	for name, b := range blobs {
		file(name, b)
	}
	aw.Close()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, ab.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ls, err := layer.Open(p, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Name() != fmt.Sprintf("%s@%s", p, ld.Digest) {
		t.Fatalf("layers %v, want the one layer %s", ls, ld.Digest)
	}
}

// TestLimitsApplyToImageLayers: the layers of a docker archive, whose
// uncompressed streams are hashed against their diff_ids, are bounded as
// any layer is.
func TestLimitsApplyToImageLayers(t *testing.T) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for i := range 3 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("zero-%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 3 << 19, ModTime: time.Unix(1700000000, 0)})
		tw.Write(make([]byte, 3<<19))
	}
	tw.Close()
	var gb bytes.Buffer
	gw := gzip.NewWriter(&gb)
	gw.Write(tb.Bytes())
	gw.Close()
	hexOf := func(b []byte) string {
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, hexOf(tb.Bytes())))
	var ab bytes.Buffer
	aw := tar.NewWriter(&ab)
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"manifest.json", []byte(fmt.Sprintf(`[{"Config":"%s.json","Layers":["blobs/sha256/%s"]}]`, hexOf(config), hexOf(gb.Bytes())))},
		{hexOf(config) + ".json", config},
		{"blobs/sha256/" + hexOf(gb.Bytes()), gb.Bytes()},
	} {
		aw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(1700000000, 0)})
		aw.Write(f.data)
	}
	aw.Close()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, ab.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name     string
		maxBytes int64
		want     error
	}{
		{"within the default limits", 0, nil},
		{"over 4 MiB", 4 << 20, layer.ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			ls, err := layer.Open(p, layer.Options{TempDir: t.TempDir(), MaxBytes: c.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != 1 {
				t.Fatalf("%d layers", len(ls))
			}
			n := 0
			err = ls[0].Walk(func(e *tree.Entry) error { n++; return nil })
			if !errors.Is(err, c.want) {
				t.Fatalf("walk: %v, want %v", err, c.want)
			}
			var le *layer.Error
			if c.want != nil && (!errors.As(err, &le) || le.Entry != "zero-2") {
				t.Errorf("the error does not name the entry zero-2: %v", err)
			}
			if c.want == nil && n != 3 {
				t.Errorf("%d entries, want 3", n)
			}
		})
	}
}
