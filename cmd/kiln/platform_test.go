package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// DPS root partition types.
const (
	rootX86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	rootArm64  = "b921b045-1df0-41c3-af44-4c6f280d3fae"
)

// podmanImages makes, with podman (its own storage in the test's
// folder), an image for linux/amd64 and one for linux/arm64/v8, each of
// /etc/marker saying its architecture plus a file only it has, and
// writes them as OCI image layouts into dir: "multi", the two under one
// index as podman manifest push --all writes it (an index blob listing
// each manifest with its platform), and "arm64-only", the arm64 image
// alone as podman push writes it (an index.json of one manifest, without
// a platform: only its config says arm64). FROM scratch and COPY need no
// emulation to build for arm64.
func podmanImages(t *testing.T, dir string) {
	t.Helper()
	judge.Need(t, "podman")
	store := t.TempDir()
	podman := func(args ...string) {
		t.Helper()
		args = append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)
		if out, code := judge.Run(t, nil, "podman", args...); code != 0 {
			t.Fatalf("podman %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	for _, a := range []struct{ arch, platform string }{{"amd64", "linux/amd64"}, {"arm64", "linux/arm64/v8"}} {
		ctx := filepath.Join(store, "ctx-"+a.arch)
		writeFile(t, filepath.Join(ctx, "marker"), []byte(a.arch+"\n"))
		writeFile(t, filepath.Join(ctx, "only"), []byte("only in the "+a.arch+" image\n"))
		writeFile(t, filepath.Join(ctx, "Containerfile"), []byte("FROM scratch\nCOPY marker /etc/marker\nCOPY only /etc/only-"+a.arch+"\n"))
		podman("build", "--quiet", "--isolation", "chroot", "--platform", a.platform, "-t", "localhost/kiln/plat:"+a.arch, ctx)
	}
	podman("manifest", "create", "localhost/kiln/multi:1")
	podman("manifest", "add", "localhost/kiln/multi:1", "containers-storage:localhost/kiln/plat:amd64")
	podman("manifest", "add", "localhost/kiln/multi:1", "containers-storage:localhost/kiln/plat:arm64")
	podman("manifest", "push", "--quiet", "--all", "localhost/kiln/multi:1", "oci:"+filepath.Join(dir, "multi")+":1")
	podman("push", "--quiet", "localhost/kiln/plat:arm64", "oci:"+filepath.Join(dir, "arm64-only")+":1")
}

// TestBuildOCIPlatform: the image kiln takes from a multi-platform OCI
// layout follows --arch (over a spec saying x86-64), which also gives the
// root partition its DPS type and the image its own IDs; --platform takes
// another platform's image on purpose; a platform the index lacks, and a
// single image for another architecture, are refused with exit 3, a
// message naming the layer and the platforms, and no output left.
func TestBuildOCIPlatform(t *testing.T) {
	judge.Need(t, "debugfs", "sfdisk")
	dir := t.TempDir()
	podmanImages(t, dir)
	spec := func(layer string) string {
		return "layers:\n  - path: " + layer + "\ndisk:\n  arch: x86-64\n  size: 64MiB\n  partitions:\n" +
			"    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\nboot:\n  loader: none\noutput:\n  path: out/img.raw\n"
	}
	writeFile(t, filepath.Join(dir, "multi.yaml"), []byte(spec("multi")))
	writeFile(t, filepath.Join(dir, "single.yaml"), []byte(spec("arm64-only")))

	type built struct {
		marker   string
		only     []string
		rootType string
		rootUUID string
	}
	build := func(t *testing.T, specFile string, args ...string) built {
		t.Helper()
		out := filepath.Join(dir, "out", strings.Join(append([]string{specFile}, args...), "_")+".raw")
		args = append([]string{"build", "-q", "-o", out}, append(args, specFile)...)
		if _, se, code := kiln(t, dir, nil, args...); code != 0 {
			t.Fatalf("kiln %s: exit %d: %s", strings.Join(args, " "), code, se)
		}
		ps := partitions(t, out)
		if len(ps) != 1 {
			t.Fatalf("%d partitions, want 1", len(ps))
		}
		nodes := judge.ReadExt4(t, judge.Extract(t, out, ps[0].Start*512, ps[0].Size*512))
		b := built{rootType: strings.ToLower(ps[0].Type), rootUUID: strings.ToLower(ps[0].UUID)}
		for p, n := range nodes {
			if strings.HasPrefix(p, "/etc/only-") {
				b.only = append(b.only, p)
			}
			if p == "/etc/marker" {
				for _, a := range []string{"amd64", "arm64"} {
					if n.SHA256 == judge.SHA256([]byte(a+"\n")) {
						b.marker = a
					}
				}
				if b.marker == "" {
					t.Errorf("/etc/marker is neither image's: %+v", n)
				}
			}
		}
		return b
	}
	check := func(t *testing.T, b built, marker, rootType string) {
		t.Helper()
		if b.marker != marker || len(b.only) != 1 || b.only[0] != "/etc/only-"+marker {
			t.Errorf("the image holds /etc/marker of %q and %v; want %s's alone", b.marker, b.only, marker)
		}
		if b.rootType != rootType {
			t.Errorf("root partition type %s, want %s", b.rootType, rootType)
		}
	}

	amd := build(t, "multi.yaml", "--arch", "amd64")
	check(t, amd, "amd64", rootX86_64)
	if plain := build(t, "multi.yaml"); !reflect.DeepEqual(plain, amd) {
		t.Errorf("the spec's x86-64 alone gives %+v, --arch amd64 %+v", plain, amd)
	}
	arm := build(t, "multi.yaml", "--arch", "arm64")
	check(t, arm, "arm64", rootArm64)
	check(t, build(t, "multi.yaml", "--arch", "aarch64", "--platform", "linux/arm64"), "arm64", rootArm64)

	// --platform takes the amd64 image for an arm64 disk: the same
	// layers as the amd64 build, yet the arm64 disk has its own IDs.
	mixed := build(t, "multi.yaml", "--arch", "arm64", "--platform", "linux/amd64")
	check(t, mixed, "amd64", rootArm64)
	if mixed.rootUUID == amd.rootUUID {
		t.Errorf("the arm64 build of the amd64 image shares the partition UUID %s of the amd64 build", amd.rootUUID)
	}

	// The arm64 image alone: its config says arm64.
	check(t, build(t, "single.yaml", "--arch", "arm64"), "arm64", rootArm64)

	// kiln verify passes --arch and --platform to both builds.
	keep := filepath.Join(dir, "kept")
	so, se, code := kiln(t, dir, nil, "verify", "-q", "--keep", keep, "--arch", "arm64", "--platform", "linux/amd64", "multi.yaml")
	if code != 0 || !strings.Contains(so, "reproducible") {
		t.Errorf("kiln verify --arch arm64 --platform linux/amd64: exit %d\n%s%s", code, so, se)
	}
	kept, _ := filepath.Glob(filepath.Join(keep, "*", "*.raw"))
	if len(kept) != 2 {
		t.Errorf("kiln verify kept %v, want two images", kept)
	}
	for _, img := range kept {
		if ps := partitions(t, img); len(ps) != 1 || strings.ToLower(ps[0].Type) != rootArm64 || strings.ToLower(ps[0].UUID) != mixed.rootUUID {
			t.Errorf("kiln verify built %s with partitions %+v; want the arm64 disk of the amd64 image (UUID %s)", img, ps, mixed.rootUUID)
		}
	}

	refused := []struct {
		name  string
		args  []string
		code  int
		inErr []string
	}{
		{"platform missing from the index", []string{"--arch", "riscv64", "multi.yaml"}, 3,
			[]string{"layer multi: ", "no image for linux/riscv64", "it has linux/amd64, linux/arm64/v8"}},
		{"variant missing from the index", []string{"--platform", "linux/amd64/v3", "multi.yaml"}, 3,
			[]string{"no image for linux/amd64/v3", "it has linux/amd64, linux/arm64/v8"}},
		{"single image of another architecture", []string{"single.yaml"}, 3,
			[]string{"layer arm64-only: ", "is for linux/arm64/v8, not linux/amd64", "--platform"}},
		{"bad --arch", []string{"--arch", "vax", "multi.yaml"}, 2, []string{`--arch: unknown architecture "vax"`}},
		{"bad --platform", []string{"--platform", "arm64", "multi.yaml"}, 2, []string{"--platform", "want os/arch"}},
		{"kiln verify: bad --arch", []string{"verify", "--arch", "vax", "multi.yaml"}, 2, []string{`--arch: unknown architecture "vax"`}},
		{"kiln verify: bad --platform", []string{"verify", "--platform", "linux", "multi.yaml"}, 2, []string{"--platform", "want os/arch"}},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			out := filepath.Join(dir, "refused", "img.raw")
			args := append([]string{"build", "-q", "-o", out}, r.args...)
			if r.args[0] == "verify" {
				args = append([]string{"verify", "-q", "--keep", filepath.Dir(out)}, r.args[1:]...)
			}
			_, se, code := kiln(t, dir, nil, args...)
			if code != r.code {
				t.Errorf("exit %d, want %d: %s", code, r.code, se)
			}
			for _, s := range r.inErr {
				if !strings.Contains(se, s) {
					t.Errorf("stderr %q does not say %q", se, s)
				}
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("a refused build left files: %v", ents)
			}
		})
	}
}
