package layer

import (
	"fmt"
	"strings"
	"testing"
)

// platImage adds to files an image of one uncompressed layer holding
// /marker (text marker) whose config states cfg (nil: no platform at all)
// and returns its manifest's descriptor, listed for listed (nil: none).
func platImage(t testing.TB, files map[string][]byte, marker string, cfg, listed *Platform) descriptor {
	t.Helper()
	im := &ociImage{files: files}
	lt := buildTar(t, fileE("marker", marker, 0o644))
	c := map[string]any{"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + sha256Hex(lt)}}}
	if cfg != nil {
		c["os"], c["architecture"] = cfg.OS, cfg.Architecture
		if cfg.Variant != "" {
			c["variant"] = cfg.Variant
		}
	}
	cb := mustJSON(t, c)
	ld := descriptor{MediaType: mtLayerTar, Digest: im.add(lt), Size: int64(len(lt))}
	cd := descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: im.add(cb), Size: int64(len(cb))}
	mb := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mtOCIManifest, "config": cd, "layers": []descriptor{ld}})
	return descriptor{MediaType: mtOCIManifest, Digest: im.add(mb), Size: int64(len(mb)), Platform: listed}
}

// layoutOf writes an OCI image layout of files whose index.json lists ds.
func layoutOf(t testing.TB, files map[string][]byte, ds ...descriptor) string {
	t.Helper()
	all := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json": mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": ds})}
	for k, v := range files {
		all[k] = v
	}
	return writeTree(t, all)
}

// markerOf opens path for want and returns what its image's /marker says.
func markerOf(t *testing.T, path string, want Platform) (string, error) {
	t.Helper()
	ls, err := Open(path, Options{Platform: want})
	if err != nil {
		return "", err
	}
	if len(ls) != 1 {
		t.Fatalf("%d layers, want 1", len(ls))
	}
	gs := walkAll(t, ls[0])
	if len(gs) != 1 || gs[0].Path != "marker" {
		t.Fatalf("entries %+v, want marker alone", gs)
	}
	return gs[0].data, nil
}

func plat(s string) *Platform {
	parts := strings.Split(s, "/")
	p := &Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p
}

var (
	amd64   = Platform{OS: "linux", Architecture: "amd64"}
	arm64   = Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armv7   = Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	riscv64 = Platform{OS: "linux", Architecture: "riscv64"}
)

// TestPlatformChoice: the image of an index is chosen by platform; a
// missing platform is an error naming the layout, the platform wanted and
// the ones the index has.
func TestPlatformChoice(t *testing.T) {
	type pick struct {
		want   Platform
		marker string // "" for an error
		inErr  string
	}
	files := map[string][]byte{}
	a := platImage(t, files, "amd64", plat("linux/amd64"), plat("linux/amd64"))
	b := platImage(t, files, "arm64 v8", plat("linux/arm64/v8"), plat("linux/arm64/v8"))
	bNoVariant := platImage(t, files, "arm64 bare", plat("linux/arm64"), plat("linux/arm64"))
	b9 := platImage(t, files, "arm64 v9", plat("linux/arm64/v9"), plat("linux/arm64/v9"))
	v7 := platImage(t, files, "arm bare", plat("linux/arm"), plat("linux/arm"))
	v6 := platImage(t, files, "arm v6", plat("linux/arm/v6"), plat("linux/arm/v6"))
	a3 := platImage(t, files, "amd64 v3", plat("linux/amd64/v3"), plat("linux/amd64/v3"))
	a2 := platImage(t, files, "amd64 again", plat("linux/amd64"), plat("linux/amd64"))
	cases := []struct {
		name  string
		index []descriptor
		picks []pick
	}{
		{"amd64 and arm64/v8", []descriptor{a, b}, []pick{
			{Platform{}, "amd64", ""}, // the zero value is linux/amd64
			{amd64, "amd64", ""},
			{arm64, "arm64 v8", ""},
			{Platform{OS: "linux", Architecture: "arm64"}, "arm64 v8", ""},
			{riscv64, "", "no image for linux/riscv64; it has linux/amd64, linux/arm64/v8"},
			{armv7, "", "no image for linux/arm/v7; it has linux/amd64, linux/arm64/v8"},
			{Platform{OS: "windows", Architecture: "amd64"}, "", "no image for windows/amd64"},
		}},
		{"arm64 without a variant is v8", []descriptor{a, bNoVariant}, []pick{
			{arm64, "arm64 bare", ""},
		}},
		{"arm64/v8 preferred to arm64", []descriptor{bNoVariant, b, b9}, []pick{
			{arm64, "arm64 v8", ""},
			{Platform{OS: "linux", Architecture: "arm64", Variant: "v9"}, "arm64 v9", ""},
			{amd64, "", "no image for linux/amd64; it has linux/arm64, linux/arm64/v8, linux/arm64/v9"},
		}},
		{"arm without a variant is v7", []descriptor{v6, v7}, []pick{
			{armv7, "arm bare", ""},
			{Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "arm v6", ""},
		}},
		{"amd64/v3 is not amd64", []descriptor{a3}, []pick{
			{amd64, "", "no image for linux/amd64; it has linux/amd64/v3"},
			{Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, "amd64 v3", ""},
		}},
		{"two images for a platform", []descriptor{a, a2, b}, []pick{
			{amd64, "", "2 different image manifests for linux/amd64"},
			{arm64, "arm64 v8", ""},
		}},
		{"the same image listed twice", []descriptor{a, a, b}, []pick{
			{amd64, "amd64", ""},
		}},
		{"one image, listed for arm64", []descriptor{b}, []pick{
			{arm64, "arm64 v8", ""},
			{amd64, "", "no image for linux/amd64; it has linux/arm64/v8"},
		}},
	}
	for _, c := range cases {
		dir := layoutOf(t, files, c.index...)
		for _, p := range c.picks {
			t.Run(c.name+"/"+p.want.String(), func(t *testing.T) {
				got, err := markerOf(t, dir, p.want)
				if p.marker != "" {
					if err != nil || got != p.marker {
						t.Fatalf("marker %q, %v; want %q", got, err, p.marker)
					}
					return
				}
				if err == nil {
					t.Fatalf("took the image of marker %q; want an error", got)
				}
				wantError(t, err, dir, "", ErrPlatform)
				if !strings.Contains(err.Error(), p.inErr) {
					t.Errorf("error %q does not say %q", err, p.inErr)
				}
			})
		}
	}
}

// TestPlatformConfig: an image whose config says another platform is
// refused, whether the index lists no platform for it, lists none at all
// (no index: a docker archive), or lies about it; one that states none is
// taken only on the word of the index.
func TestPlatformConfig(t *testing.T) {
	files := map[string][]byte{}
	armBare := platImage(t, files, "arm64", plat("linux/arm64"), nil)
	armListedAmd := platImage(t, files, "arm64", plat("linux/arm64"), plat("linux/amd64"))
	silent := platImage(t, files, "silent", nil, nil)
	silentListed := platImage(t, files, "silent", nil, plat("linux/arm64"))
	cases := []struct {
		name   string
		index  descriptor
		want   Platform
		ok     bool
		inErrs []string
	}{
		{"single arm64 image, unlisted, for arm64", armBare, arm64, true, nil},
		{"single arm64 image, unlisted, for amd64", armBare, amd64, false, []string{"is for linux/arm64/v8, not linux/amd64", armBare.Digest}},
		{"arm64 image listed as amd64", armListedAmd, amd64, false, []string{"is for linux/arm64/v8, not linux/amd64"}},
		{"no platform anywhere", silent, amd64, false, []string{"states no architecture or os", "linux/amd64"}},
		{"no platform in the config, listed", silentListed, arm64, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := layoutOf(t, files, c.index)
			_, err := markerOf(t, dir, c.want)
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			wantError(t, err, dir, "", ErrPlatform)
			for _, s := range c.inErrs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}

	// A docker archive has no index: its config says.
	one := tarOne(t)
	for _, arch := range []string{"arm64", ""} {
		files, _ := dockerLegacy(t, [][]byte{one}, [][]byte{one})
		var name string
		for n := range files {
			if strings.HasSuffix(n, ".json") && n != "manifest.json" {
				name = n
			}
		}
		cfg := strings.Replace(string(files[name]), `"architecture":"amd64"`, `"architecture":"`+arch+`"`, 1)
		if arch == "" {
			cfg = strings.Replace(cfg, `"os":"linux"`, `"os":""`, 1)
		}
		if cfg == string(files[name]) {
			t.Fatalf("config %s not edited", files[name])
		}
		delete(files, name)
		files[sha256Hex([]byte(cfg))+".json"] = []byte(cfg)
		files["manifest.json"] = []byte(strings.Replace(string(files["manifest.json"]), name, sha256Hex([]byte(cfg))+".json", 1))
		path := writeFile(t, t.TempDir(), "docker.tar", packTar(t, files))
		_, err := Open(path, Options{Platform: amd64})
		if err == nil {
			t.Fatalf("docker archive of config architecture %q: taken for linux/amd64", arch)
		}
		wantError(t, err, path, "", ErrPlatform)
		if strings.Contains(err.Error(), "cannot be read") {
			t.Errorf("error %q: the archive was read; its platform is wrong", err)
		}
		if arch == "arm64" {
			if _, err := Open(path, Options{Platform: arm64}); err != nil {
				t.Errorf("docker archive for arm64, opened for arm64: %v", err)
			}
		}
	}
}

// TestPlatformErrorBounded: an index of thousands of platforms, with
// names that would forge lines, gives a short error of quoted names.
func TestPlatformErrorBounded(t *testing.T) {
	files := map[string][]byte{}
	var ds []descriptor
	for i := 0; i < 2000; i++ {
		ds = append(ds, descriptor{MediaType: mtOCIManifest, Digest: "sha256:" + fmt.Sprintf("%064x", i), Size: 1,
			Platform: &Platform{OS: "linux", Architecture: fmt.Sprintf("arch%04d", i)}})
	}
	ds = append(ds, descriptor{MediaType: mtOCIManifest, Digest: "sha256:" + strings.Repeat("e", 64), Size: 1,
		Platform: &Platform{OS: "linux\nkiln: all good", Architecture: "amd64"}})
	ds = append(ds, descriptor{MediaType: mtOCIManifest, Digest: "sha256:" + strings.Repeat("f", 64), Size: 1})
	dir := layoutOf(t, files, ds...)
	_, err := Open(dir, Options{Platform: riscv64})
	if err == nil {
		t.Fatal("no error")
	}
	wantError(t, err, dir, "", ErrPlatform)
	msg := err.Error()
	if len(msg) > 1000 || strings.Contains(msg, "\n") {
		t.Errorf("error of %d bytes, newline %v: %q", len(msg), strings.Contains(msg, "\n"), trunc(msg))
	}
	for _, s := range []string{"linux/arch0000", "and 1985 more", "1 without a platform"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", trunc(msg), s)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"linux/amd64", "linux/amd64"},
		{"linux/x86_64", "linux/amd64"},
		{"linux/arm64", "linux/arm64/v8"},
		{"linux/aarch64", "linux/arm64/v8"},
		{"Linux/ARM64/v8", "linux/arm64/v8"},
		{"linux/arm", "linux/arm/v7"},
		{"linux/arm/v6", "linux/arm/v6"},
		{"linux/riscv64", "linux/riscv64"},
		{"linux/amd64/v3", "linux/amd64/v3"},
		{"linux", ""},
		{"linux/", ""},
		{"linux/amd64/v1/x", ""},
		{"linux/amd 64", ""},
		{"linux/amd64\n", ""},
	} {
		p, err := ParsePlatform(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParsePlatform(%q) = %s, want an error", c.in, p)
		case c.want != "" && (err != nil || p.String() != c.want):
			t.Errorf("ParsePlatform(%q) = %s, %v; want %s", c.in, p, err, c.want)
		}
	}
	for arch, want := range map[string]string{"": "linux/amd64", "x86-64": "linux/amd64", "x86": "linux/386",
		"arm64": "linux/arm64/v8", "arm": "linux/arm/v7", "riscv64": "linux/riscv64"} {
		p, err := PlatformForArch(arch)
		if err != nil || p.String() != want {
			t.Errorf("PlatformForArch(%q) = %s, %v; want %s", arch, p, err, want)
		}
	}
	if _, err := PlatformForArch("vax"); err == nil {
		t.Error("PlatformForArch(vax): no error")
	}
}
