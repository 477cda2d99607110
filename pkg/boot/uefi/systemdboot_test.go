package uefi

import (
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

func testSystemdBoot(t testing.TB) SystemdBoot {
	return SystemdBoot{
		Loader:    fileInode(testStub(t)), // any x86-64 EFI application will do
		Kernel:    fileInode(testKernel(t)),
		Initrd:    Bytes(testInitrd()),
		Cmdline:   testCmdline,
		Title:     "Kiln Test (6.1)",
		EntryName: "kiln",
		Epoch:     testEpoch,
	}
}

func TestInstallSystemdBoot(t *testing.T) {
	sb := testSystemdBoot(t)
	esp := tree.New(testEpoch)
	files, err := InstallSystemdBoot(esp, sb)
	if err != nil {
		t.Fatal(err)
	}
	const wantEntry = "title Kiln Test (6.1)\n" +
		"version 6.1.0-99-amd64\n" +
		"linux /kiln/6.1.0-99-amd64/linux\n" +
		"initrd /kiln/6.1.0-99-amd64/initrd\n" +
		"options root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef console=ttyS0 panic=-1\n"
	const wantConf = "default kiln-6.1.0-99-amd64.conf\ntimeout 0\neditor no\n"
	if got := string(trees.Read(t, esp.Lookup("/loader/entries/kiln-6.1.0-99-amd64.conf"))); got != wantEntry {
		t.Errorf("entry:\n%s\nwant:\n%s", got, wantEntry)
	}
	if got := string(trees.Read(t, esp.Lookup("/loader/loader.conf"))); got != wantConf {
		t.Errorf("loader.conf:\n%s\nwant:\n%s", got, wantConf)
	}
	loader, kernel := judge.SHA256(testStub(t)), judge.SHA256(testKernel(t))
	const d, f = " dir 0755 0:0 1700000000", " file 0644 0:0 1700000000 "
	want := []string{
		"/" + d,
		"/EFI" + d,
		"/EFI/BOOT" + d,
		"/EFI/BOOT/BOOTX64.EFI" + f + "6208 " + loader,
		"/EFI/systemd" + d,
		"/EFI/systemd/systemd-bootx64.efi" + f + "6208 " + loader,
		"/kiln" + d,
		"/kiln/6.1.0-99-amd64" + d,
		"/kiln/6.1.0-99-amd64/initrd" + f + "837 " + judge.SHA256(testInitrd()),
		"/kiln/6.1.0-99-amd64/linux" + f + "7680 " + kernel,
		"/loader" + d,
		"/loader/entries" + d,
		"/loader/entries/kiln-6.1.0-99-amd64.conf" + f + strconv.Itoa(len(wantEntry)) + " " + judge.SHA256([]byte(wantEntry)),
		"/loader/loader.conf" + f + strconv.Itoa(len(wantConf)) + " " + judge.SHA256([]byte(wantConf)),
	}
	if got := listTree(t, esp); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ESP tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantFiles := SystemdBootFiles{
		Loader:     []string{"/EFI/BOOT/BOOTX64.EFI", "/EFI/systemd/systemd-bootx64.efi"},
		Entry:      "/loader/entries/kiln-6.1.0-99-amd64.conf",
		Kernel:     "/kiln/6.1.0-99-amd64/linux",
		Initrd:     "/kiln/6.1.0-99-amd64/initrd",
		LoaderConf: "/loader/loader.conf",
	}
	if strings.Join(files.Loader, " ") != strings.Join(wantFiles.Loader, " ") || files.Entry != wantFiles.Entry ||
		files.Kernel != wantFiles.Kernel || files.Initrd != wantFiles.Initrd || files.LoaderConf != wantFiles.LoaderConf {
		t.Errorf("files %+v, want %+v", *files, wantFiles)
	}
}

// TestInstallSystemdBootMinimal: no initrd, title or options, a given
// kernel version, an arm64 loader and kernel.
func TestInstallSystemdBootMinimal(t *testing.T) {
	arm := makePE(t, peSpec{machine: 0xaa64, sections: []peSec{{name: ".text", data: []byte("arm64")}}})
	sb := SystemdBoot{Loader: fileInode(arm), Kernel: fileInode(arm), EntryName: "0123456789abcdef0123456789abcdef", KernelVersion: "6.12.9+rpt-rpi-v8", Epoch: 5}
	esp := tree.New(5)
	files, err := InstallSystemdBoot(esp, sb)
	if err != nil {
		t.Fatal(err)
	}
	const wantEntry = "version 6.12.9+rpt-rpi-v8\nlinux /0123456789abcdef0123456789abcdef/6.12.9+rpt-rpi-v8/linux\n"
	if got := string(trees.Read(t, esp.Lookup(files.Entry))); got != wantEntry {
		t.Errorf("entry:\n%s\nwant:\n%s", got, wantEntry)
	}
	for _, p := range []string{"/EFI/BOOT/BOOTAA64.EFI", "/EFI/systemd/systemd-bootaa64.efi"} {
		if n := esp.Lookup(p); n == nil || n.Kind != tree.Regular {
			t.Errorf("%s missing", p)
		}
	}
	if files.Initrd != "" || esp.Lookup("/0123456789abcdef0123456789abcdef/6.12.9+rpt-rpi-v8/initrd") != nil {
		t.Errorf("an initrd was installed without one given")
	}
}

// TestInstallSystemdBootExisting: directories a layer put on the ESP are
// used whatever their case (FAT ignores it), files at kiln's paths are
// replaced, and what is in the way is an error.
func TestInstallSystemdBootExisting(t *testing.T) {
	esp := tree.New(testEpoch)
	efi := tree.NewDir(0o700, 0, 0, 42)
	esp.Root.SetChild("efi", efi)
	boot := tree.NewDir(0o755, 0, 0, 42)
	efi.SetChild("Boot", boot)
	boot.SetChild("bootx64.efi", fileInode([]byte("old loader")))
	boot.SetChild("grubx64.efi", fileInode([]byte("grub")))
	if _, err := InstallSystemdBoot(esp, testSystemdBoot(t)); err != nil {
		t.Fatal(err)
	}
	if esp.Lookup("/EFI") != nil || esp.Lookup("/efi/Boot/bootx64.efi") != nil {
		t.Errorf("a second EFI directory or the old loader name is there")
	}
	n := esp.Lookup("/efi/Boot/BOOTX64.EFI")
	if n == nil || n.Size != int64(len(testStub(t))) {
		t.Fatalf("the loader did not replace bootx64.efi")
	}
	if efi.Mode != 0o700 || efi.Mtime != 42 {
		t.Errorf("the existing directory's metadata changed: %o %d", efi.Mode, efi.Mtime)
	}
	if esp.Lookup("/efi/Boot/grubx64.efi") == nil {
		t.Errorf("an unrelated file was removed")
	}

	tests := []struct {
		name  string
		setup func(root *tree.Inode)
		want  string
	}{
		{"file where a directory goes", func(root *tree.Inode) { root.SetChild("loader", fileInode([]byte("x"))) }, "ESP: /loader is a file, not a directory"},
		{"directory where a file goes", func(root *tree.Inode) {
			l := tree.NewDir(0o755, 0, 0, 1)
			root.SetChild("loader", l)
			l.SetChild("Loader.conf", tree.NewDir(0o755, 0, 0, 1))
		}, `a directory "Loader.conf" is in the way`},
		{"names differing in case", func(root *tree.Inode) {
			root.SetChild("EFI", tree.NewDir(0o755, 0, 0, 1))
			root.SetChild("efi", tree.NewDir(0o755, 0, 0, 1))
		}, "differ only in case"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			esp := tree.New(testEpoch)
			tc.setup(esp.Root)
			before := listTree(t, esp)
			_, err := InstallSystemdBoot(esp, testSystemdBoot(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if after := listTree(t, esp); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("a failed install changed the tree:\n%s", strings.Join(after, "\n"))
			}
		})
	}
}

func TestInstallSystemdBootErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(sb *SystemdBoot)
		want string
	}{
		{"no loader", func(sb *SystemdBoot) { sb.Loader = nil }, "systemd-boot: loader: missing"},
		{"loader is a directory", func(sb *SystemdBoot) { sb.Loader = tree.NewDir(0o755, 0, 0, 0) }, "loader: is a dir, not a regular file"},
		{"loader not PE", func(sb *SystemdBoot) { sb.Loader = fileInode([]byte("MZ but short")) }, "loader: not a PE image"},
		{"no kernel", func(sb *SystemdBoot) { sb.Kernel = nil }, "systemd-boot: kernel: missing"},
		{"kernel for another machine", func(sb *SystemdBoot) {
			sb.Kernel = fileInode(makePE(t, peSpec{machine: 0xaa64}))
		}, "the kernel is for PE machine 0xaa64, the loader for 0x8664"},
		{"no version anywhere", func(sb *SystemdBoot) { sb.Kernel = fileInode(makePE(t, peSpec{})) }, "no kernel version given"},
		{"entry name empty", func(sb *SystemdBoot) { sb.EntryName = "" }, "entry name is empty"},
		{"entry name escapes", func(sb *SystemdBoot) { sb.EntryName = "../EFI" }, "entry name"},
		{"entry name with slash", func(sb *SystemdBoot) { sb.EntryName = "a/b" }, "entry name"},
		{"kernel version with space", func(sb *SystemdBoot) { sb.KernelVersion = "6.1 x" }, "kernel version"},
		{"title newline", func(sb *SystemdBoot) { sb.Title = "a\noptions init=/bin/sh" }, "title"},
		{"cmdline newline", func(sb *SystemdBoot) { sb.Cmdline = "quiet\ninitrd /x" }, "cmdline"},
		{"cmdline not UTF-8", func(sb *SystemdBoot) { sb.Cmdline = "quiet \xff" }, "cmdline"},
		{"empty initrd", func(sb *SystemdBoot) { sb.Initrd = Bytes(nil) }, "initrd: is empty"},
		{"initrd negative", func(sb *SystemdBoot) { sb.Initrd = &File{Content: bytesContent("x"), Size: -1} }, "negative size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := testSystemdBoot(t)
			tc.edit(&sb)
			esp := tree.New(testEpoch)
			_, err := InstallSystemdBoot(esp, sb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if esp.Root.NumChildren() != 0 {
				t.Errorf("the ESP tree was changed by a failed install")
			}
		})
	}
}

func TestKernelVersion(t *testing.T) {
	if v, err := KernelVersion(fileInode(testKernel(t))); err != nil || v != "6.1.0-99-amd64" {
		t.Errorf("KernelVersion = %q, %v; want 6.1.0-99-amd64", v, err)
	}
	if _, err := KernelVersion(fileInode(makePE(t, peSpec{}))); err == nil || !strings.Contains(err.Error(), "no x86 setup header") {
		t.Errorf("no setup header: error %v", err)
	}
	if _, err := KernelVersion(nil); err == nil {
		t.Errorf("nil kernel: no error")
	}
}

// TestInstallSystemdBootEnroll: with Enroll, the three .auth files go to
// /loader/keys/auto/ and loader.conf asks systemd-boot to enrol them; an
// empty one is refused; without Enroll neither appears.
func TestInstallSystemdBootEnroll(t *testing.T) {
	pe := makePE(t, peSpec{machine: 0x8664, sections: []peSec{{name: ".text", data: []byte("x86")}}})
	sb := SystemdBoot{Loader: fileInode(pe), Kernel: fileInode(pe), EntryName: "debian", KernelVersion: "6.1.0-57-amd64", Epoch: 5,
		Enroll: &EnrollKeys{PK: []byte("pk"), KEK: []byte("kek"), DB: []byte("db")}}
	esp := tree.New(5)
	files, err := InstallSystemdBoot(esp, sb)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(trees.Read(t, esp.Lookup(files.LoaderConf))); !strings.HasSuffix(got, "\nsecure-boot-enroll force\n") {
		t.Errorf("loader.conf:\n%s", got)
	}
	for p, want := range map[string]string{"/loader/keys/auto/PK.auth": "pk", "/loader/keys/auto/KEK.auth": "kek", "/loader/keys/auto/db.auth": "db"} {
		if n := esp.Lookup(p); n == nil || string(trees.Read(t, n)) != want {
			t.Errorf("%s: %v", p, n)
		}
	}
	sb.Enroll.KEK = nil
	if _, err := InstallSystemdBoot(tree.New(5), sb); err == nil || !strings.Contains(err.Error(), "KEK.auth is empty") {
		t.Errorf("an empty KEK.auth: %v", err)
	}
	sb.Enroll = nil
	plain := tree.New(5)
	files, err = InstallSystemdBoot(plain, sb)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(trees.Read(t, plain.Lookup(files.LoaderConf))); strings.Contains(got, "enroll") || plain.Lookup("/loader/keys") != nil {
		t.Errorf("without Enroll: loader.conf %q, keys %v", got, plain.Lookup("/loader/keys"))
	}
}

// TestInstallSystemdBootUKI: with a UKI, systemd-boot's entry is the UKI
// under /EFI/Linux (type #2), made the default; no type #1 entry, kernel
// or initrd of its own; the UKI's bytes are NewUKI's. A UKI for another
// machine, or a kernel given beside it, is refused.
func TestInstallSystemdBootUKI(t *testing.T) {
	uki, err := NewUKI(testUKI(t, testStub(t)))
	if err != nil {
		t.Fatal(err)
	}
	sb := SystemdBoot{Loader: fileInode(testStub(t)), UKI: uki, UKIName: "kiln-6.1.0-99-amd64", Epoch: testEpoch}
	esp := tree.New(testEpoch)
	files, err := InstallSystemdBoot(esp, sb)
	if err != nil {
		t.Fatal(err)
	}
	const wantConf = "default kiln-6.1.0-99-amd64.efi\ntimeout 0\neditor no\n"
	if got := string(trees.Read(t, esp.Lookup("/loader/loader.conf"))); got != wantConf {
		t.Errorf("loader.conf:\n%s\nwant:\n%s", got, wantConf)
	}
	var ukiBytes strings.Builder
	if err := BuildUKI(&ukiBytes, testUKI(t, testStub(t))); err != nil {
		t.Fatal(err)
	}
	loader := judge.SHA256(testStub(t))
	const d, f = " dir 0755 0:0 1700000000", " file 0644 0:0 1700000000 "
	want := []string{
		"/" + d,
		"/EFI" + d,
		"/EFI/BOOT" + d,
		"/EFI/BOOT/BOOTX64.EFI" + f + "6208 " + loader,
		"/EFI/Linux" + d,
		"/EFI/Linux/kiln-6.1.0-99-amd64.efi" + f + strconv.Itoa(ukiBytes.Len()) + " " + judge.SHA256([]byte(ukiBytes.String())),
		"/EFI/systemd" + d,
		"/EFI/systemd/systemd-bootx64.efi" + f + "6208 " + loader,
		"/loader" + d,
		"/loader/loader.conf" + f + strconv.Itoa(len(wantConf)) + " " + judge.SHA256([]byte(wantConf)),
	}
	if got := listTree(t, esp); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ESP tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if files.UKI != "/EFI/Linux/kiln-6.1.0-99-amd64.efi" || files.Entry != "" || files.Kernel != "" || len(files.Loader) != 2 {
		t.Errorf("files %+v", *files)
	}

	withKernel := sb
	withKernel.Kernel = fileInode(testKernel(t))
	if _, err := InstallSystemdBoot(tree.New(testEpoch), withKernel); err == nil {
		t.Error("a kernel beside the UKI accepted")
	}
	arm := sb
	arm.Loader = fileInode(makePE(t, peSpec{machine: 0xaa64}))
	if _, err := InstallSystemdBoot(tree.New(testEpoch), arm); err == nil || !strings.Contains(err.Error(), "the UKI is for X64, the loader for AA64") {
		t.Errorf("an arm64 loader with an x86 UKI: %v", err)
	}
	bad := sb
	bad.UKIName = "../x"
	if _, err := InstallSystemdBoot(tree.New(testEpoch), bad); err == nil {
		t.Error("UKI name ../x accepted")
	}
}
