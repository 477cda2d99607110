package testkit

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestSkipsGoThroughTheGate keeps CI from passing vacuously: a test of the
// module may skip only through Missing (or judge.Need), which fails under
// CI, or behind testing.Short() or an opt-in variable tested on the line
// before, or with a "// skip-ok: why" comment on the skip's line. A bare
// t.Skip for a missing tool would turn a broken CI machine green.
func TestSkipsGoThroughTheGate(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	skip := regexp.MustCompile(`\b[a-z]\.Skip(f|Now)?\(`)
	var bad []string
	files := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".cache", "testdata", "out", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		files++
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		prev, n := "", 0
		for sc.Scan() {
			n++
			line := sc.Text()
			if skip.MatchString(line) && !strings.Contains(line, "// skip-ok:") &&
				!strings.Contains(prev, "testing.Short()") && !strings.Contains(prev, "Getenv(") {
				rel, _ := filepath.Rel(root, p)
				bad = append(bad, rel+":"+itoa(n)+": "+strings.TrimSpace(line))
			}
			if strings.TrimSpace(line) != "" {
				prev = line
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("found only %d test files below %s", files, root)
	}
	for _, b := range bad {
		t.Errorf("a skip outside the gate (use testkit.Missing or judge.Need, or mark it // skip-ok: why): %s", b)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
