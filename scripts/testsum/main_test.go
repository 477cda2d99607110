package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	ev := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	const (
		pass     = `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}`
		fail     = `{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.1}`
		failOut  = `{"Action":"output","Package":"p","Test":"TestB","Output":"    x_test.go:9: wrong bytes\n"}`
		skipOut  = `{"Action":"output","Package":"p","Test":"TestC","Output":"    x_test.go:3: not in -short\n"}`
		skip     = `{"Action":"skip","Package":"p","Test":"TestC"}`
		gateOut  = `{"Action":"output","Package":"p","Test":"TestD","Output":"    need.go:12: missing: judge e2fsck is not installed\n"}`
		gateSkip = `{"Action":"skip","Package":"p","Test":"TestD"}`
		pkgOK    = `{"Action":"pass","Package":"p","Elapsed":1}`
		pkgFail  = `{"Action":"fail","Package":"p","Elapsed":1}`
		build    = `{"Action":"build-fail","ImportPath":"q [q.test]"}`
	)
	for _, c := range []struct {
		name   string
		in     string
		strict bool
		code   int
		want   []string
	}{
		{"all pass", ev(pass, skipOut, skip, pkgOK), true, 0, []string{"1 passed, 0 failed, 1 skipped", "p TestC: not in -short"}},
		{"a failure", ev(pass, failOut, fail, pkgFail), false, 1, []string{"1 passed, 1 failed, 0 skipped", "wrong bytes", "FAILED: 1 tests"}},
		{"gate skip on a laptop", ev(pass, gateOut, gateSkip, pkgOK), false, 0, []string{"1 passed, 0 failed, 1 skipped", "missing: judge e2fsck"}},
		{"gate skip in CI", ev(pass, gateOut, gateSkip, pkgOK), true, 1, []string{"1 tests skipped for a missing judge"}},
		{"build failure", ev(pass, build, pkgOK), false, 1, []string{"did not build"}},
		{"nothing ran", ev(pkgOK), false, 1, []string{"no test ran", "0 passed, 0 failed, 0 skipped"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			code, err := summarize(strings.NewReader(c.in), &out, c.strict)
			if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Errorf("exit code %d, want %d:\n%s", code, c.code, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
