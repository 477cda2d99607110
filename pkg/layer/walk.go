package layer

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// region is a byte range of an open file (or of anything with ReadAt):
// a whole layer file, an ar member, a member of a docker archive, a blob.
type region struct {
	ra   io.ReaderAt
	off  int64
	size int64
}

func (r region) reader() *io.SectionReader { return io.NewSectionReader(r.ra, r.off, r.size) }

// tarLayer is a tar archive, plain or compressed, held in a region.
type tarLayer struct {
	name     string
	src      region
	spill    *Spill
	keepRoot bool
	// Expected sha256 digests (hex), or "": of the bytes of src (an OCI
	// blob) and of the uncompressed tar stream (a docker diff_id).
	blobDigest string
	diffID     string
	// Expansion limits: Options.MaxBytes and Options.MaxRatio.
	maxBytes, maxRatio int64
}

func (l *tarLayer) Name() string { return l.name }

func (l *tarLayer) errorf(entry string, format string, a ...any) error {
	return &Error{Layer: l.name, Entry: entry, Err: fmt.Errorf(format, a...)}
}

// Walk reads the archive from its start; it may be called more than once.
func (l *tarLayer) Walk(fn func(e *Entry) error) error {
	head, err := readHead(l.src.ra, l.src.off, l.src.size)
	if err != nil {
		return l.errorf("", "reading: %w", err)
	}
	k := sniff(head)
	b := l.budget()

	raw := l.src.reader()
	var rawR io.Reader = raw
	var blobH hash.Hash
	if l.blobDigest != "" || (k == kindTar && l.diffID != "") {
		blobH = sha256.New()
		rawR = io.TeeReader(raw, blobH)
	}

	var (
		tarR  io.Reader // what tar.Reader reads
		cnt   *counter  // position in the tar stream
		diffH hash.Hash
		rawBR *bufio.Reader
		// inPlace: contents are read from src, at cnt's position.
		inPlace bool
	)
	switch {
	case k == kindTar:
		// The tar stream is the file itself.
		if err := b.take(l.src.size); err != nil {
			return l.errorf("", "%w", err)
		}
		inPlace = true
		if blobH == nil {
			// Nothing to hash: let archive/tar seek over file data.
			cnt = &counter{r: raw, s: raw}
			tarR = seekingCounter{cnt}
		} else {
			// Every byte is hashed, so every byte is read; the counter
			// above the buffer still counts what archive/tar consumed.
			cnt = &counter{r: bufio.NewReaderSize(rawR, 64<<10)}
			diffH = blobH
			tarR = cnt
		}
	case k.compressed():
		if k == kindXz {
			if err := checkXZ(l.src.ra, l.src.off, l.src.size); err != nil {
				return l.errorf("", "%w", err)
			}
		}
		rawBR = bufio.NewReaderSize(rawR, 64<<10)
		zr, release, err := decompress(k, rawBR)
		if err != nil {
			return l.errorf("", "%w", err)
		}
		defer release()
		var dr io.Reader = budgetReader{r: zr, b: b}
		if l.diffID != "" {
			diffH = sha256.New()
			dr = io.TeeReader(dr, diffH)
		}
		br := bufio.NewReaderSize(dr, 64<<10)
		inner, err := br.Peek(sniffLen)
		if errors.Is(err, ErrTooLarge) {
			return l.errorf("", "%w", err)
		}
		if !isTarHeader(inner) {
			return l.errorf("", "%w", notTar(k, err))
		}
		cnt = &counter{r: br}
		tarR = cnt
	default:
		return l.errorf("", "%w: not a tar archive, plain or compressed with gzip, xz, zstd or bzip2", ErrFormat)
	}

	sw := &spillWriter{s: l.spill}
	tr := tar.NewReader(tarR)
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			// archive/tar takes a stream cut inside the padding of the
			// last entry for a clean end; a whole archive ends on a block.
			if cnt.n%512 != 0 {
				return l.errorf(prev, "truncated archive: it ends inside a block, at byte %d", cnt.n)
			}
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && h != nil {
			err = nil // cleanPath decides, whatever GODEBUG says
		}
		if errors.Is(err, ErrTooLarge) {
			return l.errorf(prev, "%w", err)
		}
		if err != nil {
			if prev == "" {
				return l.errorf("", "reading the first tar header: %w", err)
			}
			return l.errorf(prev, "reading on after this entry: %w", err)
		}
		e, err := fromHeader(h, l.keepRoot)
		if err != nil {
			return l.errorf(h.Name, "%w", err)
		}
		prev = h.Name
		if e == nil {
			continue
		}
		if e.Type == TypeReg {
			// Refuse what would go past the limit before spilling it.
			switch {
			case isSparse(h):
				err = b.take(e.Size)
			case !inPlace && e.Size > b.left:
				err = b.err
			}
			if err != nil {
				return l.errorf(h.Name, "%w", err)
			}
			switch {
			case e.Size == 0:
				e.Content = emptyContent{}
			case inPlace && !isSparse(h):
				pos := cnt.n
				if pos+e.Size > l.src.size {
					return l.errorf(h.Name, "truncated archive: %d bytes of data at offset %d, beyond its end at %d", e.Size, pos, l.src.size)
				}
				e.Content = sectionContent{ra: l.src.ra, off: l.src.off + pos, size: e.Size}
			default:
				c, err := sw.copy(tr, e.Size)
				if errors.Is(err, ErrTooLarge) {
					return l.errorf(h.Name, "%w", err)
				}
				if err != nil {
					return l.errorf(h.Name, "reading data: %w", err)
				}
				e.Content = c
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}

	// Read every stream to its end, so that compressed framing and
	// digests are checked.
	if _, err := io.Copy(io.Discard, cnt); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return l.errorf("", "after the end of the tar archive: %w", err)
		}
		return l.errorf("", "reading past the end of the tar archive: %w", err)
	}
	if rawBR != nil && blobH != nil {
		if _, err := io.Copy(io.Discard, rawBR); err != nil {
			return l.errorf("", "reading to the end of the blob: %w", err)
		}
	}
	if blobH != nil && l.blobDigest != "" {
		if got := hex.EncodeToString(blobH.Sum(nil)); got != l.blobDigest {
			return l.errorf("", "%w: blob sha256:%s has sha256:%s", ErrDigest, l.blobDigest, got)
		}
	}
	if diffH != nil && l.diffID != "" {
		if got := hex.EncodeToString(diffH.Sum(nil)); got != l.diffID {
			return l.errorf("", "%w: uncompressed layer has sha256:%s, its diff_id is sha256:%s", ErrDigest, got, l.diffID)
		}
	}
	return nil
}

// counter tracks the position of a reader in its region. With a seeker
// it lets archive/tar seek over file data.
type counter struct {
	r io.Reader
	s io.Seeker // nil: reads only
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// seekingCounter is a counter that is also an io.Seeker.
type seekingCounter struct{ *counter }

func (c seekingCounter) Seek(off int64, whence int) (int64, error) {
	n, err := c.s.Seek(off, whence)
	if err == nil {
		c.n = n
	}
	return n, err
}
