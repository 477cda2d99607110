package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testkit"
)

// A build that is interrupted, or that runs out of room, leaves the
// destination as it was and no temporary file anywhere: not in the output
// folder, not in the spill folder, not in $TMPDIR.

// interruptSpec builds one big ext4 partition from layers/big.tgz.
const interruptSpec = `epoch: 1700000000
layers:
  - path: layers/big.tgz
disk:
  size: 1300MiB
  partitions:
    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}
output:
  path: out/img.raw
`

// writeBigGzipLayer writes a gzip layer of n files of 1 MiB (1 GiB for
// n = 1024) that takes seconds to merge and write, but little time and
// space to make: the stream is a series of gzip members, one per tar
// header, and the same member for every file's data, which the reader
// joins into one tar stream.
func writeBigGzipLayer(t *testing.T, path string, n int) {
	t.Helper()
	block := pseudo(21, 4096)
	data := bytes.Repeat(block, 256) // 1 MiB that deflate shrinks, not zeros that ext4 skips
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	member := func(b []byte) []byte {
		buf.Reset()
		zw.Reset(&buf)
		zw.Write(b)
		zw.Close()
		return append([]byte(nil), buf.Bytes()...)
	}
	dataMember := member(data)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range n {
		f.Write(member(rawHeader(fmt.Sprintf("big/f%04d", i), '0', int64(len(data)))))
		if _, err := f.Write(dataMember); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Write(member(make([]byte, 1024))); err != nil {
		t.Fatal(err)
	}
}

// interruptDir prepares a build folder: the spec, the layer (a hardlink
// to shared), the previous image, an empty spill folder and an empty
// $TMPDIR.
func interruptDir(t *testing.T, shared string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(interruptSpec))
	writeFile(t, filepath.Join(dir, "out/img.raw"), []byte(previousImage))
	if err := os.Mkdir(filepath.Join(dir, "layers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(shared, filepath.Join(dir, "layers/big.tgz")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"spill", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkNothingLeft checks that the destination still holds the previous
// image and that no temporary file is left.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "out/img.raw"))
	if err != nil || string(b) != previousImage {
		t.Errorf("the destination changed: %q, %v", b, err)
	}
	for _, d := range []string{"out", "spill", "tmp", "cache/v1/tmp", "cache/v1/sha256"} {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if strings.HasPrefix(d, "cache/") && os.IsNotExist(err) {
			continue // the build ran without a cache
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if d != "out" || e.Name() != "img.raw" {
				t.Errorf("%s/%s was left behind", d, e.Name())
			}
		}
	}
}

// hasCachePart reports whether a cache entry is being written in the
// build folder's cache.
func hasCachePart(dir string) bool {
	ents, _ := os.ReadDir(filepath.Join(dir, "cache/v1/tmp"))
	return len(ents) > 0
}

// hasOpenSpill reports whether process pid has a spill file open.
func hasOpenSpill(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if strings.Contains(target, "kiln-spill-") {
			return true
		}
	}
	return false
}

// hasTempOutput reports whether the output folder holds a temporary image.
func hasTempOutput(dir string) bool {
	ents, _ := os.ReadDir(filepath.Join(dir, "out"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".kiln-tmp-") {
			return true
		}
	}
	return false
}

// startUntil starts cmd, with its stderr into stderr, and polls ready
// until it holds (a minute at most, far more than it takes); it fails
// the test if cmd ends first or ready never holds. The channel gives
// cmd.Wait's result.
func startUntil(t *testing.T, cmd *exec.Cmd, stderr *strings.Builder, ready func() bool, what string) chan error {
	t.Helper()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for !ready() {
		select {
		case err := <-done:
			t.Fatalf("kiln ended (%v) before %s:\n%s", err, what, stderr.String())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s never happened:\n%s", what, stderr.String())
		}
	}
	return done
}

// committingOutput reports whether a staged output (qcow2, vmdk, dynamic
// vhd) is being committed: its temporary image, empty until then, has
// bytes.
func committingOutput(dir string) bool {
	ents, _ := os.ReadDir(filepath.Join(dir, "out"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".kiln-tmp-") {
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				return true
			}
		}
	}
	return false
}

func TestInterrupt(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		testkit.Missing(t, "/proc, to see what the build is doing")
	}
	shared := filepath.Join(t.TempDir(), "big.tgz")
	writeBigGzipLayer(t, shared, 1024)

	cases := []struct {
		name string
		sig  syscall.Signal
		// when tells that the build reached the stage to interrupt.
		when  func(pid int, dir string) bool
		stage string
		cache bool     // with a layer cache in the build folder, else none
		args  []string // more build flags
	}{
		{"sigint-while-merging", syscall.SIGINT, func(pid int, dir string) bool { return hasOpenSpill(pid) && !hasTempOutput(dir) },
			"a spill file is open and the image not yet begun", false, nil},
		{"sigint-while-caching", syscall.SIGINT, func(pid int, dir string) bool { return hasCachePart(dir) && !hasTempOutput(dir) },
			"a cache entry is being written and the image not yet begun", true, nil},
		{"sigterm-while-writing", syscall.SIGTERM, func(_ int, dir string) bool { return hasTempOutput(dir) }, "the temporary image exists", false, nil},
		// The qcow2 is compressed and written in the commit, after every
		// filesystem: before, the build ran it to its end.
		{"sigint-while-committing", syscall.SIGINT, func(_ int, dir string) bool { return committingOutput(dir) },
			"the qcow2 is being compressed into its temporary file", false, []string{"--format", "qcow2", "--compression", "zlib"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := interruptDir(t, shared)
			cmd := exec.Command(kilnBin, append([]string{"build", "--tmpdir", "spill"}, c.args...)...)
			cmd.Dir = dir
			cacheEnv := "KILN_CACHE=off"
			if c.cache {
				cacheEnv = "KILN_CACHE=" + filepath.Join(dir, "cache")
			}
			cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(dir, "tmp"), cacheEnv)
			var stderr strings.Builder
			done := startUntil(t, cmd, &stderr, func() bool { return c.when(cmd.Process.Pid, dir) }, c.stage)
			sent := time.Now()
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			<-done
			t.Logf("%s: %s after %v once %s", c.sig, strings.TrimSpace(stderr.String()), time.Since(sent).Round(time.Millisecond), c.stage)
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				t.Fatalf("exit code %d, want 130:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "kiln: interrupted; nothing was written") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
			checkNothingLeft(t, dir)
		})
	}
}

// TestFullDisk runs kiln under a file size limit (ulimit -f), which makes
// writes past it fail with EFBIG as on a full disk: the image that does
// not fit, or a spill file that does not.
func TestFullDisk(t *testing.T) {
	// Decompressed, the layer holds a 24 MiB file, which is spilled.
	spillLayer := gz(t, makeTar(t, []tEntry{reg("big", bytes.Repeat(pseudo(22, 4096), 24<<8), 0o644)}))
	cases := []struct {
		name  string
		spec  string
		layer []byte
		want  []string
	}{
		{"image", hostileSpec, makeTar(t, []tEntry{reg("ok", []byte("ok"), 0o644)}),
			[]string{"kiln: sizing output to 67108864 bytes", "file too large"}},
		{"spill", hostileSpec, spillLayer,
			[]string{"kiln: layer layers/spill: entry big: reading data: write", "file too large"}},
		// The same layer with a cache: the entry being stored does not fit.
		{"cache", hostileSpec, spillLayer,
			[]string{"kiln: layer layers/cache: entry big: reading data: write", "file too large"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "layers", c.name), c.layer)
			writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(fmt.Sprintf(c.spec, "layers/"+c.name)))
			writeFile(t, filepath.Join(dir, "out/img.raw"), []byte(previousImage))
			for _, d := range []string{"spill", "tmp"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// 16384 blocks: 8 MiB where sh counts 512-byte blocks (dash,
			// POSIX), 16 MiB where it counts KiB (bash).
			cmd := exec.Command("sh", "-c", `ulimit -f 16384 && exec "$0" "$@"`, kilnBin, "build", "-q", "--tmpdir", "spill")
			cmd.Dir = dir
			cacheEnv := "KILN_CACHE=off"
			if c.name == "cache" {
				cacheEnv = "KILN_CACHE=" + filepath.Join(dir, "cache")
			}
			cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(dir, "tmp"), cacheEnv)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			t.Logf("exit %d: %s", code, strings.TrimSpace(stderr.String()))
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("kiln was killed by %v", ws.Signal())
			}
			if code != 1 {
				t.Fatalf("exit code %d (%v), want 1:\n%s", code, err, stderr.String())
			}
			for _, w := range c.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			checkNothingLeft(t, dir)
		})
	}
}
