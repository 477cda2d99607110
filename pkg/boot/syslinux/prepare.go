package syslinux

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Where Debian's packages put syslinux's files.
const (
	DefaultInstaller  = "/usr/bin/syslinux"                          // package syslinux
	DefaultLDLinuxC32 = "/usr/lib/syslinux/modules/bios/ldlinux.c32" // package syslinux-common
	DefaultMBR        = "/usr/lib/syslinux/mbr/mbr.bin"              // package syslinux-common
	DefaultGPTMBR     = "/usr/lib/syslinux/mbr/gptmbr.bin"           // package syslinux-common
)

// Sources says where syslinux's files are in a merged tree. Paths are
// absolute in Tree; symlinks are followed inside Tree. Empty paths mean
// the Default* paths.
type Sources struct {
	Tree       *tree.Tree
	Installer  string // the installer executable, which holds the boot sector and ldlinux.sys
	LDLinuxC32 string // the BIOS ldlinux.c32 of the same syslinux version
	MBR        string // mbr.bin: boot code for MBR disks
	GPTMBR     string // gptmbr.bin: boot code for GPT disks
}

func (s Sources) path(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

// The files Prepare adds to the ESP, and the configuration files syslinux
// would read before ours.
const (
	ldlinuxSys = "ldlinux.sys"
	ldlinuxC32 = "ldlinux.c32"
	configName = "syslinux.cfg"
	// extlinuxConf is read before syslinux.cfg in every directory.
	extlinuxConf = "extlinux.conf"
)

// Config is the boot entry Prepare writes to /syslinux.cfg.
type Config struct {
	// Kernel is the kernel's path on the ESP, such as "/vmlinuz".
	// Absolute, clean, printable ASCII without spaces (syslinux's
	// configuration splits on spaces).
	Kernel string
	// KernelFile, if not nil, is put at Kernel; else Kernel must already
	// be a regular file of the ESP's tree.
	KernelFile *tree.Inode
	// Initrd is the initramfs's path on the ESP, or "" for none; InitrdFile
	// is like KernelFile.
	Initrd     string
	InitrdFile *tree.Inode
	// Cmdline is the kernel command line (APPEND). No control characters.
	Cmdline string
	// Serial, if not "", is the argument of SERIAL: a port and a speed
	// such as "0 115200", which makes syslinux talk on ttyS0 too.
	Serial string
	// Epoch is the mtime of the files Prepare creates.
	Epoch int64
}

var (
	pathRE   = regexp.MustCompile(`^(/[!-~]+)+$`)
	serialRE = regexp.MustCompile(`^[0-9]{1,4}( [0-9]{1,7}( 0x[0-9a-fA-F]{1,4}| [0-9]{1,5})?)?$`)
)

func (c *Config) check() error {
	for _, p := range []struct{ what, path string }{{"kernel", c.Kernel}, {"initrd", c.Initrd}} {
		if p.path == "" && p.what == "initrd" {
			continue
		}
		if !pathRE.MatchString(p.path) || path.Clean(p.path) != p.path {
			return fmt.Errorf("syslinux: %s path %q: want an absolute, clean path of printable ASCII without spaces", p.what, p.path)
		}
		for _, own := range []string{ldlinuxSys, ldlinuxC32, configName, extlinuxConf} {
			if strings.EqualFold(p.path, "/"+own) {
				return fmt.Errorf("syslinux: %s path %s is syslinux's own file", p.what, p.path)
			}
		}
	}
	if c.Initrd == "" && c.InitrdFile != nil {
		return errors.New("syslinux: an initrd file without a path")
	}
	if c.Initrd != "" && c.Initrd == c.Kernel {
		return fmt.Errorf("syslinux: the kernel and the initrd are both %s", c.Kernel)
	}
	for _, r := range c.Cmdline {
		if r < 0x20 || r == 0x7F {
			return fmt.Errorf("syslinux: the command line has the control character %q", r)
		}
	}
	if c.Serial != "" && !serialRE.MatchString(c.Serial) {
		return fmt.Errorf("syslinux: SERIAL %q: want a port and optionally a speed and flow control, such as \"0 115200\"", c.Serial)
	}
	return nil
}

// configText is /syslinux.cfg. SERIAL must come first.
func (c *Config) configText() []byte {
	var b bytes.Buffer
	if c.Serial != "" {
		fmt.Fprintf(&b, "SERIAL %s\n", c.Serial)
	}
	b.WriteString("PROMPT 0\nTIMEOUT 0\nDEFAULT linux\n\nLABEL linux\n")
	fmt.Fprintf(&b, "\tLINUX %s\n", c.Kernel)
	if c.Initrd != "" {
		fmt.Fprintf(&b, "\tINITRD %s\n", c.Initrd)
	}
	if c.Cmdline != "" {
		fmt.Fprintf(&b, "\tAPPEND %s\n", c.Cmdline)
	}
	return b.Bytes()
}

// Load reads the installer from src.Tree and extracts its code.
func Load(src Sources) (*Image, error) {
	p := src.path(src.Installer, DefaultInstaller)
	exe, err := readFile(src.Tree, p, maxInstaller, "the package syslinux")
	if err != nil {
		return nil, err
	}
	img, err := Extract(exe, p)
	if errors.Is(err, ErrNotInstaller) {
		return nil, fmt.Errorf("%w (want syslinux's installer from the Debian package syslinux)", err)
	}
	return img, err
}

// Prepare adds what syslinux needs to esp, the tree the ESP's FAT is
// written from: /ldlinux.sys (read-only), /ldlinux.c32 (read-only),
// /syslinux.cfg, and the kernel and initrd when Config gives their files.
// It returns the image Install needs once the FAT is written.
//
// It refuses an ESP that already has any of those three files, or an
// /extlinux.conf, which syslinux would read instead of /syslinux.cfg.
// syslinux also looks in /boot/syslinux and /syslinux, but only after the
// root, where Prepare puts its files.
func Prepare(esp *tree.Tree, src Sources, cfg Config) (*Image, error) {
	if esp == nil || esp.Root == nil || src.Tree == nil || src.Tree.Root == nil {
		return nil, errors.New("syslinux: prepare: no ESP tree or no source tree")
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	img, err := Load(src)
	if err != nil {
		return nil, err
	}
	c32Path := src.path(src.LDLinuxC32, DefaultLDLinuxC32)
	c32, err := lookupFile(src.Tree, c32Path, maxInstaller, "the package syslinux-common")
	if err != nil {
		return nil, err
	}
	if err := checkC32(c32Path, c32); err != nil {
		return nil, err
	}
	for _, name := range []string{ldlinuxSys, ldlinuxC32, configName, extlinuxConf} {
		if c := childFold(esp.Root, name); c != "" {
			return nil, fmt.Errorf("syslinux: the ESP already has /%s; syslinux installs its own /%s and /%s and reads /%s", c, ldlinuxSys, ldlinuxC32, configName)
		}
	}
	// Check both files before changing the tree, then place them.
	for _, apply := range []bool{false, true} {
		for _, f := range []struct {
			path string
			file *tree.Inode
		}{{cfg.Kernel, cfg.KernelFile}, {cfg.Initrd, cfg.InitrdFile}} {
			if f.path == "" {
				continue
			}
			if err := place(esp, f.path, f.file, cfg.Epoch, apply); err != nil {
				return nil, err
			}
		}
	}
	sys := img.FileBytes()
	esp.Root.SetChild(ldlinuxSys, &tree.Inode{Kind: tree.Regular, Mode: 0o444, Mtime: cfg.Epoch,
		Size: int64(len(sys)), Content: bytesContent(sys)})
	esp.Root.SetChild(ldlinuxC32, &tree.Inode{Kind: tree.Regular, Mode: 0o444, Mtime: cfg.Epoch,
		Size: c32.Size, Content: c32.Content})
	text := cfg.configText()
	esp.Root.SetChild(configName, &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: cfg.Epoch,
		Size: int64(len(text)), Content: bytesContent(text)})
	return img, nil
}

// place puts file at p in esp (creating its directories), or, if file is
// nil, checks that p is a regular file of esp already. Unless apply is
// set, it only checks that it can.
func place(esp *tree.Tree, p string, file *tree.Inode, epoch int64, apply bool) error {
	dir := esp.Root
	els := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, el := range els[:len(els)-1] {
		c := dir.Child(el)
		switch {
		case c == nil && file != nil && !apply:
			return checkFile(p, file) // the rest of the path will be new
		case c == nil && file != nil:
			c = tree.NewDir(0o755, 0, 0, epoch)
			dir.SetChild(el, c)
		case c == nil:
			return fmt.Errorf("syslinux: %s is not on the ESP", p)
		case c.Kind != tree.Dir:
			return fmt.Errorf("syslinux: %s: /%s on the ESP is a %s, not a directory", p, strings.Join(els[:i+1], "/"), c.Kind)
		}
		dir = c
	}
	name := els[len(els)-1]
	have := dir.Child(name)
	switch {
	case file == nil && have == nil:
		return fmt.Errorf("syslinux: %s is not on the ESP and no file was given for it", p)
	case file == nil && have.Kind != tree.Regular:
		return fmt.Errorf("syslinux: %s on the ESP is a %s, not a file", p, have.Kind)
	case file == nil:
		return nil
	case have != nil:
		return fmt.Errorf("syslinux: %s is on the ESP already", p)
	}
	if err := checkFile(p, file); err != nil {
		return err
	}
	if apply {
		dir.SetChild(name, file)
	}
	return nil
}

// checkFile checks a file given for p.
func checkFile(p string, file *tree.Inode) error {
	if file.Kind != tree.Regular || file.Content == nil && file.Size != 0 {
		return fmt.Errorf("syslinux: the file for %s is a %s, not a regular file with content", p, file.Kind)
	}
	return nil
}

// childFold returns the name of a child of dir equal to name without
// regard to case, as FAT compares names, or "".
func childFold(dir *tree.Inode, name string) string {
	for _, d := range dir.Children() {
		if strings.EqualFold(d.Name, name) {
			return d.Name
		}
	}
	return ""
}

// checkC32 checks that ldlinux.c32 is an ELF32 i386 file, as every BIOS
// COM32 module of syslinux 5 and later is.
func checkC32(p string, n *tree.Inode) error {
	if n.Size < 20 {
		return fmt.Errorf("syslinux: %s is %d bytes, too short for an ELF module", p, n.Size)
	}
	rc, err := n.Content.Open()
	if err != nil {
		return fmt.Errorf("syslinux: %s: %w", p, err)
	}
	defer rc.Close()
	var h [20]byte
	if _, err := io.ReadFull(rc, h[:]); err != nil {
		return fmt.Errorf("syslinux: %s: reading its header: %w", p, err)
	}
	if string(h[:4]) != "\x7fELF" || h[4] != 1 || h[5] != 1 || h[18] != 3 || h[19] != 0 {
		return fmt.Errorf("syslinux: %s is not a 32-bit x86 ELF module (want ldlinux.c32 for BIOS from the package syslinux-common)", p)
	}
	return nil
}

// lookupFile finds the regular file at p in t, following symlinks inside
// t (".." never climbs above its root), and checks its size against max.
// pkg names the Debian package that ships it, for the error.
func lookupFile(t *tree.Tree, p string, max int64, pkg string) (*tree.Inode, error) {
	n, _, err := t.Resolve(p, true)
	if errors.Is(err, tree.ErrNotExist) {
		return nil, fmt.Errorf("syslinux: %s: not found: %w (install %s in a layer)", p, err, pkg)
	}
	if err != nil {
		return nil, fmt.Errorf("syslinux: %s: %w (install %s in a layer)", p, err, pkg)
	}
	if n.Kind != tree.Regular {
		return nil, fmt.Errorf("syslinux: %s is a %s, not a file", p, n.Kind)
	}
	if n.Size > max || n.Size < 0 {
		return nil, fmt.Errorf("syslinux: %s is %d bytes, more than the %d it can be", p, n.Size, max)
	}
	if n.Content == nil && n.Size > 0 {
		return nil, fmt.Errorf("BUG: syslinux: %s has %d bytes but no content", p, n.Size)
	}
	return n, nil
}

// readFile reads the file lookupFile finds.
func readFile(t *tree.Tree, p string, max int64, pkg string) ([]byte, error) {
	n, err := lookupFile(t, p, max, pkg)
	if err != nil {
		return nil, err
	}
	if n.Size == 0 {
		return nil, nil
	}
	rc, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("syslinux: %s: %w", p, err)
	}
	defer rc.Close()
	b := make([]byte, n.Size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("syslinux: %s: reading %d bytes: %w", p, n.Size, err)
	}
	return b, nil
}

// bytesContent is file content held in memory.
type bytesContent []byte

func (b bytesContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}
