package testkit

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// Opener is file content that can be opened: what tree.Content (and so
// tree.Inode.Content) asks for.
type Opener interface {
	Open() (io.ReadCloser, error)
}

// Bytes is file content held in memory.
type Bytes []byte

// Open reads b.
func (b Bytes) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }

// String is file content held in memory, as a string.
type String string

// Open reads s.
func (s String) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(s))), nil }

// Zeros is content of that many zero bytes, whatever size its inode says:
// for tests of content shorter or longer than announced.
type Zeros int

// Open reads the zeros.
func (z Zeros) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(make([]byte, z))), nil
}

// ReadAll opens c and reads it whole; any error fails the test.
func ReadAll(t testing.TB, c Opener) []byte {
	t.Helper()
	rc, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
