package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

func TestParseMounts(t *testing.T) {
	in := `# written by kiln
PARTUUID=4D21B016-B534-45C2-A9FB-5C16E091FD2D /var ext4 rw

	/dev/vdb1	/var/lib/data   erofs ro,nodev
PARTUUID=1a2b3c4d-03 /srv xfs rw,nosuid,noexec,noatime,logbufs=8,ro
`
	got, err := parseMounts("/etc/kiln/mounts", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{Line: 2, Source: rootSpec{Kind: rootPartUUID, PartUUID: "4d21b016-b534-45c2-a9fb-5c16e091fd2d"}, Target: "/var", FSType: "ext4", Options: "rw"},
		{Line: 4, Source: rootSpec{Kind: rootDevPath, Path: "/dev/vdb1"}, Target: "/var/lib/data", FSType: "erofs", Flags: mountFlags{ReadOnly: true, NoDev: true}, Options: "ro,nodev"},
		{Line: 5, Source: rootSpec{Kind: rootPartUUID, PartUUID: "1a2b3c4d-03"}, Target: "/srv", FSType: "xfs",
			Flags: mountFlags{ReadOnly: true, NoSuid: true, NoExec: true}, Data: "noatime,logbufs=8", Options: "rw,nosuid,noexec,noatime,logbufs=8,ro"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got, err := parseMounts("m", []byte("\n# nothing\n")); err != nil || len(got) != 0 {
		t.Errorf("an empty list: %v, %v", got, err)
	}
}

func TestParseMountsRefuses(t *testing.T) {
	const uuid = "PARTUUID=4d21b016-b534-45c2-a9fb-5c16e091fd2d"
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"three fields", uuid + " /var ext4", "m:1: 3 fields, want 4"},
		{"five fields", uuid + " /var ext4 rw extra", "m:1: 5 fields"},
		{"label source", "LABEL=var /var ext4 rw", `m:1: source "LABEL=var"`},
		{"bad partuuid", "PARTUUID=4d21 /var ext4 rw", "m:1: source"},
		{"relative target", uuid + " var ext4 rw", `target "var"`},
		{"unclean target", uuid + " /var/../etc ext4 rw", `target "/var/../etc"`},
		{"trailing slash", uuid + " /var/ ext4 rw", `target "/var/"`},
		{"the root", uuid + " / ext4 rw", `target "/"`},
		{"bad fstype", uuid + " /var EXT4 rw", `filesystem type "EXT4"`},
		{"empty option", uuid + " /var ext4 rw,,nodev", "an empty option"},
		{"twice", "# c\n" + uuid + " /var ext4 rw\n/dev/vdb1 /var ext4 rw", "m:3: /var is already mounted by line 2"},
		{"child first", "/dev/vdb1 /var/lib ext4 rw\n" + uuid + " /var ext4 rw", "m:2: /var is mounted after /var/lib (line 1), which it would hide"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMounts("m", []byte(tc.in))
			testkit.WantErr(t, err, tc.wantErr)
		})
	}
	// A sibling with a common prefix is not a child.
	if _, err := parseMounts("m", []byte("/dev/vdb1 /var/lib2 ext4 rw\n/dev/vdb2 /var/lib ext4 rw\n")); err != nil {
		t.Errorf("siblings /var/lib2 and /var/lib refused: %v", err)
	}
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"var/lib", "usr/data", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc/file"), "")
	for _, l := range []struct{ name, target string }{
		{"home", "var/home"},           // relative
		{"srv", "/usr/data"},           // absolute: inside the root, not the host's /usr
		{"var/up", "../../../../etc"},  // .. stops at the root
		{"loop", "loop"},               // itself
		{"var/lib/gone", "/nowhere/x"}, // dangling
	} {
		if err := os.Symlink(l.target, filepath.Join(root, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		target, existing, missing, wantErr string
	}{
		{"/var", "var", "", ""},
		{"/var/lib", "var/lib", "", ""},
		{"/var/lib/x/y", "var/lib", "x/y", ""},
		{"/home", "var", "home", ""},
		{"/srv", "usr/data", "", ""},
		{"/srv/www", "usr/data", "www", ""},
		{"/var/up", "etc", "", ""},
		{"/var/lib/gone", "", "nowhere/x", ""},
		{"/etc/file/x", "", "", "/etc/file is not a directory"},
		{"/loop", "", "", "more than 40 symbolic links"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			existing, missing, err := resolveIn(root, tc.target)
			if testkit.WantErr(t, err, tc.wantErr) {
				return
			}
			if existing != filepath.Join(root, tc.existing) || missing != tc.missing {
				t.Errorf("resolved to %q + %q, want %q + %q", existing, missing, filepath.Join(root, tc.existing), tc.missing)
			}
		})
	}
	// A link that goes on with .. after a missing directory cannot be
	// made without leaving the root.
	if err := os.Symlink("/nowhere/../../../x", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := resolveIn(root, "/escape"); err == nil {
		t.Error("a missing path going on with .. is accepted")
	}
}
