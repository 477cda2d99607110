package uefi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/kiln-build/kiln/pkg/tree"
)

// File is file data of a known length: what the ESP gets for an initrd
// kiln generates, or for anything else that is not an inode of the merged
// tree. Content must give exactly Size bytes each time it is opened; this
// package checks that it does.
type File struct {
	Content tree.Content
	Size    int64
}

// Bytes returns a File holding b. b is not copied: do not change it
// afterwards.
func Bytes(b []byte) *File { return &File{Content: bytesContent(b), Size: int64(len(b))} }

// bytesContent is file content held in memory.
type bytesContent []byte

func (b bytesContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}

// fileOf returns the data of a regular file of the merged tree.
func fileOf(what string, n *tree.Inode) (*File, error) {
	switch {
	case n == nil:
		return nil, fmt.Errorf("%s: missing", what)
	case n.Kind != tree.Regular:
		return nil, fmt.Errorf("%s: is a %s, not a regular file", what, n.Kind)
	case n.Size <= 0:
		return nil, fmt.Errorf("%s: is empty", what)
	case n.Content == nil:
		return nil, fmt.Errorf("BUG: %s: file of %d bytes without content", what, n.Size)
	}
	return &File{Content: n.Content, Size: n.Size}, nil
}

// checkFile checks a File given by the caller; nil is allowed.
func checkFile(what string, f *File) error {
	switch {
	case f == nil:
		return nil
	case f.Size < 0:
		return fmt.Errorf("%s: negative size %d", what, f.Size)
	case f.Size > 0 && f.Content == nil:
		return fmt.Errorf("%s: %d bytes without content", what, f.Size)
	}
	return nil
}

// open opens f for reading exactly f.Size bytes: a Content that ends early
// or goes on past Size gives an error instead of a short or long file.
func (f *File) open(what string) (io.ReadCloser, error) {
	if f.Size == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rc, err := f.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &exactReader{what: what, rc: rc, left: f.Size, size: f.Size}, nil
}

// readPrefix reads the first min(n, f.Size) bytes of f.
func (f *File) readPrefix(what string, n int64) ([]byte, error) {
	n = min(n, f.Size)
	rc, err := f.open(what)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readAll reads the whole of f, which must be at most max bytes.
func (f *File) readAll(what string, max int64) ([]byte, error) {
	if f.Size > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", what, f.Size, max)
	}
	rc, err := f.open(what)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// exactReader reads exactly size bytes of rc and checks that there are no
// more.
type exactReader struct {
	what       string
	rc         io.ReadCloser
	left, size int64
	done       bool
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		if !r.done {
			var one [1]byte
			n, err := io.ReadFull(r.rc, one[:])
			switch {
			case n > 0:
				return 0, fmt.Errorf("%s: content is longer than its size, %d bytes", r.what, r.size)
			case err != io.EOF:
				return 0, fmt.Errorf("%s: %w", r.what, err)
			}
			r.done = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	switch {
	case err == io.EOF && r.left > 0:
		return n, fmt.Errorf("%s: content ended after %d of its %d bytes: %w", r.what, r.size-r.left, r.size, io.ErrUnexpectedEOF)
	case err == io.EOF:
		err = nil // the size check happens on the next Read
	case err != nil:
		err = fmt.Errorf("%s: %w", r.what, err)
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

// espFile is a file to add to the ESP.
type espFile struct {
	path string // absolute, slash-separated
	f    *File
}

// putAll adds files to esp with put, after checking that every one of them
// can be added: a failed install leaves the tree as it was.
func putAll(esp *tree.Tree, files []espFile, epoch int64) error {
	if esp == nil || esp.Root == nil || esp.Root.Kind != tree.Dir {
		return fmt.Errorf("BUG: ESP tree without a root directory")
	}
	for _, apply := range []bool{false, true} {
		for _, f := range files {
			if err := put(esp, f.path, f.f, epoch, apply); err != nil {
				return err
			}
		}
	}
	return nil
}

// put adds the regular file p to esp: 0644 root:root with mtime epoch.
// Missing directories are made 0755 root:root at epoch. FAT compares names
// without regard to case, so an existing directory whose name differs from
// the wanted one only in case is used (the tree may hold "efi/boot" from a
// layer), and an existing file of that name is replaced; a directory where
// the file goes, or a non-directory where a directory goes, is an error.
// Without apply, put only checks.
func put(esp *tree.Tree, p string, f *File, epoch int64, apply bool) error {
	els := strings.Split(strings.TrimPrefix(p, "/"), "/")
	dir := esp.Root
	for i, el := range els[:len(els)-1] {
		names := foldMatches(dir, el)
		switch len(names) {
		case 0:
			if !apply {
				return nil // nothing below a new directory is in the way
			}
			d := tree.NewDir(0o755, 0, 0, epoch)
			dir.SetChild(el, d)
			dir = d
		case 1:
			c := dir.Child(names[0])
			if c.Kind != tree.Dir {
				return fmt.Errorf("ESP: /%s is a %s, not a directory", strings.Join(append(els[:i:i], names[0]), "/"), c.Kind)
			}
			dir = c
		default:
			return fmt.Errorf("ESP: /%s: the names %q differ only in case, which FAT cannot store", strings.Join(els[:i+1], "/"), names)
		}
	}
	base := els[len(els)-1]
	for _, name := range foldMatches(dir, base) {
		if c := dir.Child(name); c.Kind == tree.Dir {
			return fmt.Errorf("ESP: %s: a directory %q is in the way", p, name)
		}
		if apply {
			dir.RemoveChild(name)
		}
	}
	if apply {
		dir.SetChild(base, &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: epoch, Size: f.Size, Content: f.Content})
	}
	return nil
}

// foldMatches returns the names of dir's entries equal to name under
// ASCII case folding, sorted.
func foldMatches(dir *tree.Inode, name string) []string {
	var out []string
	for _, c := range dir.Children() {
		if strings.EqualFold(c.Name, name) {
			out = append(out, c.Name)
		}
	}
	return out
}

// checkToken checks a name that becomes a file or directory name on the
// ESP (an entry token, a kernel version, a UKI name): 1 to 128 bytes of
// letters, digits and ". _ + ~ -", not starting with a dot.
func checkToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > 128 {
		return fmt.Errorf("%s %q is longer than 128 bytes", what, s)
	}
	if s[0] == '.' {
		return fmt.Errorf("%s %q starts with a dot", what, s)
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._+~-", c) >= 0
		if !ok {
			return fmt.Errorf("%s %q has a character other than letters, digits and . _ + ~ -", what, s)
		}
	}
	return nil
}

var errControl = errors.New("has a control character or is not UTF-8")

// checkLine checks text that goes on one line of a config file: valid
// UTF-8 without control characters (no newline, tab or NUL).
func checkLine(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q: %w", what, s, errControl)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%s %q: %w", what, s, errControl)
		}
	}
	return nil
}
