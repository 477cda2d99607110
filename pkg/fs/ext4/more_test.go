package ext4

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// A 5 GiB file that is zero but for a few places: holes everywhere else,
// i_size_high set, and the data where debugfs maps it.
func TestFileOver4GiB(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	const size = 5<<30 + 123
	parts := map[int64][]byte{
		0:          []byte("head"),
		9 << 29:    pseudoRandom(1<<20, 11), // 1 MiB at 4.5 GiB
		size - 100: pseudoRandom(100, 12),   // the partial last block
		4<<30 - 2:  []byte("across 4 GiB"),
	}
	tr := tree.New(t0)
	put(t, tr, "/big", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: t0, Size: size, Content: &sparseContent{size: size, parts: parts}})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	img := writeImage(t, tr, 64<<20, testOptions())
	runtime.ReadMemStats(&after)
	// Streaming: what Write allocates does not grow with the 5 GiB.
	t.Logf("Write allocated %d MiB", (after.TotalAlloc-before.TotalAlloc)>>20)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("Write of a 5 GiB file allocated %d MiB", alloc>>20)
	}
	fsck(t, img)
	s := debugStat(t, img, "/big")
	if s.size != size {
		t.Errorf("/big: size %d, want %d", s.size, size)
	}
	// Allocated: head, 256 blocks at 4.5 GiB, two around 4 GiB, the last.
	if want := int64(1+256+2+1) * 8; s.blocks != want {
		t.Errorf("/big: %d sectors, want %d", s.blocks, want)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, data := range parts {
		for lb := off / blockSize; lb <= (off+int64(len(data))-1)/blockSize; lb++ {
			out := debugfs(t, img, "bmap /big "+strconv.FormatInt(lb, 10))
			pb, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
			if err != nil || pb == 0 {
				t.Fatalf("bmap /big %d: %q", lb, out)
			}
			blk := make([]byte, blockSize)
			if _, err := f.ReadAt(blk, pb*blockSize); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, blockSize)
			base := lb * blockSize
			lo, hi := max(off, base), min(off+int64(len(data)), base+blockSize)
			copy(want[lo-base:], data[lo-off:hi-off])
			// Only the part's bytes are known here; the rest is zero
			// unless another part shares the block (none do).
			if !bytes.Equal(blk, want) {
				t.Fatalf("/big logical block %d (physical %d): content differs", lb, pb)
			}
		}
	}
	if out := debugfs(t, img, "bmap /big 1000"); strings.TrimSpace(out) != "0" {
		t.Errorf("bmap /big 1000: %q, want 0 (a hole)", out)
	}
}

func TestLostFoundFromTree(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	tr := tree.New(t0)
	put(t, tr, "/a/file", file(0o644, []byte("a")))
	lf := tree.NewDir(0o750, 5, 6, t0-100)
	tr.Root.SetChild("lost+found", lf)
	put(t, tr, "/lost+found/kept", file(0o600, []byte("kept")))
	put(t, tr, "/z", file(0o644, []byte("z")))
	img := writeImage(t, tr, 0, testOptions())
	fsck(t, img)
	s := debugStat(t, img, "/lost+found")
	if s.ino != 11 || s.mode != "0750" || s.uid != 5 || s.gid != 6 || s.size != 16384 || s.links != 2 {
		t.Errorf("/lost+found: %+v, want inode 11, 0750, 5:6, 16384 bytes, 2 links", s)
	}
	if s := debugStat(t, img, "/lost+found/kept"); s.size != 4 {
		t.Errorf("/lost+found/kept: size %d, want 4", s.size)
	}
	if s := debugStat(t, img, "/"); s.links != 4 {
		t.Errorf("/: %d links, want 4", s.links)
	}
}

func TestLostFoundNotADir(t *testing.T) {
	tr := tree.New(t0)
	put(t, tr, "/lost+found", file(0o644, nil))
	err := Write(discard{}, 64<<20, tr, testOptions())
	if err == nil || !strings.Contains(err.Error(), "/lost+found") {
		t.Fatalf("Write with a file at /lost+found: %v, want an error naming it", err)
	}
}

func TestProbeKiln(t *testing.T) {
	judge.Need(t, "dumpe2fs")
	tr, _ := featureTree(t)
	o := testOptions()
	img := writeImage(t, tr, 0, o)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := Probe(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	d := dumpe2fsFields(string(out))
	checkInfo(t, info, d)
	if info.Label != o.Label || info.UUID != o.UUID {
		t.Errorf("Probe: label %q uuid %s, want %q %s", info.Label, info.UUID, o.Label, o.UUID)
	}
}

func TestProbeMke2fs(t *testing.T) {
	judge.Need(t, "mke2fs", "dumpe2fs")
	img := filepath.Join(t.TempDir(), "mke2fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	uuid := "0b1c2d3e-4f50-4617-8899-aabbccddeeff"
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "their-root", "-U", uuid, img).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := Probe(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, info, dumpe2fsFields(string(out)))
	if info.Label != "their-root" || info.UUID.String() != uuid {
		t.Errorf("Probe: label %q uuid %s, want their-root %s", info.Label, info.UUID, uuid)
	}
}

func dumpe2fsFields(out string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

func checkInfo(t *testing.T, info *Info, d map[string]string) {
	t.Helper()
	for k, got := range map[string]string{
		"Block size":          strconv.Itoa(int(info.BlockSize)),
		"Block count":         strconv.FormatUint(info.Blocks, 10),
		"Free blocks":         strconv.FormatUint(info.FreeBlocks, 10),
		"Inode count":         strconv.Itoa(int(info.Inodes)),
		"Free inodes":         strconv.Itoa(int(info.FreeInodes)),
		"Filesystem features": strings.Join(info.Features, " "),
	} {
		if d[k] != got {
			t.Errorf("Probe %s: %q, dumpe2fs says %q", k, got, d[k])
		}
	}
}

func TestProbeErrors(t *testing.T) {
	tr, _ := featureTree(t)
	img := writeImage(t, tr, 0, testOptions())
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	good = good[:8192]
	corrupt := bytes.Clone(good)
	corrupt[sbOffset+sbFreeInodes]++
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"zeros", make([]byte, 8192), "no ext2/3/4 superblock"},
		{"short", good[:1500], "too short"},
		{"checksum", corrupt, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Probe(bytes.NewReader(tc.img))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Probe: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	tr := tree.New(t0)
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		size int64
		want string
	}{
		{"no uuid", func(o *Options) { o.UUID = repro.UUID{} }, 64 << 20, "UUID is required"},
		{"long label", func(o *Options) { o.Label = "seventeen-bytes!!" }, 64 << 20, "longer than 16 bytes"},
		{"reserved", func(o *Options) { o.ReservedPercent = 51 }, 64 << 20, "reserved percent"},
		{"ratio", func(o *Options) { o.InodeRatio = 512 }, 64 << 20, "inode ratio"},
		{"unaligned size", func(o *Options) {}, 64<<20 + 512, "multiple of 4096"},
		{"tiny", func(o *Options) {}, 4 << 20, "too small"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			tc.mod(&o)
			err := Write(discard{}, tc.size, tr, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestTreeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  func(*tree.Tree)
		want string
	}{
		{"bad xattr namespace", func(tr *tree.Tree) {
			tr.Root.SetChild("f", &tree.Inode{Kind: tree.Regular, Mode: 0o644})
			tr.Root.Child("f").Xattrs = nil
			tr.Root.SetChild("g", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Xattrs: []layerXattr{{Name: "foo.bar", Value: []byte("x")}}})
		}, "/g: xattr \"foo.bar\""},
		{"xattrs too big", func(tr *tree.Tree) {
			tr.Root.SetChild("g", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Xattrs: []layerXattr{{Name: "user.big", Value: make([]byte, 5000)}}})
		}, "/g: extended attributes need"},
		{"bad acl", func(tr *tree.Tree) {
			tr.Root.SetChild("g", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Xattrs: []layerXattr{{Name: "system.posix_acl_access", Value: []byte{1, 2, 3}}}})
		}, "/g: xattr \"system.posix_acl_access\": not a version 2 POSIX ACL"},
		{"long symlink", func(tr *tree.Tree) {
			tr.Root.SetChild("s", symlink(strings.Repeat("x", 4096)))
		}, "/s: symlink target of 4096 bytes"},
		{"no content", func(tr *tree.Tree) {
			tr.Root.SetChild("f", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Size: 10})
		}, "/f: 10 bytes but no content"},
		{"short content", func(tr *tree.Tree) {
			tr.Root.SetChild("f", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Size: 10, Content: testkit.Bytes("12345")})
		}, "/f: content ended"},
		{"long content", func(tr *tree.Tree) {
			tr.Root.SetChild("f", &tree.Inode{Kind: tree.Regular, Mode: 0o644, Size: 3, Content: testkit.Bytes("12345")})
		}, "/f: content is longer"},
		{"dir twice", func(tr *tree.Tree) {
			d := tree.NewDir(0o755, 0, 0, t0)
			tr.Root.SetChild("a", d)
			tr.Root.SetChild("b", d)
		}, "/b: directory has more than one name"},
		{"bad name", func(tr *tree.Tree) {
			tr.Root.SetChild("a/b", file(0o644, nil))
		}, "name contains '/'"},
		{"device major and minor too large", func(tr *tree.Tree) {
			tr.Root.SetChild("dev", tree.NewDir(0o755, 0, 0, t0))
			tr.Root.Child("dev").SetChild("big", &tree.Inode{Kind: tree.CharDev, Mode: 0o600, Major: 4097, Minor: 2097152})
		}, "/dev/big: device 4097:2097152 does not fit"},
		{"device major too large", func(tr *tree.Tree) {
			tr.Root.SetChild("b", &tree.Inode{Kind: tree.BlockDev, Mode: 0o600, Major: 4096, Minor: 0})
		}, "/b: device 4096:0 does not fit"},
		{"device minor too large", func(tr *tree.Tree) {
			tr.Root.SetChild("c", &tree.Inode{Kind: tree.CharDev, Mode: 0o600, Major: 1, Minor: 1 << 20})
		}, "/c: device 1:1048576 does not fit"},
		{"long name", func(tr *tree.Tree) {
			tr.Root.SetChild(strings.Repeat("n", 256), file(0o644, nil))
		}, "name longer than 255 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tree.New(t0)
			tc.add(tr)
			err := Write(discard{}, 64<<20, tr, testOptions())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDirHashMatchesDebugfs(t *testing.T) {
	judge.Need(t, "debugfs")
	tr := tree.New(t0)
	img := writeImage(t, tr, 0, testOptions())
	seed := repro.UUID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	o := Options{UUID: testUUID, HashSeed: seed}
	for _, name := range []string{"a", "hello", "lost+found", "file-000123.txt", strings.Repeat("x", 31),
		strings.Repeat("y", 32), strings.Repeat("z", 33), strings.Repeat("0123456789", 25)} {
		out := debugfs(t, img, "dx_hash -h half_md4 -s "+seed.String()+" "+name)
		h, minor := dirHash(name, o.hashSeed())
		want := fmt.Sprintf("Hash of %s is 0x%x (minor 0x%x)", name, h, minor)
		if !strings.Contains(out, want) {
			t.Errorf("dx_hash %q: debugfs says %q, want %q", name, strings.TrimSpace(out), want)
		}
	}
}

func TestCrc32c(t *testing.T) {
	// The CRC-32C check value is 0xE3069283 with the final inversion.
	if got := crc32c(^uint32(0), []byte("123456789")); got != ^uint32(0xE3069283) {
		t.Fatalf("crc32c(123456789) = %#x, want %#x", got, ^uint32(0xE3069283))
	}
	// Continuing a crc equals computing it in one go.
	if crc32c(crc32c(5, []byte("abc")), []byte("def")) != crc32c(5, []byte("abcdef")) {
		t.Fatal("crc32c does not continue")
	}
}

func TestEncodeTime(t *testing.T) {
	for _, tc := range []struct {
		t          int64
		nsec       uint32
		sec, extra uint32
	}{
		{0, 0, 0, 0},
		{1700000000, 999999999, 1700000000, 999999999 << 2},
		{1<<31 - 1, 0, 0x7fffffff, 0},
		{1 << 31, 0, 0x80000000, 1},           // 2038: epoch bits 01
		{4102444800, 1, 0xf4865700, 1<<2 | 1}, // 2100
		{-1, 0, 0xffffffff, 0},
		{-1 << 31, 0, 0x80000000, 0},
		{-1<<31 - 5, 7, 0x80000000, 0},             // clamped to 1901
		{1 << 40, 0, 0x7fffffff, 999999999<<2 | 3}, // clamped to 2446
	} {
		sec, extra := encodeTime(tc.t, tc.nsec)
		if sec != tc.sec || extra != tc.extra {
			t.Errorf("encodeTime(%d, %d) = %#x, %#x; want %#x, %#x", tc.t, tc.nsec, sec, extra, tc.sec, tc.extra)
		}
	}
}

func TestHasSuper(t *testing.T) {
	for g, want := range map[uint32]bool{0: true, 1: true, 2: false, 3: true, 4: false, 5: true, 7: true, 8: false,
		9: true, 15: false, 16: false, 25: true, 27: true, 45: false, 49: true, 81: true, 125: true, 243: true, 343: true} {
		if hasSuper(g) != want {
			t.Errorf("hasSuper(%d) = %v, want %v", g, !want, want)
		}
	}
}

func TestDefaultJournalBlocks(t *testing.T) {
	for _, tc := range []struct {
		blocks uint64
		want   uint32
	}{{2048, 1024}, {32767, 1024}, {32768, 4096}, {262144, 8192}, {524288, 16384},
		{4 << 20, 32768}, {8 << 20, 65536}, {16 << 20, 131072}, {32 << 20, 262144}, {1 << 40, 262144}} {
		if got := defaultJournalBlocks(tc.blocks); got != tc.want {
			t.Errorf("defaultJournalBlocks(%d) = %d, want %d", tc.blocks, got, tc.want)
		}
	}
}

func TestACLToDisk(t *testing.T) {
	got, err := aclToDisk(posixACL)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("01000000" + "01000700" + "02000500e8030000" + "04000500" + "10000500" + "20000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("aclToDisk = %x, want %x", got, want)
	}
	bad := bytes.Clone(posixACL)
	bad[4] = 0x40 // unknown tag
	if _, err := aclToDisk(bad); err == nil {
		t.Fatal("aclToDisk accepted an unknown tag")
	}
}

type layerXattr = tree.Xattr

// TestDeviceNumberLimits writes the largest device numbers ext4 holds,
// and ones on each side of the old 8:8 encoding, and reads them back.
func TestDeviceNumberLimits(t *testing.T) {
	devs := [][2]uint32{{0, 0}, {255, 255}, {256, 0}, {0, 256}, {maxDevMajor, maxDevMinor}, {4095, 0}, {0, 1048575}}
	tr := tree.New(rtEpoch)
	for i, d := range devs {
		tr.Root.SetChild(fmt.Sprint("d", i), &tree.Inode{Kind: tree.BlockDev, Mode: 0o600, Mtime: rtEpoch, Major: d[0], Minor: d[1]})
	}
	f := rtWrite(t, tr, 0)
	got, err := ReadTree(f, rtSize(t, f))
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		n := got.Root.Child(fmt.Sprint("d", i))
		if n == nil || n.Kind != tree.BlockDev || n.Major != d[0] || n.Minor != d[1] {
			t.Errorf("d%d: wrote %d:%d, read %+v", i, d[0], d[1], n)
		}
	}
}
