package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden/SHA256SUMS with the hashes this kiln builds")

// goldenOutputs are the outputs TestGolden pins: the file name each is
// built to (VMDK records it), the spec and the build flags. The first
// four are one spec in every format; golden-erofs.raw is its sealed-root
// shape, an EROFS root under dm-verity, and golden-erofs-lz4.raw the same
// compressed.
var goldenOutputs = []struct {
	name string
	spec string
	args []string
}{
	{"golden.raw", "kiln.yaml", []string{"--format", "raw"}},
	{"golden.qcow2", "kiln.yaml", []string{"--format", "qcow2", "--compression", "zstd"}},
	{"golden.vmdk", "kiln.yaml", []string{"--format", "vmdk"}},
	{"golden.vhd", "kiln.yaml", []string{"--format", "vhd"}},
	{"golden-erofs.raw", "erofs.yaml", []string{"--format", "raw"}},
	{"golden-erofs-lz4.raw", "erofs-lz4.yaml", []string{"--format", "raw"}},
}

// TestGolden is the promise that the same kiln gives the same bytes: the
// spec and layers in testdata/golden build to raw, qcow2 (zstd), vmdk and
// vhd whose sha256 are committed in testdata/golden/SHA256SUMS. Any change
// of output bytes fails it until the hashes are updated in the same commit
// (go test ./cmd/kiln -run TestGolden -update-golden), with a line in
// CHANGELOG.md saying why. The images are judged too, so that the pinned
// bytes are a valid image: sgdisk, e2fsck, fsck.vfat, and qemu-img check
// and compare of each format against the raw one.
func TestGolden(t *testing.T) {
	judge.Need(t, "sgdisk", "sfdisk", "e2fsck", "fsck.vfat", "qemu-img", "fsck.erofs", "veritysetup")
	src, err := filepath.Abs("../../testdata/golden")
	if err != nil {
		t.Fatal(err)
	}
	sumsPath := filepath.Join(src, "SHA256SUMS")
	want := readSums(t, sumsPath)

	got := map[string]string{}
	paths := map[string]string{}
	for _, o := range goldenOutputs {
		out := filepath.Join(t.TempDir(), o.name)
		args := append([]string{"build", "-q", o.spec, "-o", out}, o.args...)
		if _, se, code := kiln(t, src, []string{"SOURCE_DATE_EPOCH="}, args...); code != 0 {
			t.Fatalf("kiln %s: exit %d\n%s", strings.Join(args, " "), code, se)
		}
		got[o.name] = judge.SHA256File(t, out)
		paths[o.name] = out
	}

	// The pinned bytes must be a valid image.
	raw := paths["golden.raw"]
	parts := twoPartitions(t, raw, "gpt")
	judge.FsckVfat(t, judge.Extract(t, raw, parts[0].Start*512, parts[0].Size*512))
	judge.E2fsck(t, judge.Extract(t, raw, parts[1].Start*512, parts[1].Size*512))
	for _, o := range goldenOutputs[1:4] {
		qfmt := strings.TrimPrefix(filepath.Ext(o.name), ".")
		if qfmt == "vhd" {
			qfmt = "vpc"
		} else if out, code := judge.Run(t, nil, "qemu-img", "check", "-f", qfmt, paths[o.name]); code != 0 {
			t.Errorf("qemu-img check %s (exit %d):\n%s", o.name, code, out)
		}
		if out, code := judge.Run(t, nil, "qemu-img", "compare", "-f", "raw", "-F", qfmt, raw, paths[o.name]); code != 0 {
			t.Errorf("qemu-img compare golden.raw %s (exit %d):\n%s", o.name, code, out)
		}
	}

	// The EROFS root: fsck.erofs finds nothing to say (1.5 exits 0 on
	// some errors, so any <E> or <W> line fails too), and inspect names it.
	// Sealed (uncompressed and lz4): veritysetup verify accepts the root
	// and its hash partition with the root hash inspect reads back, and
	// fsck.erofs the root.
	for _, name := range []string{"golden-erofs.raw", "golden-erofs-lz4.raw"} {
		ero := paths[name]
		judge.SgdiskVerify(t, ero)
		judge.SfdiskVerify(t, ero)
		eparts := partitions(t, ero)
		if len(eparts) != 3 {
			t.Fatalf("%s: want esp, root, root-verity; sfdisk sees %+v", name, eparts)
		}
		judge.FsckVfat(t, judge.Extract(t, ero, eparts[0].Start*512, eparts[0].Size*512))
		eroot := judge.Extract(t, ero, eparts[1].Start*512, eparts[1].Size*512)
		judge.FsckErofs(t, eroot)
		if out, ok := judge.VeritysetupVerify(t, eroot, judge.Extract(t, ero, eparts[2].Start*512, eparts[2].Size*512), rootHashOf(t, ero)); !ok {
			t.Errorf("veritysetup verify refuses %s's sealed root:\n%s", name, out)
		}
		if so, se, code := kiln(t, src, nil, "inspect", "--json", ero); code != 0 || !strings.Contains(so, `"type": "erofs"`) {
			t.Errorf("kiln inspect %s (exit %d) does not show an erofs root:\n%s%s", name, code, so, se)
		}
	}

	if *updateGolden {
		var b strings.Builder
		b.WriteString("# sha256 of testdata/golden/kiln.yaml built by kiln (cmd/kiln/golden_test.go):\n")
		b.WriteString("# go test ./cmd/kiln -run TestGolden -update-golden rewrites it; say why in CHANGELOG.md.\n")
		for _, o := range goldenOutputs {
			fmt.Fprintf(&b, "%s  %s\n", got[o.name], o.name)
		}
		if err := os.WriteFile(sumsPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", sumsPath)
		return
	}
	var changed []string
	for _, o := range goldenOutputs {
		if want[o.name] != got[o.name] {
			changed = append(changed, fmt.Sprintf("%s: %s, pinned %s", o.name, got[o.name], want[o.name]))
		}
	}
	if len(changed) > 0 {
		t.Fatalf("the output bytes changed:\n  %s\nIf that is intended, run go test ./cmd/kiln -run TestGolden -update-golden and say why in CHANGELOG.md, in the same commit.",
			strings.Join(changed, "\n  "))
	}
}

// readSums reads a sha256sum-style file: "HEX  NAME" lines, # comments.
func readSums(t *testing.T, p string) map[string]string {
	t.Helper()
	m := map[string]string{}
	f, err := os.Open(p)
	if err != nil {
		if os.IsNotExist(err) && *updateGolden {
			return m
		}
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: malformed line %q", p, line)
		}
		m[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(m) != len(goldenOutputs) && !*updateGolden {
		t.Fatalf("%s pins %v, want %d outputs", p, names, len(goldenOutputs))
	}
	return m
}
