package imgfmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Image is a disk image opened for reading: the virtual disk as an
// io.ReaderAt, whatever the file format. Reads past Size return io.EOF
// like a file's. An Image may be read from several goroutines.
type Image interface {
	io.ReaderAt
	// Size is the virtual disk size in bytes.
	Size() int64
	// Format is "raw", "qcow2", "vmdk" or "vhd".
	Format() string
	Close() error
}

// Open opens the image at path and finds its format by content: qcow2
// (versions 2 and 3, standard and compressed clusters, zlib or zstd),
// VMDK with a sparse extent (streamOptimized as kiln and qemu write it,
// and monolithicSparse), VHD (fixed and dynamic). Anything else is raw.
//
// What is not supported is an error, not raw: backing files, encryption,
// external data files, qcow2 extended L2 entries, VMDK descriptor files
// with separate extents, differencing VHDs.
func Open(path string) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	img, err := openFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening image %s: %w", path, err)
	}
	return img, nil
}

func openFile(f *os.File) (Image, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fsize := fi.Size()
	var head [512]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case n >= 4 && string(head[:4]) == "QFI\xfb":
		return openQcow2(f, fsize)
	case n >= 4 && string(head[:4]) == vmdkMagic:
		return openVMDK(f, fsize)
	case n >= 8 && string(head[:8]) == vhdCookie:
		return openVHD(f, fsize)
	case bytes.HasPrefix(head[:n], []byte("# Disk DescriptorFile")):
		return nil, errors.New("vmdk descriptor files with separate extents are not supported")
	}
	if fsize >= 512 {
		var tail [8]byte
		if _, err := f.ReadAt(tail[:], fsize-512); err != nil {
			return nil, err
		}
		if string(tail[:]) == vhdCookie {
			return openVHD(f, fsize)
		}
	}
	return &rawImage{f: f, size: fsize}, nil
}

// rawImage is a raw disk: the file is the disk.
type rawImage struct {
	f    *os.File
	size int64
}

func (r *rawImage) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *rawImage) Size() int64                             { return r.size }
func (r *rawImage) Format() string                          { return "raw" }
func (r *rawImage) Close() error                            { return r.f.Close() }

// readSpans reads [off, off+len(p)) of a disk of the given size by pieces
// that do not cross a multiple of span, and has the ReaderAt contract: a
// read that reaches past size is short and returns io.EOF.
func readSpans(p []byte, off, size, span int64, read func(piece []byte, off int64) error) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p = p[:size-off]
		eof = io.EOF
	}
	done := 0
	for done < len(p) {
		o := off + int64(done)
		n := min(len(p)-done, int(span-o%span))
		if err := read(p[done:done+n], o); err != nil {
			return done, err
		}
		done += n
	}
	return done, eof
}

// preadFull reads len(p) bytes of f at off; a short file is an error.
func preadFull(f *os.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("reading %d bytes at %d: file ends first", len(p), off)
	}
	return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)
}
