package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-build/kiln/internal/judge"
)

// buildJSON runs `kiln build --json` with extra arguments and decodes the
// summary.
func buildJSON(t *testing.T, dir string, args ...string) buildSummary {
	t.Helper()
	out, stderr, code := kiln(t, dir, nil, append([]string{"build", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("kiln build --json %v exited %d: %s", args, code, stderr)
	}
	var s buildSummary
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	return s
}

func cacheStates(s buildSummary) string {
	var b []string
	for _, l := range s.Layers {
		b = append(b, l.Format+":"+l.Cache)
	}
	return strings.Join(b, " ")
}

// TestBuildCache: a build stores its compressed layers in the cache, the
// next one reads them from it, a layer whose bytes change is stored anew
// while the others are hits, a damaged entry is rebuilt, and every one of
// these builds gives the same image as a build without a cache, which the
// judges accept.
func TestBuildCache(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs", "fsck.vfat", "mcopy", "sfdisk", "sgdisk")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, "gpt")))
	cache := filepath.Join(t.TempDir(), "cache")

	ref := buildJSON(t, dir, "--no-cache", "-o", "ref.img")
	if ref.Cache != "off" || cacheStates(ref) != "gzip:off xz:off zstd:off dir:" {
		t.Fatalf("--no-cache: cache %q, layers %s", ref.Cache, cacheStates(ref))
	}
	want := judge.SHA256File(t, filepath.Join(dir, "ref.img"))
	if ref.Output.SHA256 != "sha256:"+want {
		t.Fatalf("summary says %s, the file has %s", ref.Output.SHA256, want)
	}

	cold := buildJSON(t, dir, "--cache", cache, "-o", "cold.img")
	if got := cacheStates(cold); got != "gzip:stored xz:stored zstd:stored dir:" {
		t.Fatalf("cold build: layers %s", got)
	}
	warm := buildJSON(t, dir, "--cache", cache, "-o", "warm.img")
	if got := cacheStates(warm); got != "gzip:hit xz:hit zstd:hit dir:" {
		t.Fatalf("warm build: layers %s", got)
	}
	for i, l := range warm.Layers {
		c := cold.Layers[i]
		if l.Digest != c.Digest || l.DiffID != c.DiffID || l.Entries != c.Entries || l.Bytes != c.Bytes {
			t.Errorf("layer %s: warm %+v, cold %+v", l.Name, l, c)
		}
	}
	checkImage(t, filepath.Join(dir, "warm.img"), "gpt")

	// The top compressed layer, recompressed: other bytes, same tar.
	esp := filepath.Join(dir, "layers/esp.tar.zst")
	recompress(t, esp)
	changed := buildJSON(t, dir, "--cache", cache, "-o", "changed.img")
	if got := cacheStates(changed); got != "gzip:hit xz:hit zstd:stored dir:" {
		t.Fatalf("after changing the top layer: layers %s", got)
	}
	if changed.Layers[2].Digest == cold.Layers[2].Digest || changed.Layers[2].DiffID != cold.Layers[2].DiffID {
		t.Errorf("recompressed layer: digest %s (was %s), diff_id %s (was %s)",
			changed.Layers[2].Digest, cold.Layers[2].Digest, changed.Layers[2].DiffID, cold.Layers[2].DiffID)
	}

	// A damaged entry (the base layer's, cut short) is rebuilt.
	entry := filepath.Join(cache, "v1", "sha256", strings.TrimPrefix(cold.Layers[0].Digest, "sha256:")+".tar")
	fi, err := os.Stat(entry)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(entry, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	repaired := buildJSON(t, dir, "--cache", cache, "-o", "repaired.img")
	if got := cacheStates(repaired); got != "gzip:stored xz:hit zstd:hit dir:" {
		t.Fatalf("after damaging an entry: layers %s", got)
	}
	if n := repaired.Layers[0].Note; !strings.Contains(n, "corrupt layer cache entry") || !strings.Contains(n, "decompressed again") {
		t.Errorf("note on the damaged entry: %q", n)
	}
	if fi2, err := os.Stat(entry); err != nil || fi2.Size() != fi.Size() {
		t.Errorf("entry not stored whole again: %v", err)
	}

	for _, s := range []buildSummary{cold, warm, changed, repaired} {
		if s.Output.SHA256 != ref.Output.SHA256 {
			t.Errorf("%s: sha256 %s, the build without a cache %s", s.Output.Path, s.Output.SHA256, ref.Output.SHA256)
		}
		if got := "sha256:" + judge.SHA256File(t, filepath.Join(dir, s.Output.Path)); got != s.Output.SHA256 {
			t.Errorf("%s: summary says %s, the file has %s", s.Output.Path, s.Output.SHA256, got)
		}
	}

	// kiln cache ls and prune.
	out, stderr, code := kiln(t, dir, nil, "cache", "ls", "--cache", cache)
	if code != 0 || !strings.Contains(out, "4 entries") {
		t.Fatalf("cache ls: %d %s %s", code, out, stderr)
	}
	out, stderr, code = kiln(t, dir, nil, "cache", "prune", "--cache", cache)
	if code != 0 || !strings.Contains(out, "removed 0 files") || !strings.Contains(out, "kept 4 entries") {
		t.Fatalf("cache prune (entries used just now): %d %s %s", code, out, stderr)
	}
	out, stderr, code = kiln(t, dir, nil, "cache", "prune", "--cache", cache, "--all")
	if code != 0 || !strings.Contains(out, "removed 4 files") || !strings.Contains(out, "kept 0 entries") {
		t.Fatalf("cache prune --all: %d %s %s", code, out, stderr)
	}
	if _, _, code := kiln(t, dir, nil, "cache", "prune", "--cache", cache, "--older-than", "soon"); code != 2 {
		t.Errorf("cache prune --older-than soon exited %d, want 2", code)
	}
}

// recompress rewrites a zstd file at another level: same content, other
// bytes.
func recompress(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(d)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	if bytes.Equal(buf.Bytes(), b) {
		t.Fatal("recompressing gave the same bytes")
	}
	writeFile(t, p, buf.Bytes())
}

// TestBuildCacheConcurrent: builds started together on an empty cache all
// succeed with the same image, and leave whole entries and no temporary
// files.
func TestBuildCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, "gpt")))
	cache := filepath.Join(t.TempDir(), "cache")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(kilnBin, "build", "-q", "--cache", cache, "-o", filepath.Join(dir, "c"+string(rune('0'+i))+".img"))
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = err.Error() + ": " + string(out)
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("build %d: %s", i, e)
		}
	}
	first := judge.SHA256File(t, filepath.Join(dir, "c0.img"))
	for i := 1; i < n; i++ {
		if s := judge.SHA256File(t, filepath.Join(dir, "c"+string(rune('0'+i))+".img")); s != first {
			t.Errorf("build %d: sha256 %s, build 0 %s", i, s, first)
		}
	}
	es, _ := os.ReadDir(filepath.Join(cache, "v1", "sha256"))
	tmps, _ := os.ReadDir(filepath.Join(cache, "v1", "tmp"))
	if len(es) != 3 || len(tmps) != 0 {
		t.Fatalf("cache: %d entries, %d temporary files; want 3 and 0", len(es), len(tmps))
	}
	s := buildJSON(t, dir, "--cache", cache, "-o", "after.img")
	if got := cacheStates(s); got != "gzip:hit xz:hit zstd:hit dir:" {
		t.Errorf("after the concurrent builds: layers %s", got)
	}
}

// TestBuildSummary: --json describes the inputs, the partitions and the
// output as the judges see them.
func TestBuildSummary(t *testing.T) {
	judge.Need(t, "sfdisk")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, "gpt")))
	s := buildJSON(t, dir, "--format", "qcow2", "--compression", "zstd", "-o", "s.qcow2")
	if s.Output.Format != "qcow2" || s.Output.Compression != "zstd" || s.Output.VirtualSize != 200<<20 {
		t.Errorf("output: %+v", s.Output)
	}
	fi, err := os.Stat(filepath.Join(dir, "s.qcow2"))
	if err != nil || fi.Size() != s.Output.FileSize {
		t.Errorf("output file size %d, summary %d (%v)", fi.Size(), s.Output.FileSize, err)
	}
	if s.Epoch != epoch || s.Spec.Path != "kiln.yaml" || !strings.HasPrefix(s.Spec.Digest, "sha256:") ||
		s.Spec.SHA256 != "sha256:"+judge.SHA256File(t, filepath.Join(dir, "kiln.yaml")) {
		t.Errorf("spec: %+v, epoch %d", s.Spec, s.Epoch)
	}
	if len(s.Inputs) != 4 {
		t.Fatalf("inputs: %+v", s.Inputs)
	}
	for _, in := range s.Inputs[:3] {
		if in.Kind != "file" || in.SHA256 != "sha256:"+judge.SHA256File(t, filepath.Join(dir, in.Path)) {
			t.Errorf("input %+v: wrong digest", in)
		}
	}
	if s.Inputs[3].Kind != "dir" || s.Inputs[3].SHA256 != "" {
		t.Errorf("directory input: %+v", s.Inputs[3])
	}
	if len(s.Layers) != 4 || s.Layers[0].Format != "gzip" || s.Layers[1].Format != "xz" || s.Layers[3].Format != "dir" || s.Layers[0].Entries == 0 {
		t.Errorf("layers: %+v", s.Layers)
	}
	// Partitions as sfdisk reads them from a raw build of the same spec.
	raw := buildJSON(t, dir, "-o", "s.img")
	parts := partitions(t, filepath.Join(dir, "s.img"))
	if len(parts) != len(s.Partitions) || len(raw.Partitions) != len(s.Partitions) {
		t.Fatalf("partitions: sfdisk %+v, summary %+v", parts, s.Partitions)
	}
	for i, p := range s.Partitions {
		sp := parts[i]
		if p.Start != sp.Start*512 || p.Size != sp.Size*512 || !strings.EqualFold(p.PartUUID, sp.UUID) || !strings.EqualFold(p.TypeGUID, sp.Type) {
			t.Errorf("partition %d: summary %+v, sfdisk %+v", i+1, p, sp)
		}
		if p != raw.Partitions[i] {
			t.Errorf("partition %d: qcow2 build %+v, raw build %+v", i+1, p, raw.Partitions[i])
		}
	}
	if s.Partitions[0].Filesystem != "vfat" || s.Partitions[1].Filesystem != "ext4" || s.Partitions[1].Files == 0 || s.Partitions[1].FSUUID == "" {
		t.Errorf("filesystems: %+v", s.Partitions)
	}
	if s.Timings.Build <= 0 || s.Timings.Layers <= 0 {
		t.Errorf("timings: %+v", s.Timings)
	}
	checkKilnSummary(t, s.Kiln)
	if s.Kiln.Init != nil {
		t.Errorf("kiln_init %+v for a build without a generated initramfs", s.Kiln.Init)
	}
}

// checkKilnSummary checks the kiln section of a build summary against
// go.mod (the encoders' versions) and git (the revision the test binary
// was built from).
func checkKilnSummary(t *testing.T, k kilnSummary) {
	t.Helper()
	if k.Version == "" || !strings.HasPrefix(k.Go, "go1.") {
		t.Errorf("kiln: version %q, go %q", k.Version, k.Go)
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.Contains(f[0], ".") && strings.HasPrefix(f[1], "v") {
			want[f[0]] = f[1]
		}
	}
	names := map[string]bool{}
	for _, e := range k.Encoders {
		names[e.Name] = true
		if e.Version != want[e.Module] || e.Version == "" {
			t.Errorf("encoder %s: module %s %q, go.mod requires %q", e.Name, e.Module, e.Version, want[e.Module])
		}
	}
	for _, n := range []string{"zstd", "deflate", "xz"} {
		if !names[n] {
			t.Errorf("encoder %s missing from %+v", n, k.Encoders)
		}
	}
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if head := strings.TrimSpace(string(out)); k.VCSRevision != head {
			t.Errorf("vcs_revision %q, git HEAD %s", k.VCSRevision, head)
		}
	}
}

// TestBuildProgress: the progress line is drawn when asked for, and never
// when stderr is not a terminal (the default) or with --quiet.
func TestBuildProgress(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, "gpt")))
	_, stderr, code := kiln(t, dir, nil, "build", "--progress", "always", "-o", "p.img")
	if code != 0 {
		t.Fatal(stderr)
	}
	if !strings.Contains(stderr, "\r\x1b[Kkiln: ") || !strings.Contains(stderr, "layer layers/base.tgz merged") {
		t.Errorf("--progress always: stderr %q", stderr)
	}
	if !strings.HasSuffix(stderr, "\r\x1b[K") && !strings.HasSuffix(stderr, "\n") {
		t.Errorf("the progress line is not cleared at the end: %q", stderr[max(0, len(stderr)-80):])
	}
	_, stderr, _ = kiln(t, dir, nil, "build", "-o", "p.img")
	if strings.Contains(stderr, "\r") || !strings.Contains(stderr, "layer layers/base.tgz merged") {
		t.Errorf("not a terminal: stderr %q", stderr)
	}
	_, stderr, _ = kiln(t, dir, nil, "build", "--progress", "always", "-q", "-o", "p.img")
	if stderr != "" {
		t.Errorf("--quiet: stderr %q", stderr)
	}
	if _, _, code := kiln(t, dir, nil, "build", "--progress", "sometimes", "-o", "p.img"); code != 2 {
		t.Errorf("--progress sometimes exited %d, want 2", code)
	}
}
