package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tarEntry is one entry for buildTar: a header archive/tar writes, or raw
// blocks for what it cannot write (sparse files, old type flags).
type tarEntry struct {
	hdr  tar.Header
	data string
	raw  []byte
}

// buildTar builds a tar archive in memory, in the spirit of containerd's
// tartest.
func buildTar(t testing.TB, ents ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		if e.raw != nil {
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			buf.Write(e.raw)
			continue
		}
		h := e.hdr
		if h.Typeflag == tar.TypeReg || h.Typeflag == typeRegA {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Shorthands for entries.
func dirE(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, ModTime: time.Unix(1700000000, 0)}}
}

func fileE(name, data string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, ModTime: time.Unix(1700000000, 0)}, data: data}
}

func linkE(name, target string, flag byte) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Linkname: target, Typeflag: flag, Mode: 0o777, ModTime: time.Unix(1700000000, 0)}}
}

// rawHeader returns a ustar header block (GNU magic if gnu) with its
// checksum; patch may fill further fields before the checksum is set.
func rawHeader(name string, flag byte, size int64, gnu bool, patch func(b []byte)) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	b[156] = flag
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	if patch != nil {
		patch(b)
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// pad rounds b up to whole blocks.
func pad(b []byte) []byte {
	if n := len(b) % 512; n != 0 {
		b = append(b, make([]byte, 512-n)...)
	}
	return b
}

// rawFile is a regular file in raw blocks with the given type flag
// ('\x00' of old archives, '7' contiguous).
func rawFile(name string, flag byte, data string) tarEntry {
	return tarEntry{raw: append(rawHeader(name, flag, int64(len(data)), false, nil), pad([]byte(data))...)}
}

// sparseChunk is a run of data in a sparse file.
type sparseChunk struct {
	off  int64
	data string
}

// gnuSparse is an old GNU sparse entry ('S') with up to 4 chunks in its
// header.
func gnuSparse(name string, realSize int64, chunks ...sparseChunk) tarEntry {
	var data []byte
	for _, c := range chunks {
		data = append(data, c.data...)
	}
	h := rawHeader(name, tar.TypeGNUSparse, int64(len(data)), true, func(b []byte) {
		for i, c := range chunks {
			o := 386 + i*24
			copy(b[o:o+12], fmt.Sprintf("%011o\x00", c.off))
			copy(b[o+12:o+24], fmt.Sprintf("%011o\x00", len(c.data)))
		}
		copy(b[483:495], fmt.Sprintf("%011o\x00", realSize))
	})
	return tarEntry{raw: append(h, pad(data)...)}
}

// paxSparse is a PAX format 1.0 sparse entry, as GNU tar writes it.
func paxSparse(name string, realSize int64, chunks ...sparseChunk) tarEntry {
	m := strconv.Itoa(len(chunks)) + "\n"
	var data []byte
	for _, c := range chunks {
		m += fmt.Sprintf("%d\n%d\n", c.off, len(c.data))
		data = append(data, c.data...)
	}
	body := append(pad([]byte(m)), data...)
	var recs []byte
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(realSize, 10)},
	} {
		recs = append(recs, paxRecord(kv[0], kv[1])...)
	}
	out := rawHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(recs)), false, nil)
	out = append(out, pad(recs)...)
	out = append(out, rawHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(body)), false, nil)...)
	return tarEntry{raw: append(out, pad(body)...)}
}

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for {
		s := strconv.Itoa(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// sparseContent is the expanded content of a sparse file.
func sparseContent(realSize int64, chunks ...sparseChunk) string {
	b := make([]byte, realSize)
	for _, c := range chunks {
		copy(b[c.off:], c.data)
	}
	return string(b)
}

// Compressors.
func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzc(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdc(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

// bz2c compresses with the bzip2 program (the standard library only
// decompresses). Without the program it returns nil, and the cases that
// need it are skipped.
func bz2c(t testing.TB, b []byte) []byte {
	p, err := exec.LookPath("bzip2")
	if err != nil {
		t.Log("bzip2 not in PATH: bzip2 cases skipped")
		return nil
	}
	cmd := exec.Command(p, "-c")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// arMember is one member for buildAr.
type arMember struct {
	name string
	data []byte
}

// buildAr builds an ar archive (the container of .deb packages).
func buildAr(ms ...arMember) []byte {
	var buf bytes.Buffer
	buf.WriteString("!<arch>\n")
	for _, m := range ms {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.name, 1700000000, 0, 0, 0o100644, len(m.data))
		buf.Write(m.data)
		if len(m.data)%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

// buildDeb builds a Debian package whose data member is data.
func buildDeb(t testing.TB, dataName string, data []byte) []byte {
	control := gz(t, buildTar(t, dirE("./", 0o755), fileE("./control", "Package: kiln-test\n", 0o644)))
	return buildAr(
		arMember{"debian-binary", []byte("2.0\n")},
		arMember{"control.tar.gz", control},
		arMember{dataName, data},
	)
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// got is an entry as walked, with its content read after Walk returned.
type got struct {
	tree.Entry
	data string
}

// walkAll walks l and then reads every content.
func walkAll(t testing.TB, l Layer) []got {
	t.Helper()
	var es []*tree.Entry
	if err := l.Walk(func(e *tree.Entry) error {
		es = append(es, e)
		return nil
	}); err != nil {
		t.Fatalf("walk %s: %v", l.Name(), err)
	}
	out := make([]got, len(es))
	for i, e := range es {
		out[i] = got{Entry: *e}
		if e.Type == tree.TypeReg {
			if e.Content == nil {
				t.Fatalf("%s: regular file without content", e.Path)
			}
			out[i].data = readContent(t, e.Content)
			if int64(len(out[i].data)) != e.Size {
				t.Fatalf("%s: content of %d bytes, size %d", e.Path, len(out[i].data), e.Size)
			}
		}
	}
	return out
}

// readContent reads c whole.
func readContent(t testing.TB, c tree.Content) string {
	t.Helper()
	return string(testkit.ReadAll(t, c))
}

// want is an expected entry.
type want struct {
	path     string
	typ      tree.EntryType
	mode     uint32
	uid, gid uint32
	mtime    int64
	nsec     uint32
	link     string
	major    uint32
	minor    uint32
	xattrs   []tree.Xattr
	data     string
}

// compare checks walked entries against expected ones, in order.
func compare(t testing.TB, gs []got, ws []want) {
	t.Helper()
	for i := 0; i < max(len(gs), len(ws)); i++ {
		if i >= len(gs) {
			t.Errorf("missing entry %d: %s", i, ws[i].path)
			continue
		}
		if i >= len(ws) {
			t.Errorf("extra entry %d: %s", i, gs[i].Path)
			continue
		}
		g, w := gs[i], ws[i]
		e := g.Entry
		if e.Path != w.path || e.Type != w.typ || e.Mode != w.mode || e.UID != w.uid || e.GID != w.gid ||
			e.Mtime != w.mtime || e.Nsec != w.nsec || e.Linkname != w.link || e.Major != w.major || e.Minor != w.minor {
			t.Errorf("entry %d:\n got %q %s mode %o owner %d:%d mtime %d.%09d link %q dev %d,%d\nwant %q %s mode %o owner %d:%d mtime %d.%09d link %q dev %d,%d",
				i, e.Path, e.Type, e.Mode, e.UID, e.GID, e.Mtime, e.Nsec, e.Linkname, e.Major, e.Minor,
				w.path, w.typ, w.mode, w.uid, w.gid, w.mtime, w.nsec, w.link, w.major, w.minor)
		}
		if fmt.Sprint(e.Xattrs) != fmt.Sprint(w.xattrs) {
			t.Errorf("entry %s: xattrs %q, want %q", e.Path, e.Xattrs, w.xattrs)
		}
		if g.data != w.data {
			t.Errorf("entry %s: content %q, want %q", e.Path, trunc(g.data), trunc(w.data))
		}
		if e.Type == tree.TypeReg && e.Size != int64(len(w.data)) {
			t.Errorf("entry %s: size %d, want %d", e.Path, e.Size, len(w.data))
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// openOne opens path, which must hold one layer.
func openOne(t testing.TB, path string, o Options) Layer {
	t.Helper()
	ls, err := Open(path, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if len(ls) != 1 {
		t.Fatalf("open %s: %d layers, want 1", path, len(ls))
	}
	return ls[0]
}
