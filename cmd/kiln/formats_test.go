package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// TestFormats builds the merge-rules spec in every format and compression:
// qemu-img checks each and finds it identical to the raw image of the same
// spec, and each is byte-identical between a GOMAXPROCS=1 and a
// GOMAXPROCS=2 build. kiln convert and kiln diff read them too.
func TestFormats(t *testing.T) {
	judge.Need(t, "qemu-img")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, "gpt")))
	raw := filepath.Join(dir, "raw.img")
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", raw); code != 0 {
		t.Fatal(se)
	}
	cases := []struct {
		name, format, compression string
		extra                     []string
		check                     bool   // qemu-img check applies (qcow2, vmdk)
		infoKey, infoWant         string // a field of qemu-img info's format-specific data
	}{
		{"qcow2", "qcow2", "none", nil, true, "compression-type", "zlib"}, // qemu reports zlib as the (unused) default
		{"qcow2-zlib", "qcow2", "zlib", nil, true, "compression-type", "zlib"},
		{"qcow2-zstd", "qcow2", "zstd", nil, true, "compression-type", "zstd"},
		{"vmdk", "vmdk", "", nil, true, "create-type", "streamOptimized"},
		{"vhd-dynamic", "vhd", "", nil, false, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var imgs []string
			for _, procs := range []string{"1", "2"} {
				out := filepath.Join(t.TempDir(), "image."+tc.format) // same name: VMDK records it
				args := []string{"build", "-q", "-o", out, "--format", tc.format}
				if tc.compression != "" {
					args = append(args, "--compression", tc.compression)
				}
				if _, se, code := kiln(t, dir, []string{"GOMAXPROCS=" + procs}, args...); code != 0 {
					t.Fatalf("build: %s", se)
				}
				imgs = append(imgs, out)
			}
			if a, b := judge.SHA256File(t, imgs[0]), judge.SHA256File(t, imgs[1]); a != b {
				t.Fatalf("GOMAXPROCS=1 and 2 give different %s: %s vs %s", tc.name, a, b)
			}
			img := imgs[0]
			qfmt := map[string]string{"vhd": "vpc"}[tc.format]
			if qfmt == "" {
				qfmt = tc.format
			}
			if tc.check {
				if out, code := judge.Run(t, nil, "qemu-img", "check", "-f", qfmt, img); code != 0 || !strings.Contains(out, "No errors were found") {
					t.Fatalf("qemu-img check (exit %d):\n%s", code, out)
				}
			}
			if out, code := judge.Run(t, nil, "qemu-img", "compare", "-f", qfmt, "-F", "raw", img, raw); code != 0 {
				t.Fatalf("qemu-img compare with the raw image (exit %d):\n%s", code, out)
			}
			out, code := judge.Run(t, nil, "qemu-img", "info", "--output=json", "-f", qfmt, img)
			if code != 0 {
				t.Fatal(out)
			}
			var info struct {
				Format  string `json:"format"`
				Virtual int64  `json:"virtual-size"`
				Spec    struct {
					Data map[string]any `json:"data"`
				} `json:"format-specific"`
			}
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != qfmt || info.Virtual != 200<<20 {
				t.Errorf("qemu-img info: %s", out)
			}
			if tc.infoKey != "" && info.Spec.Data[tc.infoKey] != tc.infoWant {
				t.Errorf("qemu-img info %s = %v, want %s:\n%s", tc.infoKey, info.Spec.Data[tc.infoKey], tc.infoWant, out)
			}
			// kiln diff reads the format: identical to the raw image.
			if out, se, code := kiln(t, "", nil, "diff", img, raw); code != 0 || strings.TrimSpace(out) != "identical" {
				t.Errorf("kiln diff %s raw: exit %d %s %s", tc.name, code, out, se)
			}
			// kiln convert back to raw gives the raw image's bytes.
			back := filepath.Join(t.TempDir(), "back.img")
			if _, se, code := kiln(t, "", nil, "convert", img, back, "--format", "raw"); code != 0 {
				t.Fatalf("convert: %s", se)
			}
			if judge.SHA256File(t, back) != judge.SHA256File(t, raw) {
				t.Errorf("kiln convert %s to raw differs from the raw build", tc.name)
			}
		})
	}
	// An Azure fixed VHD has a whole-MiB virtual size and the raw bytes.
	vhd := filepath.Join(t.TempDir(), "azure.vhd")
	if _, se, code := kiln(t, "", nil, "convert", raw, vhd, "--format", "vhd", "--azure"); code != 0 {
		t.Fatal(se)
	}
	if out, code := judge.Run(t, nil, "qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd, raw); code != 0 {
		t.Fatalf("azure vhd: %s", out)
	}
}
