package initramfs

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// DefaultModules are the modules an initramfs for an x86-64 kernel gets
// when Options.Modules is nil: the disk drivers of QEMU and common PCs and
// the ext4 root. A trailing "?" makes a name optional (see the package
// documentation).
var DefaultModules = []string{"virtio_blk", "virtio_pci", "virtio_scsi?", "ahci?", "sd_mod", "nvme?", "ext4"}

// DefaultModulesARM64 are DefaultModules for an arm64 kernel: QEMU's virt
// machine puts its virtio devices on PCI (virtio_pci) or on virtio-mmio
// transports (virtio_mmio, which bookworm's arm64 kernel has as a module
// and others build in or lack), and arm64 servers have AHCI and NVMe
// disks.
var DefaultModulesARM64 = []string{"virtio_blk", "virtio_pci", "virtio_mmio?", "virtio_scsi?", "ahci?", "sd_mod", "nvme?", "ext4"}

// DefaultModulesFor returns the default modules for a kernel of ELF
// machine m: DefaultModulesARM64 for EM_AARCH64, else DefaultModules
// (also for 0, a machine not known).
func DefaultModulesFor(m elf.Machine) []string {
	if m == elf.EM_AARCH64 {
		return DefaultModulesARM64
	}
	return DefaultModules
}

// Module is a kernel module the initramfs holds, with where it comes from.
type Module struct {
	Name        string      // canonical name: '-' written '_', no suffix ("crc32c_generic")
	Path        string      // the file in the tree, canonical (symlinks resolved)
	Rel         string      // the file below /lib/modules/KVER/ in the initramfs, decompressed (".ko")
	Compression string      // how the file in the tree is compressed: "", "xz", "zst" or "gz"
	Deps        []string    // names of the modules loaded before it because it needs them, sorted
	Inode       *tree.Inode // the file in the tree
}

// moduleSuffixes maps the file name endings of modules to their
// compression.
var moduleSuffixes = []struct{ suffix, comp string }{
	{".ko", ""}, {".ko.xz", "xz"}, {".ko.zst", "zst"}, {".ko.gz", "gz"},
}

// Size limits for hostile trees.
const (
	maxModuleSize = 256 << 20 // a decompressed module
	maxIndexSize  = 64 << 20  // modules.dep, modules.alias, ...
	maxDepth      = 200       // nesting of dependencies
)

// normName is a module's canonical name: '-' and '_' are the same.
func normName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// splitModuleFile returns the canonical name and compression of a module
// file name, or ok=false if it is not one.
func splitModuleFile(base string) (name, comp string, ok bool) {
	for _, s := range moduleSuffixes {
		if n, found := strings.CutSuffix(base, s.suffix); found && n != "" {
			return normName(n), s.comp, true
		}
	}
	return "", "", false
}

// modFile is a module file of the tree.
type modFile struct {
	name  string
	rel   string // below its modules directory, as stored (compressed suffix kept)
	path  string // canonical path in the tree
	comp  string
	inode *tree.Inode // nil when modules.dep names a file the tree lacks
}

// modInfo is what a module's .modinfo section says.
type modInfo struct {
	depends  []string
	softPre  []string
	softPost []string
	aliases  []string
	vermagic string
	machine  elf.Machine // the ELF header's e_machine
}

type aliasEntry struct{ pattern, name string }

// resolver answers ResolveModules for one tree and kernel.
type resolver struct {
	t    *tree.Tree
	kver string
	dirs []string // canonical modules directories, /lib's before /usr/lib's

	files map[string]*modFile // by canonical name

	depFile  bool                // the tree has modules.dep
	hard     map[string][]string // modules.dep: name -> names of its dependencies
	softFile bool                // the tree has modules.softdep
	soft     map[string][2][]string

	builtin      map[string]bool
	builtinAlias []aliasEntry

	aliasFile bool
	aliases   []aliasEntry // modules.alias, or every module's alias= fields once scanned
	scanned   bool

	info map[string]*modInfo

	// machine is the ELF machine every module must be for: the target's,
	// or, when none is given, that of the first module read (machineOf
	// names it), so that one initramfs never mixes architectures.
	machine   elf.Machine
	machineOf string
}

// ResolveModules finds the modules named (nil means the default modules
// of the kernel's architecture, read from its modules: DefaultModulesFor)
// and everything they need in the tree's /lib/modules/KVER and
// /usr/lib/modules/KVER, and returns them in an order that loads every
// module after its dependencies. Names that are built into the kernel are
// left out; see the package documentation for the rules. Every module
// read must be for the ELF machine of the first one.
func ResolveModules(t *tree.Tree, kver string, names []string) ([]Module, error) {
	return ResolveModulesFor(t, kver, names, 0)
}

// ResolveModulesFor is ResolveModules for a target of ELF machine m (0:
// the machine of the kernel's modules): nil names means
// DefaultModulesFor(m), and a module for another machine is refused.
func ResolveModulesFor(t *tree.Tree, kver string, names []string, m elf.Machine) ([]Module, error) {
	if err := checkKernelVersion(kver); err != nil {
		return nil, fmt.Errorf("resolve modules: %w", err)
	}
	r, err := newResolver(t, kver)
	if err != nil {
		return nil, fmt.Errorf("resolve modules: %w", err)
	}
	r.machine = m
	if names == nil {
		if m == 0 {
			if m, err = r.kernelMachine(); err != nil {
				return nil, fmt.Errorf("resolve modules: %w", err)
			}
		}
		names = DefaultModulesFor(m)
	}
	v := &visit{r: r, state: map[string]int{}}
	for _, want := range names {
		name, optional := strings.CutSuffix(strings.TrimSpace(want), "?")
		if name == "" || strings.ContainsAny(name, "/ \x00") {
			return nil, fmt.Errorf("resolve modules: %q is not a module name", want)
		}
		found, ok, err := r.lookup(name)
		if err != nil {
			return nil, fmt.Errorf("resolve modules: %s: %w", name, err)
		}
		if !ok {
			if r.isBuiltin(name) || optional {
				continue
			}
			return nil, fmt.Errorf("resolve modules: module %s not found in %s and not built into kernel %s", name, r.where(), kver)
		}
		if err := v.module(found, nil); err != nil {
			return nil, fmt.Errorf("resolve modules: %w", err)
		}
	}
	return v.out, nil
}

// where says where modules were looked for, for error messages.
func (r *resolver) where() string {
	if len(r.dirs) == 0 {
		return fmt.Sprintf("the tree (it has neither /lib/modules/%s nor /usr/lib/modules/%s)", r.kver, r.kver)
	}
	return strings.Join(r.dirs, " and ")
}

func newResolver(t *tree.Tree, kver string) (*resolver, error) {
	r := &resolver{t: t, kver: kver, files: map[string]*modFile{}, builtin: map[string]bool{}, info: map[string]*modInfo{}}
	var dirInodes []*tree.Inode
	for _, d := range []string{"/lib/modules/" + kver, "/usr/lib/modules/" + kver} {
		n, p, err := t.Resolve(d, true)
		if err != nil {
			if errors.Is(err, tree.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if n.Kind != tree.Dir || containsInode(dirInodes, n) {
			continue
		}
		dirInodes = append(dirInodes, n)
		r.dirs = append(r.dirs, p)
	}

	// Every module file, the best one for each name: from updates/ first
	// (as depmod's default search order), else from the first directory,
	// else the first in byte order.
	byPath := map[string]*modFile{}
	for _, dir := range r.dirs {
		n, _, _ := t.Resolve(dir, true)
		walkFiles(n, "", func(rel string, f *tree.Inode) {
			name, comp, ok := splitModuleFile(path.Base(rel))
			if !ok || f.Kind != tree.Regular {
				return
			}
			m := &modFile{name: name, rel: rel, path: dir + "/" + rel, comp: comp, inode: f}
			byPath[m.path] = m
			old := r.files[name]
			if old == nil || (strings.HasPrefix(rel, "updates/") && !strings.HasPrefix(old.rel, "updates/")) {
				r.files[name] = m
			}
		})
	}

	if data, dir, err := r.readIndex("modules.dep"); err != nil {
		return nil, err
	} else if data != nil {
		if err := r.parseDep(data, dir, byPath); err != nil {
			return nil, err
		}
	}
	if data, _, err := r.readIndex("modules.softdep"); err != nil {
		return nil, err
	} else if data != nil {
		r.softFile = true
		r.soft = parseSoftdepFile(data)
	}
	if data, _, err := r.readIndex("modules.builtin"); err != nil {
		return nil, err
	} else if data != nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, _, ok := splitModuleFile(path.Base(strings.TrimSpace(line))); ok {
				r.builtin[name] = true
			}
		}
	}
	if data, _, err := r.readIndex("modules.builtin.modinfo"); err != nil {
		return nil, err
	} else if data != nil {
		for _, rec := range strings.Split(string(data), "\x00") {
			name, kv, ok := strings.Cut(rec, ".")
			if !ok {
				continue
			}
			if a, ok := strings.CutPrefix(kv, "alias="); ok {
				r.builtinAlias = append(r.builtinAlias, aliasEntry{a, normName(name)})
			}
			r.builtin[normName(name)] = true
		}
	}
	if data, _, err := r.readIndex("modules.alias"); err != nil {
		return nil, err
	} else if data != nil {
		r.aliasFile = true
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "alias" {
				r.aliases = append(r.aliases, aliasEntry{f[1], normName(f[2])})
			}
		}
	}
	return r, nil
}

func containsInode(s []*tree.Inode, n *tree.Inode) bool {
	for _, x := range s {
		if x == n {
			return true
		}
	}
	return false
}

// walkFiles calls fn for every non-directory below dir, in byte order,
// with its path relative to dir. Symlinks are not followed (a modules
// directory's build and source links point outside it).
func walkFiles(dir *tree.Inode, rel string, fn func(rel string, f *tree.Inode)) {
	for _, c := range dir.Children() {
		p := c.Name
		if rel != "" {
			p = rel + "/" + c.Name
		}
		if c.Inode.Kind == tree.Dir {
			walkFiles(c.Inode, p, fn)
		} else {
			fn(p, c.Inode)
		}
	}
}

// readIndex reads a depmod index file from the first modules directory
// that has it; nil data means none has.
func (r *resolver) readIndex(name string) (data []byte, dir string, err error) {
	for _, dir := range r.dirs {
		n, p, err := r.t.Resolve(dir+"/"+name, true)
		if err != nil {
			if errors.Is(err, tree.ErrNotExist) {
				continue
			}
			return nil, "", err
		}
		if n.Kind != tree.Regular {
			return nil, "", fmt.Errorf("%s is a %v, not a file", p, n.Kind)
		}
		b, err := readContent(n, maxIndexSize)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		return b, dir, nil
	}
	return nil, "", nil
}

// relModulePath turns a path of modules.dep into one relative to the
// modules directory, refusing anything that would leave it.
func (r *resolver) relModulePath(p string) (string, error) {
	for _, prefix := range []string{"/lib/modules/" + r.kver + "/", "/usr/lib/modules/" + r.kver + "/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			p = rest
			break
		}
	}
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("module path %q is not below the modules directory", p)
	}
	return p, nil
}

// parseDep reads modules.dep ("kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko
// ..."): its files are the modules (a file it lacks is taken from the
// directory walk) and its lists the hard dependencies.
func (r *resolver) parseDep(data []byte, dir string, byPath map[string]*modFile) error {
	r.depFile = true
	r.hard = map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, rest, ok := strings.Cut(text, ":")
		if !ok {
			return fmt.Errorf("%s/modules.dep:%d: no ':' in %q", dir, line, text)
		}
		rel, err := r.relModulePath(strings.TrimSpace(key))
		if err != nil {
			return fmt.Errorf("%s/modules.dep:%d: %w", dir, line, err)
		}
		name, comp, ok := splitModuleFile(path.Base(rel))
		if !ok {
			return fmt.Errorf("%s/modules.dep:%d: %q is not a module file", dir, line, rel)
		}
		var deps []string
		for _, d := range strings.Fields(rest) {
			drel, err := r.relModulePath(d)
			if err != nil {
				return fmt.Errorf("%s/modules.dep:%d: %w", dir, line, err)
			}
			dname, _, ok := splitModuleFile(path.Base(drel))
			if !ok {
				return fmt.Errorf("%s/modules.dep:%d: %q is not a module file", dir, line, drel)
			}
			deps = append(deps, dname)
		}
		r.hard[name] = deps
		m := byPath[dir+"/"+rel]
		if m == nil {
			m = &modFile{name: name, rel: rel, path: dir + "/" + rel, comp: comp}
		}
		r.files[name] = m
	}
	return sc.Err()
}

// parseSoftdep parses the value of a softdep ("pre: a b post: c").
func parseSoftdep(s string) (pre, post []string) {
	var cur *[]string
	for _, f := range strings.Fields(s) {
		switch f {
		case "pre:":
			cur = &pre
		case "post:":
			cur = &post
		default:
			if cur != nil {
				*cur = append(*cur, f)
			}
		}
	}
	return pre, post
}

// parseSoftdepFile parses modules.softdep ("softdep NAME pre: a post: b").
func parseSoftdepFile(data []byte) map[string][2][]string {
	out := map[string][2][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "softdep" {
			continue
		}
		pre, post := parseSoftdep(strings.Join(f[2:], " "))
		name := normName(f[1])
		old := out[name]
		out[name] = [2][]string{append(old[0], pre...), append(old[1], post...)}
	}
	return out
}

// parseModinfo reads the .modinfo section of a module's ELF file.
func parseModinfo(data []byte) (*modInfo, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section: not a kernel module")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > maxIndexSize {
		return nil, errors.New("malformed .modinfo section")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo section: %w", err)
	}
	mi := &modInfo{machine: f.Machine}
	for _, rec := range strings.Split(string(b), "\x00") {
		key, val, ok := strings.Cut(rec, "=")
		if !ok {
			continue
		}
		switch key {
		case "depends":
			for _, d := range strings.Split(val, ",") {
				if d = strings.TrimSpace(d); d != "" {
					mi.depends = append(mi.depends, normName(d))
				}
			}
		case "softdep":
			pre, post := parseSoftdep(val)
			mi.softPre = append(mi.softPre, pre...)
			mi.softPost = append(mi.softPost, post...)
		case "alias":
			mi.aliases = append(mi.aliases, val)
		case "vermagic":
			mi.vermagic = val
		}
	}
	return mi, nil
}

// kernelMachine returns the ELF machine of the kernel's modules: that of
// the first module file in name order, 0 when there are none.
func (r *resolver) kernelMachine() (elf.Machine, error) {
	if r.machine != 0 {
		return r.machine, nil
	}
	names := make([]string, 0, len(r.files))
	for n, m := range r.files {
		if m.inode != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return 0, nil
	}
	sort.Strings(names)
	if _, err := r.modinfo(r.files[names[0]]); err != nil {
		return 0, err
	}
	return r.machine, nil
}

// machineName names an ELF machine for messages: "EM_AARCH64 (arm64)".
func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "EM_X86_64 (x86-64)"
	case elf.EM_AARCH64:
		return "EM_AARCH64 (arm64)"
	case elf.EM_386:
		return "EM_386 (x86)"
	case elf.EM_ARM:
		return "EM_ARM (arm)"
	case elf.EM_RISCV:
		return "EM_RISCV (riscv64)"
	}
	return m.String()
}

// modinfo returns the (cached) .modinfo of a module, checking that it was
// built for the kernel and for the target's machine.
func (r *resolver) modinfo(m *modFile) (*modInfo, error) {
	if mi := r.info[m.name]; mi != nil {
		return mi, nil
	}
	if m.inode == nil {
		return nil, fmt.Errorf("module %s: modules.dep lists %s, which the tree lacks", m.name, m.path)
	}
	data, err := readModule(m.inode, m.comp)
	if err != nil {
		return nil, fmt.Errorf("module %s (%s): %w", m.name, m.path, err)
	}
	mi, err := parseModinfo(data)
	if err != nil {
		return nil, fmt.Errorf("module %s (%s): %w", m.name, m.path, err)
	}
	if mi.vermagic != "" && mi.vermagic != r.kver && !strings.HasPrefix(mi.vermagic, r.kver+" ") {
		return nil, fmt.Errorf("module %s (%s): built for kernel %q, not %s", m.name, m.path, mi.vermagic, r.kver)
	}
	switch {
	case r.machine == 0:
		r.machine, r.machineOf = mi.machine, m.path
	case mi.machine != r.machine && r.machineOf == "":
		return nil, fmt.Errorf("module %s (%s) is for ELF machine %s, and the image is for %s", m.name, m.path, machineName(mi.machine), machineName(r.machine))
	case mi.machine != r.machine:
		return nil, fmt.Errorf("module %s (%s) is for ELF machine %s, and %s is for %s: one kernel's modules are for one machine", m.name, m.path, machineName(mi.machine), r.machineOf, machineName(r.machine))
	}
	r.info[m.name] = mi
	return mi, nil
}

func (r *resolver) isBuiltin(name string) bool {
	if r.builtin[normName(name)] {
		return true
	}
	for _, a := range r.builtinAlias {
		if aliasMatch(a.pattern, name) {
			return true
		}
	}
	return false
}

// aliasMatch matches a name against an alias pattern, shell-style, as
// modprobe's fnmatch does, both normalised as kmod does.
func aliasMatch(pattern, name string) bool {
	pattern, name = normAlias(pattern), normAlias(name)
	if ok, err := path.Match(pattern, name); err == nil {
		return ok
	}
	return pattern == name
}

// normAlias writes '-' as '_' outside bracket expressions, as kmod's
// alias_normalize does.
func normAlias(s string) string {
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

// decompressedName is a module's file name once decompressed.
func decompressedName(rel, comp string) string {
	if comp == "" {
		return rel
	}
	return strings.TrimSuffix(rel, "."+comp)
}

// lookup finds the module for a name or an alias: the module of that name
// if there is one, else the provider of the alias (*_generic preferred,
// then the smallest name). ok is false if none provides it.
func (r *resolver) lookup(name string) (*modFile, bool, error) {
	if m := r.files[normName(name)]; m != nil {
		return m, true, nil
	}
	if r.isBuiltin(name) {
		return nil, false, nil
	}
	// Crypto aliases are "crypto-ALG" and "ALG"; ALG_generic is the
	// implementation that works everywhere. Try it before reading every
	// module's aliases.
	if !r.aliasFile {
		guess := strings.TrimPrefix(normName(name), "crypto_") + "_generic"
		if m := r.files[guess]; m != nil {
			mi, err := r.modinfo(m)
			if err != nil {
				return nil, false, err
			}
			for _, a := range mi.aliases {
				if aliasMatch(a, name) {
					return m, true, nil
				}
			}
		}
	}
	if err := r.scanAliases(); err != nil {
		return nil, false, err
	}
	var cands []string
	for _, a := range r.aliases {
		if aliasMatch(a.pattern, name) && r.files[a.name] != nil {
			cands = append(cands, a.name)
		}
	}
	if len(cands) == 0 {
		return nil, false, nil
	}
	sort.Slice(cands, func(i, j int) bool {
		gi, gj := strings.HasSuffix(cands[i], "_generic"), strings.HasSuffix(cands[j], "_generic")
		if gi != gj {
			return gi
		}
		return cands[i] < cands[j]
	})
	return r.files[cands[0]], true, nil
}

// scanAliases collects the alias= fields of every module, once, when the
// tree has no modules.alias.
func (r *resolver) scanAliases() error {
	if r.aliasFile || r.scanned {
		return nil
	}
	r.scanned = true
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mi, err := r.modinfo(r.files[n])
		if err != nil {
			return err
		}
		for _, a := range mi.aliases {
			r.aliases = append(r.aliases, aliasEntry{a, n})
		}
	}
	return nil
}

// visit is the depth-first walk that orders modules.
type visit struct {
	r     *resolver
	state map[string]int // 1: on the current path, 2: done
	out   []Module
}

func (v *visit) module(m *modFile, chain []string) error {
	switch v.state[m.name] {
	case 2:
		return nil
	case 1:
		return fmt.Errorf("dependency cycle: %s -> %s", strings.Join(chain, " -> "), m.name)
	}
	if len(chain) > maxDepth {
		return fmt.Errorf("dependencies nested more than %d deep: %s", maxDepth, strings.Join(chain, " -> "))
	}
	v.state[m.name] = 1
	chain = append(chain, m.name)
	r := v.r
	mi, err := r.modinfo(m)
	if err != nil {
		return err
	}

	hard := mi.depends
	if r.depFile {
		hard = r.hard[m.name]
	}
	hard = sortedUnique(hard)
	var deps []string
	for _, d := range hard {
		dm := r.files[d]
		if dm == nil {
			if r.isBuiltin(d) {
				continue
			}
			return fmt.Errorf("module %s needs %s, which is neither in %s nor built into kernel %s", m.name, d, r.where(), r.kver)
		}
		if err := v.module(dm, chain); err != nil {
			return err
		}
		deps = append(deps, d)
	}

	pre, post := mi.softPre, mi.softPost
	if r.softFile {
		s := r.soft[m.name]
		pre, post = s[0], s[1]
	}
	softs := func(targets []string) ([]string, error) {
		var found []string
		for _, target := range sortedUnique(targets) {
			sm, ok, err := r.lookup(target)
			if err != nil {
				return nil, fmt.Errorf("module %s: soft dependency %s: %w", m.name, target, err)
			}
			// A softdep nothing provides is skipped, as modprobe does;
			// one already on the path is a soft cycle, also skipped.
			if !ok || v.state[sm.name] == 1 {
				continue
			}
			if err := v.module(sm, chain); err != nil {
				return nil, err
			}
			found = append(found, sm.name)
		}
		return found, nil
	}
	preNames, err := softs(pre)
	if err != nil {
		return err
	}
	deps = sortedUnique(append(deps, preNames...))

	v.state[m.name] = 2
	v.out = append(v.out, Module{
		Name:        m.name,
		Path:        m.path,
		Rel:         decompressedName(m.rel, m.comp),
		Compression: m.comp,
		Deps:        deps,
		Inode:       m.inode,
	})
	_, err = softs(post)
	return err
}

func sortedUnique(s []string) []string {
	out := make([]string, 0, len(s))
	for _, x := range s {
		out = append(out, normName(x))
	}
	sort.Strings(out)
	n := 0
	for i, x := range out {
		if i == 0 || x != out[n-1] {
			out[n] = x
			n++
		}
	}
	return out[:n]
}
