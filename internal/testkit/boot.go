package testkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/qemu"
)

// NeedQEMU makes sure qemu-system-x86_64 is installed and, for firmware
// "uefi", that pkg/qemu finds OVMF; else the test is Missing.
func NeedQEMU(t testing.TB, firmware string) {
	t.Helper()
	NeedTools(t, "qemu-system-x86_64")
	if firmware == "uefi" {
		if code, vars := qemu.OVMF(); code == "" || vars == "" {
			Missing(t, "no OVMF firmware found (apt-get install ovmf)")
		}
	}
}

// Boot runs o with pkg/qemu.Run, the code of `kiln run`, until o.Expect
// appears on the serial console, and returns what the console showed up
// to then and the seconds from QEMU's start to it. It fails the test,
// with the console's output, when the text does not appear within
// o.Timeout or QEMU exits first; and when QEMU, stopped with SIGTERM once
// the text appeared, was still running 10 s later (then pkg/qemu kills
// it).
func Boot(t testing.TB, o qemu.Options) (string, float64) {
	t.Helper()
	if o.Expect == "" {
		t.Fatal("testkit.Boot: Options.Expect is empty")
	}
	var serial bytes.Buffer
	if o.Serial != nil {
		o.Serial = io.MultiWriter(o.Serial, &serial)
	} else {
		o.Serial = &serial
	}
	begin := time.Now()
	res, err := qemu.Run(context.Background(), o)
	if err != nil || !res.Found {
		t.Fatalf("no %q on the serial console after %.1f s (%v); serial console:\n%s", o.Expect, res.Elapsed.Seconds(), err, serial.String())
	}
	// Run returns once it has stopped QEMU: the time past the marker is
	// that stop.
	if stop := time.Since(begin) - res.Elapsed; !res.Exited && stop >= 10*time.Second {
		t.Errorf("QEMU still running %.0f s after SIGTERM", stop.Seconds())
	}
	return serial.String(), res.Elapsed.Seconds()
}

// BusyboxInitramfs is a gzip-compressed newc cpio archive, made by the
// host's cpio, holding busybox (busybox-static's /bin/busybox) as
// /bin/busybox, the empty folders /dev and /proc, and the script init as
// /init. An archive made without root has no /dev/console: the script
// mounts devtmpfs on /dev before it writes to the console.
func BusyboxInitramfs(t testing.TB, busybox []byte, init string) []byte {
	t.Helper()
	NeedTools(t, "cpio")
	dir := t.TempDir()
	for _, d := range []string{"bin", "dev", "proc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(init), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("bin\nbin/busybox\ndev\ninit\nproc\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio: %v: %s", err, errb.String())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes()
}
