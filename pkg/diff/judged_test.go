package diff

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/imgfmt"
)

// run runs a tool that makes or changes the test's images, failing the
// test on a non-zero exit.
func run(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	if out, code := judge.Run(t, env, name, args...); code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
}

// place writes the filesystem image fsimg into disk at off.
func place(t *testing.T, disk, fsimg string, off int64) {
	t.Helper()
	data, err := os.ReadFile(fsimg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// TestImagesJudged compares two disks made and changed only by other
// tools (sgdisk, mke2fs -d, debugfs -w, mkfs.vfat, mcopy): B is a copy of
// A with known changes, and Images must report exactly those: the
// partition name sgdisk changed, the ext4 files debugfs removed, added,
// rewrote and chmodded, the FAT file mcopy replaced, and nothing else
// but the times of the directories that hold them.
func TestImagesJudged(t *testing.T) {
	judge.Need(t, "sgdisk", "mke2fs", "debugfs", "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for p, data := range map[string]string{
		"etc/hostname": "a\n", "bin/tool": "#!/bin/sh\n", "data/file": "to be removed\n", "data/keep": "kept\n",
	} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "bin/tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	fat := filepath.Join(dir, "readme.txt")
	if err := os.WriteFile(fat, []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A: GPT, partition 1 FAT (1-17 MiB), partition 2 ext4 (17-49 MiB).
	const mib = 1 << 20
	a := filepath.Join(dir, "a.img")
	run(t, nil, "truncate", "-s", "50M", a)
	run(t, nil, "sgdisk", "-U", "11111111-2222-3333-4444-555555555555",
		"-n", "1:2048:34815", "-t", "1:ef00", "-c", "1:esp", "-u", "1:aaaaaaaa-0000-4000-8000-000000000001",
		"-n", "2:34816:100351", "-t", "2:8300", "-c", "2:root", "-u", "2:aaaaaaaa-0000-4000-8000-000000000002", a)
	fatImg, extImg := filepath.Join(dir, "fat.img"), filepath.Join(dir, "ext.img")
	run(t, nil, "mkfs.vfat", "-i", "12345678", "-n", "ESP", "-C", fatImg, "16384")
	run(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", "-i", fatImg, "-m", fat, "::README.TXT")
	run(t, []string{"E2FSPROGS_FAKE_TIME=1700000000"}, "mke2fs", "-q", "-F", "-t", "ext4", "-U", "bbbbbbbb-0000-4000-8000-000000000003",
		"-E", "hash_seed=cccccccc-0000-4000-8000-000000000004", "-d", src, extImg, "32M")
	place(t, a, fatImg, mib)
	place(t, a, extImg, 17*mib)

	// B: A with the changes, made on the partitions' own images, then
	// written into a copy of A.
	newFile := filepath.Join(dir, "new")
	if err := os.WriteFile(newFile, []byte("added\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostname := filepath.Join(dir, "hostname")
	if err := os.WriteFile(hostname, []byte("b, a longer name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	debugfsScript := strings.Join([]string{
		"rm /data/file",
		"write " + newFile + " /new",
		"rm /etc/hostname",
		"write " + hostname + " /etc/hostname",
		"sif /bin/tool mode 0100700",
	}, "\n") + "\n"
	if out, code := judge.RunInput(t, debugfsScript, []string{"E2FSPROGS_FAKE_TIME=1700000500"}, "debugfs", "-w", "-f", "-", extImg); code != 0 {
		t.Fatalf("debugfs: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(fat, []byte("second, longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", "-o", "-i", fatImg, "-m", fat, "::README.TXT")
	b := filepath.Join(dir, "b.img")
	run(t, nil, "cp", "--sparse=always", a, b)
	place(t, b, fatImg, mib)
	place(t, b, extImg, 17*mib)
	run(t, nil, "sgdisk", "-c", "2:system", b)
	judge.SgdiskVerify(t, b)

	ia, err := imgfmt.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ia.Close()
	ib, err := imgfmt.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	r, err := Images(context.Background(), ia, ib)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	Print(&sb, r)
	t.Logf("kiln diff:\n%s", sb.String())
	if r.Identical {
		t.Fatal("identical")
	}

	// The table: the name of partition 2, and the CRCs that cover it.
	var table []string
	for _, f := range r.Table {
		table = append(table, f.Name)
	}
	if !strings.Contains(strings.Join(table, " "), "name") {
		t.Errorf("table fields %v: want partition 2's name", table)
	}

	files := map[int]map[string]File{}
	for _, p := range r.Partitions {
		files[p.Number] = map[string]File{}
		for _, f := range p.Files {
			files[p.Number][f.Path] = f
		}
		if len(p.Problems) > 0 || len(p.Unexplained) > 0 {
			t.Errorf("partition %d: problems %v, unexplained ranges %v", p.Number, p.Problems, p.Unexplained)
		}
	}
	want := map[int]map[string]struct {
		change string
		fields []string // must be among the differing fields
	}{
		1: {"/README.TXT": {"changed", []string{"size", "content sha256"}}},
		2: {
			"/data/file":    {"removed", nil},
			"/new":          {"added", nil},
			"/etc/hostname": {"changed", []string{"size", "content sha256"}},
			"/bin/tool":     {"changed", []string{"mode"}},
		},
	}
	for num, ws := range want {
		for p, w := range ws {
			f, ok := files[num][p]
			if !ok || f.Change != w.change {
				t.Errorf("partition %d: %s: got %+v, want %s", num, p, f, w.change)
				continue
			}
			have := map[string]bool{}
			for _, x := range f.Fields {
				have[x.Name] = true
			}
			for _, name := range w.fields {
				if !have[name] {
					t.Errorf("partition %d: %s: fields %+v lack %s", num, p, f.Fields, name)
				}
			}
		}
		// Anything else reported must be a directory that holds a change,
		// with only times differing.
		var others []string
		for p, f := range files[num] {
			if _, ok := ws[p]; ok {
				continue
			}
			holds := false
			for q := range ws {
				holds = holds || filepath.Dir(q) == p
			}
			for _, x := range f.Fields {
				if !strings.Contains(x.Name, "time") {
					holds = false
				}
			}
			if !holds || f.Change != "changed" {
				others = append(others, p)
			}
		}
		sort.Strings(others)
		if len(others) > 0 {
			t.Errorf("partition %d: unexpected changes %v", num, others)
		}
	}
}
