package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/initbin"
	"github.com/kiln-build/kiln/internal/judge"
)

// kilnBin is the kiln binary built once for the end-to-end tests, so they
// run it as a user would: a process with its own environment.
var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-e2e-")
	if err != nil {
		panic(err)
	}
	kilnBin = filepath.Join(dir, "kiln")
	// Every build of the tests shares one layer cache (so that most
	// builds after the first of a fixture walk cached layers), never the
	// user's.
	os.Setenv("KILN_CACHE", filepath.Join(dir, "cache"))
	// kiln-init beside kiln, built as the Makefile builds it.
	// Stamped as the Makefile stamps it (the build summary reports it).
	ldflags := "-X main.version=test"
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		ldflags += " -X main.revision=" + strings.TrimSpace(string(out))
	}
	// kiln-init for each architecture first, into the folder kiln embeds
	// (as make build does), so that the kiln under test carries the
	// kiln-init of this source tree.
	type goBuild struct {
		goarch string
		args   []string
	}
	var builds []goBuild
	for _, a := range initbin.Arches {
		builds = append(builds, goBuild{a, []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", "../../internal/initbin/bin/" + initbin.Name(a), "../kiln-init"}})
	}
	builds = append(builds,
		goBuild{"", []string{"build", "-trimpath", "-ldflags", ldflags, "-o", kilnBin, "."}},
		goBuild{"amd64", []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", filepath.Join(dir, "kiln-init"), "../kiln-init"}})
	for _, gb := range builds {
		b := gb.args
		cmd := exec.Command("go", b...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if gb.goarch != "" {
			cmd.Env = append(cmd.Env, "GOARCH="+gb.goarch)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// kiln runs the binary in dir with extra environment; it returns stdout,
// stderr and the exit code.
func kiln(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runBin(t, kilnBin, dir, env, args...)
}

const epoch = 1700000000

var (
	capV2     = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" // cap_net_raw+ep
	longName  = strings.Repeat("long-name-", 15) + "end"                                           // 153 bytes
	slowLink  = strings.Repeat("../target/", 20)                                                   // 200 bytes: a slow symlink
	bigData   = pseudo(1, 1<<20+3)
	sparseDat = append(append(pseudo(2, 4096), make([]byte, 64<<10)...), pseudo(3, 4096)...)
	efiData   = pseudo(4, 100<<10)
)

// mergeFixture writes the layers that exercise every merge rule into dir
// and returns the spec text.
func mergeFixture(t *testing.T, dir, table string) string {
	t.Helper()
	devNull := tEntry{name: "dev/null", typ: '3', mode: 0o666, major: 1, minor: 3, mtime: 1600000000}
	devSda := tEntry{name: "dev/sda", typ: '4', mode: 0o660, gid: 6, major: 8, minor: 0, mtime: 1600000000}
	fifo := tEntry{name: "run/initctl", typ: '6', mode: 0o600, mtime: 1600000000}
	ping := reg("usr/bin/ping", []byte("ping binary"), 0o4755)
	ping.xattrs = map[string]string{"security.capability": capV2, "user.origin": "layer1"}
	owned := reg("home/user/file", []byte("mine"), 0o600)
	owned.uid, owned.gid = 70000, 70001
	future := reg("etc/future", []byte("from the future"), 0o644)
	future.mtime = 1800000000
	srv := tdir("srv", 0o2775)
	srv.gid = 50
	l1 := []tEntry{
		tdir("etc", 0o755), reg("etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), 0o644),
		reg("etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644), reg("etc/empty", nil, 0o644), future,
		tdir("usr", 0o755), tdir("usr/bin", 0o755), ping,
		reg("usr/bin/a", []byte("A"), 0o755), thard("usr/bin/b", "usr/bin/a"),
		tsym("bin", "usr/bin"), tsym("slowlink", slowLink),
		tdir("dev", 0o755), devNull, devSda, tdir("run", 0o755), fifo,
		tdir("tmp", 0o1777), srv, owned,
		reg("usr/share/"+longName, []byte("long"), 0o644),
		reg("usr/lib/big.bin", bigData, 0o644), reg("usr/lib/sparse.bin", sparseDat, 0o644),
		tdir("var", 0o755), tdir("var/cache", 0o755), reg("var/cache/a", []byte("a"), 0o644), reg("var/cache/b", []byte("b"), 0o644),
		tdir("opt", 0o755), tdir("opt/d", 0o755), reg("opt/d/x", []byte("x"), 0o644),
		reg("data", []byte("was a file"), 0o644),
	}
	l2 := []tEntry{
		twh("etc/.wh.hosts"),
		twh("var/cache/.wh..wh..opq"), reg("var/cache/new", []byte("N"), 0o644),
		reg("opt/d", []byte("now a file"), 0o644),
		tdir("data", 0o750), reg("data/inner", []byte("I"), 0o644),
		thard("etc/passwd-hl", "etc/passwd"),
		reg("bin/sh", []byte("shell"), 0o755),
		reg("usr/bin/a", []byte("A2"), 0o755),
	}
	efi := reg("boot/efi/EFI/BOOT/BOOTX64.EFI", efiData, 0o644)
	efi.mtime = 1650000000
	l3 := []tEntry{efi, reg("boot/efi/loader/loader.conf", []byte("timeout 0\n"), 0o644),
		reg("boot/efi/loader/entries/kiln-demo-entry-with-a-long-name.conf", []byte("title kiln\n"), 0o644)}

	writeFile(t, filepath.Join(dir, "layers/base.tgz"), gz(t, makeTar(t, l1)))
	writeFile(t, filepath.Join(dir, "layers/overlay.bin"), xzc(t, makeTar(t, l2))) // detected by magic, not name
	writeFile(t, filepath.Join(dir, "layers/esp.tar.zst"), zst(t, makeTar(t, l3)))
	writeFile(t, filepath.Join(dir, "layers/host/etc/hostname"), []byte("kiln-test\n"))
	writeFile(t, filepath.Join(dir, "layers/host/etc/motd"), []byte("hello\n"))
	return fmt.Sprintf(`epoch: %d
layers:
  - path: layers/base.tgz
  - path: layers/overlay.bin
  - path: layers/esp.tar.zst
  - path: layers/host/
disk:
  table: %s
  size: 200MiB
  partitions:
    - name: esp
      type: esp
      size: 64MiB
      filesystem: vfat
      mount: /boot/efi
    - name: root
      type: root
      filesystem: ext4
      size: rest
      mount: /
output:
  path: out/merge.img
`, epoch, table)
}

// expectedRoot is what the root filesystem must hold after the merge.
func expectedRoot() map[string]judge.Node {
	e := map[string]judge.Node{}
	add := func(p, typ string, mode uint32, data []byte, mtime int64) {
		n := judge.Node{Path: p, Type: typ, Mode: mode, Mtime: mtime}
		if typ == "file" {
			n.Size = int64(len(data))
			n.SHA256 = judge.SHA256(data)
		}
		e[p] = n
	}
	const old = 1600000000
	add("/etc", "dir", 0o755, nil, epoch) // the directory layer describes etc/ too
	add("/etc/passwd", "file", 0o644, []byte("root:x:0:0::/root:/bin/sh\n"), old)
	add("/etc/passwd-hl", "file", 0o644, []byte("root:x:0:0::/root:/bin/sh\n"), old)
	add("/etc/empty", "file", 0o644, nil, old)
	add("/etc/future", "file", 0o644, []byte("from the future"), epoch) // clamped
	add("/etc/hostname", "file", 0o644, []byte("kiln-test\n"), epoch)   // directory layer: epoch
	add("/etc/motd", "file", 0o644, []byte("hello\n"), epoch)
	add("/usr", "dir", 0o755, nil, old)
	add("/usr/bin", "dir", 0o755, nil, old)
	add("/usr/bin/ping", "file", 0o4755, []byte("ping binary"), old)
	add("/usr/bin/a", "file", 0o755, []byte("A2"), old)
	add("/usr/bin/b", "file", 0o755, []byte("A"), old)
	add("/usr/bin/sh", "file", 0o755, []byte("shell"), old)
	add("/usr/share", "dir", 0o755, nil, epoch) // implicit
	add("/usr/share/"+longName, "file", 0o644, []byte("long"), old)
	add("/usr/lib", "dir", 0o755, nil, epoch)
	add("/usr/lib/big.bin", "file", 0o644, bigData, old)
	add("/usr/lib/sparse.bin", "file", 0o644, sparseDat, old)
	add("/dev", "dir", 0o755, nil, old)
	add("/run", "dir", 0o755, nil, old)
	add("/tmp", "dir", 0o1777, nil, old)
	add("/srv", "dir", 0o2775, nil, old)
	add("/home", "dir", 0o755, nil, epoch)
	add("/home/user", "dir", 0o755, nil, epoch)
	add("/var", "dir", 0o755, nil, old)
	add("/var/cache", "dir", 0o755, nil, old)
	add("/var/cache/new", "file", 0o644, []byte("N"), old)
	add("/opt", "dir", 0o755, nil, old)
	add("/opt/d", "file", 0o644, []byte("now a file"), old)
	add("/data", "dir", 0o750, nil, old)
	add("/data/inner", "file", 0o644, []byte("I"), old)
	add("/boot", "dir", 0o755, nil, epoch)
	add("/boot/efi", "dir", 0o755, nil, epoch) // the mount point, left empty
	e["/bin"] = judge.Node{Path: "/bin", Type: "symlink", Mode: 0o777, Size: 7, Target: "usr/bin", Mtime: old}
	e["/slowlink"] = judge.Node{Path: "/slowlink", Type: "symlink", Mode: 0o777, Size: int64(len(slowLink)), Target: slowLink, Mtime: old}
	e["/dev/null"] = judge.Node{Path: "/dev/null", Type: "char", Mode: 0o666, Major: 1, Minor: 3, Mtime: old}
	e["/dev/sda"] = judge.Node{Path: "/dev/sda", Type: "block", Mode: 0o660, GID: 6, Major: 8, Minor: 0, Mtime: old}
	e["/run/initctl"] = judge.Node{Path: "/run/initctl", Type: "fifo", Mode: 0o600, Mtime: old}
	n := e["/usr/bin/ping"]
	n.Xattrs = map[string]string{"security.capability": fmt.Sprintf("%x", capV2), "user.origin": fmt.Sprintf("%x", "layer1")}
	e["/usr/bin/ping"] = n
	n = e["/srv"]
	n.GID = 50
	e["/srv"] = n
	e["/home/user/file"] = judge.Node{Path: "/home/user/file", Type: "file", Mode: 0o600, UID: 70000, GID: 70001, Size: 4, SHA256: judge.SHA256([]byte("mine")), Mtime: old}
	return e
}

func expectedESP() map[string]judge.Node {
	e := map[string]judge.Node{}
	file := func(p string, data []byte, mtime int64) {
		e[p] = judge.Node{Path: p, Type: "file", Size: int64(len(data)), SHA256: judge.SHA256(data), Mtime: mtime}
	}
	for _, d := range []string{"/EFI", "/EFI/BOOT", "/loader", "/loader/entries"} {
		e[d] = judge.Node{Path: d, Type: "dir", Mtime: epoch} // implicit: at the epoch
	}
	file("/EFI/BOOT/BOOTX64.EFI", efiData, 1650000000)
	file("/loader/loader.conf", []byte("timeout 0\n"), 1600000000)
	file("/loader/entries/kiln-demo-entry-with-a-long-name.conf", []byte("title kiln\n"), 1600000000)
	return e
}

type sfdiskPart struct {
	Node  string `json:"node"`
	Start int64  `json:"start"`
	Size  int64  `json:"size"`
	Type  string `json:"type"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
}

// partitions reads the partition table with sfdisk, an independent judge.
func partitions(t *testing.T, img string) []sfdiskPart {
	t.Helper()
	judge.Need(t, "sfdisk")
	out, code := judge.Run(t, nil, "sfdisk", "--json", img)
	if code != 0 {
		t.Fatalf("sfdisk --json: %s", out)
	}
	var v struct {
		PT struct {
			Label      string       `json:"label"`
			Partitions []sfdiskPart `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	return v.PT.Partitions
}

func diffNodes(t *testing.T, what string, got, want map[string]judge.Node) {
	t.Helper()
	g, w := judge.Lines(got), judge.Lines(want)
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, l := range g {
		gs[l] = true
	}
	for _, l := range w {
		ws[l] = true
	}
	bad := false
	for _, l := range w {
		if !gs[l] {
			t.Errorf("%s: missing or different: %s", what, l)
			bad = true
		}
	}
	for _, l := range g {
		if !ws[l] {
			t.Errorf("%s: unexpected: %s", what, l)
			bad = true
		}
	}
	if bad {
		t.Logf("%s as read back:\n%s", what, strings.Join(g, "\n"))
	}
}

// twoPartitions has sgdisk (GPT) and sfdisk verify img's partition table
// and returns its partitions as sfdisk sees them, which must be two.
func twoPartitions(t *testing.T, img, table string) []sfdiskPart {
	t.Helper()
	if table == "gpt" {
		judge.SgdiskVerify(t, img)
	}
	judge.SfdiskVerify(t, img)
	parts := partitions(t, img)
	if len(parts) != 2 {
		t.Fatalf("want 2 partitions, sfdisk sees %+v", parts)
	}
	return parts
}

// checkImage runs every judge on a built image and compares both trees.
func checkImage(t *testing.T, img, table string) {
	t.Helper()
	parts := twoPartitions(t, img, table)
	for _, p := range parts {
		if p.Start%2048 != 0 {
			t.Errorf("partition %s starts at sector %d, not 1 MiB aligned", p.Node, p.Start)
		}
	}
	if parts[0].Size*512 != 64<<20 {
		t.Errorf("esp is %d bytes, want 64 MiB", parts[0].Size*512)
	}
	esp := judge.Extract(t, img, parts[0].Start*512, parts[0].Size*512)
	judge.FsckVfat(t, esp)
	diffNodes(t, "esp", judge.ReadFAT(t, img, parts[0].Start*512), expectedESP())

	root := judge.Extract(t, img, parts[1].Start*512, parts[1].Size*512)
	judge.E2fsck(t, root)
	got := judge.ReadExt4(t, root)
	// Hardlink identity: compare inode numbers, then drop them.
	if got["/etc/passwd"].Inode != got["/etc/passwd-hl"].Inode {
		t.Errorf("hardlink to a lower layer's file is not the same inode: %d vs %d", got["/etc/passwd"].Inode, got["/etc/passwd-hl"].Inode)
	}
	if got["/usr/bin/a"].Inode == got["/usr/bin/b"].Inode {
		t.Errorf("usr/bin/a was replaced in layer 2 but still shares the inode of usr/bin/b")
	}
	for k, n := range got {
		n.Inode = 0
		got[k] = n
	}
	diffNodes(t, "root", got, expectedRoot())
}

func TestBuildMergeRulesGPT(t *testing.T) { testBuildMergeRules(t, "gpt") }
func TestBuildMergeRulesMBR(t *testing.T) { testBuildMergeRules(t, "mbr") }

func testBuildMergeRules(t *testing.T, table string) {
	judge.Need(t, "e2fsck", "debugfs", "fsck.vfat", "mcopy", "sfdisk", "sgdisk")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(mergeFixture(t, dir, table)))
	_, stderr, code := kiln(t, dir, nil, "build", "-q")
	if code != 0 {
		t.Fatalf("kiln build exited %d: %s", code, stderr)
	}
	img := filepath.Join(dir, "out/merge.img")
	checkImage(t, img, table)

	// kiln inspect reads back what was built.
	out, stderr, code := kiln(t, dir, nil, "inspect", "--json", img)
	if code != 0 {
		t.Fatalf("kiln inspect: %d %s", code, stderr)
	}
	for _, want := range []string{`"ext4"`, `"vfat"`, `"root"`, `"esp"`} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect --json lacks %s:\n%s", want, out)
		}
	}
}

// TestReproducible builds the same spec twice, the second time with
// another TZ, LANG, umask, working directory, GOMAXPROCS and with the
// directory layer's files touched to new mtimes: same sha256.
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "kiln.yaml")
	writeFile(t, spec, []byte(mergeFixture(t, dir, "gpt")))
	out1 := filepath.Join(dir, "one.img")
	if _, se, code := kiln(t, dir, []string{"TZ=UTC", "LANG=C", "GOMAXPROCS=2"}, "build", "-q", "-o", out1); code != 0 {
		t.Fatal(se)
	}
	future := time.Now().Add(48 * time.Hour)
	for _, f := range []string{"layers/host/etc/hostname", "layers/host/etc/motd", "layers/host/etc", "layers/host"} {
		if err := os.Chtimes(filepath.Join(dir, f), future, future); err != nil {
			t.Fatal(err)
		}
	}
	other := t.TempDir()
	out2 := filepath.Join(other, "two.img")
	// umask is a property of the process: set it through a shell.
	cmd := exec.Command("sh", "-c", `umask 077; exec "$0" "$@"`, kilnBin, "build", "-q", "-o", out2, spec)
	cmd.Dir = other
	cmd.Env = append(os.Environ(), "TZ=Pacific/Kiritimati", "LANG=de_DE.UTF-8", "LC_ALL=tr_TR.UTF-8", "GOMAXPROCS=1", "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	a, b := judge.SHA256File(t, out1), judge.SHA256File(t, out2)
	if a != b {
		t.Fatalf("builds differ: %s vs %s", a, b)
	}
	t.Logf("sha256 %s (both builds)", a)
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.yaml"), []byte("layers:\n  - path: x.tar\n    shaa: 1\n"))
	_, se, code := kiln(t, dir, nil, "build", "bad.yaml")
	if code != 2 || !strings.Contains(se, "bad.yaml:3: unknown key \"shaa\"") {
		t.Errorf("invalid spec: exit %d, %q", code, se)
	}
	_, se, code = kiln(t, dir, nil, "build", "--no-such-flag")
	if code != 2 {
		t.Errorf("bad flag: exit %d, %q", code, se)
	}

	// A hostile layer: exit 3, the layer and the entry named, no output.
	writeFile(t, filepath.Join(dir, "evil.tar"), makeTar(t, []tEntry{reg("ok", []byte("x"), 0o644), reg("../../etc/evil", []byte("x"), 0o644)}))
	writeFile(t, filepath.Join(dir, "evil.yaml"), []byte(`layers:
  - path: evil.tar
disk:
  size: 64MiB
  partitions:
    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}
output:
  path: out/evil.img
`))
	_, se, code = kiln(t, dir, nil, "build", "evil.yaml")
	if code != 3 || !strings.Contains(se, "evil.tar") || !strings.Contains(se, "../../etc/evil") {
		t.Errorf("hostile layer: exit %d, %q", code, se)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
		t.Errorf("a failed build left files: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); err == nil {
		t.Errorf("a layer entry was written to the host")
	}
	out, _, code := kiln(t, dir, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "kiln ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestInspectForeignImage reads an image partitioned by sgdisk and
// formatted by mkfs.vfat and mke2fs at offsets: inspect is not only for
// kiln's own images.
func TestInspectForeignImage(t *testing.T) {
	judge.Need(t, "sgdisk", "mkfs.vfat", "mke2fs")
	img := filepath.Join(t.TempDir(), "foreign.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(128 << 20)
	f.Close()
	steps := [][]string{
		{"sgdisk", "-U", "11111111-2222-3333-4444-555555555555", "-n", "1:2048:+40M", "-t", "1:ef00", "-c", "1:efi", "-u", "1:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "-n", "2:0:0", "-t", "2:8304", "-c", "2:system", img},
		{"mkfs.vfat", "-F", "32", "-i", "1234abcd", "-n", "FOREIGN", "--offset", "2048", img, fmt.Sprint(40 << 10)},
		{"mke2fs", "-q", "-t", "ext4", "-L", "sysroot", "-U", "01234567-89ab-cdef-0123-456789abcdef", "-E", fmt.Sprintf("offset=%d", 83968*512), img, "40M"},
	}
	for _, s := range steps {
		if out, code := judge.Run(t, nil, s[0], s[1:]...); code != 0 {
			t.Fatalf("%v: %s", s, out)
		}
	}
	out, se, code := kiln(t, "", nil, "inspect", "--json", img)
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, se)
	}
	var rep struct {
		Table      string `json:"table"`
		DiskGUID   string `json:"disk_guid"`
		Partitions []struct {
			Name, Type, GUID string
			FirstLBA         int64                               `json:"first_lba"`
			FS               *struct{ Type, Label, UUID string } `json:"filesystem"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p := rep.Partitions
	if rep.Table != "gpt" || rep.DiskGUID != "11111111-2222-3333-4444-555555555555" || len(p) != 2 {
		t.Fatalf("table: %s", out)
	}
	if p[0].Name != "efi" || p[0].Type != "esp" || p[0].GUID != "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" || p[0].FS == nil ||
		p[0].FS.Type != "vfat" || p[0].FS.Label != "FOREIGN" || p[0].FS.UUID != "1234-ABCD" {
		t.Errorf("esp: %s", out)
	}
	if p[1].Name != "system" || p[1].Type != "root-x86-64" || p[1].FirstLBA != 83968 || p[1].FS == nil ||
		p[1].FS.Type != "ext4" || p[1].FS.Label != "sysroot" || p[1].FS.UUID != "01234567-89ab-cdef-0123-456789abcdef" {
		t.Errorf("root: %s", out)
	}
	txt, _, code := kiln(t, "", nil, "inspect", img)
	if code != 0 || !strings.Contains(txt, `label="sysroot"`) || !strings.Contains(txt, "disk GUID 11111111-2222-3333-4444-555555555555") {
		t.Errorf("text report:\n%s", txt)
	}
}
