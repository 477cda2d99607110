package tree

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// handTree builds a tree from "path -> target" symlinks, "path/" dirs and
// plain paths (regular files), making parent directories as needed.
func handTree(t *testing.T, items ...string) *Tree {
	t.Helper()
	tr := New(0)
	for _, it := range items {
		p, target, isLink := strings.Cut(it, " -> ")
		isDir := strings.HasSuffix(p, "/")
		els := splitPath(p)
		d := tr.Root
		for _, el := range els[:len(els)-1] {
			c := d.Child(el)
			if c == nil {
				c = NewDir(0o755, 0, 0, 0)
				d.SetChild(el, c)
			}
			if c.Kind != Dir {
				t.Fatalf("handTree: %s: %s is not a directory", it, el)
			}
			d = c
		}
		var n *Inode
		switch {
		case isLink:
			n = &Inode{Kind: Symlink, Mode: 0o777, Target: target, Size: int64(len(target))}
		case isDir:
			n = NewDir(0o755, 0, 0, 0)
		default:
			n = &Inode{Kind: Regular, Mode: 0o644}
		}
		d.SetChild(els[len(els)-1], n)
	}
	return tr
}

// TestResolve: the one resolver, as the kernel resolves inside a chroot.
func TestResolve(t *testing.T) {
	// A chain of n symlinks /c0 -> c1 -> ... -> c(n-1) -> /f.
	chain := func(n int) []string {
		items := []string{"/f"}
		for i := 0; i < n; i++ {
			next := fmt.Sprintf("c%d", i+1)
			if i == n-1 {
				next = "/f"
			}
			items = append(items, fmt.Sprintf("/c%d -> %s", i, next))
		}
		return items
	}
	base := []string{
		"/usr/lib/modules/6.1/vmlinuz",
		"/usr/lib/os-release",
		"/lib -> usr/lib",
		"/etc/os-release -> ../usr/lib/os-release",
		"/abs -> /usr/lib/os-release",
		"/up -> ../../../../usr",
		"/boot -> efi/boot",
		"/efi/boot/vmlinuz-6.1",
		"/efi/deep/x -> ../boot",
		"/vmlinuz -> lib/modules/6.1/vmlinuz",
		"/loop -> loop",
		"/ping -> pong",
		"/pong -> ping",
		"/dangling -> nowhere/file",
		"/empty -> ",
		"/dir/",
		"/todir -> dir",
	}
	for _, tc := range []struct {
		name       string
		items      []string // nil: base
		path       string
		followLast bool
		want       string // canonical path
		wantKind   Kind
		wantErr    error
		errText    string
	}{
		{name: "plain", path: "/usr/lib/os-release", followLast: true, want: "/usr/lib/os-release", wantKind: Regular},
		{name: "root", path: "/", followLast: true, want: "/", wantKind: Dir},
		{name: "empty path is the root", path: "", want: "/", wantKind: Dir},
		{name: "relative path from the root", path: "usr/lib", want: "/usr/lib", wantKind: Dir},
		{name: "dot and double slash", path: "/usr/./lib//os-release", want: "/usr/lib/os-release", wantKind: Regular},
		{name: "dir symlink in the middle", path: "/lib/modules/6.1/vmlinuz", want: "/usr/lib/modules/6.1/vmlinuz", wantKind: Regular},
		{name: "relative target with ..", path: "/etc/os-release", followLast: true, want: "/usr/lib/os-release", wantKind: Regular},
		{name: "absolute target is the tree's root", path: "/abs", followLast: true, want: "/usr/lib/os-release", wantKind: Regular},
		{name: ".. at the root stays at the root", path: "/../../usr/lib/os-release", want: "/usr/lib/os-release", wantKind: Regular},
		{name: ".. in a target stops at the root", path: "/up/lib/os-release", want: "/usr/lib/os-release", wantKind: Regular},
		{name: ".. after a symlink climbs the target's parent", path: "/lib/../lib/os-release", want: "/usr/lib/os-release", wantKind: Regular},
		{name: ".. after a symlink is not lexical", path: "/boot/../deep/x/vmlinuz-6.1", followLast: true, want: "/efi/boot/vmlinuz-6.1", wantKind: Regular},
		{name: "last element not followed", path: "/vmlinuz", want: "/vmlinuz", wantKind: Symlink},
		{name: "last element followed through a symlinked dir", path: "/vmlinuz", followLast: true, want: "/usr/lib/modules/6.1/vmlinuz", wantKind: Regular},
		{name: "trailing slash follows", path: "/todir/", want: "/dir", wantKind: Dir},
		{name: "symlink to a dir at the end", path: "/todir", followLast: true, want: "/dir", wantKind: Dir},
		{name: "missing", path: "/usr/nothing/x", wantErr: ErrNotExist, errText: "/usr/nothing: no such file"},
		{name: "dangling", path: "/dangling", followLast: true, wantErr: ErrNotExist, errText: "/nowhere: no such file"},
		{name: "dangling not followed", path: "/dangling", want: "/dangling", wantKind: Symlink},
		{name: "empty target", path: "/empty", followLast: true, wantErr: ErrNotExist, errText: "empty symlink"},
		{name: "file in the middle", path: "/usr/lib/os-release/x", wantErr: ErrNotDir, errText: "/usr/lib/os-release: not a directory"},
		{name: "self loop", path: "/loop", followLast: true, wantErr: ErrLoop},
		{name: "two-link loop in the middle", path: "/ping/x", wantErr: ErrLoop},
		{name: "40 hops", items: chain(40), path: "/c0", followLast: true, want: "/f", wantKind: Regular},
		{name: "41 hops", items: chain(41), path: "/c0", followLast: true, wantErr: ErrLoop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items := tc.items
			if items == nil {
				items = base
			}
			tr := handTree(t, items...)
			n, p, err := tr.Resolve(tc.path, tc.followLast)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %q, %v; want %v", tc.path, n, p, err, tc.wantErr)
				}
				if tc.errText != "" {
					testkit.ErrContains(t, err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.path, err)
			}
			if p != tc.want || n.Kind != tc.wantKind {
				t.Fatalf("Resolve(%q) = %s %q, want %s %q", tc.path, n.Kind, p, tc.wantKind, tc.want)
			}
			if got := tr.Lookup(p); got != n {
				t.Fatalf("Resolve(%q): the canonical path %q holds %v, not the inode returned", tc.path, p, got)
			}
		})
	}
}

// TestGlob: path.Match per element, with symlinked directories followed
// on the way. Before the one resolver, the boot stage's glob did not
// follow /boot -> efi/boot or /lib -> usr/lib (pkg/build TestGlobOneSymlinks).
func TestGlob(t *testing.T) {
	tr := handTree(t,
		"/efi/boot/vmlinuz-6.1",
		"/efi/boot/vmlinuz-6.2",
		"/efi/boot/config-6.1",
		"/boot -> efi/boot",
		"/usr/lib/modules/6.1/vmlinuz",
		"/usr/lib/modules/6.2/",
		"/lib -> /usr/lib",
		"/loop -> loop",
		"/file",
	)
	for _, tc := range []struct {
		pattern string
		want    []string
		errText string
	}{
		{pattern: "/boot/vmlinuz-*", want: []string{"/boot/vmlinuz-6.1", "/boot/vmlinuz-6.2"}},
		{pattern: "/boot/vmlinuz-6.?", want: []string{"/boot/vmlinuz-6.1", "/boot/vmlinuz-6.2"}},
		{pattern: "/boot/config-*", want: []string{"/boot/config-6.1"}},
		{pattern: "/lib/modules/*/vmlinuz", want: []string{"/lib/modules/6.1/vmlinuz"}},
		{pattern: "/lib/modules/*", want: []string{"/lib/modules/6.1", "/lib/modules/6.2"}},
		{pattern: "/boot", want: []string{"/boot"}},
		{pattern: "/loop/x"},
		{pattern: "/file/x"},
		{pattern: "/nothing/*"},
		{pattern: "/boot/[", errText: "bad pattern"},
	} {
		got, err := tr.Glob(tc.pattern)
		if tc.errText != "" {
			testkit.ErrContains(t, err, tc.errText)
			continue
		}
		if err != nil {
			t.Fatalf("Glob(%q): %v", tc.pattern, err)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Glob(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
}
