package build

import (
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// put adds n at the absolute path p of tr, making directories.
func put(tr *tree.Tree, p string, n *tree.Inode) {
	dir := tr.Root
	els := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, el := range els[:len(els)-1] {
		c := dir.Child(el)
		if c == nil {
			c = tree.NewDir(0o755, 0, 0, 0)
			dir.SetChild(el, c)
		}
		dir = c
	}
	dir.SetChild(els[len(els)-1], n)
}

func regular(s string) *tree.Inode {
	return &tree.Inode{Kind: tree.Regular, Mode: 0o644, Size: int64(len(s))}
}

func symlink(target string) *tree.Inode {
	return &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Target: target, Size: int64(len(target))}
}

// TestGlobOneSymlinks: the boot stage's paths (boot.kernel, boot.initrd,
// boot.paths.*) are found through symlinks anywhere on the way, as the
// kernel would inside the tree. Before, a symlink in an intermediate
// directory (/boot -> efi/boot, or /vmlinuz -> lib/... with /lib -> usr/lib)
// gave "matches nothing" or "is not a regular file".
func TestGlobOneSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(tr *tree.Tree)
		pattern  string
		wantPath string
		wantErr  string
	}{
		{"plain", func(tr *tree.Tree) { put(tr, "/boot/vmlinuz-6.1", regular("k")) }, "/boot/vmlinuz-*", "/boot/vmlinuz-6.1", ""},
		{"symlinked /boot", func(tr *tree.Tree) {
			put(tr, "/efi/boot/vmlinuz-6.1", regular("k"))
			put(tr, "/boot", symlink("efi/boot"))
		}, "/boot/vmlinuz-*", "/efi/boot/vmlinuz-6.1", ""},
		{"absolute symlinked /boot", func(tr *tree.Tree) {
			put(tr, "/efi/boot/vmlinuz-6.1", regular("k"))
			put(tr, "/boot", symlink("/efi/boot"))
		}, "/boot/vmlinuz-*", "/efi/boot/vmlinuz-6.1", ""},
		{"/vmlinuz through usr-merged /lib", func(tr *tree.Tree) {
			put(tr, "/usr/lib/modules/6.9.1/vmlinuz", regular("k"))
			put(tr, "/lib", symlink("usr/lib"))
			put(tr, "/vmlinuz", symlink("lib/modules/6.9.1/vmlinuz"))
		}, "/vmlinuz", "/usr/lib/modules/6.9.1/vmlinuz", ""},
		{"glob under usr-merged /lib", func(tr *tree.Tree) {
			put(tr, "/usr/lib/modules/6.9.1/vmlinuz", regular("k"))
			put(tr, "/lib", symlink("usr/lib"))
		}, "/lib/modules/*/vmlinuz", "/usr/lib/modules/6.9.1/vmlinuz", ""},
		{"dangling", func(tr *tree.Tree) { put(tr, "/vmlinuz", symlink("boot/none")) }, "/vmlinuz", "", "no such file"},
		{"a directory", func(tr *tree.Tree) { put(tr, "/boot/x/.keep", regular("")) }, "/boot/x", "", "not a regular file"},
		{"two", func(tr *tree.Tree) {
			put(tr, "/boot/vmlinuz-1", regular("k"))
			put(tr, "/boot/vmlinuz-2", regular("k"))
		}, "/boot/vmlinuz-*", "", "matches 2 files (/boot/vmlinuz-1, /boot/vmlinuz-2)"},
		{"none", func(tr *tree.Tree) {}, "/boot/vmlinuz-*", "", "matches nothing"},
		{"bad pattern", func(tr *tree.Tree) {}, "/boot/[", "", "bad pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tree.New(0)
			tc.build(tr)
			p, n, err := globOne(tr, tc.pattern)
			if tc.wantErr != "" {
				testkit.ErrContains(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != tc.wantPath || n == nil || n.Kind != tree.Regular {
				t.Fatalf("globOne(%s) = %s, %v; want %s, a regular file", tc.pattern, p, n, tc.wantPath)
			}
		})
	}
}
