package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// Missing skips the test, or fails it under CI (env CI set), where `make
// test` has provided every input: the rule for what the boot tests need.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
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
