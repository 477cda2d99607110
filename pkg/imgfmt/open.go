package imgfmt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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
	// Extents calls fn with the ranges of the virtual disk that are
	// allocated (may hold data), in increasing order, never overlapping,
	// adjacent ranges merged, all inside [0, Size). The rest of the disk
	// is unallocated and reads as zeros: raw and fixed VHD files from
	// SEEK_DATA/SEEK_HOLE, qcow2 from its L2 tables, VMDK from its grain
	// tables, dynamic VHD from its BAT. It stops at the first error fn
	// returns, and returns it; it returns ctx.Err() once ctx is done.
	Extents(ctx context.Context, fn func(Extent) error) error
	Close() error
}

// Extent is the range [Off, Off+Len) of a virtual disk.
type Extent struct {
	Off, Len int64
}

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// merger coalesces adjacent extents before handing them on, so that a
// run of allocated clusters is one extent.
type merger struct {
	fn  func(Extent) error
	cur Extent
}

func (m *merger) add(e Extent) error {
	if e.Len <= 0 {
		return nil
	}
	if m.cur.Len > 0 && m.cur.End() == e.Off {
		m.cur.Len += e.Len
		return nil
	}
	if err := m.flush(); err != nil {
		return err
	}
	m.cur = e
	return nil
}

func (m *merger) flush() error {
	if m.cur.Len == 0 {
		return nil
	}
	e := m.cur
	m.cur = Extent{}
	return m.fn(e)
}

// maxTableBytes bounds every table a reader loads whole from what a
// header says (the qcow2 L1 table, the VMDK grain directory, the VHD
// BAT), whatever the file size: with the grain and cluster caches, the
// memory a reader takes stays far under 256 MiB. The real tables of a
// 2 TiB disk are a few MiB at most.
const maxTableBytes = 32 << 20

// checkTable checks, before anything is allocated, that a table of n
// entries of es bytes at file offset off, named by the header field that
// gives it, lies inside a file of fsize bytes and under maxTableBytes.
func checkTable(field string, off, n, es, fsize int64) error {
	if n < 0 || off < 0 {
		return fmt.Errorf("%s: a table of %d entries at %d is invalid", field, n, off)
	}
	if n > maxTableBytes/es {
		return fmt.Errorf("%s: a table of %d entries (%d bytes) is over the bound of %d bytes", field, n, n*es, int64(maxTableBytes))
	}
	if off > fsize || n*es > fsize-off {
		return fmt.Errorf("%s: a table of %d bytes at %d ends past the end of the %d-byte file", field, n*es, off, fsize)
	}
	return nil
}

// readTable reads a table of n entries of es bytes at off, 64 KiB at a
// time, handing each entry's bytes to set: the table is held once, in its
// decoded form, not twice. The caller has checked it with checkTable.
func readTable(f *os.File, off int64, es, n int, set func(i int, b []byte)) error {
	buf := make([]byte, min(64<<10, es*n))
	per := len(buf) / es
	for i := 0; i < n; i += per {
		k := min(per, n-i)
		b := buf[:k*es]
		if err := preadFull(f, b, off+int64(i*es)); err != nil {
			return err
		}
		for j := range k {
			set(i+j, b[j*es:])
		}
	}
	return nil
}

// checkUnshared refuses a table of table offsets (the qcow2 L1 table, the
// VMDK grain directory) in which two entries point to the same table. No
// writer shares tables within one image, and a shared one would let a
// small file make Extents walk one table again for every entry (4M L1
// entries on one L2 table of 2 MiB clusters are 10^12 entries to walk).
func checkUnshared(field string, offs []uint64) error {
	sorted := make([]uint64, 0, len(offs))
	for _, o := range offs {
		if o != 0 {
			sorted = append(sorted, o)
		}
	}
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return fmt.Errorf("%s: two entries point to the same table at %d", field, sorted[i])
		}
	}
	return nil
}

// foreign are the image formats Open recognises but does not read: a
// file that has their signature is refused, never read as raw bytes.
var foreign = []struct {
	name  string
	match func(head []byte, f *os.File, fsize int64) bool
}{
	{"VHDX", func(h []byte, _ *os.File, _ int64) bool { return bytes.HasPrefix(h, []byte("vhdxfile")) }},
	{"VDI (VirtualBox)", func(h []byte, _ *os.File, _ int64) bool {
		return len(h) >= 0x44 && binary.LittleEndian.Uint32(h[0x40:]) == 0xbeda107f
	}},
	{"QED", func(h []byte, _ *os.File, _ int64) bool { return bytes.HasPrefix(h, []byte("QED\x00")) }},
	{"Parallels", func(h []byte, _ *os.File, _ int64) bool {
		return bytes.HasPrefix(h, []byte("WithoutFreeSpace")) || bytes.HasPrefix(h, []byte("WithouFreSpacExt"))
	}},
	{"VMDK version 1 (COWD)", func(h []byte, _ *os.File, _ int64) bool { return bytes.HasPrefix(h, []byte("COWD")) }},
	{"Bochs", func(h []byte, _ *os.File, _ int64) bool { return bytes.HasPrefix(h, []byte("Bochs Virtual HD Image")) }},
	{"cloop", func(h []byte, _ *os.File, _ int64) bool {
		return bytes.HasPrefix(h, []byte("#!/bin/sh\n#V2.0 Format\nmodprobe cloop"))
	}},
	// Virtual PC before 5.0 wrote a 511-byte footer: the cookie is 511
	// bytes from the end, not 512.
	{"VHD with a 511-byte footer (Virtual PC before 5.0)", func(_ []byte, f *os.File, fsize int64) bool {
		return tailIs(f, fsize, 511, vhdCookie)
	}},
	{"DMG (Apple disk image)", func(_ []byte, f *os.File, fsize int64) bool { return tailIs(f, fsize, 512, "koly") }},
}

// tailIs reports whether the file has magic back bytes from its end.
func tailIs(f *os.File, fsize, back int64, magic string) bool {
	if fsize < back {
		return false
	}
	b := make([]byte, len(magic))
	n, _ := f.ReadAt(b, fsize-back)
	return n == len(b) && string(b) == magic
}

// UnsupportedFormatError is Open's error for an image format it
// recognises but does not read.
type UnsupportedFormatError struct {
	Format string
}

func (e *UnsupportedFormatError) Error() string {
	return fmt.Sprintf("this is a %s image, a format kiln does not read; convert it first (qemu-img convert -O raw, qcow2, vmdk or vpc)", e.Format)
}

// Open opens the image at path and finds its format by content: qcow2
// (versions 2 and 3, standard and compressed clusters, zlib or zstd),
// VMDK with a sparse extent (streamOptimized as kiln and qemu write it,
// and monolithicSparse), VHD (fixed and dynamic). Formats it recognises
// by their signature but does not read (VHDX, VDI, QED, Parallels, old
// VMDK, Bochs, cloop, DMG, VHD with a 511-byte footer) are refused with
// an *UnsupportedFormatError. Anything else is raw.
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
	return namedImage{img, path}, nil
}

// namedImage puts the file's path in the errors of an image's reads, so
// that a table or a grain that is broken is reported with the file it is
// in.
type namedImage struct {
	Image
	path string
}

func (n namedImage) ReadAt(p []byte, off int64) (int, error) {
	k, err := n.Image.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("reading image %s: %w", n.path, err)
	}
	return k, err
}

func (n namedImage) Extents(ctx context.Context, fn func(Extent) error) error {
	var fnErr error
	err := n.Image.Extents(ctx, func(e Extent) error {
		fnErr = fn(e)
		return fnErr
	})
	if err != nil && err != fnErr && ctx.Err() == nil {
		err = fmt.Errorf("reading image %s: %w", n.path, err)
	}
	return err
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
	ff, err := detectFormat(head[:n], f, fsize)
	if err != nil {
		return nil, err
	}
	return ff.open(f, fsize)
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

func (r *rawImage) Extents(ctx context.Context, fn func(Extent) error) error {
	return fileExtents(ctx, r.f, r.size, fn)
}

// fileExtents calls fn with the data extents of the first size bytes of
// f, as SEEK_DATA and SEEK_HOLE find them; where the filesystem cannot
// tell, all of it is data.
func fileExtents(ctx context.Context, f *os.File, size int64, fn func(Extent) error) error {
	m := merger{fn: fn}
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		start, end, ok := NextData(f, off, size)
		if !ok {
			break
		}
		if err := m.add(Extent{start, end - start}); err != nil {
			return err
		}
		off = end
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.flush()
}

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
