//go:build linux

package ext4

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/kiln-build/kiln/pkg/tree"

	"github.com/kiln-build/kiln/internal/testkit"

	"github.com/kiln-build/kiln/internal/judge"
)

// rtHostFile is the content of a file on the host.
type rtHostFile string

func (h rtHostFile) Open() (io.ReadCloser, error) { return os.Open(string(h)) }

// rtLutimes sets the mtime of p, not following a symlink.
func rtLutimes(t *testing.T, p string, sec int64) {
	t.Helper()
	ts := [2]syscall.Timespec{{Sec: sec}, {Sec: sec}}
	b, err := syscall.BytePtrFromString(p)
	if err != nil {
		t.Fatal(err)
	}
	const atSymlinkNofollow = 0x100
	atFdcwd := -100
	if _, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(atFdcwd), uintptr(unsafe.Pointer(b)), uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0); e != 0 {
		t.Fatalf("utimensat %s: %v", p, e)
	}
}

// rtHostOptions vary rtHostTree.
type rtHostOptions struct {
	// noTrailingHole: the sparse file ends in data. mke2fs 1.47.0 with
	// inline_data sizes a file that ends in a hole wrongly.
	noTrailingHole bool
}

// rtHostTree makes a directory with every kind of file ext4 stores,
// owned and dated as the test says (whole seconds: mke2fs before 1.47.1
// drops nanoseconds), and returns it.
func rtHostTree(t *testing.T, o rtHostOptions) string {
	t.Helper()
	testkit.NeedRoot(t, "device nodes and owners")
	dir := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, data []byte, mode os.FileMode) {
		must(os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(os.WriteFile(filepath.Join(dir, p), data, mode))
		must(os.Chmod(filepath.Join(dir, p), mode))
	}
	must(os.MkdirAll(dir, 0o755))
	write("small", []byte("hello\n"), 0o644)
	write("empty", nil, 0o644)
	write("inline-ish", rtRandom(100, 1), 0o644)
	write("1M", rtRandom(1<<20, 2), 0o644)
	write("bin/ping", rtRandom(3000, 3), 0o4755|os.ModeSetuid)
	must(os.Chmod(filepath.Join(dir, "bin/ping"), os.ModeSetuid|0o755))
	must(os.Chmod(filepath.Join(dir, "bin"), os.ModeSetgid|0o755))

	// Holes at the start, in the middle and at the end.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = sp.WriteAt(rtRandom(5000, 4), 3<<20)
	must(err)
	if !o.noTrailingHole {
		must(sp.Truncate(6 << 20))
	}
	must(sp.Close())

	must(os.Symlink("small", filepath.Join(dir, "fast")))
	must(os.Symlink(strings.Repeat("long/", 30), filepath.Join(dir, "slow")))
	must(os.Link(filepath.Join(dir, "small"), filepath.Join(dir, "bin/hardlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	sock, err := net.Listen("unix", filepath.Join(dir, "sock")) // left out of the tree
	must(err)
	sock.(*net.UnixListener).SetUnlinkOnClose(false)
	must(sock.Close())
	must(syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3))
	// 259:70000 in the kernel's dev_t: needs the new encoding on disk.
	must(syscall.Mknod(filepath.Join(dir, "nvme"), syscall.S_IFBLK|0o660, int(259<<8|70000&0xFF|(70000&^0xFF)<<12)))
	must(os.MkdirAll(filepath.Join(dir, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(dir, "tmp"), os.ModeSticky|0o777))
	must(os.MkdirAll(filepath.Join(dir, "home/user"), 0o700))
	write("home/user/file", []byte("mine"), 0o600)
	must(os.Lchown(filepath.Join(dir, "home/user"), 70000, 70001))
	must(os.Lchown(filepath.Join(dir, "home/user/file"), 70000, 70001))
	must(os.Lchown(filepath.Join(dir, "fast"), 1000, 1000))
	many := filepath.Join(dir, "many")
	must(os.MkdirAll(many, 0o755))
	for i := 0; i < 400; i++ {
		write(fmt.Sprintf("many/entry-%04d", i), nil, 0o644)
	}
	deep := "deep"
	for i := 0; i < 20; i++ {
		deep += fmt.Sprintf("/d%d", i)
	}
	write(deep+"/bottom", []byte("bottom"), 0o644)

	xattrs := []struct {
		p, name string
		value   []byte
	}{
		{"bin/ping", "security.capability", rtCapability},
		{"small", "user.one", []byte("1")},
		{"small", "user.two", []byte("two")},
		{"many", "user.dir", []byte("d")},
		{"1M", "trusted.big", rtRandom(600, 5)},
	}
	for _, x := range xattrs {
		if err := syscall.Setxattr(filepath.Join(dir, x.p), x.name, x.value, 0); err != nil {
			testkit.Missing(t, "setxattr %s %s on this filesystem: %v", x.p, x.name, err)
		}
	}

	// Times last, deepest first, so that creating entries does not move
	// their directories' times.
	var paths []string
	must(filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i, p := range slices.Backward(paths) {
		sec := int64(1600000000 + 7*i)
		if p == dir {
			sec = rtEpoch // mke2fs 1.47.0 dates the root at its own time
		}
		rtLutimes(t, p, sec)
	}
	return dir
}

// rtScanHost builds the tree a host directory holds: the expected result
// of reading an image mke2fs -d made of it. Sockets are left out.
func rtScanHost(t *testing.T, dir string) *tree.Tree {
	t.Helper()
	byIno := map[uint64]*tree.Inode{}
	var scan func(p string) *tree.Inode
	scan = func(p string) *tree.Inode {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if n := byIno[st.Ino]; n != nil {
			return n
		}
		n := &tree.Inode{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Sec, Nsec: uint32(st.Mtim.Nsec)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			d := tree.NewDir(n.Mode, n.UID, n.GID, n.Mtime)
			d.Nsec = n.Nsec
			ents, err := os.ReadDir(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if c := scan(filepath.Join(p, e.Name())); c != nil {
					d.SetChild(e.Name(), c)
				}
			}
			n = d
		case syscall.S_IFREG:
			n.Kind, n.Size, n.Content = tree.Regular, st.Size, rtHostFile(p)
		case syscall.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			n.Kind, n.Target, n.Size = tree.Symlink, target, int64(len(target))
		case syscall.S_IFCHR, syscall.S_IFBLK:
			n.Kind = tree.CharDev
			if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
				n.Kind = tree.BlockDev
			}
			n.Major = uint32(st.Rdev>>8&0xFFF | st.Rdev>>32&^0xFFF)
			n.Minor = uint32(st.Rdev&0xFF | st.Rdev>>12&^0xFF)
		case syscall.S_IFIFO:
			n.Kind = tree.FIFO
		case syscall.S_IFSOCK:
			return nil
		default:
			t.Fatalf("%s: unexpected mode %#o", p, st.Mode)
		}
		if n.Kind != tree.Symlink {
			n.Xattrs = rtHostXattrs(t, p)
		}
		byIno[st.Ino] = n
		return n
	}
	return &tree.Tree{Root: scan(dir)}
}

func rtHostXattrs(t *testing.T, p string) []tree.Xattr {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := syscall.Listxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []tree.Xattr
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 1<<16)
		k, err := syscall.Getxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, tree.Xattr{Name: name, Value: v[:k]})
	}
	slices.SortFunc(out, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TestReadTreeMke2fs reads images mke2fs -d made, in many formats, and
// compares them with the directory they were made of.
func TestReadTreeMke2fs(t *testing.T) {
	judge.Need(t, "mke2fs")
	// Checks that an image has the structure its case is about.
	flagsOf := func(p string, want uint32) func(t *testing.T, rd *fsReader) {
		return func(t *testing.T, rd *fsReader) {
			raw, err := rd.readInode(rtLookup(t, rd, p))
			if err != nil {
				t.Fatal(err)
			}
			if raw.flags&want != want {
				t.Errorf("%s: flags %#x, want %#x set", p, raw.flags, want)
			}
		}
	}
	blockMapped := func(t *testing.T, rd *fsReader) {
		raw, err := rd.readInode(rtLookup(t, rd, "/1M"))
		if err != nil {
			t.Fatal(err)
		}
		if raw.flags&flagExtents != 0 || le.Uint32(raw.iblock[13*4:]) == 0 {
			t.Errorf("/1M: flags %#x, double indirect block %d: want a block map through a double indirect block", raw.flags, le.Uint32(raw.iblock[13*4:]))
		}
	}
	feature := func(name string) func(t *testing.T, rd *fsReader) {
		return func(t *testing.T, rd *fsReader) {
			info, err := Probe(rd.img.r)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Has(name) {
				t.Errorf("features %v, want %s", info.Features, name)
			}
		}
	}
	for _, c := range []struct {
		name  string
		args  []string
		size  string
		o     rtHostOptions
		check func(t *testing.T, rd *fsReader)
	}{
		{"ext4 1k blocks", []string{"-t", "ext4"}, "32M", rtHostOptions{}, flagsOf("/1M", flagExtents)},
		{"ext4 4k blocks", []string{"-t", "ext4", "-b", "4096"}, "64M", rtHostOptions{}, flagsOf("/1M", flagExtents)},
		{"ext4 64k blocks", []string{"-t", "ext4", "-b", "65536", "-O", "^has_journal"}, "128M", rtHostOptions{}, nil},
		{"inline data", []string{"-t", "ext4", "-O", "inline_data"}, "32M", rtHostOptions{noTrailingHole: true}, func(t *testing.T, rd *fsReader) {
			flagsOf("/inline-ish", flagInlineData)(t, rd) // 100 bytes: i_block and system.data
			flagsOf("/home", flagInlineData)(t, rd)
			flagsOf("/fast", 0)(t, rd)
		}},
		{"ext2 block maps", []string{"-t", "ext2"}, "32M", rtHostOptions{}, blockMapped},
		{"ext3 4k block maps", []string{"-t", "ext3", "-b", "4096"}, "64M", rtHostOptions{}, nil},
		{"gdt_csum", []string{"-t", "ext4", "-O", "^metadata_csum,uninit_bg"}, "32M", rtHostOptions{}, feature("uninit_bg")},
		{"meta_bg", []string{"-t", "ext4", "-O", "meta_bg,^resize_inode"}, "32M", rtHostOptions{}, feature("meta_bg")},
		{"128-byte inodes", []string{"-t", "ext4", "-I", "128"}, "32M", rtHostOptions{}, nil},
		{"csum seed", []string{"-t", "ext4", "-O", "metadata_csum_seed"}, "32M", rtHostOptions{}, feature("metadata_csum_seed")},
		{"bigalloc", []string{"-t", "ext4", "-b", "4096", "-O", "bigalloc", "-C", "16384"}, "64M", rtHostOptions{}, feature("bigalloc")},
		// 1 KiB blocks in 16 KiB clusters: s_first_data_block is 0, the
		// descriptors are at block 2.
		{"bigalloc 1k blocks", []string{"-t", "ext4", "-b", "1024", "-O", "bigalloc", "-C", "16384"}, "32M", rtHostOptions{}, feature("bigalloc")},
		{"bigalloc 1k blocks meta_bg", []string{"-t", "ext4", "-b", "1024", "-O", "bigalloc,meta_bg,^resize_inode", "-C", "16384"}, "32M", rtHostOptions{}, feature("meta_bg")},
		{"no filetype, 32-bit", []string{"-t", "ext4", "-O", "^filetype,^64bit"}, "32M", rtHostOptions{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := rtHostTree(t, c.o)
			img := filepath.Join(t.TempDir(), "img")
			args := append(append([]string{"-q", "-F"}, c.args...), "-d", src, img, c.size)
			cmd := exec.Command("mke2fs", args...)
			cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", rtEpoch))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mke2fs %q: %v\n%s", args, err, out)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, problems, err := ReadTreeOptions(f, rtSize(t, f), ReadOptions{})
			if err != nil {
				t.Fatalf("ReadTree: %v", err)
			}
			if len(problems) != 1 || !strings.Contains(problems[0].Error(), "/sock: socket") {
				t.Errorf("problems %v, want one: the socket left out", problems)
			}
			if c.check != nil {
				c.check(t, rtOpen(t, f, false))
			}
			want := rtScanHost(t, src)
			want.Root.SetChild("lost+found", tree.NewDir(0o700, 0, 0, rtEpoch))
			rtCompare(t, want, got)
		})
	}
}
