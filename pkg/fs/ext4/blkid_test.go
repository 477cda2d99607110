package ext4

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
)

// blkidExport returns `blkid -p -o export img` as a map.
func blkidExport(t *testing.T, img string) map[string]string {
	t.Helper()
	out, code := judge.Run(t, nil, "blkid", "-p", "-o", "export", img)
	if code != 0 && code != 2 { // 2: nothing recognised
		t.Fatalf("blkid -p %s: exit %d\n%s", img, code, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.ReplaceAll(v, `\ `, " ")
		}
	}
	return m
}

// TestProbeTypeLikeBlkid makes filesystems with mke2fs, with feature sets
// on each side of blkid's ext2/ext3/ext4 lines and an external journal,
// and checks that Probe names each as blkid -p does, with its label and
// UUID.
func TestProbeTypeLikeBlkid(t *testing.T) {
	judge.Need(t, "mke2fs", "blkid")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"ext2", []string{"-t", "ext2"}},
		{"ext2 with dir_index and ext_attr", []string{"-t", "ext2", "-O", "dir_index,ext_attr"}},
		{"ext3", []string{"-t", "ext3"}},
		{"ext2 with dir_nlink", []string{"-t", "ext2", "-O", "dir_nlink"}},
		{"ext2 with huge_file", []string{"-t", "ext2", "-O", "huge_file"}},
		{"ext2 with extra_isize", []string{"-t", "ext2", "-I", "256", "-O", "extra_isize"}},
		{"ext3 with uninit_bg", []string{"-t", "ext3", "-O", "uninit_bg"}},
		{"ext3 with flex_bg", []string{"-t", "ext3", "-O", "flex_bg"}},
		{"ext2 with extent", []string{"-t", "ext2", "-O", "extent"}},
		{"ext4", []string{"-t", "ext4"}},
		{"ext4 without journal", []string{"-t", "ext4", "-O", "^has_journal"}},
		{"ext4 1k bigalloc", []string{"-t", "ext4", "-b", "1024", "-O", "bigalloc", "-C", "16384"}},
		{"ext4 test_fs", []string{"-t", "ext4", "-E", "test_fs"}},
		{"journal device", []string{"-O", "journal_dev", "-b", "4096"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			args := append([]string{"-q", "-F", "-L", "lbl", "-U", "01234567-89ab-4def-8123-456789abcdef"}, c.args...)
			if out, code := judge.Run(t, []string{"E2FSPROGS_FAKE_TIME=1700000000"}, "mke2fs", append(args, img, "8M")...); code != 0 {
				t.Fatalf("mke2fs: exit %d\n%s", code, out)
			}
			want := blkidExport(t, img)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			i, err := Probe(f)
			if err != nil {
				t.Fatal(err)
			}
			if i.Type != want["TYPE"] || i.Label != want["LABEL"] || i.UUID.String() != want["UUID"] {
				t.Errorf("Probe: type %q label %q UUID %s; blkid: %v", i.Type, i.Label, i.UUID, want)
			}
		})
	}
}
