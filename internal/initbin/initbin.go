// Package initbin carries kiln-init inside the kiln binary, one build per
// architecture kiln makes images for, so that one self-contained kiln
// builds bootable images for every target: `make build` cross-compiles
// cmd/kiln-init into bin/kiln-init-GOARCH before it builds kiln, and the
// embed directive takes whatever is there. A kiln built without them (a plain
// `go install` from a module download, which holds no build outputs)
// carries none, and Get says so with the command that fixes it.
package initbin

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed bin
var files embed.FS

// Arches are the GOARCH values `make build` embeds kiln-init for.
// riscv64 would need nothing but its syscall number file in cmd/kiln-init
// (sysnum_linux_riscv64.go) and a line here; it is left out until an
// image for it is booted in a test.
var Arches = []string{"amd64", "arm64"}

// BuildCommand is how `make build` builds kiln-init for goarch: static,
// trimmed paths, no VCS stamp, so that its bytes (which become image
// bytes) are the same wherever it is built.
func BuildCommand(goarch, out string) string {
	return fmt.Sprintf("CGO_ENABLED=0 GOARCH=%s go build -trimpath -buildvcs=false -ldflags '-s -w' -o %s ./cmd/kiln-init", goarch, out)
}

// Name is the embedded file's name for goarch.
func Name(goarch string) string { return "kiln-init-" + goarch }

// Get returns the embedded kiln-init for goarch, or an error that says how
// to get one.
func Get(goarch string) ([]byte, error) {
	b, err := fs.ReadFile(files, "bin/"+Name(goarch))
	if err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("this kiln binary carries no kiln-init for %s (it was built without `make build`, e.g. by go install): in kiln's source tree run `make build` and use bin/kiln, or build one with `%s` and pass it with --init (or $KILN_INIT)", goarch, BuildCommand(goarch, "kiln-init-"+goarch))
}

// Embedded lists the architectures this binary carries kiln-init for.
func Embedded() []string {
	var out []string
	for _, a := range Arches {
		if _, err := fs.Stat(files, "bin/"+Name(a)); err == nil {
			out = append(out, a)
		}
	}
	return out
}
