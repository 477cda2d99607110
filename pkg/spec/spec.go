package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/repro"
)

// Spec is a build spec.
type Spec struct {
	Epoch  *int64  `yaml:"epoch" json:"-"` // time is not identity: the epoch does not seed IDs
	Seed   string  `yaml:"seed" json:"seed,omitempty"`
	Layers []Layer `yaml:"layers" json:"layers"`
	Disk   Disk    `yaml:"disk" json:"disk"`
	Boot   *Boot   `yaml:"boot" json:"boot,omitempty"`
	Output Output  `yaml:"output" json:"-"`

	// File is the path the spec was loaded from; Dir its folder, against
	// which relative paths in the spec are resolved.
	File string `yaml:"-" json:"-"`
	Dir  string `yaml:"-" json:"-"`
	// KeyLines are the lines of the top-level keys, for errors.
	KeyLines map[string]int `yaml:"-" json:"-"`
}

// Layer is one entry of layers:.
type Layer struct {
	Path   string  `yaml:"path" json:"path"`
	SHA256 string  `yaml:"sha256" json:"sha256,omitempty"`
	UID    *uint32 `yaml:"uid" json:"uid,omitempty"` // directory layers: owner of every entry
	GID    *uint32 `yaml:"gid" json:"gid,omitempty"`
	// Modes is a directory layer's mode policy: "git" (the default:
	// files 0644, or 0755 if the owner may execute them; directories
	// 0755) or "preserve" (the host's modes).
	Modes string `yaml:"modes" json:"modes,omitempty"`
	// Chmod sets modes of a directory layer's entries, after Modes:
	// absolute path in the layer → octal mode ("0640", "1777").
	Chmod    map[string]string `yaml:"chmod" json:"chmod,omitempty"`
	Line     int               `yaml:"-" json:"-"`
	KeyLines map[string]int    `yaml:"-" json:"-"` // lines of the layer's keys
	// ChmodLines are the lines of chmod's entries, by their path as given.
	ChmodLines map[string]int `yaml:"-" json:"-"`

	// Parsed values: Chmod by Entry path (relative, "." for the root);
	// PreserveModes is modes: preserve.
	ChmodModes    map[string]uint32 `yaml:"-" json:"-"`
	PreserveModes bool              `yaml:"-" json:"-"`
}

// Disk is the disk: partition table, size and partitions.
type Disk struct {
	Table      string         `yaml:"table" json:"table"`
	Size       string         `yaml:"size" json:"size"`
	Free       string         `yaml:"free" json:"free,omitempty"`
	GUID       string         `yaml:"guid" json:"guid,omitempty"`
	Signature  string         `yaml:"signature" json:"signature,omitempty"` // MBR disk signature, 8 hex digits
	Arch       string         `yaml:"arch" json:"arch,omitempty"`
	Partitions []Partition    `yaml:"partitions" json:"partitions"`
	Line       int            `yaml:"-" json:"-"`
	KeyLines   map[string]int `yaml:"-" json:"-"` // lines of disk's keys

	// Parsed values.
	SizeBytes  int64      `yaml:"-" json:"-"` // 0 for auto
	FreeBytes  int64      `yaml:"-" json:"-"`
	TableValue disk.Table `yaml:"-" json:"-"`
	// GUIDValue and SignatureValue are guid: and signature:, nil when
	// the spec does not give them (the build derives them).
	GUIDValue      *repro.UUID `yaml:"-" json:"-"`
	SignatureValue *uint32     `yaml:"-" json:"-"`
}

// Partition is one entry of disk.partitions.
type Partition struct {
	Name        string `yaml:"name" json:"name"`
	Type        string `yaml:"type" json:"type"`
	Size        string `yaml:"size" json:"size"`
	Filesystem  string `yaml:"filesystem" json:"filesystem"`
	Mount       string `yaml:"mount" json:"mount,omitempty"`
	Label       string `yaml:"label" json:"label,omitempty"`
	GUID        string `yaml:"guid" json:"guid,omitempty"`           // partition unique GUID
	UUID        string `yaml:"uuid" json:"uuid,omitempty"`           // ext4 or erofs filesystem UUID
	HashSeed    string `yaml:"hash_seed" json:"hash_seed,omitempty"` // ext4 htree hash seed (a UUID)
	JournalUUID string `yaml:"journal_uuid" json:"journal_uuid,omitempty"`
	VolumeID    string `yaml:"volume_id" json:"volume_id,omitempty"` // FAT volume ID, 8 hex digits
	Bootable    bool   `yaml:"bootable" json:"bootable,omitempty"`
	// Compression is the filesystem's own compression: erofs takes none
	// (the default) or lz4.
	Compression string `yaml:"compression" json:"compression,omitempty"`
	// Verity seals the partition under dm-verity: the build adds a hash
	// partition after it (see HashFor) and the root hash goes on the
	// kernel command line. Only the read-only root (erofs, mounted at /).
	Verity bool `yaml:"verity" json:"verity,omitempty"`
	// HashFor, set by validation on the hash partition it adds for a
	// partition with verity: true, is the name of that data partition.
	// The build sizes and fills it; a spec cannot set it.
	HashFor string `yaml:"-" json:"hash_for,omitempty"`
	Line    int    `yaml:"-" json:"-"`
	// KeyLines are the lines of the partition's keys, for errors that
	// point at one field.
	KeyLines map[string]int `yaml:"-" json:"-"`

	// Parsed values.
	SizeBytes int64 `yaml:"-" json:"-"`
	Rest      bool  `yaml:"-" json:"-"`
	Auto      bool  `yaml:"-" json:"-"`
	// TypeValue is type: as pkg/disk resolves it for disk.arch.
	TypeValue disk.Type `yaml:"-" json:"-"`
	// The IDs the spec gives, nil where it gives none (the build derives
	// them from the seed).
	GUIDValue        *repro.UUID `yaml:"-" json:"-"`
	UUIDValue        *repro.UUID `yaml:"-" json:"-"`
	HashSeedValue    *repro.UUID `yaml:"-" json:"-"`
	JournalUUIDValue *repro.UUID `yaml:"-" json:"-"`
	VolumeIDValue    *uint32     `yaml:"-" json:"-"`
}

// Boot says how the image boots.
type Boot struct {
	Loader  string   `yaml:"loader" json:"loader"`             // systemd-boot | uki | shim | syslinux | hybrid | none
	UEFI    string   `yaml:"uefi" json:"uefi,omitempty"`       // hybrid: systemd-boot (default) | uki
	Kernel  string   `yaml:"kernel" json:"kernel"`             // path or glob in the merged tree
	Initrd  string   `yaml:"initrd" json:"initrd"`             // kiln | a path in the merged tree | none
	Cmdline string   `yaml:"cmdline" json:"cmdline"`           // root=PARTUUID=... is added unless given
	Modules []string `yaml:"modules" json:"modules,omitempty"` // initrd: kiln: modules beyond the defaults
	Title   string   `yaml:"title" json:"title,omitempty"`     // menu title (default: PRETTY_NAME of os-release)
	// UKI, with systemd-boot, puts the kernel, initrd and command line in
	// a UKI under /EFI/Linux (a type #2 entry) instead of a type #1
	// entry: under Secure Boot the command line is then signed too.
	UKI   bool      `yaml:"uki" json:"uki,omitempty"`
	Paths BootPaths `yaml:"paths" json:"paths,omitempty"`
	// SecureBoot, when set, signs every PE the boot stage puts on the ESP.
	SecureBoot *SecureBoot `yaml:"secureboot" json:"secureboot,omitempty"`
	Line       int         `yaml:"-" json:"-"`
	// KeyLines are the lines of boot's keys (and of paths' keys, as
	// "paths.mbr" and so on).
	KeyLines map[string]int `yaml:"-" json:"-"`
}

// BootPaths override where the loader binaries are in the merged tree.
type BootPaths struct {
	SystemdBoot string `yaml:"systemd_boot" json:"systemd_boot,omitempty"`
	Stub        string `yaml:"stub" json:"stub,omitempty"`
	Syslinux    string `yaml:"syslinux" json:"syslinux,omitempty"` // the installer, which carries ldlinux.sys
	LdlinuxC32  string `yaml:"ldlinux_c32" json:"ldlinux_c32,omitempty"`
	MBR         string `yaml:"mbr" json:"mbr,omitempty"`
	GPTMBR      string `yaml:"gptmbr" json:"gptmbr,omitempty"`
	Shim        string `yaml:"shim" json:"shim,omitempty"`               // shimx64.efi.signed (shim-signed)
	MokManager  string `yaml:"mok_manager" json:"mok_manager,omitempty"` // mmx64.efi.signed (shim-helpers-amd64-signed)
	Grub        string `yaml:"grub" json:"grub,omitempty"`               // grubx64.efi.signed (grub-efi-amd64-signed)
}

// SecureBoot is boot.secureboot: the key and certificate that sign the
// ESP's PEs (Authenticode), and who holds the key.
//
// Only the certificate's path enters the spec's canonical form (Digest),
// and not even that the ID seed (IDSeed): the key's path and the signer's
// mode change no byte of the image (an external signer's signatures are
// the inline key's), so they change no digest and no ID.
type SecureBoot struct {
	Key    string `yaml:"key" json:"-"`     // PEM private key, relative to the spec's folder; none with signer external
	Cert   string `yaml:"cert" json:"cert"` // PEM X.509 certificate, relative to the spec's folder
	Signer string `yaml:"signer" json:"-"`  // inline (default) | external
	// Enroll is a folder with PK.auth, KEK.auth and db.auth (kiln keys
	// generate writes them) that systemd-boot enrols when the firmware
	// is in setup mode; relative to the spec's folder.
	Enroll string `yaml:"enroll" json:"enroll,omitempty"`
}

// Signers are the values boot.secureboot.signer takes.
var Signers = []string{"inline", "external"}

// Loaders are the values boot.loader takes.
var Loaders = []string{"systemd-boot", "uki", "shim", "syslinux", "hybrid", "none"}

// Output is where and how the image is written.
type Output struct {
	Path        string `yaml:"path"`
	Format      string `yaml:"format"`       // raw | qcow2 | vmdk | vhd
	Compression string `yaml:"compression"`  // qcow2: none | zlib | zstd
	ClusterSize string `yaml:"cluster_size"` // qcow2: a power of two from 512B to 2MiB (default 64KiB)
	Subformat   string `yaml:"subformat"`    // vhd: dynamic | fixed
	Azure       bool   `yaml:"azure"`        // vhd: fixed, with a virtual size of whole MiB (Azure's rule)

	ClusterBytes int64 `yaml:"-"`

	// keys are output's keys as the spec file has them: their lines and
	// values, so that an error names the line of a value the spec gave
	// (and no line for a value from the command line).
	keys map[string]keyAt
}

// keyAt is a key's line and its scalar value.
type keyAt struct {
	line  int
	value string
}

// line is the line of key if its value is still val, else 0.
func (o *Output) line(key, val string) int {
	if k, ok := o.keys[key]; ok && k.value == val {
		return k.line
	}
	return 0
}

// Error is a spec error: the file, the line (0 if unknown) and what is wrong.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Options are what the command line says over the spec file. They are
// applied before validation, so that everything derived from them (the
// partition types of disk.arch, the canonical form and the IDs) is
// derived once, from the values the build uses.
type Options struct {
	// Arch, if set, replaces disk.arch (kiln build --arch): any spelling
	// disk.NormalizeArch takes.
	Arch string
}

// Load reads and validates the spec at file.
func Load(file string) (*Spec, error) {
	return LoadWith(file, Options{})
}

// LoadWith reads the spec at file, applies o and validates the result.
func LoadWith(file string, o Options) (*Spec, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return ParseWith(file, b, o)
}

// Parse parses and validates spec text; file names it in errors and is the
// base for relative paths.
func Parse(file string, b []byte) (*Spec, error) {
	return ParseWith(file, b, Options{})
}

// ParseWith parses spec text, applies o and validates the result.
func ParseWith(file string, b []byte, o Options) (*Spec, error) {
	if o.Arch != "" {
		if _, err := disk.NormalizeArch(o.Arch); err != nil {
			return nil, &Error{File: file, Msg: "--arch: " + err.Error()}
		}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "the spec is empty"}
	}
	if err := checkKeys(file, root.Content[0], reflect.TypeOf(Spec{}), ""); err != nil {
		return nil, err
	}
	var s Spec
	if err := root.Content[0].Decode(&s); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		line := 0
		fmt.Sscanf(msg, "line %d:", &line)
		if i := strings.Index(msg, ": "); line > 0 && i >= 0 {
			msg = msg[i+2:]
		}
		return nil, &Error{File: file, Line: line, Msg: msg}
	}
	recordLines(&s, root.Content[0])
	s.File = file
	s.Dir = filepath.Dir(file)
	if o.Arch != "" {
		s.Disk.Arch = o.Arch
		if s.Disk.KeyLines != nil {
			// An error about the architecture is not about the file's line.
			delete(s.Disk.KeyLines, "arch")
		}
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// checkKeys rejects mapping keys that no field of t declares, recursively,
// so that a typo is an error with its line and not silently ignored.
func checkKeys(file string, n *yaml.Node, t reflect.Type, where string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("%s: want a mapping", strings.TrimPrefix(where, "."))}
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = t.Field(i).Type
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return &Error{File: file, Line: k.Line, Msg: fmt.Sprintf("unknown key %q in %s (known: %s)", k.Value, orTop(where), strings.Join(names, ", "))}
			}
			if err := checkKeys(file, v, ft, where+"."+k.Value); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return &Error{File: file, Line: n.Line, Msg: fmt.Sprintf("%s: want a list", strings.TrimPrefix(where, "."))}
		}
		for i, c := range n.Content {
			if err := checkKeys(file, c, t.Elem(), fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func orTop(where string) string {
	if where == "" {
		return "the spec"
	}
	return strings.TrimPrefix(where, ".")
}

// recordLines stores the line of each layer, the disk and each partition.
func recordLines(s *Spec, top *yaml.Node) {
	val := func(m *yaml.Node, key string) *yaml.Node {
		for i := 0; m != nil && m.Kind == yaml.MappingNode && i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	keyLines := func(m *yaml.Node) map[string]int {
		lines := map[string]int{}
		for i := 0; m.Kind == yaml.MappingNode && i+1 < len(m.Content); i += 2 {
			lines[m.Content[i].Value] = m.Content[i].Line
		}
		return lines
	}
	s.KeyLines = keyLines(top)
	if ls := val(top, "layers"); ls != nil {
		for i, c := range ls.Content {
			if i < len(s.Layers) {
				s.Layers[i].Line = c.Line
				s.Layers[i].KeyLines = keyLines(c)
				if cm := val(c, "chmod"); cm != nil {
					s.Layers[i].ChmodLines = keyLines(cm)
				}
			}
		}
	}
	if b := val(top, "boot"); b != nil && s.Boot != nil {
		s.Boot.Line = b.Line
		s.Boot.KeyLines = keyLines(b)
		if ps := val(b, "paths"); ps != nil {
			for k, l := range keyLines(ps) {
				s.Boot.KeyLines["paths."+k] = l
			}
		}
		if sb := val(b, "secureboot"); sb != nil {
			for k, l := range keyLines(sb) {
				s.Boot.KeyLines["secureboot."+k] = l
			}
		}
	}
	if o := val(top, "output"); o != nil {
		s.Output.keys = map[string]keyAt{}
		for i := 0; o.Kind == yaml.MappingNode && i+1 < len(o.Content); i += 2 {
			s.Output.keys[o.Content[i].Value] = keyAt{o.Content[i].Line, o.Content[i+1].Value}
		}
	}
	if d := val(top, "disk"); d != nil {
		s.Disk.Line = d.Line
		s.Disk.KeyLines = keyLines(d)
		if ps := val(d, "partitions"); ps != nil {
			for i, c := range ps.Content {
				if i < len(s.Disk.Partitions) {
					s.Disk.Partitions[i].Line = c.Line
					s.Disk.Partitions[i].KeyLines = keyLines(c)
				}
			}
		}
	}
}

// Filesystems, partition tables and formats the spec accepts.
var (
	Tables      = []string{"gpt", "mbr"}
	Filesystems = []string{"ext4", "vfat", "erofs", "none"}
	Formats     = []string{"raw", "qcow2", "vmdk", "vhd"}
)

func (s *Spec) errf(line int, format string, a ...any) error {
	return &Error{File: s.File, Line: line, Msg: fmt.Sprintf(format, a...)}
}

func (s *Spec) validate() error {
	if s.Epoch != nil && *s.Epoch < 0 {
		return s.errf(keyLine(s.KeyLines, "epoch", 0), "epoch: must not be negative")
	}
	if len(s.Layers) == 0 {
		return s.errf(keyLine(s.KeyLines, "layers", 0), "layers: at least one layer is needed")
	}
	for i, l := range s.Layers {
		if l.Path == "" {
			return s.errf(l.Line, "layers[%d]: path is missing", i)
		}
		if l.SHA256 != "" {
			if _, err := hex.DecodeString(l.SHA256); err != nil || len(l.SHA256) != 64 {
				return s.errf(keyLine(l.KeyLines, "sha256", l.Line), "layers[%d].sha256: want 64 hex digits", i)
			}
		}
		switch l.Modes {
		case "", "git":
		case "preserve":
			s.Layers[i].PreserveModes = true
		default:
			return s.errf(keyLine(l.KeyLines, "modes", l.Line), "layers[%d].modes: %q is not one of git, preserve", i, l.Modes)
		}
		if len(l.Chmod) > 0 {
			s.Layers[i].ChmodModes = map[string]uint32{}
		}
		// In the order of the paths, so that of two bad entries the
		// error is always about the same one.
		chmods := make([]string, 0, len(l.Chmod))
		for p := range l.Chmod {
			chmods = append(chmods, p)
		}
		sort.Strings(chmods)
		for _, p := range chmods {
			m := l.Chmod[p]
			line := keyLine(l.ChmodLines, p, keyLine(l.KeyLines, "chmod", l.Line))
			rel, ok := chmodPath(p)
			if !ok {
				return s.errf(line, "layers[%d].chmod: %q is not a clean absolute path", i, p)
			}
			mode, ok := parseMode(m)
			if !ok {
				return s.errf(line, "layers[%d].chmod: %s: %q is not an octal mode from 0000 to 7777 (quote it: \"0640\")", i, p, m)
			}
			s.Layers[i].ChmodModes[rel] = mode
		}
	}
	d := &s.Disk
	dline := func(key string) int { return keyLine(d.KeyLines, key, d.Line) }
	if d.Table == "" {
		d.Table = "gpt"
	}
	if !contains(Tables, d.Table) {
		return s.errf(dline("table"), "disk.table: %q is not one of %s", d.Table, strings.Join(Tables, ", "))
	}
	d.TableValue = disk.GPT
	if d.Table == "mbr" {
		d.TableValue = disk.MBR
	}
	arch, err := disk.NormalizeArch(d.Arch)
	if err != nil {
		return s.errf(dline("arch"), "disk.arch: %v", err)
	}
	// One spelling from here on (amd64 and x86_64 are x86-64), for the
	// stages that follow the architecture and for the canonical form.
	d.Arch = arch
	if d.Size == "" || d.Size == "auto" {
		d.SizeBytes = 0
	} else {
		n, err := ParseSize(d.Size)
		if err != nil {
			return s.errf(dline("size"), "disk.size: %v", err)
		}
		if n == 0 {
			// 0 would be taken for auto.
			return s.errf(dline("size"), "disk.size: must not be zero (a size, or auto)")
		}
		d.SizeBytes = n
	}
	if d.Free != "" {
		n, err := ParseSize(d.Free)
		if err != nil {
			return s.errf(dline("free"), "disk.free: %v", err)
		}
		d.FreeBytes = n
	}
	if d.GUID != "" {
		u, err := parseID(d.GUID)
		if err != nil {
			return s.errf(dline("guid"), "disk.guid: %v", err)
		}
		if d.Table != "gpt" {
			return s.errf(dline("guid"), "disk.guid: only a GPT disk has a GUID (disk.table is %s)", d.Table)
		}
		d.GUIDValue = &u
	}
	if d.Signature != "" {
		v, ok := parseHex32(d.Signature)
		if !ok {
			return s.errf(dline("signature"), "disk.signature: %q: want 8 hex digits", d.Signature)
		}
		d.SignatureValue = &v
	}
	if len(d.Partitions) == 0 {
		return s.errf(dline("partitions"), "disk.partitions: at least one partition is needed")
	}
	names := map[string]bool{}
	mounts := map[string]string{}
	rest := ""
	for i := range d.Partitions {
		p := &d.Partitions[i]
		where := fmt.Sprintf("disk.partitions[%d]", i)
		pline := func(key string) int { return keyLine(p.KeyLines, key, p.Line) }
		if p.Name == "" {
			return s.errf(p.Line, "%s.name: missing", where)
		}
		if names[p.Name] {
			return s.errf(pline("name"), "%s.name: %q is used twice", where, p.Name)
		}
		names[p.Name] = true
		if p.Type == "" {
			return s.errf(p.Line, "%s.type: missing", where)
		}
		if p.Filesystem == "" {
			p.Filesystem = "none"
		}
		if !contains(Filesystems, p.Filesystem) {
			return s.errf(pline("filesystem"), "%s.filesystem: %q is not one of %s", where, p.Filesystem, strings.Join(Filesystems, ", "))
		}
		switch p.Size {
		case "rest":
			if rest != "" {
				return s.errf(pline("size"), "%s.size: only one partition may take the rest (%s already does)", where, rest)
			}
			rest = p.Name
			p.Rest = true
		case "auto":
			if p.Filesystem == "none" {
				return s.errf(pline("size"), "%s.size: auto needs a filesystem to measure", where)
			}
			p.Auto = true
		case "":
			return s.errf(p.Line, "%s.size: missing (a size such as 64MiB, rest, or auto)", where)
		default:
			n, err := ParseSize(p.Size)
			if err != nil {
				return s.errf(pline("size"), "%s.size: %v", where, err)
			}
			if n == 0 {
				return s.errf(pline("size"), "%s.size: must not be zero", where)
			}
			p.SizeBytes = n
		}
		if p.Mount != "" {
			if p.Filesystem == "none" {
				return s.errf(pline("mount"), "%s.mount: a partition without a filesystem cannot be mounted", where)
			}
			if !strings.HasPrefix(p.Mount, "/") || path.Clean(p.Mount) != p.Mount {
				return s.errf(pline("mount"), "%s.mount: %q must be a clean absolute path", where, p.Mount)
			}
			if other, ok := mounts[p.Mount]; ok {
				return s.errf(pline("mount"), "%s.mount: %s is already the mount of %s", where, p.Mount, other)
			}
			mounts[p.Mount] = p.Name
		}
		if looksLikeGUID(p.Type) {
			// A type given as a GUID: checked here, with its line, not
			// taken for an unknown name later.
			if err := checkUUID(p.Type); err != nil {
				return s.errf(pline("type"), "%s.type: %v", where, err)
			}
		}
		typ, err := disk.LookupType(p.Type, d.Arch)
		if err != nil {
			return s.errf(pline("type"), "%s.type: %v", where, err)
		}
		p.TypeValue = typ
		for _, f := range []struct {
			key, val, only string
			to             **repro.UUID
		}{
			{"guid", p.GUID, "", &p.GUIDValue}, {"uuid", p.UUID, "ext4 erofs", &p.UUIDValue},
			{"hash_seed", p.HashSeed, "ext4", &p.HashSeedValue}, {"journal_uuid", p.JournalUUID, "ext4", &p.JournalUUIDValue},
		} {
			if f.val == "" {
				continue
			}
			line := pline(f.key)
			u, err := parseID(f.val)
			if err != nil {
				return s.errf(line, "%s.%s: %v", where, f.key, err)
			}
			*f.to = &u
			if only := strings.Fields(f.only); len(only) > 0 && !contains(only, p.Filesystem) {
				return s.errf(line, "%s.%s: only an %s filesystem has one (this partition's is %s)", where, f.key, strings.Join(only, " or "), p.Filesystem)
			}
			if f.key == "guid" && d.Table != "gpt" {
				return s.errf(line, "%s.guid: only a GPT partition has a GUID (disk.table is %s)", where, d.Table)
			}
		}
		if p.VolumeID != "" {
			line := pline("volume_id")
			v, ok := parseHex32(p.VolumeID)
			if !ok {
				return s.errf(line, "%s.volume_id: %q: want 8 hex digits", where, p.VolumeID)
			}
			if p.Filesystem != "vfat" {
				return s.errf(line, "%s.volume_id: only a vfat filesystem has one (this partition's is %s)", where, p.Filesystem)
			}
			p.VolumeIDValue = &v
		}
		if p.Filesystem == "vfat" && len(p.Label) > 11 {
			return s.errf(pline("label"), "%s.label: a FAT label has at most 11 characters", where)
		}
		if p.Filesystem == "ext4" && len(p.Label) > 16 {
			return s.errf(pline("label"), "%s.label: an ext4 label has at most 16 bytes", where)
		}
		if p.Filesystem == "erofs" && len(p.Label) > 16 {
			return s.errf(pline("label"), "%s.label: an erofs label has at most 16 bytes", where)
		}
		switch {
		case p.Compression == "":
		case p.Filesystem != "erofs":
			return s.errf(pline("compression"), "%s.compression: only an erofs filesystem is compressed (this partition's is %s)", where, p.Filesystem)
		case p.Compression != "none" && p.Compression != "lz4":
			return s.errf(pline("compression"), "%s.compression: %q is not one of none, lz4", where, p.Compression)
		}
		if p.Verity {
			if err := s.checkVerity(i, pline); err != nil {
				return err
			}
		}
	}
	if err := s.addHashPartitions(); err != nil {
		return err
	}
	if err := s.validateBoot(); err != nil {
		return err
	}
	if s.Output.Format == "" {
		s.Output.Format = "raw"
	}
	return s.ValidateOutput()
}

// checkVerity checks verity: true on partition i: a read-only root of a
// GPT disk, whose partition GUID the build derives from the root hash.
func (s *Spec) checkVerity(i int, pline func(string) int) error {
	p := &s.Disk.Partitions[i]
	where := fmt.Sprintf("disk.partitions[%d]", i)
	line := pline("verity")
	switch {
	case p.Filesystem != "erofs":
		return s.errf(line, "%s.verity: dm-verity seals a read-only filesystem: set filesystem: erofs (this partition's is %s)", where, p.Filesystem)
	case p.Mount != "/":
		return s.errf(line, "%s.verity: only the root (mount: /) is sealed: kiln's initramfs sets up dm-verity for root= only", where)
	case p.TypeValue.GUID != rootTypeGUID(s.Disk.Arch):
		return s.errf(line, "%s.verity: the sealed root must have type root (the Discoverable Partitions root type for disk.arch), not %s", where, p.Type)
	case s.Disk.Table != "gpt":
		return s.errf(line, "%s.verity: needs disk.table gpt: the root and its hash partition are found by the partition UUIDs the root hash gives them", where)
	case p.Rest:
		return s.errf(pline("size"), "%s.size: a sealed partition is auto or a fixed size, not rest: the hash tree covers the whole partition, and free space on a read-only filesystem is never used", where)
	case p.GUIDValue != nil:
		return s.errf(pline("guid"), "%s.guid: a sealed partition's GUID is the first 128 bits of its root hash: drop guid", where)
	}
	return nil
}

// rootTypeGUID is the GUID of the DPS root type of arch.
func rootTypeGUID(arch string) repro.UUID {
	t, err := disk.LookupType("root", arch)
	if err != nil {
		return repro.UUID{}
	}
	return t.GUID
}

// addHashPartitions adds, after each partition with verity: true, its
// dm-verity hash partition: named NAME-verity, of the DPS root-verity type
// of disk.arch, without a filesystem, sized by the build.
func (s *Spec) addHashPartitions() error {
	d := &s.Disk
	var out []Partition
	for _, p := range d.Partitions {
		out = append(out, p)
		if !p.Verity {
			continue
		}
		name := p.Name + "-verity"
		for _, q := range d.Partitions {
			if q.Name == name {
				return s.errf(q.Line, "partition %s: the name is taken by the hash partition of %s (verity: true); rename it", name, p.Name)
			}
		}
		typ, err := disk.LookupType("root-verity", d.Arch)
		if err != nil {
			return s.errf(p.Line, "partition %s: verity: %v", p.Name, err)
		}
		out = append(out, Partition{Name: name, Type: "root-verity", TypeValue: typ, Filesystem: "none", Size: "auto",
			HashFor: p.Name, Line: p.Line, KeyLines: map[string]int{}})
	}
	d.Partitions = out
	return nil
}

// ValidateOutput checks output: (again after command-line overrides).
func (s *Spec) ValidateOutput() error {
	o := &s.Output
	if o.Format == "" {
		o.Format = "raw"
	}
	// Lines only for values the spec file gave: the command line may
	// have set others.
	if !contains(Formats, o.Format) {
		return s.errf(o.line("format", o.Format), "output.format: %q is not one of %s", o.Format, strings.Join(Formats, ", "))
	}
	if o.Compression != "" && o.Compression != "none" {
		line := o.line("compression", o.Compression)
		if o.Format != "qcow2" {
			return s.errf(line, "output.compression: only qcow2 is compressed by choice (vmdk streamOptimized always is)")
		}
		if o.Compression != "zlib" && o.Compression != "zstd" {
			return s.errf(line, "output.compression: %q is not one of none, zlib, zstd", o.Compression)
		}
	}
	if o.ClusterSize != "" {
		line := o.line("cluster_size", o.ClusterSize)
		if o.Format != "qcow2" {
			return s.errf(line, "output.cluster_size: only for qcow2")
		}
		n, err := ParseSize(o.ClusterSize)
		if err != nil || n < 512 || n > 2<<20 || n&(n-1) != 0 {
			return s.errf(line, "output.cluster_size: %q is not a power of two from 512B to 2MiB", o.ClusterSize)
		}
		o.ClusterBytes = n
	}
	if o.Subformat != "" || o.Azure {
		line := o.line("subformat", o.Subformat)
		if line == 0 && o.Azure {
			line = o.line("azure", "true")
		}
		if o.Format != "vhd" {
			return s.errf(line, "output.subformat and output.azure: only for vhd")
		}
		if o.Subformat != "" && o.Subformat != "dynamic" && o.Subformat != "fixed" {
			return s.errf(line, "output.subformat: %q is not one of dynamic, fixed", o.Subformat)
		}
		if o.Azure && o.Subformat == "dynamic" {
			return s.errf(o.line("azure", "true"), "output.azure: Azure takes fixed VHDs only")
		}
	}
	return nil
}

// Digest is the sha256 of the spec's canonical form (what it says, not how
// it is written: comments, order of keys and the output path do not count).
func (s *Spec) Digest() string {
	return digestOf(s)
}

func digestOf(s *Spec) string {
	// The architecture as it is meant, however it is spelt (amd64 is
	// x86-64), and the default as none: a spec without disk.arch keeps
	// the digest and IDs it had, and one that spells x86-64 out shares
	// them (before, its spelling counted).
	if a, err := disk.NormalizeArch(s.Disk.Arch); err == nil {
		c := *s
		c.Disk.Arch = a
		if a == disk.DefaultArch {
			c.Disk.Arch = ""
		}
		s = &c
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic("BUG: spec does not marshal: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// IDSeed is the seed of every derived identifier: seed: if the spec sets
// it; else the sha256 of the spec's canonical form without the layers'
// paths and pins, and of layerDigests, the content digests of the layers
// in order (one for each layer of the spec, "sha256:HEX" or any string
// that names the content). So the same spec of the same layers gives the
// same disk GUID, partition GUIDs and filesystem UUIDs wherever the layers
// are, and a layer whose content changed (an unpinned layer, a directory)
// gives new ones: two different images never claim to be the same.
func (s *Spec) IDSeed(layerDigests []string) string {
	if s.Seed != "" {
		return s.Seed
	}
	c := *s
	c.Layers = make([]Layer, len(s.Layers))
	for i, l := range s.Layers {
		l.Path, l.SHA256 = "", ""
		c.Layers[i] = l
	}
	if s.Boot != nil && s.Boot.SecureBoot != nil {
		// Whether the image is signed counts, not where the files are.
		b := *s.Boot
		b.SecureBoot = &SecureBoot{}
		c.Boot = &b
	}
	h := sha256.New()
	fmt.Fprintf(h, "kiln ids v2\x00%s\x00%d", digestOf(&c), len(layerDigests))
	for _, d := range layerDigests {
		fmt.Fprintf(h, "\x00%s", d)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Resolve returns p relative to the spec's folder, unless absolute.
func (s *Spec) Resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir, p)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkUUID checks a UUID or GUID the spec gives: the canonical
// 8-4-4-4-12 form that pkg/build parses (repro.ParseUUID), and not zero,
// which marks an unused GPT entry and which the writers would replace
// with a derived ID (an ext4 hash seed, a journal UUID) or refuse.
func checkUUID(v string) error {
	_, err := parseID(v)
	return err
}

// parseID parses a UUID or GUID as checkUUID checks it.
func parseID(v string) (repro.UUID, error) {
	u, err := repro.ParseUUID(v)
	if err != nil {
		return repro.UUID{}, err
	}
	if u.IsZero() {
		return repro.UUID{}, fmt.Errorf("%q: the zero UUID means none", v)
	}
	return u, nil
}

// looksLikeGUID reports whether a partition type is written as a GUID
// (rather than a name such as "esp" or "root-arm64", or "0x83"): the
// 8-4-4-4-12 shape whatever its characters, or 30 hex digits or more with
// dashes or braces. No type name is either.
func looksLikeGUID(v string) bool {
	if len(v) == 36 && v[8] == '-' && v[13] == '-' && v[18] == '-' && v[23] == '-' {
		return true
	}
	n := 0
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			n++
		case c == '-', c == '{', c == '}':
		default:
			return false
		}
	}
	return n >= 30
}

// chmodPath turns an absolute, clean path of a chmod: key into the path
// of a layer entry ("/" is the root, ".").
func chmodPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return "", false
	}
	if p == "/" {
		return ".", true
	}
	return p[1:], true
}

// parseMode parses an octal mode of 3 or 4 digits ("644", "0640", "1777").
func parseMode(m string) (uint32, bool) {
	if len(m) < 3 || len(m) > 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(m, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, false
	}
	return uint32(v), true
}

// keyLine is the line of key in lines, else def.
func keyLine(lines map[string]int, key string, def int) int {
	if l, ok := lines[key]; ok {
		return l
	}
	return def
}

// parseHex32 parses 8 hex digits, with an optional 0x (a FAT volume ID,
// an MBR disk signature).
func parseHex32(v string) (uint32, bool) {
	v = strings.TrimPrefix(strings.ToLower(v), "0x")
	if len(v) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 16, 32)
	return uint32(n), err == nil
}

func (s *Spec) validateBoot() error {
	b := s.Boot
	if b == nil {
		return nil
	}
	if b.Loader == "" {
		b.Loader = "none"
	}
	bline := func(key string) int { return keyLine(b.KeyLines, key, b.Line) }
	if !contains(Loaders, b.Loader) {
		return s.errf(bline("loader"), "boot.loader: %q is not one of %s", b.Loader, strings.Join(Loaders, ", "))
	}
	if b.Loader == "none" {
		return s.validateSecureBoot()
	}
	if b.Kernel == "" {
		return s.errf(b.Line, "boot.kernel: missing (a path or glob in the merged tree, e.g. /boot/vmlinuz-*)")
	}
	if b.Initrd == "" {
		b.Initrd = "kiln"
	}
	// Every path the boot stage globs in the merged tree: a malformed
	// pattern is refused here, not after the layers are merged.
	for _, f := range []struct{ key, val string }{
		{"kernel", b.Kernel}, {"initrd", b.Initrd},
		{"paths.systemd_boot", b.Paths.SystemdBoot}, {"paths.stub", b.Paths.Stub},
		{"paths.syslinux", b.Paths.Syslinux}, {"paths.ldlinux_c32", b.Paths.LdlinuxC32},
		{"paths.mbr", b.Paths.MBR}, {"paths.gptmbr", b.Paths.GPTMBR},
		{"paths.shim", b.Paths.Shim}, {"paths.mok_manager", b.Paths.MokManager}, {"paths.grub", b.Paths.Grub},
	} {
		if f.val == "" || f.key == "initrd" && (f.val == "kiln" || f.val == "none") {
			continue
		}
		if err := checkPattern(f.val); err != nil {
			return s.errf(bline(f.key), "boot.%s: %v", f.key, err)
		}
	}
	switch b.UEFI {
	case "":
		b.UEFI = "systemd-boot"
	case "systemd-boot", "uki":
	default:
		return s.errf(bline("uefi"), "boot.uefi: %q is not one of systemd-boot, uki", b.UEFI)
	}
	if b.Loader == "hybrid" && s.Disk.Table != "gpt" {
		return s.errf(bline("loader"), "boot.loader: hybrid needs disk.table gpt")
	}
	if a, _ := disk.NormalizeArch(s.Disk.Arch); (b.Loader == "syslinux" || b.Loader == "hybrid") && a != "x86-64" && a != "x86" {
		return s.errf(bline("loader"), "boot.loader: %s boots through PC BIOS (syslinux), which %s machines do not have: use systemd-boot, uki or shim (UEFI)", b.Loader, a)
	}
	if b.UKI && b.Loader != "systemd-boot" && (b.Loader != "hybrid" || b.UEFI != "systemd-boot") {
		return s.errf(bline("uki"), "boot.uki: puts the kernel in a UKI that systemd-boot lists; this image's UEFI loader is not systemd-boot (loader: uki is a UKI alone)")
	}
	return s.validateSecureBoot()
}

// validateSecureBoot checks boot.secureboot: a loader with a UEFI part, a
// certificate, a signer kiln knows, and a key exactly when kiln signs.
func (s *Spec) validateSecureBoot() error {
	b := s.Boot
	sb := b.SecureBoot
	if sb == nil {
		return nil
	}
	bline := func(key string) int {
		return keyLine(b.KeyLines, "secureboot."+key, keyLine(b.KeyLines, "secureboot", b.Line))
	}
	if b.Loader != "systemd-boot" && b.Loader != "uki" && b.Loader != "hybrid" && b.Loader != "shim" {
		return s.errf(bline(""), "boot.secureboot: loader %s has nothing for UEFI firmware to check (use systemd-boot, uki, shim or hybrid)", b.Loader)
	}
	if sb.Signer == "" {
		sb.Signer = "inline"
	}
	if !contains(Signers, sb.Signer) {
		return s.errf(bline("signer"), "boot.secureboot.signer: %q is not one of %s", sb.Signer, strings.Join(Signers, ", "))
	}
	if sb.Cert == "" {
		return s.errf(bline(""), "boot.secureboot.cert: missing (the PEM X.509 certificate db holds)")
	}
	switch {
	case sb.Signer == "inline" && sb.Key == "":
		return s.errf(bline(""), "boot.secureboot.key: missing (the PEM private key of the certificate; or signer: external to sign the digests elsewhere)")
	case sb.Signer == "external" && sb.Key != "":
		return s.errf(bline("key"), "boot.secureboot.key: signer external signs elsewhere and reads no key here; drop the key, or use signer: inline")
	}
	if sb.Enroll != "" && b.Loader == "shim" {
		return s.errf(bline("enroll"), "boot.secureboot.enroll: shim boots on the firmware's own keys, and your certificate reaches it through MOK (mokutil --import on the running system, confirmed in MokManager at the next boot): drop enroll")
	}
	if sb.Enroll != "" && b.Loader != "systemd-boot" && (b.Loader != "hybrid" || b.UEFI != "systemd-boot") {
		return s.errf(bline("enroll"), "boot.secureboot.enroll: systemd-boot enrols the keys, and this image's UEFI loader is a UKI alone: use loader systemd-boot (or hybrid with uefi: systemd-boot), or enrol the keys in the firmware yourself")
	}
	return nil
}

// checkPattern checks a path or glob of the merged tree as the boot stage
// matches it (tree.Glob: path.Match per element).
func checkPattern(p string) error {
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		if _, err := path.Match(el, ""); err != nil {
			return fmt.Errorf("%q is not a valid pattern: %w", p, err)
		}
	}
	return nil
}
