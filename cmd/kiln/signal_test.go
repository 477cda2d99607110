package main

import (
	"encoding/binary"
	"fmt"
	"github.com/kiln-build/kiln/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeBigRaw writes a raw image of n MiB of data that deflate shrinks
// (every MiB different), so that converting or reading it compressed
// takes seconds.
func writeBigRaw(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	text := []byte(strings.Repeat("kiln interrupt test data, not zeros. ", 100))
	for i := 0; i < len(block); i += len(text) {
		copy(block[i:], text)
	}
	noise := pseudo(31, 1<<20)
	for i := range n {
		for k := 0; k < len(block); k += 4096 {
			binary.LittleEndian.PutUint64(block[k:], uint64(i)<<32|uint64(k)) // no two blocks alike
			copy(block[k+8:k+64], noise[(i*4096+k)%(len(noise)-64):])
		}
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
}

// leftovers lists the temporary files kiln may have left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".kiln-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// tempGrown reports whether a temporary image in dir holds over n bytes.
func tempGrown(t *testing.T, dir string, n int64) bool {
	for _, name := range leftovers(t, dir) {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Size() > n {
			return true
		}
	}
	return false
}

// hasOpen reports whether process pid has every one of paths open.
func hasOpen(pid int, paths ...string) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	seen := map[string]bool{}
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		seen[target] = true
	}
	for _, p := range paths {
		if !seen[p] {
			return false
		}
	}
	return true
}

// TestInterruptConvertDiff: kiln convert and kiln diff honour SIGINT and
// SIGTERM as build does: exit 130, the temporary output removed, the
// destination untouched. Before, both ran to the end (convert then
// replaced the destination) and exited 0 or 1. The seconds from the
// signal to the exit are logged (no timing assertion).
func TestInterruptConvertDiff(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		testkit.Missing(t, "/proc, to see what kiln is doing")
	}
	src := t.TempDir()
	raw := filepath.Join(src, "big.raw")
	writeBigRaw(t, raw, 1024)
	vmdk := filepath.Join(src, "big.vmdk")
	if _, se, code := kiln(t, "", nil, "convert", raw, vmdk, "--format", "vmdk"); code != 0 {
		t.Fatal(se)
	}
	cases := []struct {
		name string
		sig  syscall.Signal
		args func(out string) []string
		// ready tells that kiln is at work: the signal comes then.
		ready func(pid int, out string) bool
	}{
		{"convert-qcow2-zlib-sigint", syscall.SIGINT,
			func(out string) []string {
				return []string{"convert", raw, out, "--format", "qcow2", "--compression", "zlib"}
			},
			func(pid int, out string) bool { return len(leftovers(t, filepath.Dir(out))) > 0 }},
		// The staged formats write the image at Commit: interrupted there,
		// once the temporary image has grown past 1 MiB.
		{"convert-vhd-commit-sigint", syscall.SIGINT,
			func(out string) []string { return []string{"convert", raw, out, "--format", "vhd"} },
			func(pid int, out string) bool { return tempGrown(t, filepath.Dir(out), 1<<20) }},
		{"convert-raw-sigterm", syscall.SIGTERM,
			func(out string) []string { return []string{"convert", vmdk, out, "--format", "raw"} },
			func(pid int, out string) bool { return len(leftovers(t, filepath.Dir(out))) > 0 }},
		{"diff-sigint", syscall.SIGINT,
			func(string) []string { return []string{"diff", vmdk, vmdk} },
			func(pid int, _ string) bool { return hasOpen(pid, vmdk) }},
		{"diff-sigterm", syscall.SIGTERM,
			func(string) []string { return []string{"diff", vmdk, raw} },
			func(pid int, _ string) bool { return hasOpen(pid, vmdk, raw) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.img")
			writeFile(t, out, []byte(previousImage))
			tmp := filepath.Join(dir, "tmp")
			if err := os.Mkdir(tmp, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(kilnBin, c.args(out)...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			var stderr strings.Builder
			done := startUntil(t, cmd, &stderr, func() bool { return c.ready(cmd.Process.Pid, out) }, "kiln was at work")
			// Let it work a little: the signal comes mid-way, not at the
			// first instruction.
			select {
			case err := <-done:
				t.Fatalf("kiln ended (%v) before the signal; the image is too small:\n%s", err, stderr.String())
			case <-time.After(100 * time.Millisecond):
			}
			sent := time.Now()
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			<-done
			t.Logf("%s: exit %d %.3f s after %v: %s", c.name, cmd.ProcessState.ExitCode(), time.Since(sent).Seconds(), c.sig, strings.TrimSpace(stderr.String()))
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				t.Fatalf("exit code %d, want 130:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "kiln: interrupted") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != previousImage {
				t.Errorf("the destination changed: %d bytes, %v", len(b), err)
			}
			for _, d := range []string{dir, tmp, src} {
				if l := leftovers(t, d); len(l) > 0 {
					t.Errorf("left behind in %s: %v", d, l)
				}
			}
		})
	}
}
