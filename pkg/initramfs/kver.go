package initramfs

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// checkKernelVersion rejects a version that is not a plain directory name.
func checkKernelVersion(kver string) error {
	if kver == "" || kver == "." || kver == ".." || strings.ContainsAny(kver, "/\x00") {
		return fmt.Errorf("kernel version %q is not a directory name", kver)
	}
	return nil
}

// KernelVersion finds the version of the kernel at kernelPath in the tree,
// the name of its modules directory: from the file name (/boot/vmlinuz-VER,
// vmlinux-VER), following symlinks such as Debian's /vmlinuz inside the
// tree, or from the directory name of /usr/lib/modules/VER/vmlinuz (the
// layout of Fedora and Arch). With kernelPath empty it is the only
// directory under /lib/modules and /usr/lib/modules, or else the only
// /boot/vmlinuz-*. Several candidates, or none, are an error listing what
// was found.
func KernelVersion(t *tree.Tree, kernelPath string) (string, error) {
	if kernelPath != "" {
		n, p, err := t.Resolve(kernelPath, true)
		if err != nil {
			return "", fmt.Errorf("kernel version: kernel %s: %w", kernelPath, err)
		}
		if n.Kind != tree.Regular {
			return "", fmt.Errorf("kernel version: kernel %s (%s) is a %v, not a file", kernelPath, p, n.Kind)
		}
		base := path.Base(p)
		for _, prefix := range []string{"vmlinuz-", "vmlinux-", "bzImage-", "Image-"} {
			if v, ok := strings.CutPrefix(base, prefix); ok {
				if err := checkKernelVersion(v); err != nil {
					return "", fmt.Errorf("kernel version: kernel %s: %w", p, err)
				}
				return v, nil
			}
		}
		dir := path.Dir(p)
		if parent := path.Dir(dir); parent == "/lib/modules" || parent == "/usr/lib/modules" {
			return path.Base(dir), nil
		}
		return "", fmt.Errorf("kernel version: cannot tell the version of kernel %s from its name: want /boot/vmlinuz-VERSION or /usr/lib/modules/VERSION/vmlinuz", p)
	}
	seen := map[string]bool{}
	var found []string
	for _, dir := range []string{"/lib/modules", "/usr/lib/modules"} {
		n, _, err := t.Resolve(dir, true)
		if err != nil || n.Kind != tree.Dir {
			continue
		}
		for _, c := range n.Children() {
			// The same directory reached through /lib -> usr/lib lists the
			// same names; a version is a version wherever it is.
			if c.Inode.Kind == tree.Dir && !seen[c.Name] {
				seen[c.Name] = true
				found = append(found, c.Name)
			}
		}
	}
	if len(found) == 0 {
		if n, _, err := t.Resolve("/boot", true); err == nil && n.Kind == tree.Dir {
			for _, c := range n.Children() {
				if v, ok := strings.CutPrefix(c.Name, "vmlinuz-"); ok && v != "" {
					found = append(found, v)
				}
			}
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", errors.New("kernel version: no kernel in the tree: no directory under /lib/modules or /usr/lib/modules and no /boot/vmlinuz-*")
	case 1:
		if err := checkKernelVersion(found[0]); err != nil {
			return "", fmt.Errorf("kernel version: %w", err)
		}
		return found[0], nil
	}
	return "", fmt.Errorf("kernel version: the tree has several kernels (%s): name the kernel to use", strings.Join(found, ", "))
}
