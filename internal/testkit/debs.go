package testkit

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// The Debian packages of the demo (layers/demo/debs.txt) that tests use,
// as globs of their file names for FindDeb.
const (
	DebKernel         = "linux-image-6.1.0-*-amd64_*.deb"
	DebBusybox        = "busybox-static_*.deb"
	DebSyslinux       = "syslinux_*.deb"
	DebSyslinuxCommon = "syslinux-common_*.deb"
	DebSystemdBoot    = "systemd-boot-efi_*.deb"
	DebShim           = "shim-signed_*.deb"               // Microsoft-signed shim
	DebShimHelpers    = "shim-helpers-amd64-signed_*.deb" // MokManager, signed
	DebGrubSigned     = "grub-efi-amd64-signed_*.deb"     // Debian-signed GRUB

	// arm64 (layers/demo-arm64/debs.txt, in .cache/debs-arm64).
	DebKernelArm64      = "linux-image-6.1.0-*-arm64_*_arm64.deb"
	DebSystemdBootArm64 = "systemd-boot-efi_*_arm64.deb"
)

// DebDirs are the folders FindDeb looks in, in order: $KILN_DEBS when
// set, /tmp/debs, and the repository's .cache/debs (make demo-debs) and
// .cache/debs-arm64 (make demo-debs-arm64).
func DebDirs() []string {
	var ds []string
	if d := os.Getenv("KILN_DEBS"); d != "" {
		ds = append(ds, d)
	}
	ds = append(ds, "/tmp/debs")
	if root := repoRoot(); root != "" {
		ds = append(ds, filepath.Join(root, ".cache", "debs"), filepath.Join(root, ".cache", "debs-arm64"))
	}
	return ds
}

// FindDeb returns the newest (last in byte order) .deb whose file name
// matches pattern in the first of DebDirs that has one; with none, the
// test is Missing.
func FindDeb(t testing.TB, pattern string) string {
	t.Helper()
	for _, d := range DebDirs() {
		m, _ := filepath.Glob(filepath.Join(d, pattern))
		sort.Strings(m)
		if len(m) > 0 {
			return m[len(m)-1]
		}
	}
	Missing(t, "no %s in $KILN_DEBS, /tmp/debs or .cache/debs (make demo-debs, or apt-get download it there)", pattern)
	return ""
}

// repoRoot is the folder holding go.mod above the working directory (a
// test runs in its package's folder), or "".
func repoRoot() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			return ""
		}
		d = up
	}
}
