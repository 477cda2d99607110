package layer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Platform is the platform of an image, as OCI indexes and image
// configurations state it: "linux", "arm64", "v8". The zero value means
// linux/amd64, the platform of kiln's default architecture (x86-64).
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// ErrPlatform: the image is not for the platform wanted, or the index has
// no image for it, or kiln cannot tell which platform an image is for.
var ErrPlatform = errors.New("wrong platform")

// String is the platform as os/arch[/variant].
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform parses os/arch[/variant] ("linux/arm64", "linux/arm/v7").
// Spellings are normalised as containerd does (see Platform.normal).
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant (linux/arm64, linux/arm/v7)", s)
	}
	for _, p := range parts {
		if p == "" || strings.TrimFunc(p, func(r rune) bool {
			return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		}) != "" {
			return Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant of letters, digits, '.', '-' and '_'", s)
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p.normal(), nil
}

// PlatformForArch is the image platform of a disk architecture, as
// pkg/disk names them (disk.NormalizeArch): x86-64 is linux/amd64 ("" too,
// the default), x86 linux/386, arm64 linux/arm64/v8, arm linux/arm/v7,
// riscv64 linux/riscv64.
func PlatformForArch(arch string) (Platform, error) {
	switch arch {
	case "", "x86-64":
		return Platform{OS: "linux", Architecture: "amd64"}, nil
	case "x86":
		return Platform{OS: "linux", Architecture: "386"}, nil
	case "arm64":
		return Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, nil
	case "arm":
		return Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, nil
	case "riscv64":
		return Platform{OS: "linux", Architecture: "riscv64"}, nil
	}
	return Platform{}, fmt.Errorf("no image platform for architecture %q", arch)
}

// normal is p as containerd's platforms.Normalize spells it: lower case;
// the other names of architectures (x86_64, aarch64, i386, armhf) as Go
// names them; arm64 without a variant is arm64/v8, arm without one arm/v7
// (as containerd's matcher takes them); amd64/v1 is amd64. The zero
// Platform is linux/amd64.
func (p Platform) normal() Platform {
	if p == (Platform{}) {
		return Platform{OS: "linux", Architecture: "amd64"}
	}
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "i386", "i686", "x86":
		p.Architecture = "386"
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "8" || p.Variant == "" {
			p.Variant = "v8"
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	return p
}

// maxListed bounds how many platforms an error lists: an index may list
// thousands.
const maxListed = 16

// listPlatforms is the distinct platforms of ds as an error lists them,
// sorted: "linux/amd64, linux/arm64/v8", plus how many manifests have no
// platform. Strings from the index are quoted if they are not plain.
func listPlatforms(ds []descriptor) string {
	var names []string
	none := 0
	for _, d := range ds {
		if d.Platform == nil {
			none++
			continue
		}
		if n := quoteName(d.Platform.String()); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	more := 0
	if len(names) > maxListed {
		more = len(names) - maxListed
		names = names[:maxListed]
	}
	s := strings.Join(names, ", ")
	if more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	if none > 0 {
		if s != "" {
			s += ", and "
		}
		s += fmt.Sprintf("%d without a platform", none)
	}
	return s
}

// checkConfigPlatform checks that an image's configuration is for want:
// where says which image, listed says the platform the index lists it
// for (nil if none). A configuration that states no platform is taken on
// the index's word if the index lists one; if neither says, kiln cannot
// tell what the image holds, and refuses it.
func checkConfigPlatform(c imageConfig, where string, listed *Platform, want Platform) error {
	w := want.normal()
	if c.Architecture == "" && c.OS == "" {
		if listed == nil {
			return fmt.Errorf("%w: %s states no architecture or os (the OCI image spec requires both), and no index lists its platform: kiln cannot tell whether it is for %s", ErrPlatform, where, w)
		}
		return nil
	}
	got := Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}.normal()
	if got != w {
		return fmt.Errorf("%w: %s is for %s, not %s", ErrPlatform, where, quoteName(got.String()), w)
	}
	return nil
}
