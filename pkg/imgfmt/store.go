package imgfmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// chunkSize is the staging granularity: the store keeps whole 64 KiB
// chunks of the virtual disk, each in the slot it got when it was first
// written. It is also the unit content IDs are hashed in.
const chunkSize = 64 << 10

// pageChunks is how many chunks one page of the index covers (256 MiB of
// disk in 16 KiB of index). Pages are allocated on first touch, so the
// index costs 4 bytes per touched chunk plus 8 bytes per 256 MiB of disk.
const pageChunks = 4096

// punchRun is the most staged data Commit holds on to once consumed.
const punchRun = 4 << 20

// maxSlots bounds the store: slot numbers are uint32 and 0 means untouched.
const maxSlots = 1<<32 - 1

// store is the sparse staging area behind the qcow2, VMDK and dynamic VHD
// writers: an unlinked temporary file beside the destination that holds
// only the chunks of the disk that were written (a chunk's slot is
// appended on its first non-zero write), and an in-memory index from
// chunk to slot. Chunks never written read as zeros, and so do the parts
// of a chunk never written (the file has holes there).
//
// WriteAt and ReadAt may be called from several goroutines; the index is
// guarded by mu and the file is accessed with pread/pwrite only.
type store struct {
	f    *os.File
	size int64

	mu    sync.Mutex
	pages [][]uint32 // pages[c/pageChunks][c%pageChunks] = slot+1, 0 when untouched
	slots uint32     // slots handed out

	// Hole punching, done as chunks are consumed at Commit so that the
	// staged data and the image are not both on disk in full.
	noPunch  bool // the filesystem does not punch holes: stop trying
	punchEnd int64
	runStart int64 // pending run of slots to punch, in bytes; runEnd == runStart when none
	runEnd   int64
}

// newStore creates the staging file in dir and unlinks it at once: its
// space goes back to the filesystem when it is closed, even if kiln dies.
func newStore(dir, base string, size int64) (*store, error) {
	f, err := os.CreateTemp(dir, "."+base+".kiln-stage-*")
	if err != nil {
		return nil, fmt.Errorf("creating staging file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlinking staging file: %w", err)
	}
	nChunks := (size + chunkSize - 1) / chunkSize
	return &store{
		f:     f,
		size:  size,
		pages: make([][]uint32, (nChunks+pageChunks-1)/pageChunks),
	}, nil
}

func (s *store) close() { s.f.Close() }

// lookup returns chunk c's slot+1, 0 when untouched. Call with mu held.
func (s *store) lookup(c int64) uint32 {
	p := s.pages[c/pageChunks]
	if p == nil {
		return 0
	}
	return p[c%pageChunks]
}

// WriteAt stores p at disk offset off. Parts that land in untouched chunks
// and are all zero are not stored: they read as zeros anyway.
func (s *store) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > s.size || int64(len(p)) > s.size-off {
		return 0, fmt.Errorf("write of %d bytes at %d: outside the %d-byte disk", len(p), off, s.size)
	}
	done := 0
	for done < len(p) {
		c := (off + int64(done)) / chunkSize
		in := (off + int64(done)) % chunkSize
		n := min(len(p)-done, int(chunkSize-in))
		piece := p[done : done+n]
		s.mu.Lock()
		sl := s.lookup(c)
		if sl == 0 && !isZero(piece) {
			if s.slots == maxSlots {
				s.mu.Unlock()
				return done, fmt.Errorf("write at %d: staging store is full (%d chunks)", off, s.slots)
			}
			s.slots++
			sl = s.slots
			pg := s.pages[c/pageChunks]
			if pg == nil {
				pg = make([]uint32, pageChunks)
				s.pages[c/pageChunks] = pg
			}
			pg[c%pageChunks] = sl
		}
		s.mu.Unlock()
		if sl != 0 {
			if _, err := s.f.WriteAt(piece, int64(sl-1)*chunkSize+in); err != nil {
				return done, fmt.Errorf("staging write at %d: %w", off+int64(done), err)
			}
		}
		done += n
	}
	return done, nil
}

// ReadAt reads the disk at off, zeros where nothing was written. Like a
// file, it returns io.EOF when the read reaches past the end of the disk.
func (s *store) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > s.size-off {
		p = p[:s.size-off]
		eof = io.EOF
	}
	done := 0
	for done < len(p) {
		c := (off + int64(done)) / chunkSize
		in := (off + int64(done)) % chunkSize
		n := min(len(p)-done, int(chunkSize-in))
		piece := p[done : done+n]
		s.mu.Lock()
		sl := s.lookup(c)
		s.mu.Unlock()
		if sl == 0 {
			clear(piece)
		} else {
			// A slot whose tail was never written may end before the
			// file does: what is missing is zeros.
			m, err := s.f.ReadAt(piece, int64(sl-1)*chunkSize+in)
			if err != nil && !errors.Is(err, io.EOF) {
				return done, fmt.Errorf("staging read at %d: %w", off+int64(done), err)
			}
			clear(piece[m:])
		}
		done += n
	}
	return done, eof
}

// touchedUnits calls fn, in increasing order, with the index of every
// unit (of unitSize bytes, a power of two) that overlaps a touched chunk,
// until fn returns false. Units smaller than a chunk are all listed for a
// touched chunk. Call it only when no writes are under way.
func (s *store) touchedUnits(unitSize int64, fn func(u int64) bool) {
	last := int64(-1)
	for pi, pg := range s.pages {
		if pg == nil {
			continue
		}
		for i, sl := range pg {
			if sl == 0 {
				continue
			}
			c := int64(pi)*pageChunks + int64(i)
			first, end := c*chunkSize/unitSize, ((c+1)*chunkSize+unitSize-1)/unitSize
			for u := max(first, last+1); u < end; u++ {
				if u*unitSize >= s.size {
					break
				}
				if !fn(u) {
					return
				}
				last = u
			}
		}
	}
}

// releaseBelow gives back the space of every touched chunk that lies
// wholly below disk offset end: Commit calls it as units are written out,
// so the staged data shrinks while the image grows. Releasing is best
// effort; a filesystem that cannot punch holes just keeps the data until
// the store is closed.
func (s *store) releaseBelow(end int64) {
	if s.noPunch {
		return
	}
	last := min(end/chunkSize, (s.size+chunkSize-1)/chunkSize) // chunks [punchEnd, last) are done
	for c := s.punchEnd; c < last; c++ {
		pg := s.pages[c/pageChunks]
		if pg == nil {
			c = (c/pageChunks+1)*pageChunks - 1
			continue
		}
		sl := pg[c%pageChunks]
		if sl == 0 {
			continue
		}
		o := int64(sl-1) * chunkSize
		if o == s.runEnd && s.runEnd > s.runStart {
			s.runEnd += chunkSize
			continue
		}
		s.flushPunch()
		s.runStart, s.runEnd = o, o+chunkSize
	}
	if last > s.punchEnd {
		s.punchEnd = last
	}
	// Keep runs short so that space comes back while Commit goes on.
	if s.runEnd-s.runStart >= punchRun {
		s.flushPunch()
	}
}

// flushPunch punches the pending run of slots.
func (s *store) flushPunch() {
	if s.runEnd > s.runStart && !s.noPunch {
		if err := punchHole(s.f, s.runStart, s.runEnd-s.runStart); err != nil {
			s.noPunch = true
		}
	}
	s.runStart, s.runEnd = 0, 0
}

// zeroChunk is what isZero compares with.
var zeroChunk [chunkSize]byte

// isZero reports whether b is all zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), chunkSize)
		if !bytes.Equal(b[:n], zeroChunk[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
