package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

const testEpoch = 1700000000

// kernelTree is Debian's kernel package merged as a layer, once per test
// process (trees.Debs): merging its 70 MB of xz takes about 15 s.
func kernelTree(t testing.TB) *tree.Tree {
	t.Helper()
	if testing.Short() {
		t.Skip("merging the kernel package takes about 15 s: not with -short")
	}
	return trees.Debs(t, testEpoch, testkit.DebKernel)
}

// addFile puts a regular file (and its missing parent directories) into t.
func addFile(t *tree.Tree, p string, mode uint32, data []byte) {
	trees.Put(t, testEpoch, p, trees.File(mode, testEpoch, data))
}

// addSymlink puts a symlink into t.
func addSymlink(t *tree.Tree, p, target string) {
	trees.Put(t, testEpoch, p, &tree.Inode{Kind: tree.Symlink, Mode: 0o777, Mtime: testEpoch, Size: int64(len(target)), Target: target})
}

// fakeModule is a minimal ELF64 relocatable file whose .modinfo section
// holds the given "key=value" fields, NUL-terminated as the kernel's
// MODULE_INFO macros lay them out.
func fakeModule(fields ...string) []byte {
	return fakeModuleFor(elf.EM_X86_64, fields...)
}

// fakeModuleFor is fakeModule for ELF machine m.
func fakeModuleFor(m elf.Machine, fields ...string) []byte {
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
		Type: uint16(elf.ET_REL), Machine: uint16(m), Version: uint32(elf.EV_CURRENT),
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
