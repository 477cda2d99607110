package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tEntry is one entry of a tar layer made in test code.
type tEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	mtime    int64
	data     []byte
	link     string
	major    int64
	minor    int64
	xattrs   map[string]string
}

func reg(name string, data []byte, mode int64) tEntry {
	return tEntry{name: name, typ: tar.TypeReg, mode: mode, data: data, mtime: 1600000000}
}
func tdir(name string, mode int64) tEntry {
	return tEntry{name: name, typ: tar.TypeDir, mode: mode, mtime: 1600000000}
}
func tsym(name, target string) tEntry {
	return tEntry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target, mtime: 1600000000}
}
func thard(name, target string) tEntry {
	return tEntry{name: name, typ: tar.TypeLink, link: target, mtime: 1600000000}
}
func twh(name string) tEntry {
	return tEntry{name: name, typ: tar.TypeReg, mode: 0o644, mtime: 1600000000}
}

// makeTar writes entries as a PAX tar (GNU long names are exercised by
// format when a name needs it).
func makeTar(t *testing.T, entries []tEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(e.mtime, 0), Linkname: e.link, Size: int64(len(e.data)),
			Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX,
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if h.Size > 0 {
			tw.Write(e.data)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func xzc(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(w, bytes.NewReader(b))
	w.Close()
	return buf.Bytes()
}

// pseudo returns n deterministic pseudo-random bytes.
func pseudo(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
