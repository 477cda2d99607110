package initramfs

import (
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

func TestKernelVersion(t *testing.T) {
	dir := func(tr *tree.Tree, p string) { addFile(tr, p+"/.keep", 0o644, nil) }
	tests := []struct {
		name    string
		build   func(*tree.Tree)
		kernel  string
		want    string
		wantErr string
	}{
		{
			name:   "boot vmlinuz",
			build:  func(tr *tree.Tree) { addFile(tr, "/boot/vmlinuz-6.1.0-56-amd64", 0o644, []byte("MZ")) },
			kernel: "/boot/vmlinuz-6.1.0-56-amd64",
			want:   "6.1.0-56-amd64",
		},
		{
			name: "debian /vmlinuz symlink",
			build: func(tr *tree.Tree) {
				addFile(tr, "/boot/vmlinuz-6.1.0-56-amd64", 0o644, []byte("MZ"))
				addSymlink(tr, "/vmlinuz", "boot/vmlinuz-6.1.0-56-amd64")
			},
			kernel: "/vmlinuz",
			want:   "6.1.0-56-amd64",
		},
		{
			name: "usr/lib/modules layout through /lib symlink",
			build: func(tr *tree.Tree) {
				addSymlink(tr, "/lib", "usr/lib")
				addFile(tr, "/usr/lib/modules/6.9.1-arch1/vmlinuz", 0o644, []byte("MZ"))
			},
			kernel: "/lib/modules/6.9.1-arch1/vmlinuz",
			want:   "6.9.1-arch1",
		},
		{
			name:    "kernel missing",
			build:   func(tr *tree.Tree) {},
			kernel:  "/boot/vmlinuz-1",
			wantErr: "kernel /boot/vmlinuz-1: /boot: no such file",
		},
		{
			name:    "kernel with a name that says nothing",
			build:   func(tr *tree.Tree) { addFile(tr, "/boot/kernel", 0o644, []byte("MZ")) },
			kernel:  "/boot/kernel",
			wantErr: "cannot tell the version of kernel /boot/kernel",
		},
		{
			name:  "the only modules directory",
			build: func(tr *tree.Tree) { addSymlink(tr, "/lib", "usr/lib"); dir(tr, "/usr/lib/modules/6.1.0-56-amd64") },
			want:  "6.1.0-56-amd64",
		},
		{
			name:  "the only /boot/vmlinuz-*",
			build: func(tr *tree.Tree) { addFile(tr, "/boot/vmlinuz-6.1.0-9-amd64", 0o644, []byte("MZ")) },
			want:  "6.1.0-9-amd64",
		},
		{
			name: "ambiguous",
			build: func(tr *tree.Tree) {
				dir(tr, "/lib/modules/6.1.0-9-amd64")
				dir(tr, "/usr/lib/modules/6.1.0-56-amd64")
			},
			wantErr: "several kernels (6.1.0-56-amd64, 6.1.0-9-amd64)",
		},
		{
			name:    "none",
			build:   func(tr *tree.Tree) { dir(tr, "/etc") },
			wantErr: "no kernel in the tree",
		},
		{
			name: "symlink loop",
			build: func(tr *tree.Tree) {
				addSymlink(tr, "/a", "b")
				addSymlink(tr, "/b", "/a")
			},
			kernel:  "/a",
			wantErr: "too many levels of symbolic links",
		},
		{
			name: "dot-dot stays inside the tree",
			build: func(tr *tree.Tree) {
				addFile(tr, "/boot/vmlinuz-6.1.0-1-amd64", 0o644, []byte("MZ"))
				addSymlink(tr, "/vmlinuz", "../../../boot/vmlinuz-6.1.0-1-amd64")
			},
			kernel: "/vmlinuz",
			want:   "6.1.0-1-amd64",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := tree.New(testEpoch)
			tc.build(tr)
			got, err := KernelVersion(tr, tc.kernel)
			if testkit.WantErr(t, err, tc.wantErr) {
				return
			}
			if got != tc.want {
				t.Errorf("version %q, want %q", got, tc.want)
			}
		})
	}
}
