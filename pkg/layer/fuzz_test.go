package layer_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/tree"
)

// fuzzMaxBytes bounds how far a fuzzed layer may expand, so that an input
// cannot make the fuzzer write gigabytes of spill files.
const fuzzMaxBytes = 4 << 20

// fuzzMaxAlloc bounds what opening and walking one input may allocate in
// all: decoders may ask for 128 MiB windows (zstd) or dictionaries (xz),
// a few times over, but never for what a header claims.
const fuzzMaxAlloc = 1 << 30

// FuzzOpen opens arbitrary bytes as a layer file and walks every layer,
// reading every content, twice. It must not panic or hang; errors must be
// *layer.Error; entries must keep the promises of tree.Entry.
func FuzzOpen(f *testing.F) {
	for _, seed := range fuzzOpenSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fuzzOpen(t, data)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > fuzzMaxAlloc {
			t.Fatalf("opening and walking %d bytes allocated %d MiB", len(data), n>>20)
		}
	})
}

func fuzzOpen(t *testing.T, data []byte) {
	dir := t.TempDir()
	p := filepath.Join(dir, "layer")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	spill := layer.NewSpill(dir)
	defer spill.Close()
	ls, err := layer.Open(p, layer.Options{Spill: spill, KeepRoot: true, MaxBytes: fuzzMaxBytes})
	if err != nil {
		checkLayerError(t, err)
		return
	}
	for _, l := range ls {
		first, err := walkAll(t, l)
		if err != nil {
			checkLayerError(t, err)
			continue
		}
		// Walk reads the layer anew, and finds the same.
		again, err := walkAll(t, l)
		if err != nil {
			t.Fatalf("the second walk of %s failed: %v", l.Name(), err)
		}
		if !slices.Equal(first, again) {
			t.Fatalf("two walks of %s differ:\n%q\n%q", l.Name(), first, again)
		}
	}
}

// walkAll walks l, checks every entry and reads its content; it returns
// a line per entry.
func walkAll(t *testing.T, l layer.Layer) ([]string, error) {
	var seen []string
	err := l.Walk(func(e *tree.Entry) error {
		checkEntry(t, e)
		n := int64(0)
		if e.Type == tree.TypeReg && e.Content != nil {
			rc, err := e.Content.Open()
			if err != nil {
				t.Fatalf("%q: opening content: %v", e.Path, err)
			}
			n, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%q: reading content: %v", e.Path, err)
			}
			if n != e.Size {
				t.Fatalf("%q: content of %d bytes, size %d", e.Path, n, e.Size)
			}
		}
		seen = append(seen, fmt.Sprintf("%s %s %o %d:%d %d %q %d,%d %d %v", e.Path, e.Type, e.Mode, e.UID, e.GID, e.Mtime, e.Linkname, e.Major, e.Minor, n, e.Xattrs))
		return nil
	})
	return seen, err
}

func checkLayerError(t *testing.T, err error) {
	t.Helper()
	var le *layer.Error
	if !errors.As(err, &le) {
		t.Fatalf("error %T is not a *layer.Error: %v", err, err)
	}
	if strings.Contains(le.Error(), "\n") {
		t.Fatalf("the message of an error spans lines: %q", le.Error())
	}
}

// checkEntry checks what tree.Entry promises.
func checkEntry(t *testing.T, e *tree.Entry) {
	t.Helper()
	if e.Path == "." {
		if e.Type != tree.TypeDir {
			t.Fatalf("the root is a %s", e.Type)
		}
	} else if msg := unclean(e.Path); msg != "" {
		t.Fatalf("path %q: %s", e.Path, msg)
	}
	if e.Mode&^0o7777 != 0 {
		t.Fatalf("%q: mode %o has type bits", e.Path, e.Mode)
	}
	switch e.Type {
	case tree.TypeReg:
		if e.Size < 0 || e.Size > fuzzMaxBytes {
			t.Fatalf("%q: size %d", e.Path, e.Size)
		}
		if e.Size > 0 && e.Content == nil {
			t.Fatalf("%q: %d bytes without content", e.Path, e.Size)
		}
	case tree.TypeHardlink:
		if msg := unclean(e.Linkname); msg != "" {
			t.Fatalf("%q: hardlink target %q: %s", e.Path, e.Linkname, msg)
		}
	case tree.TypeSymlink:
		if e.Linkname == "" || strings.IndexByte(e.Linkname, 0) >= 0 || len(e.Linkname) > 4095 {
			t.Fatalf("%q: symlink target %q", e.Path, e.Linkname)
		}
	case tree.TypeDir, tree.TypeChar, tree.TypeBlock, tree.TypeFIFO:
	default:
		t.Fatalf("%q: type %d", e.Path, e.Type)
	}
	if !slices.IsSortedFunc(e.Xattrs, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("%q: xattrs not sorted", e.Path)
	}
	for _, x := range e.Xattrs {
		if x.Name == "" || len(x.Value) > 65536 {
			t.Fatalf("%q: xattr %q of %d bytes", e.Path, x.Name, len(x.Value))
		}
	}
}

// unclean says what is wrong with p as a path of tree.Entry, or "".
func unclean(p string) string {
	switch {
	case p == "":
		return "empty"
	case len(p) > 4096:
		return "longer than 4096 bytes"
	case strings.IndexByte(p, 0) >= 0:
		return "holds a NUL"
	}
	for _, el := range strings.Split(p, "/") {
		switch {
		case el == "" || el == "." || el == "..":
			return fmt.Sprintf("element %q", el)
		case len(el) > 255:
			return "element longer than 255 bytes"
		}
	}
	return ""
}

// fuzzOpenSeeds are small layers of every format, besides the corpus in
// testdata/fuzz/FuzzOpen.
func fuzzOpenSeeds(f *testing.F) [][]byte {
	mt := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: mt,
			PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}},
		{Name: "etc/hl", Typeflag: tar.TypeLink, Linkname: "etc/hosts", ModTime: mt},
		{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin", ModTime: mt},
		{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt},
		{Name: "etc/.wh.old", Typeflag: tar.TypeReg, ModTime: mt},
	} {
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hosts"))
		}
	}
	tw.Close()
	plain := buf.Bytes()

	var gzb, xzb, zsb bytes.Buffer
	gw := gzip.NewWriter(&gzb)
	gw.Write(plain)
	gw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		f.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()
	zw, err := zstd.NewWriter(&zsb)
	if err != nil {
		f.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()
	small := func(files ...string) []byte { // name, content, name, content...
		var b bytes.Buffer
		w := tar.NewWriter(&b)
		for i := 0; i+1 < len(files); i += 2 {
			w.WriteHeader(&tar.Header{Name: files[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[i+1])), ModTime: mt})
			w.Write([]byte(files[i+1]))
		}
		w.Close()
		return b.Bytes()
	}
	digest := func(b []byte) string {
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	lay := small("etc/motd", "hi\n")
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, digest(lay))
	docker := small("manifest.json", fmt.Sprintf(`[{"Config":"%s.json","Layers":["%s/layer.tar"]}]`, digest([]byte(config)), digest(lay)),
		digest([]byte(config))+".json", config, digest(lay)+"/layer.tar", string(lay))
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}`,
		digest([]byte(config)), len(config), digest(lay), len(lay))
	oci := small("oci-layout", `{"imageLayoutVersion":"1.0.0"}`,
		"index.json", fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d}]}`, digest([]byte(manifest)), len(manifest)),
		"blobs/sha256/"+digest([]byte(manifest)), manifest,
		"blobs/sha256/"+digest([]byte(config)), config,
		"blobs/sha256/"+digest(lay), string(lay))
	ar := func(members ...string) []byte { // name, content, ...
		b := []byte("!<arch>\n")
		for i := 0; i+1 < len(members); i += 2 {
			b = fmt.Appendf(b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", members[i], 0, 0, 0, "100644", len(members[i+1]))
			b = append(b, members[i+1]...)
			if len(members[i+1])%2 == 1 {
				b = append(b, '\n')
			}
		}
		return b
	}
	deb := ar("debian-binary", "2.0\n", "control.tar", string(small("control", "Package: x\n")), "data.tar.gz", gzb.String())
	return [][]byte{plain, gzb.Bytes(), xzb.Bytes(), zsb.Bytes(), docker, oci, deb}
}
