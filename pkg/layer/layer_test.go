package layer

import (
	"archive/tar"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

const mt = 1700000000

// Names that need GNU or PAX long-name records.
var (
	longName = "usr/share/" + strings.Repeat("l", 150)
	deepName = "deep/" + strings.Repeat("a", 100) + "/" + strings.Repeat("b", 100) + "/" + strings.Repeat("c", 100) + "/file"
	capValue = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	bigData  = func() string {
		var b strings.Builder
		for i := 0; b.Len() < 300_000; i++ {
			fmt.Fprintf(&b, "line %d of a file larger than the copy buffer\n", i*7919%100003)
		}
		return b.String()
	}()
)

// fixture returns a layer covering every entry type and format feature,
// names prefixed by p ("./" for .deb data), and the entries it must give.
func fixture(p string) ([]tarEntry, []want) {
	ents := []tarEntry{
		dirE("./", 0o755),
		{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "kiln"}}},
		dirE(p+"etc/", 0o755),
		fileE(p+"etc/hostname", "kiln\n", 0o644),
		{hdr: tar.Header{Name: "/usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 3000000, Gid: 70000, ModTime: time.Unix(mt, 0)}, data: "su-binary"},
		dirE(p+"tmp/", 0o1777),
		{hdr: tar.Header{Name: p + longName, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(mt, 0), Format: tar.FormatGNU}, data: "long"},
		{hdr: tar.Header{Name: p + deepName, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(mt, 0), Format: tar.FormatPAX}, data: "deep"},
		linkE(p+"bin", "usr/bin", tar.TypeSymlink),
		linkE(p+"etc/abs", "/etc/hostname", tar.TypeSymlink),
		linkE(p+"usr/bin/sudo", "/usr/bin/su", tar.TypeLink),
		{hdr: tar.Header{Name: p + "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: time.Unix(mt, 0)}},
		{hdr: tar.Header{Name: p + "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Gid: 6, Devmajor: 8, Devminor: 0, ModTime: time.Unix(mt, 0)}},
		{hdr: tar.Header{Name: p + "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: time.Unix(mt, 0)}},
		{hdr: tar.Header{Name: p + "usr/bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, ModTime: time.Unix(mt, 0), PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": capValue,
			"LIBARCHIVE.xattr.user.a%3Db":      base64.RawStdEncoding.EncodeToString([]byte("v1")),
			"SCHILY.xattr.user.z":              "zz",
			"LIBARCHIVE.xattr.user.z":          base64.StdEncoding.EncodeToString([]byte("loses")),
		}}, data: "ping"},
		fileE(p+".wh.gone", "", 0o644),
		fileE(p+"etc/.wh..wh..opq", "", 0o644),
		{hdr: tar.Header{Name: p + "etc/nsec", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(mt, 123456789), Format: tar.FormatPAX}, data: "ns"},
		fileE(p+"empty", "", 0o600),
		fileE(p+"big", bigData, 0o644),
		rawFile(p+"old", '\x00', "old\n"),
		rawFile(p+"cont", '7', "contiguous\n"),
		gnuSparse(p+"sparse-gnu", 3000, sparseChunk{0, "AAAA"}, sparseChunk{2048, "BBBB"}),
		paxSparse(p+"sparse-pax", 5000, sparseChunk{1000, "hello"}, sparseChunk{4000, "world"}),
		fileE(p+"last", "end", 0o644),
	}
	reg := func(path, data string, mode uint32) want {
		return want{path: path, typ: tree.TypeReg, mode: mode, mtime: mt, data: data}
	}
	ws := []want{
		{path: "etc", typ: tree.TypeDir, mode: 0o755, mtime: mt},
		reg("etc/hostname", "kiln\n", 0o644),
		{path: "usr/bin/su", typ: tree.TypeReg, mode: 0o4755, uid: 3000000, gid: 70000, mtime: mt, data: "su-binary"},
		{path: "tmp", typ: tree.TypeDir, mode: 0o1777, mtime: mt},
		reg(longName, "long", 0o644),
		reg(deepName, "deep", 0o644),
		{path: "bin", typ: tree.TypeSymlink, mode: 0o777, mtime: mt, link: "usr/bin"},
		{path: "etc/abs", typ: tree.TypeSymlink, mode: 0o777, mtime: mt, link: "/etc/hostname"},
		{path: "usr/bin/sudo", typ: tree.TypeHardlink, mode: 0o777, mtime: mt, link: "usr/bin/su"},
		{path: "dev/null", typ: tree.TypeChar, mode: 0o666, mtime: mt, major: 1, minor: 3},
		{path: "dev/sda", typ: tree.TypeBlock, mode: 0o660, gid: 6, mtime: mt, major: 8},
		{path: "run/fifo", typ: tree.TypeFIFO, mode: 0o600, mtime: mt},
		{path: "usr/bin/ping", typ: tree.TypeReg, mode: 0o755, mtime: mt, data: "ping", xattrs: []tree.Xattr{
			{Name: "security.capability", Value: []byte(capValue)}, {Name: "user.a=b", Value: []byte("v1")}, {Name: "user.z", Value: []byte("zz")},
		}},
		reg(".wh.gone", "", 0o644),
		reg("etc/.wh..wh..opq", "", 0o644),
		{path: "etc/nsec", typ: tree.TypeReg, mode: 0o644, mtime: mt, nsec: 123456789, data: "ns"},
		reg("empty", "", 0o600),
		reg("big", bigData, 0o644),
		reg("old", "old\n", 0o644),
		reg("cont", "contiguous\n", 0o644),
		reg("sparse-gnu", sparseContent(3000, sparseChunk{0, "AAAA"}, sparseChunk{2048, "BBBB"}), 0o644),
		reg("sparse-pax", sparseContent(5000, sparseChunk{1000, "hello"}, sparseChunk{4000, "world"}), 0o644),
		reg("last", "end", 0o644),
	}
	return ents, ws
}

func identity(_ testing.TB, b []byte) []byte { return b }

// TestFormats opens every single-layer format, named misleadingly, and
// checks every entry, with contents read after Walk has returned.
func TestFormats(t *testing.T) {
	cases := []struct {
		name   string
		file   string // a misleading name: detection is by magic
		prefix string
		make   func(testing.TB, []byte) []byte
		// inPlace: contents (but sparse ones) are read from the layer
		// file itself rather than from a spill file.
		inPlace bool
	}{
		{"tar", "layer.tar.gz", "", identity, true},
		{"gzip", "layer.tar", "", gz, false},
		{"xz", "layer.tar.zst", "", xzc, false},
		{"zstd", "layer.tar.xz", "", zstdc, false},
		{"bzip2", "layer.tgz", "", bz2c, false},
		{"deb-xz", "pkg.tar", "./", func(t testing.TB, b []byte) []byte { return buildDeb(t, "data.tar.xz", xzc(t, b)) }, false},
		{"deb-zst", "pkg.deb.gz", "./", func(t testing.TB, b []byte) []byte { return buildDeb(t, "data.tar.zst/", zstdc(t, b)) }, false},
		{"deb-plain", "pkg", "./", func(t testing.TB, b []byte) []byte { return buildDeb(t, "data.tar", b) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ents, ws := fixture(tc.prefix)
			data := tc.make(t, buildTar(t, ents...))
			if data == nil {
				testkit.Missing(t, "the compressor for %s", tc.name)
			}
			path := writeFile(t, t.TempDir(), tc.file, data)
			spillDir := t.TempDir()
			sp := NewSpill(spillDir)
			defer sp.Close()
			l := openOne(t, path, Options{Spill: sp})
			if l.Name() != path {
				t.Errorf("name %q, want %q", l.Name(), path)
			}
			gs := walkAll(t, l)
			compare(t, gs, ws)

			// Spill files are unlinked at once.
			if left, _ := os.ReadDir(spillDir); len(left) != 0 {
				t.Errorf("spill directory holds %d files", len(left))
			}
			for _, g := range gs {
				if g.Type != tree.TypeReg || g.Size == 0 {
					continue
				}
				c, ok := g.Content.(sectionContent)
				if !ok {
					t.Fatalf("%s: content is a %T", g.Path, g.Content)
				}
				f := c.ra.(*os.File)
				sparse := strings.HasPrefix(g.Path, "sparse-")
				if inLayer := f.Name() == path; inLayer != (tc.inPlace && !sparse) {
					t.Errorf("%s: content read from %s", g.Path, f.Name())
				}
			}

			// A second walk gives the same entries.
			compare(t, walkAll(t, l), ws)
		})
	}
}

// TestKeepRoot: the root entry is passed as "." only when asked for.
func TestKeepRoot(t *testing.T) {
	path := writeFile(t, t.TempDir(), "l", buildTar(t, dirE("./", 0o700), fileE("a", "x", 0o644)))
	for _, keep := range []bool{false, true} {
		gs := walkAll(t, openOne(t, path, Options{KeepRoot: keep}))
		ws := []want{{path: "a", typ: tree.TypeReg, mode: 0o644, mtime: mt, data: "x"}}
		if keep {
			ws = append([]want{{path: ".", typ: tree.TypeDir, mode: 0o700, mtime: mt}}, ws...)
		}
		compare(t, gs, ws)
	}
}

// TestCallbackError: an error of the callback stops the walk and comes
// back unchanged.
func TestCallbackError(t *testing.T) {
	ents, _ := fixture("")
	for _, c := range []struct {
		name string
		make func(testing.TB, []byte) []byte
	}{{"tar", identity}, {"gzip", gz}} {
		path := writeFile(t, t.TempDir(), "l", c.make(t, buildTar(t, ents...)))
		stop := errors.New("stop")
		n := 0
		err := openOne(t, path, Options{}).Walk(func(*tree.Entry) error { n++; return stop })
		if err != stop || n != 1 {
			t.Errorf("%s: walk returned %v after %d entries, want the callback's error after 1", c.name, err, n)
		}
	}
}

// TestConcurrentContent reads spilled and in-place contents from several
// goroutines at once.
func TestConcurrentContent(t *testing.T) {
	ents, ws := fixture("")
	raw := buildTar(t, ents...)
	dir := t.TempDir()
	for _, path := range []string{writeFile(t, dir, "plain", raw), writeFile(t, dir, "gz", gz(t, raw))} {
		var es []*tree.Entry
		if err := openOne(t, path, Options{TempDir: t.TempDir()}).Walk(func(e *tree.Entry) error { es = append(es, e); return nil }); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4*len(es))
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, e := range es {
					if e.Type != tree.TypeReg {
						continue
					}
					rc, err := e.Content.Open()
					if err != nil {
						errs <- err
						return
					}
					b, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || string(b) != ws[i].data {
						errs <- fmt.Errorf("%s: %d bytes, %v", e.Path, len(b), err)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// TestSpillClose: Close releases spill and archive files; contents are
// unreadable afterwards.
func TestSpillClose(t *testing.T) {
	raw := buildTar(t, fileE("a", "data", 0o644))
	dir := t.TempDir()
	for _, path := range []string{writeFile(t, dir, "plain", raw), writeFile(t, dir, "gz", gz(t, raw))} {
		sp := NewSpill(t.TempDir())
		var c tree.Content
		if err := openOne(t, path, Options{Spill: sp}).Walk(func(e *tree.Entry) error { c = e.Content; return nil }); err != nil {
			t.Fatal(err)
		}
		if got := readContent(t, c); got != "data" {
			t.Fatalf("content %q", got)
		}
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
		rc, err := c.Open()
		if err == nil {
			_, err = rc.Read(make([]byte, 4))
		}
		if err == nil {
			t.Errorf("%s: content readable after Close", path)
		}
		if _, err := Open(path, Options{Spill: sp}); err == nil {
			t.Errorf("%s: Open with a closed spill store succeeded", path)
		}
	}
}

// TestErrorMessage checks the format the CLI shows.
func TestErrorMessage(t *testing.T) {
	cases := []struct {
		err  *Error
		want string
	}{
		{&Error{Layer: "a.tar", Err: errors.New("boom")}, "layer a.tar: boom"},
		{&Error{Layer: "a.tar", Entry: "etc/x", Err: errors.New("boom")}, "layer a.tar: entry etc/x: boom"},
		{&Error{Layer: "a.tar", Entry: "x\nlayer b: forged", Err: errors.New("boom")}, `layer a.tar: entry "x\nlayer b: forged": boom`},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if !errors.Is(c.err, c.err.Err) {
			t.Errorf("%v does not unwrap", c.err)
		}
	}
}

// wantError checks that err is an *Error of layer naming entry (if
// entry is not "-") and wrapping cause (if not nil).
func wantError(t testing.TB, err error, layer, entry string, cause error) {
	t.Helper()
	var le *Error
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *layer.Error", err, err)
	}
	if le.Layer != layer {
		t.Errorf("error %q names layer %q, want %q", err, le.Layer, layer)
	}
	if entry != "-" && le.Entry != entry {
		t.Errorf("error %q names entry %q, want %q", err, le.Entry, entry)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("error %q does not wrap %v", err, cause)
	}
}

// openWalk opens and walks path, returning the first error.
func openWalk(path string, o Options) error {
	ls, err := Open(path, o)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if err := l.Walk(func(e *tree.Entry) error {
			if e.Type == tree.TypeReg {
				rc, err := e.Content.Open()
				if err != nil {
					return err
				}
				rc.Close()
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// TestDiffIDOption: with Options.DiffID every walk of a tar layer reports
// the sha256 of its uncompressed tar stream, whatever the compression and
// whether the stream came from the cache.
func TestDiffIDOption(t *testing.T) {
	tb := tarOne(t)
	want := "sha256:" + judge.SHA256(tb)
	dir := t.TempDir()
	cache, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		o    Options
	}{
		{"plain", tb, Options{DiffID: true}},
		{"gzip", gz(t, tb), Options{DiffID: true}},
		{"xz", xzc(t, tb), Options{DiffID: true}},
		{"zstd cold cache", zstdc(t, tb), Options{DiffID: true, Cache: cache}},
		{"zstd warm cache", zstdc(t, tb), Options{DiffID: true, Cache: cache}},
		{"plain without the option", tb, Options{}},
		{"deb", buildDeb(t, "data.tar.gz", gz(t, tb)), Options{DiffID: true}},
	} {
		l := openOne(t, writeFile(t, dir, c.name, c.b), c.o)
		walkAll(t, l)
		w := want
		if !c.o.DiffID {
			w = "" // a plain tar is not hashed unless asked
		}
		if got := Describe(l).DiffID; got != w {
			t.Errorf("%s: diff_id %q, want %s", c.name, got, want)
		}
	}
}
