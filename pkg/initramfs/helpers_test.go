package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/tree"
)

const testEpoch = 1700000000

// missing skips the test, or fails it under CI, where `make test` has
// provided everything.
func missing(t testing.TB, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, a...)
	}
	t.Skipf(format, a...)
}

// debFile finds a Debian package in $KILN_DEBS (default /tmp/debs) by a
// glob of its file name, the last in byte order if several match.
func debFile(t testing.TB, glob string) string {
	t.Helper()
	dir := os.Getenv("KILN_DEBS")
	if dir == "" {
		dir = "/tmp/debs"
	}
	m, _ := filepath.Glob(filepath.Join(dir, glob))
	sort.Strings(m)
	if len(m) == 0 {
		missing(t, "no %s in %s (apt-get download linux-image-6.1.0-56-amd64 busybox-static there, or set KILN_DEBS)", glob, dir)
	}
	return m[len(m)-1]
}

// testSpill holds the content of layers merged by the tests; TestMain
// closes it.
var testSpill = layer.NewSpill("")

func TestMain(m *testing.M) {
	code := m.Run()
	testSpill.Close()
	os.Exit(code)
}

var kernelTreeCache struct {
	sync.Once
	t   *tree.Tree
	err error
}

// kernelTree is Debian's kernel package merged as a layer, once per test
// process: merging its 70 MB of xz takes about 15 s.
func kernelTree(t testing.TB) *tree.Tree {
	t.Helper()
	if testing.Short() {
		t.Skip("merging the kernel package takes about 15 s: not with -short")
	}
	deb := debFile(t, "linux-image-6.1.0-*-amd64_*.deb")
	c := &kernelTreeCache
	c.Do(func() { c.t, c.err = merge(deb) })
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.t
}

func merge(paths ...string) (*tree.Tree, error) {
	m := tree.NewMerger(testEpoch)
	for _, p := range paths {
		ls, err := layer.Open(p, layer.Options{Epoch: testEpoch, Spill: testSpill})
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			if err := m.Apply(l); err != nil {
				return nil, err
			}
		}
	}
	return m.Tree(), nil
}

// mergeLayers merges layer files as kiln does.
func mergeLayers(t testing.TB, paths ...string) *tree.Tree {
	t.Helper()
	tr, err := merge(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// bytesContent is file content held in memory, for trees made in tests.
type bytesContent []byte

func (b bytesContent) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }

// addFile puts a regular file (and its missing parent directories) into t.
func addFile(t *tree.Tree, p string, mode uint32, data []byte) {
	addNode(t, p, &tree.Inode{Kind: tree.Regular, Mode: mode, Mtime: testEpoch, Size: int64(len(data)), Content: bytesContent(data)})
}

// addSymlink puts a symlink into t.
func addSymlink(t *tree.Tree, p, target string) {
	addNode(t, p, &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: testEpoch, Size: int64(len(target)), Target: target})
}

func addNode(t *tree.Tree, p string, n *tree.Inode) {
	dir := t.Root
	elems := splitTest(p)
	for _, el := range elems[:len(elems)-1] {
		c := dir.Child(el)
		if c == nil {
			c = tree.NewDir(0o755, 0, 0, testEpoch)
			dir.SetChild(el, c)
		}
		dir = c
	}
	dir.SetChild(elems[len(elems)-1], n)
}

func splitTest(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if i > start {
				out = append(out, p[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// fakeModule is a minimal ELF64 relocatable file whose .modinfo section
// holds the given "key=value" fields, NUL-terminated as the kernel's
// MODULE_INFO macros lay them out.
func fakeModule(fields ...string) []byte {
	var modinfo []byte
	for _, f := range fields {
		modinfo = append(append(modinfo, f...), 0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shoff := (shstrOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shoff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shoff-uint64(b.Len())))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modinfoOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		binary.Write(&b, binary.LittleEndian, s)
	}
	return b.Bytes()
}
