package deps

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kiln-build/kiln/"

// allowed lists, for every package of the module, the packages of the
// module its non-test code may import. "*" allows any.
var allowed = map[string][]string{
	// Foundations: nothing of kiln below them.
	"pkg/repro":        {},
	"pkg/tree":         {},
	"pkg/qemu":         {},
	"internal/size":    {},
	"internal/xz":      {"internal/size"},
	"internal/der":     {}, // the DER writer of pkg/sign and pkg/efivar
	"internal/initbin": {}, // kiln-init per architecture, embedded in cmd/kiln

	// The pipeline, in its order.
	"pkg/spec":          {"pkg/disk", "pkg/repro"}, // partition types and tables are the disk's vocabulary
	"pkg/layer":         {"pkg/tree", "internal/xz", "internal/size"},
	"pkg/fs":            {"pkg/tree"},
	"pkg/fs/ext4":       {"pkg/fs", "pkg/tree", "pkg/repro"},
	"pkg/fs/fat":        {"pkg/fs", "pkg/tree", "pkg/repro"},
	"pkg/fs/erofs":      {"pkg/fs", "pkg/tree", "pkg/repro"},
	"pkg/fs/all":        {"pkg/fs", "pkg/fs/ext4", "pkg/fs/fat", "pkg/fs/erofs"}, // the one list of filesystems
	"pkg/verity":        {},                                                      // dm-verity hash trees: bytes in, bytes out
	"pkg/sign":          {"internal/der"},                                        // Authenticode: PE bytes in, signed PE bytes out
	"pkg/efivar":        {"internal/der"},                                        // Secure Boot variables: signature lists and signed updates
	"pkg/disk":          {"pkg/repro"},
	"pkg/initramfs":     {"pkg/tree", "internal/xz"},
	"pkg/boot/uefi":     {"pkg/tree"},
	"pkg/boot/syslinux": {"pkg/tree", "pkg/disk", "pkg/fs", "pkg/fs/fat"},
	"pkg/imgfmt":        {"pkg/repro"},

	// The orchestrator and the tools over finished images.
	"pkg/build": {"pkg/spec", "pkg/layer", "pkg/tree", "pkg/fs", "pkg/fs/all", "pkg/disk",
		"pkg/initramfs", "pkg/boot/uefi", "pkg/boot/syslinux", "pkg/imgfmt", "pkg/repro", "pkg/verity", "pkg/sign", "internal/size"},
	"pkg/diff":   {"pkg/imgfmt", "pkg/disk", "pkg/fs", "pkg/fs/all", "pkg/tree"},
	"pkg/verify": {"pkg/spec"},

	// Commands.
	"cmd/kiln":      {"*"},
	"cmd/kiln-init": {"pkg/disk", "pkg/verity"},

	// Test support (imported by tests only) and scripts.
	"internal/deps":          {},
	"internal/testkit":       {"internal/size", "pkg/qemu"},
	"internal/testkit/trees": {"internal/testkit", "pkg/layer", "pkg/tree"},
	"internal/judge":         {"internal/testkit"},
	"scripts/bench":          {},
	"scripts/gentree":        {"pkg/spec"}, // sizes as the spec writes them
	"scripts/mkgolden":       {},
	"scripts/testsum":        {},
}

// TestImportDirections reads every non-test Go file of the module and
// fails on an import of a kiln package that the table does not allow, and
// on a package the table does not know.
func TestImportDirections(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	imports := map[string]map[string]bool{} // package -> kiln packages it imports
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".cache", "testdata", "out", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		pkg := filepath.ToSlash(rel)
		if imports[pkg] == nil {
			imports[pkg] = map[string]bool{}
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if dep, ok := strings.CutPrefix(path, module); ok {
				imports[pkg][dep] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 15 {
		t.Fatalf("found only %d packages below %s", len(imports), root)
	}
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		ok, known := allowed[p]
		if !known {
			t.Errorf("package %s is not in the table of internal/deps: add its row", p)
			continue
		}
		set := map[string]bool{}
		for _, a := range ok {
			set[a] = true
		}
		var bad []string
		for dep := range imports[p] {
			if !set["*"] && !set[dep] {
				bad = append(bad, dep)
			}
		}
		sort.Strings(bad)
		for _, dep := range bad {
			t.Errorf("%s imports %s, which the table of internal/deps does not allow", p, dep)
		}
	}

	// What the issue of the filesystem interface asks to see, checked on
	// the whole closure: no filesystem writer or bootloader depends on how
	// layers are read, and nothing below the orchestrator on it.
	var closure func(p string, seen map[string]bool)
	closure = func(p string, seen map[string]bool) {
		for dep := range imports[p] {
			if !seen[dep] {
				seen[dep] = true
				closure(dep, seen)
			}
		}
	}
	for _, p := range pkgs {
		if !strings.HasPrefix(p, "pkg/fs") && !strings.HasPrefix(p, "pkg/boot") && p != "pkg/tree" && p != "pkg/disk" && p != "pkg/imgfmt" {
			continue
		}
		seen := map[string]bool{}
		closure(p, seen)
		for _, never := range []string{"pkg/layer", "pkg/build", "pkg/spec"} {
			if seen[never] {
				t.Errorf("%s depends on %s", p, never)
			}
		}
	}
}
