package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of the kernel command line parameters kiln-init reads.
const (
	defaultFSType  = "ext4"
	defaultInit    = "/sbin/init"
	defaultTimeout = 30 * time.Second
)

// rootKind says how root= names the root device.
type rootKind int

const (
	rootPartUUID rootKind = iota + 1 // root=PARTUUID=...
	rootDevPath                      // root=/dev/...
)

// rootSpec is a parsed root= parameter.
type rootSpec struct {
	Kind rootKind
	// PartUUID is lower case: a GPT partition GUID, or "ssssssss-pp" for
	// an MBR partition (disk signature and partition number, in hex, as
	// Linux names them).
	PartUUID string
	Path     string // rootDevPath
}

func (r rootSpec) String() string {
	if r.Kind == rootPartUUID {
		return "PARTUUID=" + r.PartUUID
	}
	return r.Path
}

// config is what kiln-init takes from /proc/cmdline.
type config struct {
	Root      rootSpec
	RootRaw   string // root= as given ("" if absent)
	FSType    string // rootfstype=, default ext4
	Flags     string // rootflags=, passed to mount(2) as data
	ReadOnly  bool   // ro (the default, as the kernel's) or rw
	Init      string // init=, default /sbin/init
	InitGiven bool   // init= was on the command line
	Timeout   time.Duration
	Warnings  []string // parameters kiln-init could not use

	// Verity is set by roothash=: the root is then the dm-verity device
	// kiln-init creates, /dev/mapper/root, and Root says so.
	Verity *veritySpec
}

// veritySpec is what roothash= and its companions ask for.
type veritySpec struct {
	RootHash string   // lower-case hex: 40, 64 or 128 digits (sha1, sha256, sha512)
	Data     rootSpec // the data partition: PARTUUID from the root hash, or systemd.verity_root_data=
	Hash     rootSpec // the hash partition: PARTUUID from the root hash, or systemd.verity_root_hash=
}

// Names of the verity device kiln-init creates and of its node.
const (
	verityName = "root"
	verityNode = "/dev/mapper/" + verityName
)

var (
	gptPartUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	mbrPartUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{2}$`)
	rootHashHex = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})$`)
)

// hashPartUUID formats 32 hex digits as a UUID, 8-4-4-4-12, in order: the
// Discoverable Partitions Specification's PARTUUIDs of a verity pair, as
// systemd compares them.
func hashPartUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// parseVerity checks roothash= and derives the two partitions from it:
// the data partition's PARTUUID is the first 128 bits of the root hash,
// the hash partition's the last 128; systemd.verity_root_data= and
// systemd.verity_root_hash= name them instead when given. root= must be
// absent or the device kiln-init creates.
func parseVerity(c *config, hashRaw, dataRaw, hashDevRaw string) (*veritySpec, error) {
	h := strings.ToLower(hashRaw)
	if !rootHashHex.MatchString(h) {
		return nil, fmt.Errorf("roothash=%s: want the root hash in hex: 64 digits (sha256), or 40 (sha1) or 128 (sha512)", hashRaw)
	}
	if c.RootRaw != "" && c.RootRaw != verityNode {
		return nil, fmt.Errorf("root=%s with roothash=: kiln-init creates the verified root itself as %s; root= must be absent or root=%s (refusing to guess which device to verify)", c.RootRaw, verityNode, verityNode)
	}
	v := &veritySpec{
		RootHash: h,
		Data:     rootSpec{Kind: rootPartUUID, PartUUID: hashPartUUID(h[:32])},
		Hash:     rootSpec{Kind: rootPartUUID, PartUUID: hashPartUUID(h[len(h)-32:])},
	}
	for _, o := range []struct {
		name, raw string
		dst       *rootSpec
	}{
		{"systemd.verity_root_data", dataRaw, &v.Data},
		{"systemd.verity_root_hash", hashDevRaw, &v.Hash},
	} {
		if o.raw == "" {
			continue
		}
		r, err := parseRoot(o.raw)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: want PARTUUID=<guid>, PARTUUID=<sig>-<nn> or /dev/<name>", o.name, o.raw)
		}
		*o.dst = r
	}
	if v.Data == v.Hash {
		return nil, fmt.Errorf("roothash=: the data and the hash partition are both %s", v.Data)
	}
	return v, nil
}

// parseRoot parses the value of root=.
func parseRoot(v string) (rootSpec, error) {
	switch {
	case v == "":
		return rootSpec{}, fmt.Errorf("no root= on the kernel command line: want root=PARTUUID=<guid> or root=/dev/<name>")
	case strings.HasPrefix(strings.ToUpper(v), "PARTUUID="):
		u := strings.ToLower(v[len("PARTUUID="):])
		if !gptPartUUID.MatchString(u) && !mbrPartUUID.MatchString(u) {
			return rootSpec{}, fmt.Errorf("root=%s: want PARTUUID=<GPT partition GUID> or PARTUUID=<8 hex digits>-<2 hex digits> (MBR signature and partition number)", v)
		}
		return rootSpec{Kind: rootPartUUID, PartUUID: u}, nil
	case strings.HasPrefix(v, "/dev/") && len(v) > len("/dev/") && !strings.Contains(v, ".."):
		return rootSpec{Kind: rootDevPath, Path: v}, nil
	}
	return rootSpec{}, fmt.Errorf("root=%s: kiln-init understands root=PARTUUID=<guid>, root=PARTUUID=<sig>-<nn> and root=/dev/<name>", v)
}

// splitCmdline splits a kernel command line into parameters as the
// kernel's next_arg does: separated by white space, double quotes group
// (and are dropped around a whole parameter or value), and "--" ends the
// kernel's part.
func splitCmdline(s string) []string {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t\n\r\v\f")
		if s == "" {
			return out
		}
		inQuote := false
		i := 0
		for ; i < len(s); i++ {
			if !inQuote && strings.IndexByte(" \t\n\r\v\f", s[i]) >= 0 {
				break
			}
			if s[i] == '"' {
				inQuote = !inQuote
			}
		}
		arg := s[:i]
		s = s[i:]
		if arg == "--" {
			return out
		}
		out = append(out, unquote(arg))
	}
}

// unquote drops the quotes around a parameter ("a=b c") or its value
// (a="b c").
func unquote(arg string) string {
	if strings.HasPrefix(arg, `"`) {
		return strings.TrimSuffix(arg[1:], `"`)
	}
	if k, v, ok := strings.Cut(arg, "="); ok && strings.HasPrefix(v, `"`) {
		return k + "=" + strings.TrimSuffix(v[1:], `"`)
	}
	return arg
}

// parseCmdline reads the parameters kiln-init uses; the last of a repeated
// parameter wins, as in the kernel. Only a bad or missing root= is an
// error; other bad values are warnings and keep their defaults.
func parseCmdline(s string) (*config, error) {
	c := &config{FSType: defaultFSType, ReadOnly: true, Init: defaultInit, Timeout: defaultTimeout}
	var rootHash, verityData, verityHash string
	var hasRootHash bool
	for _, arg := range splitCmdline(s) {
		k, v, hasValue := strings.Cut(arg, "=")
		switch {
		case k == "ro" && !hasValue:
			c.ReadOnly = true
		case k == "rw" && !hasValue:
			c.ReadOnly = false
		case !hasValue:
			continue
		case k == "root":
			c.RootRaw = v
		case k == "roothash":
			rootHash, hasRootHash = v, true
		case k == "systemd.verity_root_data":
			verityData = v
		case k == "systemd.verity_root_hash":
			verityHash = v
		case k == "rootfstype":
			if v == "" {
				c.Warnings = append(c.Warnings, "rootfstype= is empty: using "+defaultFSType)
				continue
			}
			c.FSType = v
		case k == "rootflags":
			c.Flags = v
		case k == "init":
			if !strings.HasPrefix(v, "/") {
				c.Warnings = append(c.Warnings, fmt.Sprintf("init=%s is not an absolute path: using %s", v, defaultInit))
				continue
			}
			c.Init, c.InitGiven = v, true
		case k == "kiln.timeout":
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				c.Warnings = append(c.Warnings, fmt.Sprintf("kiln.timeout=%s is not a number of seconds: using %v", v, defaultTimeout))
				continue
			}
			c.Timeout = time.Duration(n) * time.Second
		}
	}
	if hasRootHash {
		v, err := parseVerity(c, rootHash, verityData, verityHash)
		if err != nil {
			return c, fmt.Errorf("verity: %w", err)
		}
		c.Verity = v
		c.Root = rootSpec{Kind: rootDevPath, Path: verityNode}
		if !c.ReadOnly {
			c.Warnings = append(c.Warnings, "rw with roothash=: a dm-verity root is read-only; mounting it read-only")
			c.ReadOnly = true
		}
		return c, nil
	}
	if verityData != "" || verityHash != "" {
		c.Warnings = append(c.Warnings, "systemd.verity_root_data= or systemd.verity_root_hash= without roothash=: ignored")
	}
	root, err := parseRoot(c.RootRaw)
	if err != nil {
		return c, err
	}
	c.Root = root
	return c, nil
}
