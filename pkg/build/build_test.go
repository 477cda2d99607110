package build

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// rootfs is a directory layer with something for each partition of
// threePartSpec: the ESP at /boot/efi, /var, and the rest for the root.
var rootfs = map[string]string{
	"etc/hostname":                  "kiln\n",
	"usr/bin/hello":                 "#!/bin/sh\necho hello\n*",
	"var/lib/x/data":                "var data\n",
	"boot/efi/EFI/BOOT/BOOTX64.EFI": "not really a loader\n",
	"boot/efi/loader/loader.conf":   "timeout 0\n",
}

const testSeed = "build-test-seed"

// threePartSpec: a GPT disk of a fixed size with an ESP, a /var and a root
// that takes the rest.
const threePartSpec = `epoch: 1700000000
seed: ` + testSeed + `
layers:
  - path: rootfs/
disk:
  table: gpt
  size: 48MiB
  partitions:
    - {name: esp, type: esp, size: 16MiB, filesystem: vfat, mount: /boot/efi}
    - {name: var, type: var, size: 8MiB, filesystem: ext4, mount: /var}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
`

// partFile extracts partition i of a built image to a file of its own.
func partFile(t *testing.T, res *Result, i int) string {
	t.Helper()
	p := res.Layout.Partitions[i]
	return judge.Extract(t, res.Output, p.Start, p.Size)
}

// blkid returns what blkid -p reads of a filesystem image (UUID, LABEL,
// TYPE, ...).
func blkid(t *testing.T, fsimg string) map[string]string {
	t.Helper()
	judge.Need(t, "blkid")
	out, code := judge.Run(t, nil, "blkid", "-p", "-o", "export", fsimg)
	if code != 0 {
		t.Fatalf("blkid -p %s exited %d:\n%s", fsimg, code, out)
	}
	kv := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// sgdiskField returns the value after "key: " in sgdisk's output.
func sgdiskField(t *testing.T, out, key string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("sgdisk printed no %q:\n%s", key, out)
	return ""
}

// TestBuildGPT: a fixed-size GPT disk with three partitions. The plan
// places them in order, 1 MiB aligned, the rest partition to the end;
// each mount's subtree is in its own filesystem and nowhere else; sgdisk,
// e2fsck and fsck.vfat find nothing wrong; and every ID is the one derived
// from seed:, as blkid and sgdisk read it.
func TestBuildGPT(t *testing.T) {
	dir := t.TempDir()
	checkoutTree(t, filepath.Join(dir, "rootfs"), 0o022, rootfs)
	_, res := buildSpec(t, dir, threePartSpec)
	l := res.Layout

	// The plan.
	if l.Table != disk.GPT || l.Size != 48*mib || len(l.Partitions) != 3 {
		t.Fatalf("layout: %v, %d bytes, %d partitions", l.Table, l.Size, len(l.Partitions))
	}
	esp, vr, root := l.Partitions[0], l.Partitions[1], l.Partitions[2]
	if esp.Start != mib || esp.Size != 16*mib || vr.Start != esp.End() || vr.Size != 8*mib || root.Start != vr.End() {
		t.Errorf("esp at %d+%d, var at %d+%d, root at %d", esp.Start, esp.Size, vr.Start, vr.Size, root.Start)
	}
	// rest: up to the last 1 MiB boundary before the backup GPT (33 sectors).
	if want := (l.Size - 33*disk.SectorSize) / mib * mib; root.End() != want {
		t.Errorf("root (rest) ends at %d, want %d", root.End(), want)
	}
	img := res.Output
	judge.SgdiskVerify(t, img)

	// Each partition's share of the tree, judged.
	espFile, varFile, rootFile := partFile(t, res, 0), partFile(t, res, 1), partFile(t, res, 2)
	judge.FsckVfat(t, espFile)
	judge.E2fsck(t, varFile)
	judge.E2fsck(t, rootFile)
	fat := judge.ReadFAT(t, img, esp.Start)
	for _, p := range []string{"/EFI/BOOT/BOOTX64.EFI", "/loader/loader.conf"} {
		if n, ok := fat[p]; !ok || n.Type != "file" {
			t.Errorf("ESP: %s missing (%v)", p, judge.Lines(fat))
		}
	}
	if n := fat["/loader/loader.conf"]; n.SHA256 != sha256Hex([]byte("timeout 0\n")) {
		t.Errorf("ESP: /loader/loader.conf has other content: %v", n)
	}
	vars := judge.ReadExt4(t, varFile)
	if n, ok := vars["/lib/x/data"]; !ok || n.SHA256 != sha256Hex([]byte("var data\n")) {
		t.Errorf("var: /lib/x/data: %v (%v)", n, judge.Lines(vars))
	}
	roots := judge.ReadExt4(t, rootFile)
	for p, typ := range map[string]string{"/etc/hostname": "file", "/usr/bin/hello": "file", "/var": "dir", "/boot/efi": "dir"} {
		if n, ok := roots[p]; !ok || n.Type != typ {
			t.Errorf("root: %s is %v, want a %s", p, n, typ)
		}
	}
	for p := range roots {
		if strings.HasPrefix(p, "/var/") || strings.HasPrefix(p, "/boot/efi/") {
			t.Errorf("root: %s belongs to another partition", p)
		}
	}

	// IDs: derived from the seed, and what the judges read.
	derive := func(purpose string) string { return repro.Derive(testSeed, purpose).String() }
	if l.DiskGUID.String() != derive("disk/guid") {
		t.Errorf("disk GUID %s, want the seed's %s", l.DiskGUID, derive("disk/guid"))
	}
	judge.Need(t, "sgdisk")
	out, _ := judge.Run(t, nil, "sgdisk", "-p", img)
	if got := sgdiskField(t, out, "Disk identifier (GUID)"); !strings.EqualFold(got, derive("disk/guid")) {
		t.Errorf("sgdisk reads disk GUID %s, want %s", got, derive("disk/guid"))
	}
	for i, name := range []string{"esp", "var", "root"} {
		out, _ := judge.Run(t, nil, "sgdisk", "-i", fmt.Sprint(i+1), img)
		if got := sgdiskField(t, out, "Partition unique GUID"); !strings.EqualFold(got, derive("partition/"+name+"/guid")) {
			t.Errorf("partition %s: GUID %s, want %s", name, got, derive("partition/"+name+"/guid"))
		}
		if got := sgdiskField(t, out, "Partition name"); got != "'"+name+"'" {
			t.Errorf("partition %d: name %s, want %s", i+1, got, name)
		}
	}
	for _, fs := range []struct {
		i           int
		file        string
		uuid, label string
	}{
		{2, rootFile, derive("partition/root/fs-uuid"), "root"},
		{1, varFile, derive("partition/var/fs-uuid"), "var"},
	} {
		b := blkid(t, fs.file)
		if b["TYPE"] != "ext4" || b["UUID"] != fs.uuid || b["LABEL"] != fs.label {
			t.Errorf("partition %d: blkid %v, want ext4 UUID %s LABEL %s", fs.i, b, fs.uuid, fs.label)
		}
		if r := res.Filesystems[fs.i]; r.UUID != fs.uuid || r.Label != fs.label || r.Type != "ext4" {
			t.Errorf("partition %d: result %+v", fs.i, r)
		}
	}
	vid := repro.Derive32(testSeed, "partition/esp/volume-id")
	wantVID := fmt.Sprintf("%04X-%04X", vid>>16, vid&0xffff)
	if b := blkid(t, espFile); b["TYPE"] != "vfat" || b["UUID"] != wantVID || b["LABEL"] != "ESP" {
		t.Errorf("ESP: blkid %v, want vfat UUID %s LABEL ESP", b, wantVID)
	}
	if r := res.Filesystems[0]; r.UUID != wantVID || r.Files != 2 {
		t.Errorf("ESP: result %+v, want UUID %s and 2 files", r, wantVID)
	}
}

// TestBuildMBRGivenIDs: an MBR disk, and IDs the spec gives (parsed by
// pkg/spec) rather than derived ones.
func TestBuildMBRGivenIDs(t *testing.T) {
	const fsUUID, hashSeed = "6f1d5b2a-3c4e-4f60-8a9b-0c1d2e3f4a5b", "7a2e6c3b-4d5f-4071-9bac-1d2e3f4a5b6c"
	dir := t.TempDir()
	checkoutTree(t, filepath.Join(dir, "rootfs"), 0o022, rootfs)
	_, res := buildSpec(t, dir, `epoch: 1700000000
seed: `+testSeed+`
layers:
  - path: rootfs/
disk:
  table: mbr
  size: 40MiB
  signature: 0x1A2B3C4D
  partitions:
    - {name: esp, type: esp, size: 16MiB, filesystem: vfat, mount: /boot/efi, volume_id: DEADbeef, label: BOOT}
    - {name: root, type: linux, size: rest, filesystem: ext4, mount: /, uuid: `+fsUUID+`, hash_seed: `+hashSeed+`}
`)
	img := res.Output
	judge.SfdiskVerify(t, img)
	l := res.Layout
	if l.Table != disk.MBR || len(l.Partitions) != 2 || l.DiskSignature != 0x1a2b3c4d {
		t.Fatalf("layout: %v, %d partitions, signature %08x", l.Table, len(l.Partitions), l.DiskSignature)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mbr [512]byte
	if _, err := f.ReadAt(mbr[:], 0); err != nil {
		t.Fatal(err)
	}
	if sig := binary.LittleEndian.Uint32(mbr[440:]); sig != 0x1a2b3c4d {
		t.Errorf("MBR disk signature %08x, want 1a2b3c4d", sig)
	}
	if mbr[446+4] != 0xef || mbr[462+4] != 0x83 {
		t.Errorf("MBR types %#x %#x, want 0xef 0x83", mbr[446+4], mbr[462+4])
	}
	espFile, rootFile := partFile(t, res, 0), partFile(t, res, 1)
	judge.FsckVfat(t, espFile)
	judge.E2fsck(t, rootFile)
	if b := blkid(t, espFile); b["UUID"] != "DEAD-BEEF" || b["LABEL"] != "BOOT" {
		t.Errorf("ESP: blkid %v, want UUID DEAD-BEEF LABEL BOOT", b)
	}
	if b := blkid(t, rootFile); b["UUID"] != fsUUID {
		t.Errorf("root: blkid %v, want UUID %s", b, fsUUID)
	}
	judge.Need(t, "debugfs")
	out, code := judge.Run(t, nil, "debugfs", "-R", "stats", rootFile)
	if code != 0 || !strings.Contains(out, "Directory Hash Seed:      "+hashSeed) {
		t.Errorf("root: debugfs stats (exit %d) lacks the hash seed %s:\n%s", code, hashSeed, out)
	}
}

// TestBuildAutoSize: disk size auto with a root of size auto: the disk is
// as small as the plan allows, the filesystem holds the tree (e2fsck,
// debugfs), and free: adds exactly its headroom to the partition.
func TestBuildAutoSize(t *testing.T) {
	files := map[string]string{
		"etc/hostname": "kiln\n",
		"srv/big":      strings.Repeat("0123456789abcdef", 3<<16), // 3 MiB
	}
	build := func(free string) *Result {
		dir := t.TempDir()
		checkoutTree(t, filepath.Join(dir, "rootfs"), 0o022, files)
		_, res := buildSpec(t, dir, "epoch: 1700000000\nseed: "+testSeed+"\nlayers:\n  - path: rootfs/\ndisk:\n  size: auto\n"+free+
			"  partitions:\n    - {name: root, type: root, size: auto, filesystem: ext4, mount: /}\n")
		return res
	}
	tight, roomy := build(""), build("  free: 8MiB\n")
	for _, res := range []*Result{tight, roomy} {
		judge.SgdiskVerify(t, res.Output)
		rootFile := partFile(t, res, 0)
		judge.E2fsck(t, rootFile)
		nodes := judge.ReadExt4(t, rootFile)
		if n := nodes["/srv/big"]; n.Size != 3<<20 || n.SHA256 != sha256Hex([]byte(files["srv/big"])) {
			t.Errorf("/srv/big: %v", n)
		}
		p := res.Layout.Partitions[0]
		if p.Start != mib || p.Size%mib != 0 {
			t.Errorf("root at %d+%d: want 1 MiB aligned", p.Start, p.Size)
		}
		// The disk: the partition, the primary GPT before it and the
		// backup after it, and nothing more than the alignment needs.
		if min := p.End() + 33*disk.SectorSize; res.Layout.Size < min || res.Layout.Size > p.End()+mib {
			t.Errorf("disk of %d bytes for a partition ending at %d", res.Layout.Size, p.End())
		}
	}
	if d := roomy.Layout.Partitions[0].Size - tight.Layout.Partitions[0].Size; d != 8*mib {
		t.Errorf("free: 8MiB made the partition %d bytes larger", d)
	}
}

// errClass is what the command line makes of a build error: 2 for the
// spec (*spec.Error), 3 for a bad layer (*layer.Error, *tree.Error), 1
// for the rest (cmd/kiln exitCode).
func errClass(err error) string {
	var se *spec.Error
	var le *layer.Error
	var te *tree.Error
	switch {
	case errors.As(err, &se):
		return "spec"
	case errors.As(err, &le), errors.As(err, &te):
		return "layer"
	}
	return "build"
}

// TestBuildErrors: each failure has its class, names what is wrong, and
// leaves no output file.
func TestBuildErrors(t *testing.T) {
	big := strings.Repeat("x", 12<<20)
	oneRoot := func(size string) string {
		return "epoch: 1700000000\nlayers:\n  - path: rootfs/\ndisk:\n  size: 32MiB\n  partitions:\n    - {name: root, type: root, size: " + size + ", filesystem: ext4, mount: /}\n"
	}
	for _, tc := range []struct {
		name  string
		files map[string]string // the directory layer rootfs/
		tar   []byte            // else a tar layer
		spec  string
		class string
		want  []string
	}{
		{name: "partition larger than the disk", files: rootfs, spec: oneRoot("64MiB"), class: "spec",
			want: []string{"kiln.yaml:5: disk:"}},
		{name: "mount point is a file", files: map[string]string{"boot/efi": "a file"},
			spec: strings.Replace(threePartSpec, "seed: "+testSeed+"\n", "", 1), class: "spec",
			want: []string{"kiln.yaml:8: partition esp: mount point /boot/efi: /boot/efi is a file, not a directory"}},
		{name: "no root partition for a file", files: map[string]string{"etc/hostname": "kiln\n"},
			spec:  "layers:\n  - path: rootfs/\ndisk:\n  size: 32MiB\n  partitions:\n    - {name: var, type: var, size: rest, filesystem: ext4, mount: /var}\n",
			class: "spec", want: []string{"kiln.yaml:4: no partition is mounted at / but the layers have /etc/hostname"}},
		{name: "rest of an auto disk without a filesystem", files: rootfs,
			spec:  "layers:\n  - path: rootfs/\ndisk:\n  size: auto\n  partitions:\n    - {name: root, type: root, size: 8MiB, filesystem: ext4, mount: /}\n    - {name: raw, type: linux, size: rest}\n",
			class: "spec", want: []string{"kiln.yaml:7: partition raw: size rest on a disk of size auto needs a filesystem"}},
		{name: "boot kernel missing", files: rootfs,
			spec:  oneRoot("rest") + "boot:\n  loader: uki\n  kernel: /boot/vmlinuz-*\n",
			class: "spec", want: []string{"kiln.yaml:10: boot: kernel: /boot/vmlinuz-* matches nothing"}},
		{name: "truncated tar layer", tar: tarOf(t, "etc/hostname", strings.Repeat("k", 2000))[:1024],
			spec: strings.Replace(oneRoot("rest"), "rootfs/", "layer.tar", 1), class: "layer", want: []string{"layer.tar"}},
		{name: "modes on a tar layer", tar: tarOf(t, "etc/hostname", "kiln\n"),
			spec:  strings.Replace(oneRoot("rest"), "  - path: rootfs/\n", "  - path: layer.tar\n    modes: preserve\n", 1),
			class: "spec", want: []string{"kiln.yaml:4: layer layer.tar: modes and chmod are for directory layers"}},
		{name: "uid on a tar layer", tar: tarOf(t, "etc/hostname", "kiln\n"),
			spec:  strings.Replace(oneRoot("rest"), "  - path: rootfs/\n", "  - path: layer.tar\n    gid: 100\n", 1),
			class: "spec", want: []string{"kiln.yaml:4: layer layer.tar: gid is for directory layers; this layer stores its own owners"}},
		{name: "tree does not fit", files: map[string]string{"srv/big": big}, spec: oneRoot("8MiB"), class: "build",
			want: []string{"partition root (ext4)", "does not fit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.tar != nil {
				if err := os.WriteFile(filepath.Join(dir, "layer.tar"), tc.tar, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				checkoutTree(t, filepath.Join(dir, "rootfs"), 0o022, tc.files)
			}
			p := filepath.Join(dir, "kiln.yaml")
			if err := os.WriteFile(p, []byte(tc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := spec.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.img")
			_, err = Build(context.Background(), s, Options{Output: out, TempDir: t.TempDir(), InitPath: "/nonexistent"})
			if err == nil {
				t.Fatal("the build succeeded")
			}
			if got := errClass(err); got != tc.class {
				t.Errorf("%v: a %s error, want a %s error", err, got, tc.class)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, serr := os.Lstat(out); !os.IsNotExist(serr) {
				t.Errorf("the failed build left %s (%v)", out, serr)
			}
		})
	}
}

// TestBuildBootFindsESPAndKernel: the boot stage finds its kernel through
// a symlinked /boot (tree.Glob) and takes an ESP whose type is given as
// the ESP's GPT type GUID (the parsed type, not the string "esp"). The
// files are not real loaders, so the build stops where systemd-boot's
// installer reads them: past finding the kernel and the ESP. Before, it
// stopped at "matches nothing" for the kernel, and at "needs a
// partition of type esp" for the ESP.
func TestBuildBootFindsESPAndKernel(t *testing.T) {
	dir := t.TempDir()
	checkoutTree(t, filepath.Join(dir, "rootfs"), 0o022, map[string]string{
		"usr/lib/kernel/vmlinuz-6.1.0-test":            "not a kernel",
		"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "not a loader",
		"usr/lib/modules/6.1.0-test/modules.order":     "",
		"etc/os-release": "ID=test\n",
	})
	if err := os.Symlink("usr/lib/kernel", filepath.Join(dir, "rootfs", "boot")); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"esp", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"} {
		t.Run(typ, func(t *testing.T) {
			p := filepath.Join(dir, "kiln.yaml")
			text := `layers:
  - path: rootfs/
disk:
  size: 48MiB
  partitions:
    - {name: esp, type: ` + typ + `, size: 16MiB, filesystem: vfat, mount: /efi}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
boot:
  loader: systemd-boot
  kernel: /boot/vmlinuz-*
  initrd: none
`
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := spec.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.img")
			_, err = Build(context.Background(), s, Options{Output: out, TempDir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), "boot: systemd-boot: systemd-boot: loader: not a PE image") {
				t.Fatalf("got %v, want the build to reach systemd-boot's installer", err)
			}
			if _, serr := os.Lstat(out); !os.IsNotExist(serr) {
				t.Errorf("the failed build left %s (%v)", out, serr)
			}
		})
	}
}
