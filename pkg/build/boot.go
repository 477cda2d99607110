package build

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/boot/syslinux"
	"github.com/kiln-build/kiln/pkg/boot/uefi"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/initramfs"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// bootInputs is what the boot stage takes from the merged tree, before the
// tree is split into partitions.
type bootInputs struct {
	cfg        *spec.Boot
	kernel     *tree.Inode
	kernelPath string
	kver       string
	initrd     *uefi.File // nil: none
	cmdline    string
	osRelease  []byte
	osID       string
	title      string
	loader     *tree.Inode // systemd-bootx64.efi
	stub       *tree.Inode // linuxx64.efi.stub
	shim       uefi.Shim   // loader shim: shim, MokManager and GRUB
	syslinux   syslinux.Sources
	initSHA256 string // of the kiln-init put into a generated initramfs
	initName   string // where it came from (a path, or the embedded one)
	sealed     bool   // the root is under verity: roothash= is still to be added
}

// bootPost is the work left for after the filesystems are written.
type bootPost struct {
	esp      int // index of the ESP among the partitions
	syslinux *syslinux.Image
	sources  syslinux.Sources
	// The PEs on the ESP that Secure Boot signs: groups of paths holding
	// the same bytes (systemd-boot's two copies; the kernel), and the
	// UKI's path under /EFI/Linux (its removable-media copy is found by
	// its content: its name follows the stub's machine type).
	pes [][]string
	uki string
}

// loaderDefaults are where Debian installs the UEFI loaders for an
// architecture, and the packages that ship them (for messages).
type loaderDefaults struct {
	systemdBoot, stub, shim, mokManager, grub string
	grubPkg, shimHelpersPkg                   string
}

// loaderDefaultsFor returns Debian's loader paths for a disk.arch: the
// UEFI name suffix (x64, aa64, ...) in systemd's and shim's names, GRUB's
// platform folder.
func loaderDefaultsFor(arch string) loaderDefaults {
	suffix, grubDir, debArch := "x64", "x86_64-efi-signed", "amd64"
	switch a, _ := disk.NormalizeArch(arch); a {
	case "arm64":
		suffix, grubDir, debArch = "aa64", "arm64-efi-signed", "arm64"
	case "riscv64":
		suffix, grubDir, debArch = "riscv64", "riscv64-efi-signed", "riscv64"
	case "x86":
		suffix, grubDir, debArch = "ia32", "i386-efi-signed", "i386"
	case "arm":
		suffix, grubDir, debArch = "arm", "arm-efi-signed", "armhf"
	}
	return loaderDefaults{
		systemdBoot:    "/usr/lib/systemd/boot/efi/systemd-boot" + suffix + ".efi",
		stub:           "/usr/lib/systemd/boot/efi/linux" + suffix + ".efi.stub",
		shim:           "/usr/lib/shim/shim" + suffix + ".efi.signed",
		mokManager:     "/usr/lib/shim/mm" + suffix + ".efi.signed",
		grub:           "/usr/lib/grub/" + grubDir + "/grub" + suffix + ".efi.signed",
		grubPkg:        "grub-efi-" + debArch + "-signed",
		shimHelpersPkg: "shim-helpers-" + debArch + "-signed",
	}
}

// resolveBoot finds the kernel, the loader binaries and os-release in the
// merged tree, and builds the initramfs when boot.initrd is kiln.
func resolveBoot(s *spec.Spec, t *tree.Tree, seed string, epoch int64, initSrc InitSource) (*bootInputs, error) {
	b := s.Boot
	if b == nil || b.Loader == "none" {
		return nil, nil
	}
	// bad is a spec error on the line of key (else of boot:).
	bad := func(key, format string, a ...any) error {
		line := b.Line
		if l, ok := b.KeyLines[key]; ok {
			line = l
		}
		return &spec.Error{File: s.File, Line: line, Msg: "boot: " + fmt.Sprintf(format, a...)}
	}
	in := &bootInputs{cfg: b}
	kpath, kernel, err := globOne(t, b.Kernel)
	if err != nil {
		return nil, bad("kernel", "kernel: %v", err)
	}
	in.kernel, in.kernelPath = kernel, kpath
	if in.kver, err = initramfs.KernelVersion(t, kpath); err != nil {
		return nil, bad("kernel", "kernel: %v", err)
	}

	root := -1
	for i, p := range s.Disk.Partitions {
		if p.Mount == "/" {
			root = i
		}
	}
	in.cmdline = b.Cmdline
	switch {
	case root >= 0 && s.Disk.Partitions[root].Verity:
		// The root hash is added once the root is written (sealedCmdline).
		for _, k := range []string{"root", "roothash", "rootfstype", "systemd.verity_root_data", "systemd.verity_root_hash"} {
			if hasArg(b.Cmdline, k) {
				return nil, bad("cmdline", "%s= is kiln's on a sealed root (verity: true): kiln sets root=/dev/mapper/root roothash=<root hash> rootfstype=erofs; drop it from boot.cmdline", k)
			}
		}
		in.cmdline = strings.TrimSpace(in.cmdline + " root=/dev/mapper/root rootfstype=erofs")
		in.sealed = true
	case !hasArg(b.Cmdline, "root"):
		if root < 0 {
			return nil, bad("cmdline", "no partition is mounted at /, so there is no root= to give the kernel (set root= in boot.cmdline)")
		}
		in.cmdline = strings.TrimSpace(in.cmdline + " root=PARTUUID=" + partUUID(s, root, seed))
		if fs := s.Disk.Partitions[root].Filesystem; !hasArg(b.Cmdline, "rootfstype") && (fs == "ext4" || fs == "erofs") {
			in.cmdline += " rootfstype=" + fs
		}
	}

	in.osRelease = readOSRelease(t)
	in.osID, in.title = osField(in.osRelease, "ID"), b.Title
	if in.osID == "" {
		in.osID = "linux"
	}
	if in.title == "" {
		in.title = osField(in.osRelease, "PRETTY_NAME")
	}

	switch b.Initrd {
	case "none":
	case "kiln":
		target, err := targetOf(s.Disk.Arch)
		if err != nil {
			return nil, err
		}
		init, name, err := initSrc(target.goarch)
		if err != nil {
			return nil, fmt.Errorf("boot: initrd kiln needs kiln-init for %s: %w", target.goarch, err)
		}
		if err := checkELF("boot: initrd kiln: kiln-init "+name, init, target); err != nil {
			return nil, err
		}
		in.initName = name
		in.initSHA256 = fmt.Sprintf("sha256:%x", sha256.Sum256(init))
		// The default modules of the target's architecture (virtio-mmio
		// for arm64's virt machine); a module for another one is refused.
		mods := append([]string(nil), initramfs.DefaultModulesFor(elf.Machine(target.machine))...)
		mods = append(mods, neededModules(s)...)
		mods = append(mods, b.Modules...)
		var buf bytes.Buffer
		if err := initramfs.Build(&buf, t, in.kver, initramfs.Options{Epoch: epoch, Modules: mods, Init: init, Mounts: initMounts(s, seed), Machine: elf.Machine(target.machine)}); err != nil {
			return nil, fmt.Errorf("boot: initramfs: %w", err)
		}
		in.initrd = uefi.Bytes(buf.Bytes())
	default:
		_, n, err := globOne(t, b.Initrd)
		if err != nil {
			return nil, bad("initrd", "initrd: %v", err)
		}
		in.initrd = &uefi.File{Content: n.Content, Size: n.Size}
	}

	need := func(what, key, p, def, pkg string) (*tree.Inode, error) {
		if p == "" {
			p, key = def, "loader"
		}
		_, n, err := globOne(t, p)
		if err != nil {
			return nil, bad(key, "%s: %v (Debian ships it in %s; add that package as a layer, or set boot.paths)", what, err, pkg)
		}
		return n, nil
	}
	uefiKind := b.Loader
	if b.Loader == "hybrid" {
		uefiKind = b.UEFI
	}
	defs := loaderDefaultsFor(s.Disk.Arch)
	switch uefiKind {
	case "systemd-boot":
		if in.loader, err = need("systemd-boot", "paths.systemd_boot", b.Paths.SystemdBoot, defs.systemdBoot, "systemd-boot-efi"); err != nil {
			return nil, err
		}
		if b.UKI {
			if in.stub, err = need("UKI stub", "paths.stub", b.Paths.Stub, defs.stub, "systemd-boot-efi"); err != nil {
				return nil, err
			}
		}
	case "shim":
		if in.shim.Shim, err = need("shim", "paths.shim", b.Paths.Shim, defs.shim, "shim-signed"); err != nil {
			return nil, err
		}
		if in.shim.MokManager, err = need("MokManager", "paths.mok_manager", b.Paths.MokManager, defs.mokManager, defs.shimHelpersPkg); err != nil {
			return nil, err
		}
		if in.shim.Grub, err = need("signed GRUB", "paths.grub", b.Paths.Grub, defs.grub, defs.grubPkg); err != nil {
			return nil, err
		}
	case "uki":
		if in.stub, err = need("UKI stub", "paths.stub", b.Paths.Stub, defs.stub, "systemd-boot-efi"); err != nil {
			return nil, err
		}
	}
	if b.Loader == "syslinux" || b.Loader == "hybrid" {
		in.syslinux = syslinux.Sources{Tree: t, Installer: b.Paths.Syslinux, LDLinuxC32: b.Paths.LdlinuxC32, MBR: b.Paths.MBR, GPTMBR: b.Paths.GPTMBR}
	}
	return in, nil
}

// neededModules are the modules kiln-init needs for the spec's partitions
// beyond initramfs.DefaultModules (which reach an ext4 root): erofs for an
// erofs partition it mounts, dm_verity for a sealed root.
func neededModules(s *spec.Spec) []string {
	var mods []string
	erofs, verity := false, false
	for _, p := range s.Disk.Partitions {
		if p.Mount != "" && p.Filesystem == "erofs" {
			erofs = true
		}
		verity = verity || p.Verity
	}
	if erofs {
		mods = append(mods, "erofs")
	}
	if verity {
		mods = append(mods, "dm_verity")
	}
	return mods
}

// initMounts are the partitions kiln-init mounts below the root before it
// switches to it: every partition with a mount other than / and a
// filesystem kiln's initramfs has the module for (ext4 read-write, erofs
// read-only), parents first. The ESP (vfat) is the firmware's and left to
// the system's own fstab or systemd's generators.
func initMounts(s *spec.Spec, seed string) []initramfs.Mount {
	type m struct {
		depth int
		initramfs.Mount
	}
	var ms []m
	for i, p := range s.Disk.Partitions {
		if p.Mount == "" || p.Mount == "/" {
			continue
		}
		opts := ""
		switch p.Filesystem {
		case "ext4":
			opts = "rw"
		case "erofs":
			opts = "ro"
		default:
			continue
		}
		ms = append(ms, m{strings.Count(p.Mount, "/"), initramfs.Mount{Source: "PARTUUID=" + partUUID(s, i, seed), Target: p.Mount, FSType: p.Filesystem, Options: opts}})
	}
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].depth < ms[b].depth })
	out := make([]initramfs.Mount, len(ms))
	for i := range ms {
		out[i] = ms[i].Mount
	}
	return out
}

// enrollKeys reads boot.secureboot.enroll's PK.auth, KEK.auth and db.auth
// (nil without enroll:), each at most 1 MiB.
func enrollKeys(s *spec.Spec) (*uefi.EnrollKeys, error) {
	b := s.Boot
	if b == nil || b.SecureBoot == nil || b.SecureBoot.Enroll == "" {
		return nil, nil
	}
	dir := s.Resolve(b.SecureBoot.Enroll)
	var k uefi.EnrollKeys
	for _, f := range []struct {
		name string
		to   *[]byte
	}{{"PK.auth", &k.PK}, {"KEK.auth", &k.KEK}, {"db.auth", &k.DB}} {
		data, err := readBounded(filepath.Join(dir, f.name), "boot.secureboot.enroll", 1<<20)
		if err != nil {
			return nil, fmt.Errorf("%w (kiln keys generate DIR writes PK.auth, KEK.auth and db.auth)", err)
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("secure boot: boot.secureboot.enroll: %s is empty", filepath.Join(dir, f.name))
		}
		*f.to = data
	}
	return &k, nil
}

// installBoot adds the boot files to the ESP's tree and marks the
// partitions the firmware must find.
func installBoot(s *spec.Spec, in *bootInputs, parts []*part, epoch int64) (*bootPost, error) {
	if in == nil {
		return nil, nil
	}
	b := in.cfg
	esp := -1
	for i, p := range parts {
		if p.spec.TypeValue.Name == "esp" && p.spec.Filesystem == "vfat" {
			esp = i
			break
		}
	}
	if esp < 0 && b.Loader == "syslinux" {
		for i, p := range parts {
			if p.spec.Filesystem == "vfat" {
				esp = i
				break
			}
		}
	}
	if esp < 0 {
		line := b.Line
		if l, ok := b.KeyLines["loader"]; ok {
			line = l
		}
		return nil, &spec.Error{File: s.File, Line: line, Msg: fmt.Sprintf("boot: loader %s needs a partition of type esp with filesystem vfat", b.Loader)}
	}
	et := parts[esp].tree
	post := &bootPost{esp: esp}

	uefiKind := b.Loader
	if b.Loader == "hybrid" {
		uefiKind = b.UEFI
	}
	// Where syslinux finds the kernel and initrd on the ESP: the
	// systemd-boot entry's copies when there are any.
	kernelOnESP, initrdOnESP := "", ""
	switch uefiKind {
	case "systemd-boot":
		enroll, err := enrollKeys(s)
		if err != nil {
			return nil, err
		}
		sb := uefi.SystemdBoot{
			Loader: in.loader, Kernel: in.kernel, Initrd: in.initrd, Cmdline: in.cmdline,
			Title: in.title, EntryName: in.osID, KernelVersion: in.kver, Epoch: epoch, Enroll: enroll,
		}
		if b.UKI {
			// The kernel, initrd and command line go into a UKI that
			// systemd-boot lists (a type #2 entry).
			u := uefi.UKI{Stub: in.stub, Kernel: in.kernel, Initrd: in.initrd, Cmdline: in.cmdline, OSRelease: in.osRelease, Uname: in.kver, Epoch: epoch}
			f, err := uefi.NewUKI(u)
			if err != nil {
				return nil, fmt.Errorf("boot: UKI: %w", err)
			}
			sb.Kernel, sb.Initrd, sb.Cmdline, sb.UKI, sb.UKIName = nil, nil, "", f, in.osID+"-"+in.kver
		}
		files, err := uefi.InstallSystemdBoot(et, sb)
		if err != nil {
			return nil, fmt.Errorf("boot: systemd-boot: %w", err)
		}
		kernelOnESP, initrdOnESP = files.Kernel, files.Initrd
		post.pes = [][]string{files.Loader}
		if files.Kernel != "" {
			post.pes = append(post.pes, []string{files.Kernel})
		}
		if files.UKI != "" {
			post.pes = append(post.pes, []string{files.UKI})
		}
	case "shim":
		sh := in.shim
		sh.Kernel, sh.Initrd, sh.Cmdline, sh.Title, sh.EntryName, sh.KernelVersion, sh.Epoch = in.kernel, in.initrd, in.cmdline, in.title, in.osID, in.kver, epoch
		// With boot.secureboot the user's key signs the kernel (shim and
		// GRUB keep their vendors' signatures): the certificate reaches
		// shim through MOK.
		sh.SignKernel = b.SecureBoot != nil
		files, err := uefi.InstallShim(et, sh)
		if err != nil {
			return nil, fmt.Errorf("boot: shim: %w", err)
		}
		if sh.SignKernel {
			post.pes = [][]string{{files.Kernel}}
		}
	case "uki":
		u := uefi.UKI{Stub: in.stub, Kernel: in.kernel, Initrd: in.initrd, Cmdline: in.cmdline, OSRelease: in.osRelease, Uname: in.kver, Epoch: epoch}
		if err := uefi.InstallUKI(et, u, in.osID+"-"+in.kver); err != nil {
			return nil, fmt.Errorf("boot: UKI: %w", err)
		}
		post.uki = "/EFI/Linux/" + in.osID + "-" + in.kver + ".efi"
	}
	if b.Loader == "syslinux" || b.Loader == "hybrid" {
		cfg := syslinux.Config{Kernel: kernelOnESP, Initrd: initrdOnESP, Cmdline: in.cmdline, Serial: "0 115200", Epoch: epoch}
		if cfg.Kernel == "" {
			cfg.Kernel, cfg.KernelFile = "/linux", in.kernel
			if in.initrd != nil {
				cfg.Initrd = "/initrd"
				cfg.InitrdFile = &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: in.initrd.Size, Content: in.initrd.Content}
			}
		}
		img, err := syslinux.Prepare(et, in.syslinux, cfg)
		if err != nil {
			return nil, fmt.Errorf("boot: syslinux: %w", err)
		}
		post.syslinux, post.sources = img, in.syslinux
		parts[esp].bootable = true
		parts[esp].locate = append(parts[esp].locate, syslinux.LDLinuxPath)
	}
	return post, nil
}

// finishBoot runs after the filesystems are written: syslinux's patches
// to its FAT, where the FAT writer reported ldlinux.sys to be, and the MBR
// boot code.
func finishBoot(post *bootPost, parts []*part, layout *disk.Layout, img readWriterAt) error {
	if post == nil || post.syslinux == nil {
		return nil
	}
	lp := layout.Partitions[post.esp]
	written := parts[post.esp].written
	if written == nil {
		return fmt.Errorf("BUG: boot: the ESP %s was not written", parts[post.esp].spec.Name)
	}
	exts, ok := written.Extents[syslinux.LDLinuxPath]
	if !ok {
		return fmt.Errorf("BUG: boot: the writer of the ESP %s did not report %s", parts[post.esp].spec.Name, syslinux.LDLinuxPath)
	}
	win := &window{img, lp.Start}
	if err := syslinux.Install(win, lp.Size, uint64(lp.Start/disk.SectorSize), post.syslinux, exts); err != nil {
		return fmt.Errorf("boot: syslinux: %w", err)
	}
	code, err := syslinux.MBRCode(layout, lp.Number, post.sources)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	if err := disk.WriteBootCode(img, code); err != nil {
		return fmt.Errorf("boot: writing MBR boot code: %w", err)
	}
	return nil
}

type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// window is a partition's range of the image, for reading and writing.
type window struct {
	rw  readWriterAt
	off int64
}

func (w *window) ReadAt(p []byte, off int64) (int, error)  { return w.rw.ReadAt(p, w.off+off) }
func (w *window) WriteAt(p []byte, off int64) (int, error) { return w.rw.WriteAt(p, w.off+off) }

// globOne finds the single regular file pattern matches in the tree
// (tree.Glob: path.Match per element, symlinks followed on the way and at
// the end, inside the tree). It returns the file's canonical path.
func globOne(t *tree.Tree, pattern string) (string, *tree.Inode, error) {
	matches, err := t.Glob(pattern)
	if err != nil {
		return "", nil, err
	}
	switch len(matches) {
	case 0:
		return "", nil, fmt.Errorf("%s matches nothing in the merged tree", pattern)
	case 1:
	default:
		return "", nil, fmt.Errorf("%s matches %d files (%s): it must match exactly one", pattern, len(matches), strings.Join(matches, ", "))
	}
	n, p, err := t.Resolve(matches[0], true)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", matches[0], err)
	}
	if n.Kind != tree.Regular {
		return "", nil, fmt.Errorf("%s is not a regular file", matches[0])
	}
	return p, n, nil
}

// readOSRelease returns the tree's os-release (/etc, then /usr/lib).
func readOSRelease(t *tree.Tree) []byte {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		_, n, err := globOne(t, p)
		if err != nil || n.Content == nil || n.Size > 1<<20 {
			continue
		}
		r, err := n.Content.Open()
		if err != nil {
			continue
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err == nil {
			return b
		}
	}
	return nil
}

// osField returns a field of os-release, unquoted.
func osField(osr []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(osr))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && k == key {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// hasArg reports whether a kernel command line sets key (key=...).
func hasArg(cmdline, key string) bool {
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, key+"=") {
			return true
		}
	}
	return false
}
