package imgfmt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// errFinished is what an Output says to I/O after Commit or Abort.
var errFinished = errors.New("image already committed or aborted")

// emitter writes one image format from the staged disk to out: it is
// where qcow2, VMDK and dynamic VHD differ.
type emitter interface {
	emit(ctx context.Context, st *store, out *os.File) error
}

// staged is the Output of the formats that are not a plain file of the
// disk: writes go to a sparse staging store, and Commit walks the disk in
// increasing order and writes the image to a temporary file beside the
// destination, then renames it into place.
type staged struct {
	path string
	st   *store
	out  *os.File
	em   emitter

	mu   sync.Mutex
	done bool
}

// createStaged makes the staging store and the temporary output beside
// path.
func createStaged(path string, size int64, em emitter) (*staged, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output folder: %w", err)
	}
	st, err := newStore(dir, base, size)
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, "."+base+".kiln-tmp-*")
	if err != nil {
		st.close()
		return nil, fmt.Errorf("creating temporary output: %w", err)
	}
	return &staged{path: path, st: st, out: out, em: em}, nil
}

func (s *staged) WriteAt(p []byte, off int64) (int, error) {
	if s.finished() {
		return 0, fmt.Errorf("writing %s at %d: %w", s.path, off, errFinished)
	}
	return s.st.WriteAt(p, off)
}

func (s *staged) ReadAt(p []byte, off int64) (int, error) {
	if s.finished() {
		return 0, fmt.Errorf("reading %s at %d: %w", s.path, off, errFinished)
	}
	return s.st.ReadAt(p, off)
}

func (s *staged) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// TempName is the temporary output's path (for tests and diagnostics).
func (s *staged) TempName() string { return s.out.Name() }

// Commit writes the image and renames it onto its path. Writes still
// under way when Commit is called are the caller's bug.
func (s *staged) Commit() error { return s.CommitContext(context.Background()) }

// CommitContext is Commit, stopped (and the output removed) when ctx is
// done.
func (s *staged) CommitContext(ctx context.Context) error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return fmt.Errorf("committing %s: %w", s.path, errFinished)
	}
	s.done = true
	s.mu.Unlock()

	err := s.em.emit(ctx, s.st, s.out)
	s.st.close()
	if err == nil {
		err = s.out.Sync()
	}
	if err == nil {
		err = s.out.Chmod(0o644)
	}
	if cerr := s.out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		os.Remove(s.out.Name())
		return fmt.Errorf("writing %s: %w", s.path, err)
	}
	if err := os.Rename(s.out.Name(), s.path); err != nil {
		os.Remove(s.out.Name())
		return fmt.Errorf("moving image into place: %w", err)
	}
	return nil
}

// Abort removes the temporary output and drops the staged data. It is a
// no-op after Commit.
func (s *staged) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	s.st.close()
	s.out.Close()
	os.Remove(s.out.Name())
}

// seqWriter writes an image front to back through a buffer; what it skips
// over is written as zeros, so the image has no holes it did not ask for.
type seqWriter struct {
	f   *os.File
	off int64 // file offset of buf[0]
	buf []byte
	err error
}

func newSeqWriter(f *os.File, off int64) *seqWriter {
	return &seqWriter{f: f, off: off, buf: make([]byte, 0, 1<<20)}
}

// pos is the offset the next byte goes to.
func (w *seqWriter) pos() int64 { return w.off + int64(len(w.buf)) }

func (w *seqWriter) write(p []byte) {
	for len(p) > 0 && w.err == nil {
		if len(w.buf) == 0 && len(p) >= cap(w.buf) {
			n, err := w.f.WriteAt(p, w.off)
			w.off += int64(n)
			w.err = err
			return
		}
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		if len(w.buf) == cap(w.buf) {
			w.flush()
		}
	}
}

// zeros writes n zero bytes.
func (w *seqWriter) zeros(n int64) {
	for n > 0 && w.err == nil {
		k := min(n, chunkSize)
		w.write(zeroChunk[:k])
		n -= k
	}
}

// align pads with zeros up to a multiple of a.
func (w *seqWriter) align(a int64) {
	if r := w.pos() % a; r != 0 {
		w.zeros(a - r)
	}
}

func (w *seqWriter) flush() error {
	if w.err == nil && len(w.buf) > 0 {
		n, err := w.f.WriteAt(w.buf, w.off)
		w.off += int64(n)
		w.err = err
	}
	w.buf = w.buf[:0]
	return w.err
}
