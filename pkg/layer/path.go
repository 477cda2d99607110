package layer

import (
	"fmt"
	"strings"
)

// Limits of Linux (NAME_MAX, PATH_MAX) that every path of a layer must fit.
const (
	maxNameLen    = 255
	maxPathLen    = 4096
	maxSymlinkLen = 4095 // PATH_MAX less the terminating NUL
)

// cleanPath returns name as a clean path relative to the layer root, or ""
// for the root itself. A leading "/" or "./" is dropped: absolute names are
// taken relative to the layer root, as GNU tar does. "." and empty elements
// vanish and ".." removes the element before it; a ".." with nothing left
// to remove would climb above the root and is an error, as are a NUL byte,
// an element longer than 255 bytes and a result longer than 4096 bytes.
func cleanPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in name", ErrUnsafePath)
	}
	if isClean(name) {
		return name, nil
	}
	elems := make([]string, 0, strings.Count(name, "/")+1)
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "", ".":
			continue
		case "..":
			if len(elems) == 0 {
				return "", fmt.Errorf("%w: climbs above the layer root", ErrUnsafePath)
			}
			elems = elems[:len(elems)-1]
			continue
		}
		if len(el) > maxNameLen {
			return "", fmt.Errorf("%w: name element of %d bytes (the limit is %d)", ErrUnsafePath, len(el), maxNameLen)
		}
		elems = append(elems, el)
	}
	p := strings.Join(elems, "/")
	if len(p) > maxPathLen {
		return "", fmt.Errorf("%w: path of %d bytes (the limit is %d)", ErrUnsafePath, len(p), maxPathLen)
	}
	return p, nil
}

// isClean reports whether name is already clean, relative, within limits
// and not the root, so cleanPath can return it without allocating.
func isClean(name string) bool {
	if name == "" || len(name) > maxPathLen {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		el := name[start:i]
		if el == "" || el == "." || el == ".." || len(el) > maxNameLen {
			return false
		}
		start = i + 1
	}
	return true
}

// checkSymlinkTarget checks what a symlink can store; the target itself is
// kept verbatim and never resolved.
func checkSymlinkTarget(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("symlink with an empty target")
	case strings.IndexByte(t, 0) >= 0:
		return fmt.Errorf("%w: NUL byte in symlink target", ErrUnsafePath)
	case len(t) > maxSymlinkLen:
		return fmt.Errorf("%w: symlink target of %d bytes (the limit is %d)", ErrUnsafePath, len(t), maxSymlinkLen)
	}
	return nil
}
