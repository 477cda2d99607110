package layer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Spill holds what the Contents of layers refer to: the spill files that
// data of compressed streams is copied into, and the archive files that
// uncompressed data is read from in place. Close releases them; after it,
// opening such a Content fails.
//
// Spill files are created in the Spill's directory and unlinked at once:
// they use disk space only while open and leave nothing behind, even if
// the process dies. A Spill may be shared by layers walked from several
// goroutines.
type Spill struct {
	dir    string
	mu     sync.Mutex
	files  []*os.File
	closed bool
}

// NewSpill returns an empty store whose spill files go to dir ("" means
// os.TempDir()).
func NewSpill(dir string) *Spill { return &Spill{dir: dir} }

var errSpillClosed = errors.New("layer spill store is closed")

// Close closes every file of the store. It is safe to call more than once.
func (s *Spill) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for _, f := range s.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.files = nil
	return errors.Join(errs...)
}

// keep makes the store own f, an archive file Contents refer to.
func (s *Spill) keep(f *os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f.Close()
		return errSpillClosed
	}
	s.files = append(s.files, f)
	return nil
}

// create returns a new, already unlinked, spill file owned by the store.
func (s *Spill) create() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSpillClosed
	}
	dir := s.dir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "kiln-spill-*")
	if err != nil {
		return nil, fmt.Errorf("creating a spill file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlinking spill file: %w", err)
	}
	s.files = append(s.files, f)
	return f, nil
}

// spillWriter appends the data of one walk to a spill file, created on
// first use. It is used by one goroutine; the Contents it returns may be
// read from any.
type spillWriter struct {
	s   *Spill
	f   *os.File
	off int64
	buf []byte
}

// buffer returns the writer's copy buffer, for other copies of the walk.
func (w *spillWriter) buffer() []byte {
	if w.buf == nil {
		w.buf = make([]byte, 256<<10)
	}
	return w.buf
}

// copy appends exactly size bytes of r and returns them as a Content.
func (w *spillWriter) copy(r io.Reader, size int64) (tree.Content, error) {
	if w.f == nil {
		f, err := w.s.create()
		if err != nil {
			return nil, err
		}
		w.f = f
	}
	// The wrappers hide ReadFrom/WriteTo so that the one buffer is used.
	n, err := io.CopyBuffer(struct{ io.Writer }{w.f}, struct{ io.Reader }{io.LimitReader(r, size)}, w.buffer())
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		// Undo the partial write so the file offset and w.off agree.
		if _, serr := w.f.Seek(w.off, io.SeekStart); serr != nil {
			return nil, errors.Join(err, serr)
		}
		return nil, err
	}
	c := sectionContent{ra: w.f, off: w.off, size: size}
	w.off += size
	return c, nil
}

// sectionContent is a region of an open file: an archive or a spill file.
// ReadAt makes it safe for concurrent readers.
type sectionContent struct {
	ra   io.ReaderAt
	off  int64
	size int64
}

func (c sectionContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(c.ra, c.off, c.size)), nil
}

// emptyContent is the content of an empty regular file.
type emptyContent struct{}

func (emptyContent) Open() (io.ReadCloser, error) { return io.NopCloser(eofReader{}), nil }

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
