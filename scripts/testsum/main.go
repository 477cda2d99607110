// Command testsum reads `go test -json` on standard input and writes what a
// person reading CI's log wants: a line per package, the whole output of
// every failed test, every skipped test with its reason, and last the
// count "N passed, N failed, N skipped". It exits 1 when a test or a
// package failed (a build failure included), when no test ran at all, or,
// with CI or KILN_REQUIRE_JUDGES set, when a test was skipped through
// the judge gate (its reason starts "missing:"): there, a missing judge,
// package or privilege is a failure, not a skip.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

type testKey struct{ pkg, test string }

type pkgStat struct {
	passed, failed, skipped int
}

func main() {
	strict := os.Getenv("CI") != "" || os.Getenv("KILN_REQUIRE_JUDGES") != ""
	code, err := summarize(os.Stdin, os.Stdout, strict)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func summarize(in io.Reader, out io.Writer, strict bool) (int, error) {
	output := map[testKey]*strings.Builder{} // a test's output, kept until it ends
	stats := map[string]*pkgStat{}
	var failedTests, skipped []string
	var buildFailed, pkgFailed []string
	buildOut := map[string]*strings.Builder{}
	passed, failed, skips, gated := 0, 0, 0, 0

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// go test writes some lines (a panic in TestMain, go vet's
			// complaints) as plain text: pass them on.
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		switch e.Action {
		case "build-output":
			b := buildOut[e.ImportPath]
			if b == nil {
				b = &strings.Builder{}
				buildOut[e.ImportPath] = b
			}
			b.WriteString(e.Output)
			continue
		case "build-fail":
			buildFailed = append(buildFailed, e.ImportPath)
			fmt.Fprintf(out, "BUILD FAIL %s\n%s", e.ImportPath, buildOut[e.ImportPath])
			continue
		}
		st := stats[e.Package]
		if st == nil {
			st = &pkgStat{}
			stats[e.Package] = st
		}
		k := testKey{e.Package, e.Test}
		switch e.Action {
		case "output":
			b := output[k]
			if b == nil {
				b = &strings.Builder{}
				output[k] = b
			}
			if b.Len() < 1<<20 {
				b.WriteString(e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				// The package's end.
				switch {
				case e.Action == "fail":
					pkgFailed = append(pkgFailed, e.Package)
					fmt.Fprintf(out, "FAIL  %s %.1fs (%d passed, %d failed, %d skipped)\n", e.Package, e.Elapsed, st.passed, st.failed, st.skipped)
					if e.FailedBuild == "" && st.failed == 0 {
						// Failed outside any test (TestMain, a timeout, a
						// panic): show what the package printed.
						fmt.Fprint(out, output[k])
					}
				case st.passed+st.failed+st.skipped > 0:
					fmt.Fprintf(out, "ok    %s %.1fs (%d passed, %d skipped)\n", e.Package, e.Elapsed, st.passed, st.skipped)
				}
				delete(output, k)
				continue
			}
			switch e.Action {
			case "pass":
				passed++
				st.passed++
			case "fail":
				failed++
				st.failed++
				failedTests = append(failedTests, e.Package+" "+e.Test)
				fmt.Fprintf(out, "--- FAIL: %s %s (%.2fs)\n%s", e.Package, e.Test, e.Elapsed, indentedOutput(output[k]))
			case "skip":
				skips++
				st.skipped++
				reason := skipReason(output[k])
				if strings.HasPrefix(reason, "missing:") {
					gated++
				}
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason))
			}
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}

	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(out, "\nskipped (%d):\n", len(skipped))
		for _, s := range skipped {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}
	code := 0
	if len(buildFailed) > 0 || len(pkgFailed) > 0 || failed > 0 {
		fmt.Fprintf(out, "\nFAILED: %d tests, %d packages (%d did not build)\n", failed, len(pkgFailed), len(buildFailed))
		for _, f := range failedTests {
			fmt.Fprintf(out, "  %s\n", f)
		}
		code = 1
	}
	if strict && gated > 0 {
		fmt.Fprintf(out, "\nFAILED: %d tests skipped for a missing judge, package or privilege, which CI must have\n", gated)
		code = 1
	}
	if passed+failed == 0 {
		fmt.Fprintln(out, "\nFAILED: no test ran")
		code = 1
	}
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", passed, failed, skips)
	return code, nil
}

// skipReason is the message a skipped test gave: its last output line
// that is not the "--- SKIP" line itself.
func skipReason(b *strings.Builder) string {
	if b == nil {
		return "(no reason given)"
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		// "file_test.go:12: reason"
		if _, after, ok := strings.Cut(l, ".go:"); ok {
			if _, msg, ok := strings.Cut(after, ": "); ok {
				return msg
			}
		}
		return l
	}
	return "(no reason given)"
}

func indentedOutput(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}
