// Command mkgolden writes the layers of the golden test,
// testdata/golden/base.tar and top.tar: a few entries of every kind kiln
// merges (regular files small and extent-sized, a hardlink, symlinks inline
// and long, character and block devices, a fifo, xattrs, a directory large
// enough for an ext4 htree, files with long names on the FAT ESP), then
// whiteouts of a file and a symlink and an opaque directory across the two
// layers. Every header field is fixed here, so the tars are the same bytes
// wherever this runs:
//
//	go run ./scripts/mkgolden testdata/golden
//
// sealed.tar, layered on both by the sealed-root specs only (erofs.yaml,
// erofs-lz4.yaml), holds what the EROFS writer lays out specially: text
// that compresses, a mostly-zero file (chunk-based, its zeros not stored)
// and an xattr two files share (the shared xattr area).
//
// The tars are committed; regenerate them only to change the fixture (and
// then the golden hashes, with a CHANGELOG.md line).
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// mtime is the fixed time of every entry (2023-11-14T22:13:20Z).
var mtime = time.Unix(1700000000, 0).UTC()

type entry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	data     []byte
	link     string
	major    int64
	minor    int64
	xattrs   map[string]string
}

func dir(name string, mode int64) entry { return entry{name: name, typ: tar.TypeDir, mode: mode} }
func file(name string, mode int64, data []byte) entry {
	return entry{name: name, typ: tar.TypeReg, mode: mode, data: data}
}

// pseudo is n deterministic bytes that do not compress.
func pseudo(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func base() []entry {
	e := []entry{
		dir("boot/", 0o755), dir("boot/efi/", 0o755), dir("boot/efi/EFI/", 0o755), dir("boot/efi/EFI/kiln/", 0o755),
		file("boot/efi/EFI/kiln/A Long File Name for the ESP.txt", 0o644, []byte("long file name\n")),
		file("boot/efi/EFI/kiln/Ünïcödé nämé.conf", 0o644, []byte("unicode\n")),
		file("boot/efi/README.TXT", 0o644, []byte("an 8.3 name\n")),
		file("boot/efi/EFI/kiln/big.bin", 0o644, pseudo(1, 100<<10)),
		dir("dev/", 0o755),
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "dev/vda", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 252, minor: 0},
		dir("etc/", 0o755),
		file("etc/hostname", 0o644, []byte("golden\n")),
		{name: "etc/shadow", typ: tar.TypeReg, mode: 0o640, gid: 42, data: []byte("root:*:19000:0:99999:7:::\n")},
		{name: "etc/xattrs", typ: tar.TypeReg, mode: 0o644, data: []byte("has xattrs\n"),
			xattrs: map[string]string{"user.kiln": "golden", "trusted.big": string(pseudo(2, 300)), "security.selinux": "system_u:object_r:etc_t:s0\x00"}},
		dir("opt/", 0o755), dir("opt/old/", 0o755),
		file("opt/old/a", 0o644, []byte("a\n")), file("opt/old/b", 0o644, []byte("b\n")),
		dir("run/", 0o755),
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		dir("srv/", 0o755), dir("srv/many/", 0o755),
		dir("tmp/", 0o1777),
		dir("usr/", 0o755), dir("usr/bin/", 0o755),
		file("usr/bin/tool", 0o755, pseudo(3, 70<<10)),
		{name: "usr/bin/tool-hardlink", typ: tar.TypeLink, link: "usr/bin/tool"},
		{name: "usr/bin/sh", typ: tar.TypeSymlink, mode: 0o777, link: "tool"},
		{name: "usr/bin/long-symlink", typ: tar.TypeSymlink, mode: 0o777,
			link: "../../a/symlink/target/longer/than/sixty/characters/so/it/needs/a/block/of/its/own"},
		{name: "usr/bin/setuid", typ: tar.TypeReg, mode: 0o4755, data: []byte("#!/bin/sh\n")},
		file("usr/empty", 0o644, nil),
		dir("var/", 0o755), dir("var/log/", 0o755),
		file("var/log/old.log", 0o640, []byte("to be whited out\n")),
		{name: "var/log/owned", typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, data: []byte("user's\n")},
	}
	// A directory of 300 entries: more than one 4 KiB block, so ext4
	// indexes it (htree).
	for i := 0; i < 300; i++ {
		e = append(e, file(fmt.Sprintf("srv/many/entry-with-a-longish-name-%04d", i), 0o644, []byte{byte(i)}))
	}
	return e
}

func top() []entry {
	return []entry{
		dir("etc/", 0o755),
		file("etc/hostname", 0o644, []byte("golden-top\n")),
		dir("opt/", 0o755), dir("opt/old/", 0o755),
		file("opt/old/.wh..wh..opq", 0o644, nil),
		file("opt/old/c", 0o644, []byte("c, alone after the opaque whiteout\n")),
		dir("usr/", 0o755), dir("usr/bin/", 0o755),
		file("usr/bin/.wh.sh", 0o644, nil),
		dir("var/", 0o755), dir("var/log/", 0o755),
		file("var/log/.wh.old.log", 0o644, nil),
		file("var/log/new.log", 0o644, []byte("added by the top layer\n")),
	}
}

func sealed() []entry {
	var text bytes.Buffer
	for i := 0; text.Len() < 64<<10; i++ {
		fmt.Fprintf(&text, "line %d of a text that compresses: the quick brown fox jumps over the lazy dog\n", i)
	}
	sparse := make([]byte, 256<<10)
	copy(sparse, pseudo(7, 4096))
	copy(sparse[len(sparse)-4096:], pseudo(8, 4096))
	capNetRaw := "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	ping := file("usr/bin/ping", 0o755, []byte("ping\n"))
	ping.xattrs = map[string]string{"security.capability": capNetRaw}
	arping := file("usr/bin/arping", 0o755, []byte("arping\n"))
	arping.xattrs = map[string]string{"security.capability": capNetRaw}
	return []entry{
		dir("usr/", 0o755), dir("usr/bin/", 0o755), ping, arping,
		dir("usr/share/", 0o755), dir("usr/share/doc/", 0o755),
		file("usr/share/doc/text.txt", 0o644, text.Bytes()),
		dir("var/", 0o755), dir("var/lib/", 0o755),
		file("var/lib/sparse.img", 0o644, sparse),
	}
}

func write(path string, entries []entry) error {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Size: int64(len(e.data)), Linkname: e.link, Devmajor: e.major, Devminor: e.minor,
			ModTime: mtime, Format: tar.FormatPAX,
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
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkgolden DIR")
		os.Exit(2)
	}
	for name, entries := range map[string][]entry{"base.tar": base(), "top.tar": top(), "sealed.tar": sealed()} {
		if err := write(filepath.Join(os.Args[1], name), entries); err != nil {
			fmt.Fprintln(os.Stderr, "mkgolden:", err)
			os.Exit(1)
		}
	}
}
