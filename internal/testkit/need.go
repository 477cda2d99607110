package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Strict says whether a missing judge, package or privilege fails a test
// instead of skipping it: under CI (env CI set, as .ci/run runs) and with
// KILN_REQUIRE_JUDGES set, where `make test` has provided everything.
func Strict() bool {
	return os.Getenv("CI") != "" || os.Getenv("KILN_REQUIRE_JUDGES") != ""
}

// Missing is the one gate for a test that cannot run here for want of a
// tool, a package, a privilege or a facility of the machine: it skips the
// test on a developer's machine and fails it under Strict. Its message
// starts "missing:", which scripts/testsum counts. Every other skip is
// for -short or an opt-in variable (TestSkipsGoThroughTheGate).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "missing: " + fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatal(msg + " (make test provides it; CI must not skip)")
	}
	t.Skip(msg)
}

// NeedTools makes sure the named programs are on PATH, else Missing.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, "%s is not installed", tool)
		}
	}
}

// NeedRoot is Missing unless the test runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root, for %s", why)
	}
}
