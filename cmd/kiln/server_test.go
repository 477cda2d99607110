package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// serverFailOn are the console texts that end a server boot as failed.
var serverFailOn = []string{"KILN-STATUS failed-unit=", "KILN-STATUS www=failed", "Kernel panic", "kiln-init: starting /bin/sh", "kiln-init: no shell to drop to"}

// TestBootServer builds layers/server/kiln.yaml (a Debian systemd server
// on a sealed EROFS root with an ext4 /var; its rootfs made by make
// server-rootfs) and boots the same disk twice, written, not a snapshot:
// under UEFI with a NIC, where the test fetches the page from the host
// through a forwarded port, then under BIOS. Both reach multi-user with no
// failed unit; / is EROFS read-only from /dev/mapper/root, /var is ext4
// read-write and the second boot counts the first's line. kiln verify
// calls the spec reproducible, root hash included.
func TestBootServer(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	judge.Need(t, "qemu-system-x86_64", "veritysetup")
	repo, _ := filepath.Abs("../..")
	rootfs := filepath.Join(repo, ".cache/server/rootfs.tar")
	if _, err := os.Stat(rootfs); err != nil {
		testkit.Missing(t, "%s (make server-rootfs makes it with mmdebstrap)", rootfs)
	}
	spec := filepath.Join(repo, "layers/server/kiln.yaml")
	img := filepath.Join(t.TempDir(), "server.img")
	so, se, code := kiln(t, "", nil, "build", "-q", "--json", "-o", img, spec)
	if code != 0 {
		t.Fatalf("build: %s", se)
	}
	var sum buildSummary
	if err := json.Unmarshal([]byte(so), &sum); err != nil || len(sum.Verity) != 1 {
		t.Fatalf("build --json: %v %+v", err, sum.Verity)
	}
	if got := rootHashOf(t, img); got != sum.Verity[0].RootHash {
		t.Fatalf("inspect reads root hash %s, build said %s", got, sum.Verity[0].RootHash)
	}

	// UEFI, with the page fetched from the host while the guest runs.
	port := freePort(t)
	out, page := bootServer(t, img, "uefi", "--forward", fmt.Sprintf("%d:80", port))
	checkServerConsole(t, "uefi", out, 1)
	if !strings.Contains(page, "KILN-SERVER-PAGE") {
		t.Errorf("the page fetched from http://127.0.0.1:%d/ lacks KILN-SERVER-PAGE: %q", port, page)
	}
	// BIOS, same disk: /var kept the first boot's line.
	out, _ = bootServer(t, img, "bios")
	checkServerConsole(t, "bios", out, 2)

	out, se, code = kiln(t, "", nil, "verify", "-q", spec)
	if code != 0 || !strings.Contains(out, "\nreproducible") {
		t.Errorf("kiln verify %s: exit %d\n%s%s", spec, code, out, se)
	}
	if !strings.Contains(out, sum.Verity[0].RootHash+"  root hash of partition 2, build 1") || !strings.Contains(out, sum.Verity[0].RootHash+"  root hash of partition 2, build 2") {
		t.Errorf("kiln verify does not show the root hash %s for both builds:\n%s", sum.Verity[0].RootHash, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bootServer boots img with kiln run --write until KILN-SERVER-BOOTED (or
// a failure text), fetches the page through the first --forward's port if
// there is one, then stops the guest (SIGTERM to kiln run, which stops
// QEMU). It returns the console and the page.
func bootServer(t *testing.T, img, firmware string, extra ...string) (console, page string) {
	t.Helper()
	args := []string{"run", "--write", "--firmware", firmware, "--accel", "tcg", "--timeout", "420s"}
	for _, f := range serverFailOn {
		args = append(args, "--fail-on", f)
	}
	args = append(append(args, extra...), img)
	cmd := exec.Command(kilnBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	booted := false
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "KILN-SERVER-BOOTED") {
			booted = true
			break
		}
	}
	if booted {
		t.Logf("%s: KILN-SERVER-BOOTED %.1f s after kiln run started", firmware, time.Since(start).Seconds())
		for i, a := range extra {
			if a == "--forward" && i+1 < len(extra) {
				host, _, _ := strings.Cut(extra[i+1], ":")
				page = fetch(t, "http://127.0.0.1:"+host+"/")
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
	}
	rest, _ := io.ReadAll(stdout)
	b.Write(rest)
	cmd.Wait()
	if !booted {
		t.Fatalf("%s: the server did not reach KILN-SERVER-BOOTED:\n%s\n%s", firmware, b.String(), stderr.String())
	}
	return b.String(), page
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body)
}

// checkServerConsole checks the KILN-STATUS lines of a server boot.
func checkServerConsole(t *testing.T, firmware, out string, boots int) {
	t.Helper()
	for _, want := range []string{
		"kiln-init: verity: created /dev/mapper/root",
		"KILN-STATUS root=erofs ro /dev/mapper/root",
		"KILN-STATUS root-write=refused",
		"KILN-STATUS var=ext4 rw",
		fmt.Sprintf("KILN-STATUS boots=%d\n", boots),
		"KILN-STATUS system=running",
		"KILN-STATUS failed-units=0",
		"KILN-STATUS www=ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("%s boot: console lacks %q", firmware, strings.TrimSpace(want))
		}
	}
	if t.Failed() {
		t.Logf("%s console:\n%s", firmware, out)
	}
}
