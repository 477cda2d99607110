package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestVerify runs kiln verify on the spec exercising every merge rule and
// on the demo spec (kernel, initramfs, systemd-boot and syslinux): both
// must be reproducible under a varied environment.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, "gpt")))
	specs := []string{filepath.Join(dir, "kiln.yaml")}
	sealed := t.TempDir()
	writeFile(t, filepath.Join(sealed, "kiln.yaml"), []byte(sealedFixture(t, sealed)))
	specs = append(specs, filepath.Join(sealed, "kiln.yaml"))
	if !testing.Short() {
		repo, _ := demoDebs(t)
		specs = append(specs, filepath.Join(repo, "layers/demo/kiln.yaml"))
	}
	for i, spec := range specs {
		args := []string{"verify", spec}
		if i == 0 {
			// The merge-rules spec as qcow2 too (the demo is raw).
			out, se, code := kiln(t, "", nil, "verify", "--format", "qcow2", "--compression", "zstd", spec)
			if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "reproducible") || strings.Contains(out, "NOT") {
				t.Errorf("kiln verify --format qcow2 %s: exit %d\n%s\n%s", spec, code, out, se)
			}
		}
		out, se, code := kiln(t, "", nil, args...)
		if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "reproducible") || strings.Contains(out, "NOT") {
			t.Errorf("kiln verify %s: exit %d\n%s\n%s", spec, code, out, se)
		}
		if spec == specs[1] {
			// The sealed spec: both builds' root hashes, equal.
			var roots []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 1 && strings.Contains(l, "root hash of partition 2") {
					roots = append(roots, f[0])
				}
			}
			if len(roots) != 2 || roots[0] != roots[1] || len(roots[0]) != 64 {
				t.Errorf("kiln verify of a sealed spec: root hashes %q, want two equal ones:\n%s", roots, out)
			}
		}
		for _, v := range []string{"TZ=", "umask 0077", "GOMAXPROCS=", "copied in shuffled order with new mtimes", "umask 002 checkout (0664/0775)"} {
			if !strings.Contains(se, v) {
				t.Errorf("kiln verify %s did not vary %q: %s", spec, v, se)
			}
		}
	}
}
