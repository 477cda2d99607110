package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/initbin"
)

// runBin runs bin with args in dir (env added to this process's) and
// returns stdout, stderr and the exit code.
func runBin(t *testing.T, bin, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return so.String(), se.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), 0
}

// TestGoInstall (issue 15, must-show 5): `go install ./cmd/kiln` into an
// empty GOBIN gives a kiln that builds the demo's bootable image alone,
// with no kiln-init beside it: the init is embedded (the tests' TestMain
// put this tree's kiln-init builds where kiln embeds them, as make build
// does). And a kiln built from the files git tracks (what a module
// download holds: no build outputs) refuses that build with the exact
// commands that fix it, and writes no image.
func TestGoInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("go install and go build of kiln: not in -short")
	}
	repo, debs := demoDebs(t)
	dir := t.TempDir()
	gobin := filepath.Join(dir, "gobin")
	cmd := exec.Command("go", "install", "-trimpath", "./cmd/kiln")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install ./cmd/kiln: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(gobin); len(ents) != 1 || ents[0].Name() != "kiln" {
		t.Fatalf("GOBIN holds %v, want kiln alone", ents)
	}
	work := filepath.Join(dir, "work")
	writeFile(t, filepath.Join(work, "kiln.yaml"), []byte(bootSpec(repo, debs, "gpt", "systemd-boot", "")))
	noEnv := []string{"KILN_INIT="}
	so, se, code := runBin(t, filepath.Join(gobin, "kiln"), work, noEnv, "build", "--json", "kiln.yaml")
	if code != 0 {
		t.Fatalf("the installed kiln did not build the demo (exit %d): %s", code, se)
	}
	var sum struct {
		Kiln struct {
			Init struct{ Path, SHA256 string } `json:"kiln_init"`
		} `json:"kiln"`
		Disk     struct{ Arch string } `json:"disk"`
		Platform string                `json:"platform"`
	}
	if err := json.Unmarshal([]byte(so), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, so)
	}
	if sum.Kiln.Init.Path != "embedded kiln-init-amd64" || !strings.HasPrefix(sum.Kiln.Init.SHA256, "sha256:") {
		t.Errorf("kiln-init of the build: %+v, want the embedded one", sum.Kiln.Init)
	}
	if sum.Disk.Arch != "x86-64" || sum.Platform != "linux/amd64" {
		t.Errorf("summary: disk.arch %q, platform %q; want x86-64, linux/amd64", sum.Disk.Arch, sum.Platform)
	}

	// The tracked files alone, built: no kiln-init to embed.
	src := filepath.Join(dir, "src")
	out, err := exec.Command("git", "-C", repo, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			continue // deleted in the work tree
		}
		if strings.HasPrefix(f, "internal/initbin/bin/kiln-init-") {
			t.Fatalf("git tracks %s: a build output", f)
		}
		writeFile(t, filepath.Join(src, f), b)
	}
	bare := filepath.Join(dir, "bare", "kiln")
	cmd = exec.Command("go", "build", "-trimpath", "-o", bare, "./cmd/kiln")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the tracked files: %v\n%s", err, out)
	}
	_, se, code = runBin(t, bare, work, noEnv, "build", "-o", "out/bare.img", "kiln.yaml")
	for _, want := range []string{
		"this kiln binary carries no kiln-init for amd64",
		"run `make build`",
		initbin.BuildCommand("amd64", "kiln-init-amd64"),
		"--init",
	} {
		if code == 0 || !strings.Contains(se, want) {
			t.Errorf("a kiln without kiln-init (exit %d) does not say %q:\n%s", code, want, se)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "out/bare.img")); !os.IsNotExist(err) {
		t.Errorf("the refused build left out/bare.img (%v)", err)
	}
	// With --init it builds.
	if _, se, code := runBin(t, bare, work, noEnv, "build", "-q", "--init", filepath.Join(filepath.Dir(kilnBin), "kiln-init"), "-o", "out/bare.img", "kiln.yaml"); code != 0 {
		t.Errorf("the bare kiln with --init: exit %d: %s", code, se)
	}
}
