package build

import (
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

var checkoutFiles = map[string]string{
	"etc/hostname":   "kiln\n",
	"etc/shadow":     "root:*:1::::::\n",
	"usr/bin/hello":  "#!/bin/sh\necho hello\n*",
	"var/lib/x/data": "x",
}

// TestDirLayerUmask: one commit, checked out with umask 022 and with umask
// 002 (files 0664/0775), gives one image. Before, a directory layer's
// modes were the host's and the second image differed.
func TestDirLayerUmask(t *testing.T) {
	sums := map[int]string{}
	for _, mask := range []int{0o022, 0o002} {
		dir := t.TempDir()
		checkoutTree(t, filepath.Join(dir, "rootfs"), mask, checkoutFiles)
		sums[mask], _ = buildSpec(t, dir, imageSpec("  - path: rootfs/\n", ""))
	}
	if sums[0o022] != sums[0o002] {
		t.Fatalf("umask 022 and 002 checkouts give different images: %s, %s", sums[0o022], sums[0o002])
	}
}

// TestDirLayerModesSpec: modes: preserve keeps the host's modes (so the
// umask shows), and chmod: sets modes in the image; both change the image.
func TestDirLayerModesSpec(t *testing.T) {
	build := func(mask int, opts string) string {
		dir := t.TempDir()
		checkoutTree(t, filepath.Join(dir, "rootfs"), mask, checkoutFiles)
		sum, _ := buildSpec(t, dir, imageSpec("  - path: rootfs/\n"+opts, "fixed"))
		return sum
	}
	git := build(0o022, "")
	if build(0o002, "    modes: preserve\n") == build(0o022, "    modes: preserve\n") {
		t.Error("modes: preserve gives the same image for umask 002 and 022 checkouts")
	}
	if build(0o022, "    modes: preserve\n") != git {
		t.Error("modes: preserve of a umask 022 checkout differs from the git policy")
	}
	if build(0o022, "    chmod:\n      /etc/shadow: \"0640\"\n") == git {
		t.Error("chmod of /etc/shadow did not change the image")
	}

	// What the image holds, as debugfs reads it, from a umask 002
	// checkout: the git policy's modes, and chmod's.
	judge.Need(t, "debugfs")
	dir := t.TempDir()
	checkoutTree(t, filepath.Join(dir, "rootfs"), 0o002, checkoutFiles)
	_, res := buildSpec(t, dir, imageSpec("  - path: rootfs/\n    chmod:\n      /etc/shadow: \"0640\"\n      /var/lib/x: \"0700\"\n", ""))
	p := res.Layout.Partitions[0]
	nodes := judge.ReadExt4(t, judge.Extract(t, res.Output, p.Start, p.Size))
	for path, want := range map[string]uint32{
		"/etc": 0o755, "/etc/hostname": 0o644, "/etc/shadow": 0o640, "/usr/bin/hello": 0o755, "/var/lib/x": 0o700, "/var/lib/x/data": 0o644,
	} {
		if n, ok := nodes[path]; !ok || n.Mode != want {
			t.Errorf("%s: %v, want mode %04o", path, n, want)
		}
	}
}
