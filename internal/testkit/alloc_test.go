package testkit

import "testing"

var sink []byte

// TestBoundAlloc: the bound passes a small allocation and catches a large
// one (the check that makes the fuzz harnesses able to fail).
func TestBoundAlloc(t *testing.T) {
	BoundAlloc(t, 1<<20, func() { sink = make([]byte, 1000) })
	ft := &fakeTB{TB: t}
	func() {
		defer func() { recover() }()
		BoundAlloc(ft, 1<<20, func() { sink = make([]byte, 8<<20) })
	}()
	if !ft.failed {
		t.Fatal("an 8 MiB allocation passed a 1 MiB bound")
	}
}

// fakeTB records Fatalf instead of failing the real test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
