package imgfmt

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Output is an image being written. Writes go to a temporary file beside
// the destination; Commit moves it into place and Abort removes it, so the
// destination is either the complete new image or untouched.
type Output interface {
	io.WriterAt
	// ReaderAt reads back what was written (bootloader installers patch
	// the filesystems they find on the disk).
	io.ReaderAt
	// Commit finishes the image and renames it onto its path.
	Commit() error
	// Abort removes the temporary file. It is safe after Commit (no-op).
	Abort()
}

// Create starts an image of the given format and virtual size at path.
// The disk reads as zeros until written.
func Create(path, format string, size int64) (Output, error) {
	switch format {
	case "raw", "":
		return createRaw(path, size)
	}
	return nil, fmt.Errorf("image format %q is not supported", format)
}

// raw is a sparse raw image: the temporary file is truncated to the disk
// size, so every range that is never written stays a hole.
type raw struct {
	f    *os.File
	path string
	done bool
}

func createRaw(path string, size int64) (*raw, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output folder: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+base+".kiln-tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary output: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("sizing output to %d bytes: %w", size, err)
	}
	return &raw{f: f, path: path}, nil
}

func (r *raw) WriteAt(p []byte, off int64) (int, error) { return r.f.WriteAt(p, off) }

func (r *raw) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

// TempName is the temporary file's path (for tests and diagnostics).
func (r *raw) TempName() string { return r.f.Name() }

func (r *raw) Commit() error {
	if err := r.f.Sync(); err != nil {
		r.Abort()
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	if err := r.f.Chmod(0o644); err != nil {
		r.Abort()
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	if err := r.f.Close(); err != nil {
		r.Abort()
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	if err := os.Rename(r.f.Name(), r.path); err != nil {
		os.Remove(r.f.Name())
		return fmt.Errorf("moving image into place: %w", err)
	}
	r.done = true
	return nil
}

func (r *raw) Abort() {
	if r.done {
		return
	}
	r.done = true
	r.f.Close()
	os.Remove(r.f.Name())
}
