package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// mountsList is where pkg/initramfs lists the filesystems to mount in the
// new root besides the root itself.
const mountsList = "/etc/kiln/mounts"

// mountEntry is one line of the mounts file: SOURCE TARGET FSTYPE OPTIONS.
type mountEntry struct {
	Line    int
	Source  rootSpec // PARTUUID=... or /dev/...
	Target  string   // absolute and clean, inside the new root, not "/"
	FSType  string
	Flags   mountFlags
	Data    string // the options that are not flags, comma-separated, for mount(2)
	Options string // as written, for the log
}

// mountFlags are the mount(2) flags the mounts file may set by name.
type mountFlags struct {
	ReadOnly, NoSuid, NoDev, NoExec bool
}

var fsTypeName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// parseMounts reads the mounts file: one mount a line, four fields
// separated by white space (SOURCE TARGET FSTYPE OPTIONS), in mount order
// (parents first); blank lines and lines starting with # are skipped.
// SOURCE is PARTUUID=<GPT GUID>, PARTUUID=<sig>-<nn> or /dev/<name>;
// TARGET an absolute path inside the new root; OPTIONS a comma-separated
// list where rw, ro, nosuid, nodev and noexec are mount flags (the last of
// rw and ro wins; rw is the default) and anything else goes to the
// filesystem as data. Errors name the file and line. Lines out of order
// (a target below it mounted earlier would be hidden) or a target twice
// are refused.
func parseMounts(name string, data []byte) ([]mountEntry, error) {
	var out []mountEntry
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 4: SOURCE TARGET FSTYPE OPTIONS", name, n, len(f))
		}
		e := mountEntry{Line: n, Target: f[1], FSType: f[2], Options: f[3]}
		src, err := parseRoot(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: source %q: want PARTUUID=<guid>, PARTUUID=<sig>-<nn> or /dev/<name>", name, n, f[0])
		}
		e.Source = src
		if !strings.HasPrefix(e.Target, "/") || path.Clean(e.Target) != e.Target || e.Target == "/" {
			return nil, fmt.Errorf("%s:%d: target %q: want a clean absolute path below / (the root is mounted from the command line)", name, n, e.Target)
		}
		if !fsTypeName.MatchString(e.FSType) {
			return nil, fmt.Errorf("%s:%d: filesystem type %q: want a name as /proc/filesystems lists them", name, n, e.FSType)
		}
		var data []string
		for _, o := range strings.Split(f[3], ",") {
			switch o {
			case "rw":
				e.Flags.ReadOnly = false
			case "ro":
				e.Flags.ReadOnly = true
			case "nosuid":
				e.Flags.NoSuid = true
			case "nodev":
				e.Flags.NoDev = true
			case "noexec":
				e.Flags.NoExec = true
			case "":
				return nil, fmt.Errorf("%s:%d: options %q: an empty option", name, n, f[3])
			default:
				data = append(data, o)
			}
		}
		e.Data = strings.Join(data, ",")
		for _, prev := range out {
			switch {
			case prev.Target == e.Target:
				return nil, fmt.Errorf("%s:%d: %s is already mounted by line %d", name, n, e.Target, prev.Line)
			case strings.HasPrefix(prev.Target, e.Target+"/"):
				return nil, fmt.Errorf("%s:%d: %s is mounted after %s (line %d), which it would hide: parents come first", name, n, e.Target, prev.Target, prev.Line)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// maxSymlinks bounds the links resolveIn follows, as the kernel's 40.
const maxSymlinks = 40

// resolveIn resolves target (absolute) inside root as if root were /:
// symbolic links are followed, absolute ones from root, and ".." never
// leaves it. It returns the deepest existing directory (resolved, under
// root) and the path still missing below it ("" when target exists).
func resolveIn(root, target string) (existing, missing string, err error) {
	rest := strings.Split(strings.TrimPrefix(path.Clean("/"+target), "/"), "/")
	cur := "/" // resolved so far, relative to root
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(root, next)
		fi, err := os.Lstat(host)
		if os.IsNotExist(err) {
			for _, r := range rest {
				if r == ".." {
					return "", "", fmt.Errorf("%s: %s is missing and the path goes on with \"..\" (through a symbolic link)", target, next)
				}
			}
			return filepath.Join(root, cur), path.Join(append([]string{c}, rest...)...), nil
		}
		if err != nil {
			return "", "", err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			links++
			if links > maxSymlinks {
				return "", "", fmt.Errorf("%s: more than %d symbolic links", target, maxSymlinks)
			}
			link, err := os.Readlink(host)
			if err != nil {
				return "", "", err
			}
			if strings.HasPrefix(link, "/") {
				cur = "/"
			}
			rest = append(strings.Split(link, "/"), rest...)
		case fi.IsDir():
			cur = next
		default:
			return "", "", fmt.Errorf("%s: %s is not a directory", target, next)
		}
	}
	return filepath.Join(root, cur), "", nil
}
