package initramfs

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const testKver = "6.1.0-test"

// kmod is a module built for testKver with the given depends= and other
// .modinfo fields.
func kmod(depends string, fields ...string) []byte {
	return fakeModule(append([]string{"vermagic=" + testKver + " SMP preempt mod_unload", "depends=" + depends}, fields...)...)
}

// modTree is a tree with /lib -> usr/lib (merged /usr) and the given
// files below /usr/lib/modules/testKver.
func modTree(files map[string][]byte) *tree.Tree {
	t := tree.New(testEpoch)
	addSymlink(t, "/lib", "usr/lib")
	for p, data := range files {
		addFile(t, "/usr/lib/modules/"+testKver+"/"+p, 0o644, data)
	}
	return t
}

func xzBytes(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	e, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.EncodeAll(b, nil)
}

func gzBytes(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func moduleNames(mods []Module) string {
	var s []string
	for _, m := range mods {
		s = append(s, m.Name)
	}
	return strings.Join(s, " ")
}

func TestResolveModules(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string][]byte
		want    []string
		order   string // module names in load order
		wantErr string
	}{
		{
			name: "modinfo depends, dashes and underscores the same",
			files: map[string][]byte{
				"kernel/fs/a.ko":      kmod("b,c_d"),
				"kernel/lib/b.ko":     kmod("c-d"),
				"kernel/lib/c-d.ko":   kmod(""),
				"kernel/lib/other.ko": kmod(""),
			},
			want:  []string{"a"},
			order: "c_d b a",
		},
		{
			name: "softdep through an alias prefers the generic provider",
			files: map[string][]byte{
				"kernel/fs/fsx.ko":                kmod("", "softdep=pre: crypto-crcx"),
				"kernel/crypto/crcx_generic.ko":   kmod("", "alias=crypto-crcx", "alias=crcx"),
				"kernel/arch/crypto/crcx-fast.ko": kmod("", "alias=crypto-crcx", "alias=crcx"),
			},
			want:  []string{"fsx"},
			order: "crcx_generic fsx",
		},
		{
			name: "alias scan when the generic name is not a guess",
			files: map[string][]byte{
				"kernel/fs/fsy.ko":            kmod("", "softdep=pre: hashy post: after"),
				"kernel/crypto/aaa_fast.ko":   kmod("", "alias=hash?"),
				"kernel/crypto/zz_generic.ko": kmod("", "alias=hashy"),
				"kernel/lib/after.ko":         kmod(""),
			},
			want:  []string{"fsy"},
			order: "zz_generic fsy after",
		},
		{
			name: "softdep nothing provides is skipped",
			files: map[string][]byte{
				"kernel/fs/fsz.ko": kmod("", "softdep=pre: nothing-here"),
			},
			want:  []string{"fsz"},
			order: "fsz",
		},
		{
			name: "built-in wanted, built-in dependency, optional missing",
			files: map[string][]byte{
				"modules.builtin":   []byte("kernel/lib/crc32.ko\nkernel/lib/libcrc32c.ko\n"),
				"kernel/fs/a.ko":    kmod("crc32"),
				"kernel/drv/dev.ko": kmod(""),
			},
			want:  []string{"crc32", "nvme?", "a", "dev"},
			order: "a dev",
		},
		{
			name: "alias of a built-in from modules.builtin.modinfo",
			files: map[string][]byte{
				"modules.builtin.modinfo": []byte("crc32c_generic.alias=crypto-crc32c\x00crc32c_generic.license=GPL\x00"),
				"kernel/fs/e.ko":          kmod("", "softdep=pre: crypto-crc32c"),
			},
			want:  []string{"e"},
			order: "e",
		},
		{
			name: "wanted by alias",
			files: map[string][]byte{
				"kernel/fs/ext4.ko": kmod("", "alias=fs-ext4"),
			},
			want:  []string{"fs-ext4"},
			order: "ext4",
		},
		{
			name: "updates/ wins over kernel/",
			files: map[string][]byte{
				"kernel/drv/m.ko":  kmod("", "name=old"),
				"updates/drv/m.ko": kmod("n"),
				"kernel/drv/n.ko":  kmod(""),
			},
			want:  []string{"m"},
			order: "n m",
		},
		{
			name: "modules.dep wins over .modinfo",
			files: map[string][]byte{
				"modules.dep":     []byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\nkernel/c.ko:\n"),
				"kernel/a.ko":     kmod("c"),
				"kernel/b.ko":     kmod(""),
				"kernel/c.ko":     kmod(""),
				"modules.softdep": []byte("# comment\nsoftdep a pre: c\n"),
			},
			want:  []string{"a"},
			order: "b c a",
		},
		{
			name: "modules.alias wins over alias= fields",
			files: map[string][]byte{
				"modules.dep":          []byte("kernel/f.ko:\nkernel/p1.ko:\nkernel/p2_generic.ko:\n"),
				"modules.alias":        []byte("alias crypto-q p1\nalias crypto-q p2_generic\n"),
				"kernel/f.ko":          kmod("", "softdep=pre: crypto-q"),
				"kernel/p1.ko":         kmod(""),
				"kernel/p2_generic.ko": kmod(""),
			},
			want:  []string{"f"},
			order: "p2_generic f",
		},
		{
			name: "compressed modules",
			files: map[string][]byte{
				"kernel/a.ko.xz":  xzBytes(t, kmod("b")),
				"kernel/b.ko.zst": zstdBytes(t, kmod("c")),
				"kernel/c.ko.gz":  gzBytes(t, kmod("")),
			},
			want:  []string{"a"},
			order: "c b a",
		},
		{
			name:    "missing wanted module",
			files:   map[string][]byte{"kernel/a.ko": kmod("")},
			want:    []string{"a", "virtio_blk"},
			wantErr: "module virtio_blk not found in /usr/lib/modules/" + testKver,
		},
		{
			name:    "missing dependency",
			files:   map[string][]byte{"kernel/a.ko": kmod("gone")},
			want:    []string{"a"},
			wantErr: "module a needs gone, which is neither in",
		},
		{
			name:    "cycle",
			files:   map[string][]byte{"kernel/a.ko": kmod("b"), "kernel/b.ko": kmod("a")},
			want:    []string{"a"},
			wantErr: "dependency cycle: a -> b -> a",
		},
		{
			name:    "module for another kernel",
			files:   map[string][]byte{"kernel/a.ko": fakeModule("vermagic=5.10.0-9-amd64 SMP", "depends=")},
			want:    []string{"a"},
			wantErr: `built for kernel "5.10.0-9-amd64 SMP", not ` + testKver,
		},
		{
			name:    "not an ELF file",
			files:   map[string][]byte{"kernel/a.ko": []byte("#!/bin/sh\n")},
			want:    []string{"a"},
			wantErr: "module a (/usr/lib/modules/" + testKver + "/kernel/a.ko): not an ELF file",
		},
		{
			name:    "modules.dep escaping the modules directory",
			files:   map[string][]byte{"modules.dep": []byte("kernel/a.ko: ../../../../etc/shadow.ko\n"), "kernel/a.ko": kmod("")},
			want:    []string{"a"},
			wantErr: `modules.dep:1: module path "../../../../etc/shadow.ko" is not below the modules directory`,
		},
		{
			name:    "modules.dep naming a file the tree lacks",
			files:   map[string][]byte{"modules.dep": []byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n"), "kernel/a.ko": kmod("")},
			want:    []string{"a"},
			wantErr: "modules.dep lists /usr/lib/modules/" + testKver + "/kernel/b.ko, which the tree lacks",
		},
		{
			name:    "not a module name",
			files:   map[string][]byte{"kernel/a.ko": kmod("")},
			want:    []string{"../a"},
			wantErr: `"../a" is not a module name`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods, err := ResolveModules(modTree(tc.files), testKver, tc.want)
			if testkit.WantErr(t, err, tc.wantErr) {
				return
			}
			if got := moduleNames(mods); got != tc.order {
				t.Errorf("order %q, want %q", got, tc.order)
			}
			checkOrder(t, mods)
		})
	}
}

// checkOrder checks that every module comes after its dependencies.
func checkOrder(t *testing.T, mods []Module) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range mods {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("module %s listed twice", m.Name)
		}
		pos[m.Name] = i
	}
	for i, m := range mods {
		for _, d := range m.Deps {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("module %s (position %d) needs %s (position %d, present %v)", m.Name, i, d, j, ok)
			}
		}
	}
}

func TestResolveModulesFields(t *testing.T) {
	tr := modTree(map[string][]byte{
		"kernel/fs/a.ko.xz":  xzBytes(t, kmod("b", "softdep=pre: c")),
		"kernel/lib/b.ko":    kmod(""),
		"kernel/lib/c.ko.gz": gzBytes(t, kmod("")),
	})
	mods, err := ResolveModules(tr, testKver, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Module{
		{Name: "b", Path: "/usr/lib/modules/" + testKver + "/kernel/lib/b.ko", Rel: "kernel/lib/b.ko"},
		{Name: "c", Path: "/usr/lib/modules/" + testKver + "/kernel/lib/c.ko.gz", Rel: "kernel/lib/c.ko", Compression: "gz"},
		{Name: "a", Path: "/usr/lib/modules/" + testKver + "/kernel/fs/a.ko.xz", Rel: "kernel/fs/a.ko", Compression: "xz", Deps: []string{"b", "c"}},
	}
	if len(mods) != len(want) {
		t.Fatalf("got %d modules (%s), want %d", len(mods), moduleNames(mods), len(want))
	}
	for i, w := range want {
		m := mods[i]
		if m.Name != w.Name || m.Path != w.Path || m.Rel != w.Rel || m.Compression != w.Compression ||
			strings.Join(m.Deps, ",") != strings.Join(w.Deps, ",") || m.Inode != tr.Lookup(w.Path) {
			t.Errorf("module %d = %+v, want %+v", i, m, w)
		}
	}
	// The modules read back decompressed.
	for _, m := range mods {
		data, err := readModule(m.Inode, m.Compression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseModinfo(data); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
	}
}

func TestResolveModulesNoModulesDir(t *testing.T) {
	tr := tree.New(testEpoch)
	if mods, err := ResolveModules(tr, testKver, []string{"nvme?"}); err != nil || len(mods) != 0 {
		t.Errorf("optional only: %v, %v; want nothing and no error", mods, err)
	}
	_, err := ResolveModules(tr, testKver, []string{"ext4"})
	if err == nil || !strings.Contains(err.Error(), "it has neither /lib/modules/"+testKver+" nor /usr/lib/modules/"+testKver) {
		t.Errorf("error %v, want one saying there is no modules directory", err)
	}
	if _, err := ResolveModules(tr, "../x", []string{"ext4"}); err == nil || !strings.Contains(err.Error(), "not a directory name") {
		t.Errorf("kernel version ../x: error %v", err)
	}
}

// TestResolveModulesBothDirs: separate /lib/modules and /usr/lib/modules
// trees are both searched.
func TestResolveModulesBothDirs(t *testing.T) {
	tr := tree.New(testEpoch)
	addFile(tr, "/lib/modules/"+testKver+"/kernel/a.ko", 0o644, kmod("b"))
	addFile(tr, "/usr/lib/modules/"+testKver+"/extra/b.ko", 0o644, kmod(""))
	mods, err := ResolveModules(tr, testKver, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := moduleNames(mods); got != "b a" {
		t.Errorf("order %q, want \"b a\"", got)
	}
}

func TestParseSoftdep(t *testing.T) {
	tests := []struct{ in, pre, post string }{
		{"pre: crypto-crc32c", "crypto-crc32c", ""},
		{"pre: a b post: c", "a b", "c"},
		{"post: c pre: a", "a", "c"},
		{"a pre:", "", ""},
	}
	for _, tc := range tests {
		pre, post := parseSoftdep(tc.in)
		if strings.Join(pre, " ") != tc.pre || strings.Join(post, " ") != tc.post {
			t.Errorf("parseSoftdep(%q) = %q, %q; want %q, %q", tc.in, pre, post, tc.pre, tc.post)
		}
	}
}
