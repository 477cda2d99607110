package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestBuildImageArchives: kiln build reads a docker-archive as skopeo and
// podman write it (layers named HEX.tar at the top, manifest.json last)
// as the image it holds, and refuses a gzipped one with exit 3, leaving
// no output. Before, both were merged as root filesystems with exit 0:
// manifest.json and the layer tarballs in the image's root.
func TestBuildImageArchives(t *testing.T) {
	judge.Need(t, "debugfs")
	dir := t.TempDir()
	layerTar := makeTar(t, []tEntry{reg("etc/hostname", []byte("from-the-image\n"), 0o644)})
	h := judge.SHA256(layerTar)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + h + `"]}}`)
	ch := judge.SHA256(cfg)
	manifest := []byte(`[{"Config":"` + ch + `.json","RepoTags":["kiln/test:1"],"Layers":["` + h + `.tar"]}]`)
	archive := makeTar(t, []tEntry{reg(h+".tar", layerTar, 0o444), reg(ch+".json", cfg, 0o444), reg("manifest.json", manifest, 0o444)})
	writeFile(t, filepath.Join(dir, "image.tar"), archive)
	writeFile(t, filepath.Join(dir, "image.tar.gz"), gz(t, archive))
	spec := func(layer string) string {
		return "layers:\n  - path: " + layer + "\ndisk:\n  size: 64MiB\n  partitions:\n    - {name: root, type: linux, filesystem: ext4, size: rest, mount: /}\noutput:\n  path: out/img.raw\n"
	}

	writeFile(t, filepath.Join(dir, "ok.yaml"), []byte(spec("image.tar")))
	if _, se, code := kiln(t, dir, nil, "build", "-q", "ok.yaml"); code != 0 {
		t.Fatalf("skopeo-style archive: exit %d: %s", code, se)
	}
	img := filepath.Join(dir, "out/img.raw")
	fsimg := judge.Extract(t, img, 1<<20, 62<<20)
	nodes := judge.ReadExt4(t, fsimg)
	if n, ok := nodes["/etc/hostname"]; !ok || n.SHA256 != judge.SHA256([]byte("from-the-image\n")) {
		t.Errorf("/etc/hostname of the image: %v", n)
	}
	for _, p := range []string{"/manifest.json", "/" + h + ".tar"} {
		if _, ok := nodes[p]; ok {
			t.Errorf("the archive's %s was merged into the image", p)
		}
	}
	os.RemoveAll(filepath.Join(dir, "out"))

	writeFile(t, filepath.Join(dir, "gz.yaml"), []byte(spec("image.tar.gz")))
	_, se, code := kiln(t, dir, nil, "build", "-q", "gz.yaml")
	if code != 3 || !strings.Contains(se, "image.tar.gz") || !strings.Contains(se, "manifest.json") {
		t.Errorf("gzipped docker archive: exit %d, %q; want 3 naming the layer and manifest.json", code, se)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
		t.Errorf("a refused build left files: %v", ents)
	}
}
