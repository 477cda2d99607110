package imgfmt

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/kiln-build/kiln/pkg/repro"
)

// Output is an image being written. Writes go to temporary files beside
// the destination (the disk itself, or a staging store: see doc.go);
// Commit writes the image and moves it into place and Abort removes
// everything, so the destination is either the complete new image or
// untouched. After Commit or Abort, WriteAt, ReadAt and Commit are errors.
type Output interface {
	// WriterAt writes the disk. Writes outside the disk are errors, except
	// for raw, whose file they extend, as they always have.
	io.WriterAt
	// ReaderAt reads back what was written, zeros where nothing was
	// (bootloader installers patch the filesystems they find on the disk).
	io.ReaderAt
	// Commit finishes the image and renames it onto its path.
	Commit() error
	// CommitContext is Commit, given up when ctx is done: the temporary
	// files are removed, the destination untouched, and the error wraps
	// ctx.Err().
	CommitContext(ctx context.Context) error
	// Abort removes the temporary files. It is safe after Commit (no-op).
	Abort()
}

// Options are the settings of the formats that have some. The zero value
// is valid for every format and gives its defaults; a setting that does
// not apply to the format is an error, not ignored.
type Options struct {
	// Compression of qcow2 data clusters: "none" (the default, also ""),
	// "zlib" (deflate, as qemu-img convert -c) or "zstd" (qcow2
	// compression_type 1). A cluster that does not shrink is stored
	// uncompressed, as qemu does. VMDK streamOptimized grains are always
	// deflated: there is nothing to choose.
	Compression string
	// ClusterSize of qcow2: a power of two from 512 bytes to 2 MiB
	// (0: 64 KiB, qemu's default).
	ClusterSize int64
	// Subformat of VHD: "dynamic" (the default, also "") or "fixed".
	Subformat string
	// Azure asks for a VHD that Azure accepts: fixed (Subformat may be ""
	// or "fixed") and a virtual size that is a whole number of MiB. A size
	// that is not is an error: imgfmt cannot round it up without moving
	// the end of the disk, where a GPT keeps its backup header; plan the
	// disk with AzureSize instead.
	Azure bool
	// Epoch is the VHD footer's time stamp, in Unix seconds. VHD counts
	// from 2000-01-01 UTC; earlier times (0 included) give 2000-01-01.
	Epoch int64
	// ID is the VHD unique ID and, its first 4 bytes with the top bit
	// cleared, the VMDK CID. Zero: derived from the content of the disk
	// (see id.go), so that the same disk gets the same ID.
	ID repro.UUID
}

// AzureSize is size rounded up to the whole MiB that Azure wants of a VHD.
func AzureSize(size int64) int64 { return (size + 1<<20 - 1) &^ (1<<20 - 1) }

// checkQcow2 checks a qcow2's compression and cluster size, and that its
// L1 table stays within what qemu reads.
func checkQcow2(o *Options, size int64) error {
	switch o.Compression {
	case "", "none", "zlib", "zstd":
	default:
		return fmt.Errorf("qcow2: compression %q is not one of none, zlib, zstd", o.Compression)
	}
	if cs := o.ClusterSize; cs != 0 && (cs < 1<<qcow2MinClusterBits || cs > 1<<qcow2MaxClusterBits || cs&(cs-1) != 0) {
		return fmt.Errorf("qcow2: cluster size %d is not a power of two from 512 bytes to 2 MiB", cs)
	}
	cs := o.ClusterSize
	if cs == 0 {
		cs = 64 << 10
	}
	if l1 := ((size+cs-1)/cs + cs/8 - 1) / (cs / 8); l1*8 > qcow2MaxL1Bytes {
		return fmt.Errorf("qcow2: a %d-byte disk needs an L1 table of %d bytes with %d-byte clusters, more than qemu's %d", size, l1*8, cs, qcow2MaxL1Bytes)
	}
	return nil
}

// checkVHD checks a VHD's subformat, the Azure rules and its size.
func checkVHD(o *Options, size int64) error {
	switch o.Subformat {
	case "", "dynamic", "fixed":
	default:
		return fmt.Errorf("vhd: subformat %q is not one of dynamic, fixed", o.Subformat)
	}
	if o.Azure {
		if o.Subformat == "dynamic" {
			return fmt.Errorf("vhd: Azure takes fixed VHDs only, not dynamic")
		}
		if size%(1<<20) != 0 {
			return fmt.Errorf("vhd: Azure wants a virtual size that is a whole MiB; %d is not (plan %d)", size, AzureSize(size))
		}
	}
	if size > vhdMaxSize {
		return fmt.Errorf("vhd: virtual size %d is over 2040 GiB", size)
	}
	return nil
}

func (o *Options) only(format string, allowed ...string) error {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Compression", o.Compression != ""},
		{"ClusterSize", o.ClusterSize != 0},
		{"Subformat", o.Subformat != ""},
		{"Azure", o.Azure},
	} {
		if f.set && !slices.Contains(allowed, f.name) {
			return fmt.Errorf("%s: the %s option does not apply", format, f.name)
		}
	}
	return nil
}

// raw is a sparse raw image: the temporary file is truncated to the disk
// size, so every range that is never written stays a hole.
type raw struct {
	f    *os.File
	path string
	done bool
	wb   writeback
}

// writeback starts the kernel's writeback of an output every
// writebackEvery bytes written, in the background, so that writing to
// disk overlaps with building instead of all happening in the fsync of
// Commit (by default Linux waits until a tenth of memory is dirty).
type writeback struct {
	mu      sync.Mutex
	pending int64
	running bool
	wg      sync.WaitGroup
}

const writebackEvery = 64 << 20

func (w *writeback) wrote(f *os.File, n int) {
	w.mu.Lock()
	w.pending += int64(n)
	if w.pending < writebackEvery || w.running {
		w.mu.Unlock()
		return
	}
	w.pending, w.running = 0, true
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		startWriteback(f)
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()
}

// wait waits for a writeback started in the background.
func (w *writeback) wait() { w.wg.Wait() }

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

func (r *raw) WriteAt(p []byte, off int64) (int, error) {
	n, err := r.f.WriteAt(p, off)
	r.wb.wrote(r.f, n)
	return n, err
}

func (r *raw) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

// TempName is the temporary file's path (for tests and diagnostics).
func (r *raw) TempName() string { return r.f.Name() }

func (r *raw) Commit() error { return r.CommitContext(context.Background()) }

func (r *raw) CommitContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		r.Abort()
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	r.wb.wait()
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
	if err := ctx.Err(); err != nil {
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
	r.wb.wait()
	r.f.Close()
	os.Remove(r.f.Name())
}
