package initramfs

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/pkg/tree"
)

// TestRealKernel resolves and packs the default modules of Debian's
// kernel package, which has no modules.dep: dependencies come from
// .modinfo only.
func TestRealKernel(t *testing.T) {
	tr := kernelTree(t)
	kver, err := KernelVersion(tr, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(kver, "6.1.0-") || !strings.HasSuffix(kver, "-amd64") {
		t.Fatalf("kernel version %q", kver)
	}
	if v, err := KernelVersion(tr, "/boot/vmlinuz-"+kver); err != nil || v != kver {
		t.Fatalf("KernelVersion(/boot/vmlinuz-%s) = %q, %v", kver, v, err)
	}
	mods, err := ResolveModules(tr, kver, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("order: %s", moduleNames(mods))
	checkOrder(t, mods)
	for _, m := range mods {
		if !strings.HasPrefix(m.Path, "/lib/modules/"+kver+"/kernel/") || m.Rel != strings.TrimSuffix(strings.TrimPrefix(m.Path, "/lib/modules/"+kver+"/"), "."+m.Compression) {
			t.Errorf("module %s: path %s, rel %s, compression %q", m.Name, m.Path, m.Rel, m.Compression)
		}
	}
	// What must hold for any build of Debian's kernel, judged by the
	// test's own reading of the package's modules (debug/elf on every
	// module's .modinfo), not by facts of one upstream build: apt-get
	// download always fetches the newest kernel.
	checkAgainstModinfo(t, tr, kver, mods)
	var a, b bytes.Buffer
	o := Options{Epoch: testEpoch, Init: testInit}
	if err := Build(&a, tr, kver, o); err != nil {
		t.Fatal(err)
	}
	if err := Build(&b, tr, kver, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds of the real initramfs differ")
	}
	t.Logf("initramfs: %d bytes (xz)", a.Len())
	var list string
	for _, e := range readNewc(t, decompress(t, "xz", a.Bytes())) {
		if e.Name == "etc/kiln/modules" {
			list = string(e.Data)
		}
	}
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != len(mods) {
		t.Fatalf("modules list has %d lines for %d modules:\n%s", len(lines), len(mods), list)
	}
	for i, m := range mods {
		if want := "/lib/modules/" + kver + "/" + m.Rel; lines[i] != want {
			t.Errorf("line %d: %s, want %s", i+1, lines[i], want)
		}
	}
}

// ownModinfo is what the test itself reads from a module's .modinfo.
type ownModinfo struct {
	depends, softPre, softPost, aliases []string
}

// checkAgainstModinfo checks a resolved module list against the package
// itself:
//   - every module comes after each of its depends= modules and after a
//     provider (by name or alias=) of each of its softdep pre: targets that
//     the package has;
//   - every depends= the package lacks as a file is in modules.builtin;
//   - every non-optional default module is there (or built in), and every
//     optional one the package has;
//   - nothing more: each module is a default or what another one needs
//     (depends=, softdep pre: or post:);
//   - each softdep target has at most one provider (crc32c_generic, not
//     crc32c_intel beside it).
func checkAgainstModinfo(t *testing.T, tr *tree.Tree, kver string, mods []Module) {
	t.Helper()
	dir := "/lib/modules/" + kver
	root := tr.Lookup(dir)
	if root == nil || root.Kind != tree.Dir {
		t.Fatalf("%s is not a directory of the kernel package", dir)
	}
	files := map[string]*tree.Inode{} // canonical module name -> file
	comps := map[string]string{}
	var walk func(n *tree.Inode)
	walk = func(n *tree.Inode) {
		for _, c := range n.Children() {
			if c.Inode.Kind == tree.Dir {
				walk(c.Inode)
				continue
			}
			for _, suf := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
				if base, ok := strings.CutSuffix(c.Name, suf); ok && c.Inode.Kind == tree.Regular {
					files[strings.ReplaceAll(base, "-", "_")] = c.Inode
					comps[strings.ReplaceAll(base, "-", "_")] = suf
				}
			}
		}
	}
	walk(root)
	if len(files) < 100 {
		t.Fatalf("only %d module files below %s", len(files), dir)
	}
	builtin := map[string]bool{}
	if n := tr.Lookup(dir + "/modules.builtin"); n != nil {
		for _, line := range strings.Fields(string(ownRead(t, n, ""))) {
			base := path.Base(line)
			builtin[strings.ReplaceAll(strings.TrimSuffix(base, ".ko"), "-", "_")] = true
		}
	}
	info := map[string]*ownModinfo{}
	modinfo := func(name string) *ownModinfo {
		if mi := info[name]; mi != nil {
			return mi
		}
		mi := readOwnModinfo(t, name, ownRead(t, files[name], comps[name]))
		info[name] = mi
		return mi
	}
	// provides says whether module name answers a softdep target: its
	// own name or one of its alias= patterns (fnmatch, '-' as '_').
	provides := func(name, target string) bool {
		target = strings.ReplaceAll(target, "-", "_")
		if name == target {
			return true
		}
		for _, a := range modinfo(name).aliases {
			if ok, _ := path.Match(strings.ReplaceAll(a, "-", "_"), target); ok {
				return true
			}
		}
		return false
	}
	anyProvider := func(target string) bool {
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if provides(n, target) {
				return true
			}
		}
		return false
	}

	pos := map[string]int{}
	for i, m := range mods {
		pos[m.Name] = i
	}
	needed := map[string]bool{}
	for i, m := range mods {
		if files[m.Name] == nil {
			t.Errorf("module %s is not a module file of the package", m.Name)
			continue
		}
		mi := modinfo(m.Name)
		for _, d := range mi.depends {
			needed[d] = true
			if files[d] == nil {
				if !builtin[d] {
					t.Errorf("module %s depends on %s, which is neither a module file nor in modules.builtin", m.Name, d)
				}
				continue
			}
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("module %s (at %d) depends on %s (at %d, present %v)", m.Name, i, d, j, ok)
			}
		}
		for _, pre := range [][]string{mi.softPre, mi.softPost} {
			for _, target := range pre {
				var provs []string
				for _, o := range mods {
					if files[o.Name] != nil && provides(o.Name, target) {
						provs = append(provs, o.Name)
						needed[o.Name] = true
					}
				}
				if len(provs) > 1 {
					t.Errorf("softdep %s of %s has %d providers: %v", target, m.Name, len(provs), provs)
				}
			}
		}
		for _, target := range mi.softPre {
			if !anyProvider(target) {
				continue // modprobe skips a softdep nothing provides
			}
			ok := false
			for j := 0; j < i; j++ {
				if files[mods[j].Name] != nil && provides(mods[j].Name, target) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("module %s (at %d) has softdep pre: %s, but no provider of it comes before it", m.Name, i, target)
			}
		}
	}
	for _, want := range DefaultModules {
		name, optional := strings.CutSuffix(want, "?")
		needed[name] = true
		_, in := pos[name]
		switch {
		case in:
		case files[name] != nil:
			t.Errorf("default module %s is in the package but not resolved", name)
		case !optional && !builtin[name]:
			t.Errorf("default module %s is neither resolved nor built in", name)
		}
	}
	for _, m := range mods {
		if !needed[m.Name] {
			t.Errorf("module %s is neither a default nor needed by another resolved module", m.Name)
		}
	}
}

// ownRead reads a module file of the tree and decompresses it by its
// suffix, with the test's own decoders.
func ownRead(t *testing.T, n *tree.Inode, suffix string) []byte {
	t.Helper()
	rc, err := n.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var r io.Reader = rc
	switch suffix {
	case ".ko.xz":
		xr, err := xz.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		r = xr
	case ".ko.zst":
		zr, err := zstd.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	case ".ko.gz":
		gr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		r = gr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readOwnModinfo parses a module's .modinfo section with debug/elf.
func readOwnModinfo(t *testing.T, name string, data []byte) *ownModinfo {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("module %s: %v", name, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		t.Fatalf("module %s has no .modinfo", name)
	}
	b, err := sec.Data()
	if err != nil {
		t.Fatalf("module %s: %v", name, err)
	}
	mi := &ownModinfo{}
	for _, field := range bytes.Split(b, []byte{0}) {
		key, val, _ := strings.Cut(string(field), "=")
		switch key {
		case "depends":
			for _, d := range strings.Split(val, ",") {
				if d != "" {
					mi.depends = append(mi.depends, strings.ReplaceAll(d, "-", "_"))
				}
			}
		case "alias":
			mi.aliases = append(mi.aliases, val)
		case "softdep":
			// "pre: a b post: c"
			var into *[]string
			for _, w := range strings.Fields(val) {
				switch w {
				case "pre:":
					into = &mi.softPre
				case "post:":
					into = &mi.softPost
				default:
					if into != nil {
						*into = append(*into, w)
					}
				}
			}
		}
	}
	return mi
}
