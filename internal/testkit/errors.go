package testkit

import (
	"strings"
	"testing"
)

// ErrContains fails the test unless err is an error whose message
// contains every one of want.
func ErrContains(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
}

// WantErr checks the error of a table case: with want set, err must
// contain it, and WantErr returns true (the case is done); with want "",
// err must be nil, and WantErr returns false (the caller checks the
// result). Either mismatch fails the test.
func WantErr(t testing.TB, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one containing %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}
