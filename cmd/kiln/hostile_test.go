package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// The hostile corpus: layers and specs that are broken or malicious, each
// run through the kiln binary with its expected outcome. Whatever the
// outcome, nothing from a layer reaches the host: the test's folder must
// hold, after the build, exactly what it held before (plus the new image
// when the build succeeds), the spill folder stays empty and the output
// folder never holds a temporary file.

// hostileSpec is a one-partition spec; %[1]s is the layer's path.
const hostileSpec = `epoch: 1700000000
layers:
  - path: %[1]s
disk:
  size: 64MiB
  partitions:
    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}
output:
  path: out/img.raw
`

// hostileESPSpec adds an ESP mounted at /boot/efi.
const hostileESPSpec = `epoch: 1700000000
layers:
  - path: %[1]s
disk:
  size: 128MiB
  partitions:
    - {name: esp, type: esp, filesystem: vfat, size: 40MiB, mount: /boot/efi}
    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}
output:
  path: out/img.raw
`

// previousImage is what out/img.raw holds before each build: a failed
// build must leave it as it is.
const previousImage = "the previous image, which a failed build must not touch\n"

type hostileCase struct {
	name  string
	layer []byte // written to layers/NAME; nil skips it
	// mkLayer makes the layer when it depends on the test's folder.
	mkLayer func(t *testing.T, dir string) []byte
	files   map[string][]byte // more files, relative to the test's folder
	spec    string            // the spec, %[1]s being the layer's path (default hostileSpec)
	args    []string          // more arguments of kiln build
	code    int               // expected exit code
	want    []string          // expected in stderr
	// check judges the root filesystem of a successful build.
	check func(t *testing.T, img hostileImage)
}

// hostileImage is what a successful build made.
type hostileImage struct {
	root  map[string]judge.Node // the root filesystem, read back by debugfs
	fsimg string                // the root filesystem, extracted
	dir   string                // the test's folder
}

func TestHostile(t *testing.T) {
	judge.Need(t, "debugfs", "e2fsck", "sfdisk")
	cases := hostileCases(t)
	if len(cases) < 30 {
		t.Fatalf("the corpus has %d cases; it should have at least 30", len(cases))
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("two cases are named %s", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runHostile(t, c)
		})
	}
}

func runHostile(t *testing.T, c hostileCase) {
	dir := t.TempDir()
	layerPath := "layers/" + c.name
	if c.mkLayer != nil {
		c.layer = c.mkLayer(t, dir)
	}
	if c.layer != nil {
		writeFile(t, filepath.Join(dir, layerPath), c.layer)
	}
	for name, b := range c.files {
		writeFile(t, filepath.Join(dir, name), b)
	}
	spec := c.spec
	if spec == "" {
		spec = hostileSpec
	}
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(fmt.Sprintf(spec, layerPath)))
	writeFile(t, filepath.Join(dir, "out/img.raw"), []byte(previousImage))
	if err := os.Mkdir(filepath.Join(dir, "spill"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	args := append([]string{"build", "-q", "--tmpdir", "spill"}, c.args...)
	_, stderr, code := kiln(t, dir, nil, args...)
	if code != c.code {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, c.code, stderr)
	}
	t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
	for _, w := range c.want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if code == 3 && !strings.Contains(stderr, "layer "+layerPath) {
		t.Errorf("the error does not name the layer %s:\n%s", layerPath, stderr)
	}
	after := snapshot(t, dir)
	if code != 0 {
		// One line: a hostile name cannot forge more.
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "kiln: ") {
			t.Errorf("the error is not one line starting with \"kiln: \": %q", stderr)
		}
		diffSnapshots(t, before, after, "")
		return
	}
	if stderr != "" {
		t.Errorf("a successful quiet build printed: %s", stderr)
	}
	diffSnapshots(t, before, after, "out/img.raw")
	if c.check == nil {
		t.Fatal("a case that succeeds needs a check of its image")
	}
	fsimg := partitionNamed(t, filepath.Join(dir, "out/img.raw"), "root")
	judge.E2fsck(t, fsimg)
	c.check(t, hostileImage{root: judge.ReadExt4(t, fsimg), fsimg: fsimg, dir: dir})
}

// snapshot describes every file under dir: type, size and content hash,
// or symlink target. Device nodes, fifos and sockets show up as such.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			snap[rel] = fmt.Sprintf("file %d %s", len(b), hex.EncodeToString(sum[:8]))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			snap[rel] = "symlink " + target
		default:
			snap[rel] = fi.Mode().Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// diffSnapshots fails on every difference but the one at except, which
// must have become a regular file other than the previous image.
func diffSnapshots(t *testing.T, before, after map[string]string, except string) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case p == except:
			if !ok || !strings.HasPrefix(a, "file ") || a == b {
				t.Errorf("%s: want a new image, got %q (was %q)", p, a, b)
			}
		case !ok:
			t.Errorf("%s was removed from the host", p)
		case a != b:
			t.Errorf("%s changed on the host: %q, was %q", p, a, b)
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared on the host: %s", p, a)
		}
	}
}

// partitionNamed extracts the partition of that name from img.
func partitionNamed(t *testing.T, img, name string) string {
	t.Helper()
	for _, p := range partitions(t, img) {
		if p.Name == name {
			return judge.Extract(t, img, p.Start*512, p.Size*512)
		}
	}
	t.Fatalf("%s has no partition named %s", img, name)
	return ""
}

// Raw tar blocks, for archives that archive/tar's writer refuses to make.

// rawHeader is a ustar header block; name is copied as is, NULs included.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1600000000))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// pad512 pads b with zeros to a whole number of blocks.
func pad512(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// rawPAX is a PAX extended header ('x') holding the records, each
// "key=value", and its data.
func rawPAX(recs ...string) []byte {
	var d []byte
	for _, r := range recs {
		n := len(r) + 3
		for {
			s := fmt.Sprintf("%d %s\n", n, r)
			if len(s) == n {
				d = append(d, s...)
				break
			}
			n = len(s)
		}
	}
	return append(rawHeader("PaxHeaders/entry", 'x', int64(len(d))), pad512(d)...)
}

// rawTar joins blocks and ends the archive.
func rawTar(blocks ...[]byte) []byte {
	return append(bytes.Join(blocks, nil), make([]byte, 1024)...)
}

// corrupt flips the bytes of b in the middle of it.
func corrupt(b []byte) []byte {
	c := append([]byte(nil), b...)
	for i := len(c) / 2; i < len(c)/2+16 && i < len(c); i++ {
		c[i] ^= 0x5a
	}
	return c
}

func half(b []byte) []byte { return b[:len(b)/2] }

// xzDict sets the LZMA2 dictionary size byte of the first block of an xz
// file (40: 4 GiB) and mends the header's CRC32.
func xzDict(t *testing.T, b []byte, d byte) []byte {
	b = append([]byte(nil), b...)
	h := b[12 : 12+(int(b[12])+1)*4]
	i := bytes.Index(h, []byte{0x21, 0x01})
	if i < 0 {
		t.Fatal("no LZMA2 filter in the first block header")
	}
	h[i+2] = d
	binary.LittleEndian.PutUint32(h[len(h)-4:], crc32.ChecksumIEEE(h[:len(h)-4]))
	return b
}

// zeros is n zero bytes.
func zeros(n int) []byte { return make([]byte, n) }

func hostileCases(t *testing.T) []hostileCase {
	tarOf := func(es ...tEntry) []byte { return makeTar(t, es) }
	ok := reg("ok", []byte("fine\n"), 0o644)
	// A layer whose data is big enough that halving or corrupting the
	// compressed stream hits file data.
	payload := tarOf(ok, reg("etc/data", pseudo(7, 64<<10), 0o644))

	name255 := strings.Repeat("n", 255)
	path4096 := strings.Repeat(strings.Repeat("p", 240)+"/", 16) + strings.Repeat("p", 240)
	path4097 := path4096 + "q"

	host := func(dir string) string { return filepath.Join(dir, "host-target") }

	devs := []tEntry{
		tdir("dev", 0o755),
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3, mtime: 1600000000},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 8, minor: 0, mtime: 1600000000},
		{name: "dev/huge", typ: tar.TypeChar, mode: 0o600, major: 4095, minor: 1048575, mtime: 1600000000},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600, mtime: 1600000000},
		reg("usr/bin/su", []byte("setuid"), 0o4755),
		reg("usr/bin/wall", []byte("setgid"), 0o2755),
		tdir("tmp", 0o1777),
		{name: "usr/bin/owned", typ: tar.TypeReg, mode: 0o6711, uid: 70000, gid: 70001, data: []byte("x"), mtime: 1600000000},
	}

	// Decompression bombs: a header that announces 1.5 GiB, in a few KiB
	// of zstd; 3 files of 1.5 MiB against --max-layer-bytes 4MiB; 8 MiB
	// of zeros after the end of the archive, inside the gzip stream.
	bombHeader := zst(t, append(rawHeader("bomb", '0', 3<<29), zeros(1<<20)...))
	var three []tEntry
	for i := range 3 {
		three = append(three, reg(fmt.Sprintf("zero-%d", i), zeros(3<<19), 0o644))
	}
	threeGz := gz(t, tarOf(three...))
	trailer := gz(t, append(tarOf(ok), zeros(8<<20)...))
	// A GNU sparse file (PAX format 1.0) of 2 TiB, of which 512 bytes are
	// stored: a bomb in a plain tar.
	const sparseSize = 2 << 40
	sparseData := append(pad512([]byte(fmt.Sprintf("1\n%d\n512\n", sparseSize-512))), bytes.Repeat([]byte{'s'}, 512)...)
	sparseBomb := rawTar(
		rawPAX("GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=sparse-bomb", fmt.Sprintf("GNU.sparse.realsize=%d", int64(sparseSize))),
		rawHeader("GNUSparseFile.0/sparse-bomb", '0', int64(len(sparseData))), sparseData)

	// The mount point of the ESP is a file, or behind a symlink.
	mountFile := tarOf(tdir("boot", 0o755), reg("boot/efi", []byte("not a dir"), 0o644))
	mountLink := tarOf(tdir("usr", 0o755), tdir("usr/boot", 0o755), tsym("boot", "usr/boot"))

	return []hostileCase{
		// Names that climb out of the layer.
		{name: "dotdot-traversal", layer: tarOf(ok, reg("../../etc/evil", []byte("x"), 0o644)), code: 3,
			want: []string{"entry ../../etc/evil", "climbs above the layer root"}},
		{name: "dotdot-inside-name", layer: tarOf(tdir("a", 0o755), reg("a/../../evil", []byte("x"), 0o644)), code: 3,
			want: []string{"entry a/../../evil", "climbs above the layer root"}},
		{name: "absolute-names", layer: tarOf(reg("/etc/abs", []byte("abs"), 0o644), reg("/./opt//x/../y", []byte("y"), 0o644)), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				// Absolute names are relative to the layer root, as GNU tar extracts them.
				wantFile(t, root, "/etc/abs", "abs")
				wantFile(t, root, "/opt/y", "y")
				wantAbsent(t, root, "/opt/x")
			}},
		// Symlinks are resolved inside the merged tree, clamped at its root.
		{name: "symlink-escape-write-through", code: 0,
			files: map[string][]byte{"host-target/keep": []byte("host file\n")},
			mkLayer: func(t *testing.T, dir string) []byte {
				return makeTar(t, []tEntry{
					tsym("escape", host(dir)), reg("escape/pwned", []byte("through an absolute symlink"), 0o644),
					tsym("up", "../../../../../.."), reg("up/etc/up-pwned", []byte("through a relative symlink"), 0o644),
					tsym("abs-etc", "/etc"), thard("hl", "abs-etc/up-pwned"),
				})
			},
			check: func(t *testing.T, img hostileImage) {
				root, dir := img.root, img.dir
				// The file lands inside the image, at the host path the
				// symlink names, taken from the image's root; the host's
				// folder is untouched (the snapshot says so too).
				wantFile(t, root, host(dir)+"/pwned", "through an absolute symlink")
				wantAbsent(t, root, host(dir)+"/keep")
				if _, err := os.Lstat(filepath.Join(host(dir), "pwned")); err == nil {
					t.Errorf("the layer wrote %s on the host", filepath.Join(host(dir), "pwned"))
				}
				// "../../../../../.." is clamped at the root.
				wantFile(t, root, "/etc/up-pwned", "through a relative symlink")
				if n := root["/escape"]; n.Type != "symlink" || n.Target != host(dir) {
					t.Errorf("/escape: %v, want the symlink kept verbatim", n)
				}
				// A hardlink through a symlink names the same inode.
				if a, b := root["/etc/up-pwned"], root["/hl"]; a.Inode == 0 || a.Inode != b.Inode {
					t.Errorf("/hl is inode %d, /etc/up-pwned is %d", b.Inode, a.Inode)
				}
			}},
		{name: "symlink-loop-in-parents", layer: tarOf(tsym("a", "b"), tsym("b", "a"), reg("a/f", []byte("x"), 0o644)), code: 3,
			want: []string{`entry "a/f"`, "too many levels of symbolic links"}},
		// Hardlinks.
		{name: "hardlink-escaping", layer: tarOf(ok, thard("x", "../../../etc/shadow")), code: 3,
			want: []string{"entry x", "hardlink target", "climbs above the layer root"}},
		{name: "hardlink-missing", layer: tarOf(ok, thard("x", "nope")), code: 3,
			want: []string{`entry "x"`, `hardlink target "nope" does not exist`}},
		{name: "hardlink-host-file", layer: tarOf(tsym("hostetc", "../../../../etc"), thard("x", "hostetc/passwd")), code: 3,
			// The host has /etc/passwd; the layers do not.
			want: []string{`entry "x"`, `hardlink target "hostetc/passwd" does not exist`}},
		{name: "hardlink-to-directory", layer: tarOf(tdir("d", 0o755), thard("x", "d")), code: 3,
			want: []string{`entry "x"`, `hardlink target "d" is a directory`}},
		{name: "hardlink-to-root", layer: tarOf(ok, thard("x", "./")), code: 3,
			want: []string{"entry x", "hardlink to the layer root"}},
		// Whiteouts.
		{name: "whiteout-dot", layer: tarOf(ok, twh(".wh..")), code: 3,
			want: []string{`entry ".wh.."`, "malformed whiteout"}},
		{name: "whiteout-dotdot", layer: tarOf(ok, twh("etc/.wh...")), code: 3,
			want: []string{`entry "etc/.wh..."`, "malformed whiteout"}},
		{name: "whiteout-root", layer: tarOf(ok, twh("/.wh.")), code: 3,
			want: []string{`entry ".wh."`, "malformed whiteout"}},
		{name: "whiteout-of-whiteout", layer: tarOf(ok, twh("a/.wh..wh.b")), code: 3,
			want: []string{`entry "a/.wh..wh.b"`, "malformed whiteout"}},
		{name: "whiteout-as-directory", layer: tarOf(ok, reg("a/.wh.b/c", []byte("x"), 0o644)), code: 3,
			want: []string{`entry "a/.wh.b/c"`, "is used as a directory"}},
		{name: "whiteout-of-nothing", layer: tarOf(ok, twh(".wh.never-was"), twh("no/such/.wh..wh..opq")), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				// A whiteout of a missing name is a no-op; whiteouts are never files.
				wantFile(t, root, "/ok", "fine\n")
				wantAbsent(t, root, "/.wh.never-was")
				wantAbsent(t, root, "/no/such/.wh..wh..opq")
			}},
		// Duplicates: the later entry wins.
		{name: "duplicate-entries", code: 0, layer: tarOf(
			reg("dup", []byte("first"), 0o600), reg("dup", []byte("second"), 0o644),
			reg("f", []byte("file"), 0o644), tdir("f", 0o700), reg("f/c", []byte("c"), 0o644),
			tdir("d", 0o755), reg("d/c", []byte("c"), 0o644), reg("d", []byte("now a file"), 0o640),
			reg("p", []byte("a file in the way"), 0o644), reg("p/q", []byte("q"), 0o644),
			reg("a", []byte("A"), 0o644), thard("b", "a"), reg("a", []byte("A2"), 0o644)),
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				wantFile(t, root, "/dup", "second")
				if root["/dup"].Mode != 0o644 {
					t.Errorf("/dup has mode %o, want the later entry's 644", root["/dup"].Mode)
				}
				if n := root["/f"]; n.Type != "dir" || n.Mode != 0o700 {
					t.Errorf("/f: %v, want the later directory", n)
				}
				wantFile(t, root, "/f/c", "c")
				wantFile(t, root, "/d", "now a file")
				wantAbsent(t, root, "/d/c")
				// A file in the way of a parent becomes an implicit directory.
				if n := root["/p"]; n.Type != "dir" || n.Mode != 0o755 || n.Mtime != 1700000000 {
					t.Errorf("/p: %v, want an implicit directory", n)
				}
				wantFile(t, root, "/p/q", "q")
				// The hardlink keeps the inode the name had when it was made.
				wantFile(t, root, "/a", "A2")
				wantFile(t, root, "/b", "A")
			}},
		// Lengths.
		{name: "name-255-bytes", layer: tarOf(reg("d/"+name255, []byte("long"), 0o644)), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				wantFile(t, root, "/d/"+name255, "long")
			}},
		{name: "name-256-bytes", layer: tarOf(ok, reg("d/"+name255+"x", []byte("x"), 0o644)), code: 3,
			want: []string{"entry d/" + name255 + "x", "name element of 256 bytes (the limit is 255)"}},
		{name: "path-4096-bytes", layer: tarOf(reg(path4096, []byte("deep"), 0o644)), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				wantFile(t, root, "/"+path4096, "deep")
			}},
		{name: "path-4097-bytes", layer: tarOf(ok, reg(path4097, []byte("x"), 0o644)), code: 3,
			want: []string{"path of 4097 bytes (the limit is 4096)"}},
		// Encodings.
		{name: "invalid-utf8-on-ext4", layer: tarOf(reg("bad-\xff\xfe-name", []byte("bytes"), 0o644)), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				// ext4 names are bytes: kept as they are.
				wantFile(t, root, "/bad-\xff\xfe-name", "bytes")
			}},
		{name: "invalid-utf8-on-esp", layer: tarOf(ok, reg("boot/efi/bad-\xff-name", []byte("x"), 0o644)), spec: hostileESPSpec, code: 1,
			// FAT stores names in UTF-16: the build fails and names the file.
			want: []string{"partition esp (vfat)", `name "bad-\xff-name" is not valid UTF-8`}},
		{name: "control-characters-on-esp", layer: tarOf(ok, reg("boot/efi/a\nkiln: forged line", []byte("x"), 0o644)), spec: hostileESPSpec, code: 1,
			// FAT cannot store the name, and pkg/fs/fat prints the path as
			// it is: kiln escapes what is not printable in every message.
			want: []string{`fat: /a\nkiln: forged line: name "a\nkiln: forged line" has the character '\n'`}},
		{name: "nul-in-ustar-name", layer: rawTar(rawHeader("evil\x00/../../../x", '0', 0)), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				// A ustar name ends at its first NUL, for every tar reader.
				wantFile(t, root, "/evil", "")
				wantAbsent(t, root, "/x")
			}},
		{name: "nul-in-pax-path", layer: rawTar(rawHeader("ok", '0', 0), rawPAX("path=a\x00/../../b"), rawHeader("placeholder", '0', 0)), code: 3,
			want: []string{"entry ok: reading on after this entry", "invalid tar header"}},
		{name: "control-characters-quoted", layer: tarOf(ok, reg("../\n\x1b[31mkiln: fake line", []byte("x"), 0o644)), code: 3,
			want: []string{`entry "../\n\x1b[31mkiln: fake line"`}},
		// Entry kinds.
		{name: "devices-and-setuid", layer: tarOf(devs...), code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				want := map[string]judge.Node{
					"/dev/null": {Type: "char", Mode: 0o666, Major: 1, Minor: 3},
					"/dev/sda":  {Type: "block", Mode: 0o660, GID: 6, Major: 8},
					// New-style device numbers (past 255): judge.ReadExt4
					// reads debugfs's "(New-style) Device major/minor" line;
					// checked against the raw debugfs output below too.
					"/dev/huge":      {Type: "char", Mode: 0o600, Major: 4095, Minor: 1048575},
					"/run/fifo":      {Type: "fifo", Mode: 0o600},
					"/usr/bin/su":    {Type: "file", Mode: 0o4755},
					"/usr/bin/wall":  {Type: "file", Mode: 0o2755},
					"/usr/bin/owned": {Type: "file", Mode: 0o6711, UID: 70000, GID: 70001},
					"/tmp":           {Type: "dir", Mode: 0o1777},
				}
				for p, w := range want {
					g := root[p]
					if g.Type != w.Type || g.Mode != w.Mode || g.UID != w.UID || g.GID != w.GID || g.Major != w.Major || g.Minor != w.Minor {
						t.Errorf("%s: %v, want %s %04o %d:%d dev=%d:%d", p, g, w.Type, w.Mode, w.UID, w.GID, w.Major, w.Minor)
					}
				}
				out, _ := judge.Run(t, nil, "debugfs", "-R", "stat /dev/huge", img.fsimg)
				if !strings.Contains(out, "Device major/minor number: 4095:1048575") {
					t.Errorf("/dev/huge is not device 4095:1048575:\n%s", out)
				}
			}},
		{name: "unsupported-entry-type", layer: rawTar(rawHeader("vol", 'M', 0)), code: 3,
			want: []string{"entry vol", "unsupported tar entry type 'M'"}},
		{name: "root-not-a-directory", layer: rawTar(rawHeader("./", '0', 0)), code: 3,
			want: []string{`entry ./`, "the layer root must be a directory, not a file"}},
		{name: "symlink-empty-target", layer: tarOf(ok, tsym("l", "")), code: 3,
			want: []string{"entry l", "symlink with an empty target"}},
		{name: "xattr-too-large", layer: tarOf(ok, tEntry{name: "x", typ: tar.TypeReg, mode: 0o644, mtime: 1600000000,
			xattrs: map[string]string{"user.big": strings.Repeat("v", 65537)}}), code: 3,
			want: []string{"entry x", "extended attribute user.big: value of 65537 bytes (the limit is 65536)"}},
		// Broken archives.
		{name: "not-a-layer", layer: pseudo(9, 4096), code: 3,
			want: []string{"unrecognised format"}},
		{name: "empty-file", layer: []byte{}, code: 3,
			want: []string{"unrecognised format"}},
		{name: "missing-layer", code: 3,
			want: []string{"no such file or directory"}},
		{name: "truncated-tar-in-data", layer: payload[:512*3+30000], code: 3,
			want: []string{"entry etc/data", "truncated archive"}},
		{name: "truncated-tar-in-header", layer: payload[:512*2+200], code: 3,
			want: []string{"entry ok", "unexpected EOF"}},
		{name: "tar-without-end-blocks", layer: payload[:len(payload)-1024], code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				// Accepted, as GNU tar, libarchive and archive/tar accept it.
				wantFile(t, root, "/etc/data", string(pseudo(7, 64<<10)))
			}},
		{name: "truncated-gzip", layer: half(gz(t, payload)), code: 3, want: []string{"unexpected EOF"}},
		{name: "corrupt-gzip", layer: corrupt(gz(t, payload)), code: 3, want: []string{"gzip"}},
		{name: "gzip-trailing-garbage", layer: append(gz(t, payload), "garbage after the stream"...), code: 3, want: []string{"gzip: invalid header"}},
		{name: "truncated-xz", layer: half(xzc(t, payload)), code: 3, want: []string{"xz: truncated or corrupt: no stream footer"}},
		{name: "corrupt-xz", layer: corrupt(xzc(t, payload)), code: 3, want: []string{"xz"}},
		{name: "xz-huge-dictionary", layer: xzDict(t, xzc(t, payload), 40), code: 3,
			// Refused from its block header, before the decoder allocates 4 GiB.
			want: []string{"xz: dictionary too large: the block at byte 12 asks for a dictionary of 4.0 GiB, more than the 128 MiB allowed"}},
		{name: "truncated-zstd", layer: half(zst(t, payload)), code: 3, want: []string{"unexpected EOF"}},
		{name: "corrupt-zstd", layer: corrupt(zst(t, payload)), code: 3, want: []string{"zstd"}},
		{name: "sha256-pin-mismatch", layer: payload, code: 3,
			spec: strings.Replace(hostileSpec, "  - path: %[1]s\n", "  - path: %[1]s\n    sha256: "+strings.Repeat("0", 64)+"\n", 1),
			want: []string{"digest mismatch", "pinned sha256:" + strings.Repeat("0", 64)}},
		// Bombs and limits.
		{name: "bomb-announced", layer: bombHeader, code: 3,
			want: []string{"entry bomb: too large: uncompressed, the layer is over 1 GiB, more than 2000 times its", "decompression bomb", "--max-layer-ratio"}},
		{name: "bomb-ratio-lifted", layer: bombHeader, args: []string{"--max-layer-ratio", "0"}, code: 3,
			// Without the ratio limit the entry is read, and found cut short.
			want: []string{"entry bomb: reading data", "unexpected EOF"}},
		{name: "bomb-sparse", layer: sparseBomb, code: 3,
			want: []string{"entry sparse-bomb: too large"}},
		{name: "max-layer-bytes", layer: threeGz, args: []string{"--max-layer-bytes", "4MiB"}, code: 3,
			want: []string{"entry zero-2: too large: uncompressed, the layer is over its limit of 4 MiB", "--max-layer-bytes"}},
		{name: "max-layer-bytes-default", layer: threeGz, code: 0,
			check: func(t *testing.T, img hostileImage) {
				root := img.root
				wantFile(t, root, "/zero-2", string(zeros(3<<19)))
			}},
		{name: "bomb-after-the-archive", layer: trailer, args: []string{"--max-layer-bytes", "4MiB"}, code: 3,
			want: []string{"after the end of the tar archive: too large"}},
		{name: "max-layer-bytes-bad-flag", layer: payload, args: []string{"--max-layer-bytes", "lots"}, code: 2,
			want: []string{"--max-layer-bytes: invalid size"}},
		// Partitions, mounts and the spec.
		{name: "file-larger-than-partition", layer: tarOf(ok, reg("big.bin", pseudo(8, 20<<20), 0o644)), code: 1,
			spec: strings.Replace(hostileSpec, "size: rest", "size: 8MiB", 1),
			want: []string{"partition root (ext4)", "/big.bin", "does not fit"}},
		{name: "partition-larger-than-disk", layer: payload, code: 2,
			spec: strings.Replace(hostileSpec, "size: rest", "size: 100MiB", 1),
			want: []string{"kiln.yaml:5: disk:"}},
		{name: "partitions-overlap-the-disk", layer: payload, code: 2,
			spec: strings.Replace(hostileSpec, "    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\n",
				"    - {name: root, type: root, filesystem: ext4, size: 40MiB, mount: /}\n    - {name: var, type: var, filesystem: ext4, size: 40MiB, mount: /var}\n", 1),
			want: []string{"kiln.yaml:5: disk:"}},
		{name: "two-rest-partitions", layer: payload, code: 2,
			spec: strings.Replace(hostileSpec, "    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\n",
				"    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\n    - {name: var, type: var, filesystem: ext4, size: rest, mount: /var}\n", 1),
			want: []string{"kiln.yaml:8: disk.partitions[1].size: only one partition may take the rest"}},
		{name: "same-mount-twice", layer: payload, code: 2,
			spec: strings.Replace(hostileSpec, "    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\n",
				"    - {name: root, type: root, filesystem: ext4, size: rest, mount: /}\n    - {name: var, type: var, filesystem: ext4, size: 8MiB, mount: /}\n", 1),
			want: []string{"kiln.yaml:8: disk.partitions[1].mount: / is already the mount of root"}},
		{name: "mount-not-clean", layer: payload, code: 2, spec: strings.Replace(hostileESPSpec, "mount: /boot/efi", "mount: /boot/../efi", 1),
			want: []string{"kiln.yaml:7:", `"/boot/../efi" must be a clean absolute path`}},
		{name: "mount-on-a-file", layer: mountFile, spec: hostileESPSpec, code: 2,
			want: []string{"kiln.yaml:7: partition esp: mount point /boot/efi: /boot/efi is a file, not a directory"}},
		{name: "mount-behind-a-symlink", layer: mountLink, spec: hostileESPSpec, code: 2,
			want: []string{"kiln.yaml:7: partition esp: mount point /boot/efi: /boot is a symlink, not a directory"}},
		{name: "spec-unknown-key", layer: payload, code: 2, spec: strings.Replace(hostileSpec, "  size: 64MiB", "  size: 64MiB\n  sise: 1GiB", 1),
			want: []string{`kiln.yaml:6: unknown key "sise" in disk`}},
		{name: "spec-bad-size", layer: payload, code: 2, spec: strings.Replace(hostileSpec, "  size: 64MiB", "  size: 64XB", 1),
			want: []string{`kiln.yaml:5: disk.size: invalid size "64XB"`}},
		{name: "spec-negative-size", layer: payload, code: 2, spec: strings.Replace(hostileSpec, "size: rest", "size: -8MiB", 1),
			want: []string{`kiln.yaml:7: disk.partitions[0].size: invalid size "-8MiB"`}},
		{name: "spec-huge-size", layer: payload, code: 2, spec: strings.Replace(hostileSpec, "  size: 64MiB", "  size: 9999999999TiB", 1),
			want: []string{`kiln.yaml:5: disk.size: invalid size "9999999999TiB"`}},
		{name: "spec-bad-pin", layer: payload, code: 2,
			spec: strings.Replace(hostileSpec, "  - path: %[1]s\n", "  - path: %[1]s\n    sha256: nothex\n", 1),
			want: []string{"kiln.yaml:4: layers[0].sha256: want 64 hex digits"}}, // the line of sha256:
	}
}

// wantFile checks that p is a regular file holding data.
func wantFile(t *testing.T, root map[string]judge.Node, p, data string) {
	t.Helper()
	n, ok := root[p]
	switch {
	case !ok:
		t.Errorf("%q is not in the image", p)
	case n.Type != "file" || n.SHA256 != judge.SHA256([]byte(data)):
		t.Errorf("%q: %v, want a file of %d bytes, sha256 %s", p, n, len(data), judge.SHA256([]byte(data)))
	}
}

// wantAbsent checks that nothing is at p.
func wantAbsent(t *testing.T, root map[string]judge.Node, p string) {
	t.Helper()
	if n, ok := root[p]; ok {
		t.Errorf("%q is in the image: %v", p, n)
	}
}
