package initramfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Options are the inputs of Build besides the tree and the kernel version.
type Options struct {
	// Epoch is the mtime of every entry (seconds, 0..2^32-1: newc's field).
	Epoch int64
	// Compression is "xz" (the default when empty; CRC32 check, as the
	// kernel requires), "gzip" (no name, mtime 0), "zstd" or "none".
	Compression string
	// Modules are the module names wanted; nil means the default modules
	// of the target's architecture (DefaultModulesFor Machine, or the
	// kernel's modules' machine when Machine is 0). A trailing "?" makes
	// a name optional. Empty (non-nil) means none.
	Modules []string
	// Machine is the ELF machine of the image's architecture
	// (elf.EM_X86_64, elf.EM_AARCH64, ...): a module for another one is
	// refused. 0 takes the machine of the kernel's first module read and
	// refuses modules of another.
	Machine elf.Machine
	// Init is the kiln-init binary, written as /init.
	Init []byte
	// Mounts are the partitions kiln-init mounts below the root before
	// it switches to it, in order (parents first); written to MountsList
	// when there are any.
	Mounts []Mount
}

// Mount is a line of MountsList: what kiln-init mounts where.
type Mount struct {
	Source  string // PARTUUID=<id> or /dev/<name>
	Target  string // absolute path in the root
	FSType  string // ext4, erofs, vfat
	Options string // comma-separated: rw or ro, nosuid, nodev, noexec
}

// MountsList is where the initramfs lists the mounts of Options.Mounts,
// one a line: SOURCE TARGET FSTYPE OPTIONS.
const MountsList = "/etc/kiln/mounts"

// ModulesList is where the initramfs lists the modules kiln-init loads, one
// absolute path a line, in load order.
const ModulesList = "/etc/kiln/modules"

// entry is one member of the archive on its way to the cpio writer.
type entry struct {
	name         string // no leading "/"
	mode         uint32 // type and permission bits
	data         []byte
	major, minor uint32 // device nodes only
}

// devices are the nodes the archive declares in /dev.
var devices = []entry{
	{name: "dev/console", mode: modeCharDev | 0o600, major: 5, minor: 1},
	{name: "dev/kmsg", mode: modeCharDev | 0o644, major: 1, minor: 11},
	{name: "dev/null", mode: modeCharDev | 0o666, major: 1, minor: 3},
	{name: "dev/tty", mode: modeCharDev | 0o666, major: 5, minor: 0},
}

// Build writes the initramfs for kernel kver of tree t to w: a newc cpio
// archive, compressed as o says, holding o.Init as /init and the modules
// of o.Modules with their dependencies. Everything is read and checked
// before the first byte is written.
func Build(w io.Writer, t *tree.Tree, kver string, o Options) error {
	if len(o.Init) == 0 {
		return errors.New("initramfs: no init binary (Options.Init is empty)")
	}
	if o.Epoch < 0 || o.Epoch > 0xFFFFFFFF {
		return fmt.Errorf("initramfs: epoch %d does not fit newc's unsigned 32-bit mtime", o.Epoch)
	}
	comp := o.Compression
	if comp == "" {
		comp = "xz"
	}
	switch comp {
	case "xz", "gzip", "zstd", "none":
	default:
		return fmt.Errorf("initramfs: unknown compression %q (want xz, gzip, zstd or none)", o.Compression)
	}
	if err := checkKernelVersion(kver); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	var mods []Module
	if o.Modules == nil || len(o.Modules) > 0 {
		var err error
		if mods, err = ResolveModulesFor(t, kver, o.Modules, o.Machine); err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
	}

	entries, err := archiveEntries(kver, mods, o.Init)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if len(o.Mounts) > 0 {
		var list bytes.Buffer
		for _, m := range o.Mounts {
			for _, f := range []string{m.Source, m.Target, m.FSType, m.Options} {
				if f == "" || strings.ContainsAny(f, " \t\n\r#") {
					return fmt.Errorf("initramfs: mount %q on %q: a field is empty or has white space or #", m.Source, m.Target)
				}
			}
			if !strings.HasPrefix(m.Target, "/") || m.Target == "/" {
				return fmt.Errorf("initramfs: mount %s: target %q is not an absolute path below /", m.Source, m.Target)
			}
			fmt.Fprintf(&list, "%s %s %s %s\n", m.Source, m.Target, m.FSType, m.Options)
		}
		entries = append(entries, entry{name: strings.TrimPrefix(MountsList, "/"), mode: modeRegular | 0o644, data: list.Bytes()})
		sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	}

	cw, closeFn, err := compressor(w, comp)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", comp, err)
	}
	if err := writeArchive(cw, entries, uint32(o.Epoch)); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := closeFn(); err != nil {
		return fmt.Errorf("initramfs: %s: %w", comp, err)
	}
	return nil
}

// archiveEntries lists what the archive holds, sorted by name (so parents
// come before their children).
func archiveEntries(kver string, mods []Module, init []byte) ([]entry, error) {
	modDir := "lib/modules/" + kver
	dirs := map[string]bool{}
	addDir := func(p string) {
		for ; p != "." && p != ""; p = path.Dir(p) {
			dirs[p] = true
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "root", "etc/kiln", modDir} {
		addDir(d)
	}
	entries := append([]entry(nil), devices...)
	entries = append(entries, entry{name: "init", mode: modeRegular | 0o755, data: init})

	var list bytes.Buffer
	seen := map[string]string{}
	for _, m := range mods {
		rel := path.Clean(m.Rel)
		if path.IsAbs(rel) || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("module %s: path %q is not below the modules directory", m.Name, m.Rel)
		}
		name := modDir + "/" + rel
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("modules %s and %s both are %s", other, m.Name, name)
		}
		seen[name] = m.Name
		if m.Inode == nil {
			return nil, fmt.Errorf("BUG: module %s has no inode", m.Name)
		}
		data, err := readModule(m.Inode, m.Compression)
		if err != nil {
			return nil, fmt.Errorf("module %s (%s): %w", m.Name, m.Path, err)
		}
		addDir(path.Dir(name))
		entries = append(entries, entry{name: name, mode: modeRegular | 0o644, data: data})
		fmt.Fprintf(&list, "/%s\n", name)
	}
	entries = append(entries, entry{name: strings.TrimPrefix(ModulesList, "/"), mode: modeRegular | 0o644, data: list.Bytes()})

	for d := range dirs {
		mode := uint32(modeDir | 0o755)
		if d == "root" {
			mode = modeDir | 0o700
		}
		entries = append(entries, entry{name: d, mode: mode})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	for i := 1; i < len(entries); i++ {
		if entries[i].name == entries[i-1].name {
			return nil, fmt.Errorf("BUG: %s is in the archive twice", entries[i].name)
		}
	}
	return entries, nil
}

// writeArchive writes the sorted entries and the trailer: inode numbers
// from 1 in order, owner 0:0, mtime epoch, a directory's nlink 2 plus its
// subdirectories, device numbers on device nodes only.
func writeArchive(w io.Writer, entries []entry, epoch uint32) error {
	subdirs := map[string]uint32{}
	for _, e := range entries {
		if e.mode&^0o7777 == modeDir {
			subdirs[path.Dir(e.name)]++
		}
	}
	cw := &cpioWriter{w: w}
	for i, e := range entries {
		h := newcHeader{Ino: uint32(i + 1), Mode: e.mode, Nlink: 1, Mtime: epoch}
		switch e.mode &^ 0o7777 {
		case modeDir:
			h.Nlink = 2 + subdirs[e.name]
		case modeCharDev:
			h.RDevMajor, h.RDevMinor = e.major, e.minor
		}
		if err := cw.entry(e.name, h, e.data); err != nil {
			return err
		}
	}
	return cw.trailer()
}

// compressor wraps w in the named compression; closeFn flushes it.
func compressor(w io.Writer, comp string) (io.Writer, func() error, error) {
	switch comp {
	case "none":
		return w, func() error { return nil }, nil
	case "xz":
		// The kernel's xz decoder checks CRC32 or nothing, not the
		// default CRC64.
		xw, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
		if err != nil {
			return nil, nil, err
		}
		return xw, xw.Close, nil
	case "gzip":
		// A zero Header: no file name, mtime 0.
		gw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return nil, nil, err
		}
		return gw, gw.Close, nil
	case "zstd":
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	}
	return nil, nil, fmt.Errorf("BUG: compression %q passed the check", comp)
}
