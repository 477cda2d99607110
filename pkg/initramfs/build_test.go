package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// cpioEntry is an entry as the test's own newc reader sees it.
type cpioEntry struct {
	newcHeader
	Name string
	Data []byte
}

// readNewc parses a whole newc archive, checking the padding rules, up to
// and including the trailer, which must end it.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if len(b)-off < newcHeaderSize || string(b[off:off+6]) != newcMagic {
			t.Fatalf("offset %d: no newc header", off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("offset %d field %d: %v", off, i, err)
			}
			f[i] = uint32(v)
		}
		h := newcHeader{Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5], FileSize: f[6],
			DevMajor: f[7], DevMinor: f[8], RDevMajor: f[9], RDevMinor: f[10], Check: f[12]}
		nameSize := int(f[11])
		nameEnd := off + newcHeaderSize + nameSize
		name := string(b[off+newcHeaderSize : nameEnd-1])
		if b[nameEnd-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		dataOff := nameEnd + pad4(newcHeaderSize+nameSize)
		if dataOff%4 != 0 {
			t.Fatalf("%s: data at offset %d, not a multiple of 4", name, dataOff)
		}
		data := b[dataOff : dataOff+int(h.FileSize)]
		out = append(out, cpioEntry{h, name, data})
		off = dataOff + int(h.FileSize) + pad4(int(h.FileSize))
		if name == newcTrailer {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
	}
}

func decompress(t *testing.T, comp string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch comp {
	case "none":
		return b
	case "", "xz":
		xr, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = xr
	case "gzip":
		gr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if gr.Name != "" || !gr.ModTime.IsZero() {
			t.Errorf("gzip header has name %q, mtime %v; want none", gr.Name, gr.ModTime)
		}
		r = gr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testModTree has three modules, one per compression, and one more.
func testModTree(t *testing.T) *tree.Tree {
	return modTree(map[string][]byte{
		"kernel/fs/ext4.ko.xz":                  xzBytes(t, kmod("jbd2", "softdep=pre: crypto-crc32c")),
		"kernel/fs/jbd2/jbd2.ko.zst":            zstdBytes(t, kmod("")),
		"kernel/crypto/crc32c_generic.ko":       kmod("", "alias=crypto-crc32c"),
		"kernel/drivers/block/virtio_blk.ko.gz": gzBytes(t, kmod("")),
		"kernel/drivers/unused.ko":              kmod(""),
	})
}

var testInit = []byte("\x7fELF pretend init")

func TestBuildArchive(t *testing.T) {
	tr := testModTree(t)
	for _, comp := range []string{"", "xz", "gzip", "zstd", "none"} {
		t.Run("compression="+comp, func(t *testing.T) {
			o := Options{Epoch: testEpoch, Compression: comp, Modules: []string{"virtio_blk", "ext4", "nvme?"}, Init: testInit}
			var a, b bytes.Buffer
			if err := Build(&a, tr, testKver, o); err != nil {
				t.Fatal(err)
			}
			if err := Build(&b, tr, testKver, o); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("two builds differ")
			}
			o.Epoch++
			var c bytes.Buffer
			if err := Build(&c, tr, testKver, o); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(a.Bytes(), c.Bytes()) {
				t.Error("a build at another epoch is the same")
			}
			checkArchive(t, readNewc(t, decompress(t, comp, a.Bytes())))
		})
	}
}

// checkArchive checks the archive of testModTree's modules.
func checkArchive(t *testing.T, entries []cpioEntry) {
	t.Helper()
	md := "lib/modules/" + testKver
	type want struct {
		mode         uint32
		nlink        uint32
		major, minor uint32
	}
	wants := map[string]want{
		"dev":                        {modeDir | 0o755, 2, 0, 0},
		"dev/console":                {modeCharDev | 0o600, 1, 5, 1},
		"dev/kmsg":                   {modeCharDev | 0o644, 1, 1, 11},
		"dev/null":                   {modeCharDev | 0o666, 1, 1, 3},
		"dev/tty":                    {modeCharDev | 0o666, 1, 5, 0},
		"etc":                        {modeDir | 0o755, 3, 0, 0},
		"etc/kiln":                   {modeDir | 0o755, 2, 0, 0},
		"etc/kiln/modules":           {modeRegular | 0o644, 1, 0, 0},
		"init":                       {modeRegular | 0o755, 1, 0, 0},
		"lib":                        {modeDir | 0o755, 3, 0, 0},
		"lib/modules":                {modeDir | 0o755, 3, 0, 0},
		md:                           {modeDir | 0o755, 3, 0, 0},
		md + "/kernel":               {modeDir | 0o755, 5, 0, 0},
		md + "/kernel/crypto":        {modeDir | 0o755, 2, 0, 0},
		md + "/kernel/drivers":       {modeDir | 0o755, 3, 0, 0},
		md + "/kernel/drivers/block": {modeDir | 0o755, 2, 0, 0},
		md + "/kernel/drivers/block/virtio_blk.ko": {modeRegular | 0o644, 1, 0, 0},
		md + "/kernel/crypto/crc32c_generic.ko":    {modeRegular | 0o644, 1, 0, 0},
		md + "/kernel/fs":                          {modeDir | 0o755, 3, 0, 0},
		md + "/kernel/fs/ext4.ko":                  {modeRegular | 0o644, 1, 0, 0},
		md + "/kernel/fs/jbd2":                     {modeDir | 0o755, 2, 0, 0},
		md + "/kernel/fs/jbd2/jbd2.ko":             {modeRegular | 0o644, 1, 0, 0},
		"proc":                                     {modeDir | 0o755, 2, 0, 0},
		"root":                                     {modeDir | 0o700, 2, 0, 0},
		"sys":                                      {modeDir | 0o755, 2, 0, 0},
		newcTrailer:                                {0, 1, 0, 0},
	}
	if len(entries) != len(wants) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		t.Errorf("%d entries, want %d: %s", len(entries), len(wants), strings.Join(names, " "))
	}
	for i, e := range entries {
		w, ok := wants[e.Name]
		if !ok {
			t.Errorf("unexpected entry %s", e.Name)
			continue
		}
		if i > 0 && e.Name != newcTrailer && e.Name <= entries[i-1].Name {
			t.Errorf("entry %s after %s: not sorted", e.Name, entries[i-1].Name)
		}
		wantIno, wantMtime := uint32(i+1), uint32(testEpoch)
		if e.Name == newcTrailer {
			wantIno, wantMtime = 0, 0
		}
		h := e.newcHeader
		if h.Ino != wantIno || h.Mode != w.mode || h.Nlink != w.nlink || h.RDevMajor != w.major || h.RDevMinor != w.minor ||
			h.UID != 0 || h.GID != 0 || h.Mtime != wantMtime || h.DevMajor != 0 || h.DevMinor != 0 || h.Check != 0 {
			t.Errorf("%s: header %+v; want ino %d mode %o nlink %d rdev %d,%d mtime %d, owner 0:0, no dev",
				e.Name, h, wantIno, w.mode, w.nlink, w.major, w.minor, wantMtime)
		}
		if h.Mode&modeRegular == 0 && len(e.Data) != 0 {
			t.Errorf("%s: %d bytes of data", e.Name, len(e.Data))
		}
		switch {
		case e.Name == "init":
			if !bytes.Equal(e.Data, testInit) {
				t.Errorf("init is %q", e.Data)
			}
		case e.Name == "etc/kiln/modules":
			want := fmt.Sprintf("/%s/kernel/drivers/block/virtio_blk.ko\n/%[1]s/kernel/fs/jbd2/jbd2.ko\n/%[1]s/kernel/crypto/crc32c_generic.ko\n/%[1]s/kernel/fs/ext4.ko\n", md)
			if string(e.Data) != want {
				t.Errorf("modules list:\n%s\nwant:\n%s", e.Data, want)
			}
		case strings.HasSuffix(e.Name, ".ko"):
			if _, err := parseModinfo(e.Data); err != nil {
				t.Errorf("%s: not decompressed: %v", e.Name, err)
			}
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tr := testModTree(t)
	tests := []struct {
		name    string
		kver    string
		o       Options
		wantErr string
	}{
		{"no init", testKver, Options{}, "no init binary"},
		{"bad compression", testKver, Options{Init: testInit, Compression: "lz4"}, `unknown compression "lz4"`},
		{"negative epoch", testKver, Options{Init: testInit, Epoch: -1}, "epoch -1 does not fit"},
		{"epoch past 2106", testKver, Options{Init: testInit, Epoch: 1 << 32}, "does not fit"},
		{"missing module", testKver, Options{Init: testInit, Modules: []string{"ext4", "btrfs"}}, "module btrfs not found"},
		{"bad kernel version", "a/b", Options{Init: testInit}, `kernel version "a/b" is not a directory name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Build(&out, tr, tc.kver, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes written before the error", out.Len())
			}
		})
	}
}

// TestBuildNoModules: an empty module list gives an initramfs with kiln-init
// and an empty list, even for a tree without modules.
func TestBuildNoModules(t *testing.T) {
	var out bytes.Buffer
	if err := Build(&out, tree.New(testEpoch), testKver, Options{Epoch: testEpoch, Compression: "none", Modules: []string{}, Init: testInit}); err != nil {
		t.Fatal(err)
	}
	for _, e := range readNewc(t, out.Bytes()) {
		if e.Name == "etc/kiln/modules" && len(e.Data) != 0 {
			t.Errorf("modules list %q, want empty", e.Data)
		}
		if strings.HasPrefix(e.Name, "lib/modules/"+testKver+"/") {
			t.Errorf("unexpected %s", e.Name)
		}
	}
}

// TestBuildJudgedByGNUTools: GNU cpio lists the archive, decompressed by
// xz, gzip and zstd themselves, with the device nodes, modes, owners and
// mtimes, and extracts the files; xz says the check is CRC32.
func TestBuildJudgedByGNUTools(t *testing.T) {
	judge.Need(t, "cpio", "xz", "gzip", "zstd")
	tr := testModTree(t)
	dir := t.TempDir()
	tools := map[string][]string{"xz": {"xz", "-dc"}, "gzip": {"gzip", "-dc"}, "zstd": {"zstd", "-dcq"}, "none": {"cat"}}
	for _, comp := range []string{"xz", "gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			var out bytes.Buffer
			if err := Build(&out, tr, testKver, Options{Epoch: testEpoch, Compression: comp, Modules: []string{"virtio_blk", "ext4"}, Init: testInit}); err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(dir, "initrd."+comp)
			if err := os.WriteFile(img, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			cpioFile := filepath.Join(dir, comp+".cpio")
			sh := fmt.Sprintf("%s < %q > %q", strings.Join(tools[comp], " "), img, cpioFile)
			if o, code := judge.Run(t, nil, "sh", "-c", sh); code != 0 {
				t.Fatalf("%s: exit %d: %s", sh, code, o)
			}
			list, code := judge.Run(t, []string{"TZ=UTC", "LC_ALL=C"}, "sh", "-c", fmt.Sprintf("cpio -itv --quiet < %q", cpioFile))
			if code != 0 {
				t.Fatalf("cpio -itv: exit %d: %s", code, list)
			}
			t.Logf("cpio -itv:\n%s", list)
			md := "lib/modules/" + testKver
			for _, want := range []string{
				"crw-------   1 root     root       5,   1 Nov 14  2023 dev/console",
				"crw-r--r--   1 root     root       1,  11 Nov 14  2023 dev/kmsg",
				"crw-rw-rw-   1 root     root       1,   3 Nov 14  2023 dev/null",
				"crw-rw-rw-   1 root     root       5,   0 Nov 14  2023 dev/tty",
				"drwx------   2 root     root            0 Nov 14  2023 root",
				fmt.Sprintf("-rwxr-xr-x   1 root     root     %8d Nov 14  2023 init", len(testInit)),
				"drwxr-xr-x   3 root     root            0 Nov 14  2023 etc",
				"-rw-r--r--   1 root     root          ",
				"Nov 14  2023 " + md + "/kernel/fs/ext4.ko",
			} {
				if !strings.Contains(list, want) {
					t.Errorf("cpio -itv lacks %q", want)
				}
			}
			if n := strings.Count(list, "\n"); n != 25 {
				t.Errorf("cpio lists %d entries, want 25", n)
			}
			// Extract a file and compare it with what went in.
			got, code := judge.Run(t, nil, "sh", "-c", fmt.Sprintf("cpio -i --quiet --to-stdout etc/kiln/modules < %q", cpioFile))
			if code != 0 || !strings.HasSuffix(got, "/"+md+"/kernel/fs/ext4.ko\n") {
				t.Errorf("cpio -i etc/kiln/modules: exit %d: %q", code, got)
			}
		})
	}
	t.Run("xz check", func(t *testing.T) {
		info, code := judge.Run(t, nil, "xz", "-lvv", filepath.Join(dir, "initrd.xz"))
		if code != 0 {
			t.Fatalf("xz -lvv: exit %d: %s", code, info)
		}
		if !regexp.MustCompile(`(?m)^\s+Check:\s+CRC32$`).MatchString(info) {
			t.Errorf("xz -lvv does not say the check is CRC32:\n%s", info)
		}
		if strings.Contains(info, "CRC64") {
			t.Errorf("xz -lvv mentions CRC64:\n%s", info)
		}
	})
}

// TestMountsList: Options.Mounts reach /etc/kiln/mounts as kiln-init reads
// them, one line each in order, and a malformed field is refused.
func TestMountsList(t *testing.T) {
	tr := tree.New(testEpoch)
	mounts := []Mount{
		{Source: "PARTUUID=4d21b016-b534-45c2-a9fb-5c16e091fd2d", Target: "/var", FSType: "ext4", Options: "rw"},
		{Source: "/dev/vdb1", Target: "/var/lib/data", FSType: "erofs", Options: "ro,nodev"},
	}
	var buf bytes.Buffer
	if err := Build(&buf, tr, testKver, Options{Epoch: 1, Compression: "none", Modules: []string{}, Init: testInit, Mounts: mounts}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range readNewc(t, buf.Bytes()) {
		files[e.Name] = string(e.Data)
	}
	want := "PARTUUID=4d21b016-b534-45c2-a9fb-5c16e091fd2d /var ext4 rw\n/dev/vdb1 /var/lib/data erofs ro,nodev\n"
	if got := files[strings.TrimPrefix(MountsList, "/")]; got != want {
		t.Fatalf("%s = %q, want %q", MountsList, got, want)
	}
	buf.Reset()
	if err := Build(&buf, tr, testKver, Options{Epoch: 1, Compression: "none", Modules: []string{}, Init: testInit}); err != nil {
		t.Fatal(err)
	}
	for _, e := range readNewc(t, buf.Bytes()) {
		if e.Name == strings.TrimPrefix(MountsList, "/") {
			t.Fatalf("%s written without mounts", MountsList)
		}
	}
	for _, bad := range []Mount{
		{Source: "PARTUUID=x", Target: "var", FSType: "ext4", Options: "rw"},
		{Source: "PARTUUID=x", Target: "/", FSType: "ext4", Options: "rw"},
		{Source: "PARTUUID=x y", Target: "/var", FSType: "ext4", Options: "rw"},
		{Source: "PARTUUID=x", Target: "/var", FSType: "", Options: "rw"},
		{Source: "PARTUUID=x", Target: "/var\n/etc", FSType: "ext4", Options: "rw"},
	} {
		if err := Build(io.Discard, tr, testKver, Options{Epoch: 1, Modules: []string{}, Init: testInit, Mounts: []Mount{bad}}); err == nil {
			t.Errorf("mount %+v accepted", bad)
		}
	}
}
