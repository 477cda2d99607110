package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/qemu"
)

// TestBootServerArm64 (issue 15, must-show 2): the server example for
// arm64 (layers/server-arm64: Debian's arm64 minbase with systemd, made by
// mmdebstrap --arch=arm64, on a sealed EROFS root), built on this x86
// machine with the arm64 kiln-init kiln carries, boots under
// qemu-system-aarch64 to multi-user with no failed unit and serves its
// page through a forwarded port; the kernel is arm64's.
func TestBootServerArm64(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boots: not in -short")
	}
	judge.Need(t, "qemu-system-aarch64", "veritysetup")
	if code, vars := qemu.AAVMF(); code == "" || vars == "" {
		testkit.Missing(t, "no AAVMF firmware found (apt-get install qemu-efi-aarch64)")
	}
	repo, _ := filepath.Abs("../..")
	rootfs := filepath.Join(repo, ".cache/server-arm64/rootfs.tar")
	if _, err := os.Stat(rootfs); err != nil {
		testkit.Missing(t, "%s (make server-rootfs-arm64 makes it with mmdebstrap --arch=arm64)", rootfs)
	}
	spec := filepath.Join(repo, "layers/server-arm64/kiln.yaml")
	img := filepath.Join(t.TempDir(), "server-arm64.img")
	if _, se, code := kiln(t, "", []string{"KILN_INIT="}, "build", "-q", "-o", img, spec); code != 0 {
		t.Fatalf("build: %s", se)
	}
	if a, err := imageArch(img); err != nil || a != "arm64" {
		t.Fatalf("kiln run reads the image as %q (%v), want arm64", a, err)
	}
	port := freePort(t)
	out, page := bootServer(t, img, "uefi", "--forward", fmt.Sprintf("%d:80", port))
	checkServerConsole(t, "arm64", out, 1)
	if !strings.Contains(page, "KILN-SERVER-PAGE") {
		t.Errorf("the page fetched from http://127.0.0.1:%d/ lacks KILN-SERVER-PAGE: %q", port, page)
	}
	if !arm64Kernel.MatchString(out) && !strings.Contains(out, "-arm64 (debian-kernel@lists.debian.org)") {
		t.Errorf("the console does not show an arm64 kernel:\n%s", out)
	}
}
