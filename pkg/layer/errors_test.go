package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"

	"github.com/kiln-build/kiln/internal/testkit"
)

func TestCleanPath(t *testing.T) {
	long := strings.Repeat("x", 255)
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "etc/passwd", want: "etc/passwd"},
		{in: "./etc/passwd", want: "etc/passwd"},
		{in: "/etc/passwd", want: "etc/passwd"},
		{in: "//etc//./passwd/", want: "etc/passwd"},
		{in: "a/../b", want: "b"},
		{in: "a/b/../../c", want: "c"},
		{in: ".", want: ""},
		{in: "./", want: ""},
		{in: "/", want: ""},
		{in: "", want: ""},
		{in: "a/..", want: ""},
		{in: "..a/b..", want: "..a/b.."},
		{in: ".wh..wh..opq", want: ".wh..wh..opq"},
		{in: long, want: long},
		{in: "..", bad: true},
		{in: "../x", bad: true},
		{in: "a/../../x", bad: true},
		{in: "/../x", bad: true},
		{in: "./../x", bad: true},
		{in: "a\x00b", bad: true},
		{in: long + "x", bad: true},
		{in: "a/" + long + "x" + "/b", bad: true},
		{in: strings.Repeat("abcdefg/", 512) + "x", bad: true}, // 4097 bytes
	}
	for _, c := range cases {
		got, err := cleanPath(c.in)
		if c.bad {
			if err == nil || !errors.Is(err, ErrUnsafePath) {
				t.Errorf("cleanPath(%.40q) = %q, %v; want an unsafe path error", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("cleanPath(%.40q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if p := strings.Repeat("abcdefg/", 511) + "abc"; len(p) != 4091 {
		t.Fatal("bad fixture")
	} else if _, err := cleanPath(p); err != nil {
		t.Errorf("a path of 4091 bytes: %v", err)
	}
}

// TestBreakouts: names that escape the root, or that no filesystem can
// hold, are errors naming the layer and the entry.
func TestBreakouts(t *testing.T) {
	cases := []struct {
		name  string
		ents  []tarEntry
		entry string // the entry the error must name
		cause error
	}{
		{"dotdot", []tarEntry{fileE("../x", "x", 0o644)}, "../x", ErrUnsafePath},
		{"inner dotdot", []tarEntry{fileE("a/../../x", "x", 0o644)}, "a/../../x", ErrUnsafePath},
		{"absolute dotdot", []tarEntry{fileE("/../etc/passwd", "x", 0o644)}, "/../etc/passwd", ErrUnsafePath},
		{"dir dotdot", []tarEntry{dirE("a/b/../../../", 0o755)}, "a/b/../../../", ErrUnsafePath},
		{"symlink dotdot name", []tarEntry{linkE("../l", "/etc", tar.TypeSymlink)}, "../l", ErrUnsafePath},
		{"hardlink escaping", []tarEntry{fileE("ok", "x", 0o644), linkE("l", "../../etc/shadow", tar.TypeLink)}, "l", ErrUnsafePath},
		{"hardlink absolute escaping", []tarEntry{linkE("l", "/a/../../etc/shadow", tar.TypeLink)}, "l", ErrUnsafePath},
		{"hardlink to root", []tarEntry{linkE("l", "./", tar.TypeLink)}, "l", nil},
		{"long element", []tarEntry{fileE("a/"+strings.Repeat("n", 256), "x", 0o644)}, "a/" + strings.Repeat("n", 256), ErrUnsafePath},
		{"long path", []tarEntry{fileE(strings.Repeat("d/", 2100)+"f", "x", 0o644)}, strings.Repeat("d/", 2100) + "f", ErrUnsafePath},
		{"empty symlink", []tarEntry{linkE("s", "", tar.TypeSymlink)}, "s", nil},
		{"root as a file", []tarEntry{fileE(".", "x", 0o644)}, ".", nil},
		{"root as a symlink", []tarEntry{linkE("/", "/etc", tar.TypeSymlink)}, "/", nil},
		{"unknown type", []tarEntry{{hdr: tar.Header{Name: "x", Typeflag: 'Z', Mode: 0o644}}}, "x", nil},
		{"bad xattr base64", []tarEntry{{hdr: tar.Header{Name: "x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"LIBARCHIVE.xattr.user.x": "!!"}}}}, "x", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "evil.tar", buildTar(t, c.ents...))
			err := openWalk(path, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			wantError(t, err, path, c.entry, c.cause)
		})
	}

	// A NUL byte cannot get through archive/tar (it refuses PAX path
	// records with one, and cuts GNU long names at it); the layer is
	// still refused, naming the last good entry.
	var buf bytes.Buffer
	buf.Write(buildTar(t, fileE("ok", "x", 0o644))[:1024])
	rec := paxRecord("path", "a\x00/../../etc/passwd")
	buf.Write(rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(rec)), false, nil))
	buf.Write(pad([]byte(rec)))
	buf.Write(rawHeader("x", tar.TypeReg, 0, false, nil))
	buf.Write(make([]byte, 1024))
	path := writeFile(t, t.TempDir(), "nul.tar", buf.Bytes())
	err := openWalk(path, Options{})
	if err == nil {
		t.Fatal("NUL in a PAX path: no error")
	}
	wantError(t, err, path, "ok", tar.ErrHeader)
}

// TestTruncated: truncated or corrupt archives are errors naming the layer.
func TestTruncated(t *testing.T) {
	ents, _ := fixture("")
	raw := buildTar(t, ents...)
	// The offset of the data of "big", the largest file.
	bigAt := bytes.Index(raw, []byte(bigData[:64]))
	if bigAt < 0 {
		t.Fatal("bad fixture")
	}
	// The header after it.
	nextAt := bigAt + (len(bigData)+511)/512*512
	if !bytes.HasPrefix(raw[nextAt:], []byte("old\x00")) {
		t.Fatal("bad fixture")
	}
	corrupt := func(b []byte) []byte {
		b = bytes.Clone(b)
		for i := len(b) / 2; i < len(b)/2+16; i++ {
			b[i] ^= 0x55
		}
		return b
	}
	cases := []struct {
		name  string
		data  []byte
		entry string // "-": any
	}{
		{"tar in file data", raw[:bigAt+1000], "big"},
		{"tar in a header", raw[:nextAt+100], "big"},
		{"tar in padding", raw[:nextAt+512+100], "old"},
		{"tar in the first header", raw[:300], ""},
		{"gzip", func() []byte { b := gz(t, raw); return b[:len(b)*2/3] }(), "-"},
		{"gzip trailer", func() []byte { b := gz(t, raw); return b[:len(b)-4] }(), ""},
		{"gzip corrupt", corrupt(gz(t, raw)), "-"},
		{"xz", func() []byte { b := xzc(t, raw); return b[:len(b)*2/3] }(), "-"},
		{"xz corrupt", corrupt(xzc(t, raw)), "-"},
		{"zstd", func() []byte { b := zstdc(t, raw); return b[:len(b)*2/3] }(), "-"},
		{"zstd corrupt", corrupt(zstdc(t, raw)), "-"},
		{"bzip2", func() []byte { b := bz2c(t, raw); return b[:len(b)*2/3] }(), "-"}, // nil without bzip2
		{"deb member", func() []byte { b := buildDeb(t, "data.tar.xz", xzc(t, raw)); return b[:len(b)-100] }(), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.data == nil {
				testkit.Missing(t, "the compressor for %s", c.name)
			}
			path := writeFile(t, t.TempDir(), "layer", c.data)
			err := openWalk(path, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			wantError(t, err, path, c.entry, nil)
			t.Log(err)
		})
	}
}

// TestDetect: formats are told by magic bytes only.
func TestDetect(t *testing.T) {
	tarb := buildTar(t, fileE("a", "x", 0o644))
	v7 := rawHeader("v7file", '0', 0, false, func(b []byte) { copy(b[257:265], make([]byte, 8)) })
	cases := []struct {
		name string
		data []byte
		want kind
	}{
		{"ustar", tarb, kindTar},
		{"gnu", buildTar(t, tarEntry{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg, Format: tar.FormatGNU}}), kindTar},
		{"v7", v7, kindTar},
		{"v7 bad checksum", func() []byte { b := bytes.Clone(v7); b[0] = 'w'; return b }(), kindUnknown},
		{"empty archive", make([]byte, 1024), kindTar},
		{"gzip", gz(t, tarb), kindGzip},
		{"xz", xzc(t, tarb), kindXz},
		{"zstd", zstdc(t, tarb), kindZstd},
		{"bzip2", bz2c(t, tarb), kindBzip2},
		{"ar", buildAr(arMember{"debian-binary", []byte("2.0\n")}), kindAr},
		{"text", []byte("#!/bin/sh\necho hello\n"), kindUnknown},
		{"zip", []byte("PK\x03\x04" + strings.Repeat("\x00", 600)), kindUnknown},
		{"short", []byte("BZh9"), kindUnknown},
	}
	for _, c := range cases {
		if c.data == nil {
			continue // no compressor
		}
		if got := sniff(c.data[:min(len(c.data), sniffLen)]); got != c.want {
			t.Errorf("%s: sniffed %s, want %s", c.name, got, c.want)
		}
	}

	// Open refuses what is not a layer, and compressed non-tars.
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"text.tar":    []byte("#!/bin/sh\necho hello\n"),
		"empty.tar":   nil,
		"notar.tgz":   gz(t, []byte(strings.Repeat("not a tar ", 100))),
		"notar.xz":    xzc(t, []byte(strings.Repeat("not a tar ", 100))),
		"ar.deb":      buildAr(arMember{"foo.o", []byte("x")}),
		"nodata.deb":  buildAr(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar.gz", gz(t, tarb)}),
		"debv3.deb":   buildAr(arMember{"debian-binary", []byte("3.0\n")}, arMember{"data.tar", tarb}),
		"badtar.deb":  buildAr(arMember{"debian-binary", []byte("2.0\n")}, arMember{"data.tar.gz", gz(t, []byte("nope"))}),
		"badhdr.deb":  append([]byte("!<arch>\ndebian-binary   0           0     0     100644  4         XX"), "2.0\n"...),
		"badsize.deb": append([]byte("!<arch>\ndebian-binary   0           0     0     100644  99        `\n"), "2.0\n"...),
	} {
		path := writeFile(t, dir, name, data)
		_, err := Open(path, Options{})
		if err == nil {
			t.Errorf("%s: opened", name)
			continue
		}
		wantError(t, err, path, "", nil)
	}
}

// TestPin: a sha256 pin of the layer file.
func TestPin(t *testing.T) {
	data := gz(t, buildTar(t, fileE("a", "x", 0o644)))
	path := writeFile(t, t.TempDir(), "l.tgz", data)
	sum := judge.SHA256(data)
	for _, pin := range []string{sum, "sha256:" + sum, strings.ToUpper(sum)} {
		if _, err := Open(path, Options{SHA256: pin}); err != nil {
			t.Errorf("pin %s: %v", pin, err)
		}
	}
	bad := strings.Repeat("0", 64)
	_, err := Open(path, Options{SHA256: bad})
	wantError(t, err, path, "", ErrDigest)
	for _, pin := range []string{"abc", "md5:" + sum, sum + "0"} {
		_, err := Open(path, Options{SHA256: pin})
		if err == nil {
			t.Errorf("pin %q accepted", pin)
			continue
		}
		wantError(t, err, path, "", nil)
	}
	dir := t.TempDir()
	_, err = Open(dir, Options{SHA256: sum})
	if err == nil {
		t.Fatal("pin on a directory accepted")
	}
	wantError(t, err, dir, "", nil)
}
