package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/xz"
)

// withDict returns a copy of the xz file b whose first block asks for
// the LZMA2 dictionary of property d (39: 3 GiB), its header CRC fixed.
func withDict(t testing.TB, b []byte, d byte) []byte {
	t.Helper()
	b = bytes.Clone(b)
	const streamHeader = 12
	hs := (int(b[streamHeader]) + 1) * 4
	h := b[streamHeader : streamHeader+hs]
	i := bytes.Index(h[2:], []byte{0x21, 0x01}) // LZMA2 filter, 1 byte of properties
	if i < 0 {
		t.Fatal("no LZMA2 filter in the block header")
	}
	h[2+i+2] = d
	binary.LittleEndian.PutUint32(h[hs-4:], crc32.ChecksumIEEE(h[:hs-4]))
	return b
}

// TestModuleXzDictionaryBound: a .ko.xz asking for a 3 GiB dictionary is
// refused before anything that large is allocated, as xz layers are.
// Before, pkg/initramfs decoded modules with an unbounded decoder, which
// allocated the dictionary the file asked for.
func TestModuleXzDictionaryBound(t *testing.T) {
	good := xzBytes(t, kmod(""))
	// The patch itself is sound: a 1 MiB dictionary still decodes.
	mods, err := ResolveModules(modTree(map[string][]byte{"kernel/a.ko.xz": withDict(t, good, 20)}), testKver, []string{"a"})
	if err != nil || len(mods) != 1 {
		t.Fatalf("a module with a 1 MiB dictionary: %v, %v", mods, err)
	}
	tr := modTree(map[string][]byte{"kernel/a.ko.xz": withDict(t, good, 39)})
	testkit.BoundAlloc(t, 64<<20, func() {
		_, err = ResolveModules(tr, testKver, []string{"a"})
	})
	if !errors.Is(err, xz.ErrDictTooLarge) {
		t.Fatalf("error %v, want %v", err, xz.ErrDictTooLarge)
	}
	testkit.ErrContains(t, err, "module a", "kernel/a.ko.xz", "GiB")
}
