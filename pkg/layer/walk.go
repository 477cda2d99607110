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

	"github.com/kiln-build/kiln/internal/xz"
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
	// storedSize, when set, is the size the ratio limit is measured
	// against instead of src's: the compressed size of a layer walked
	// from its cache entry.
	storedSize int64
	// cache, when set, stores the decompressed stream of a compressed
	// layer, or serves it. srcDigest is the hex sha256 of src once known.
	cache     *Cache
	srcDigest string
	// info is what the last walk found.
	info Info
	// wantDiffID: find the diff_id on every walk (Options.DiffID).
	wantDiffID bool
	// rootfs: the layer is a tar file given as a root filesystem (not a
	// .deb's data, not a layer of an image), which must not turn out to
	// be an image archive (see imageMarker).
	rootfs bool
}

// Info describes a layer as its last walk found it: what a build summary
// reports.
type Info struct {
	Format  string // tar, gzip, xz, zstd, bzip2, dir
	Digest  string // "sha256:HEX" of the layer's bytes as stored, when known
	DiffID  string // "sha256:HEX" of its uncompressed tar stream, when known
	Cache   string // "hit", "stored", "off" (no cache), "" (nothing to cache: plain tar, directory)
	Note    string // why the cache did not serve or keep the layer, if it did not
	Entries int64  // entries walked
	Bytes   int64  // bytes of the uncompressed tar stream
}

// Describe returns what the last walk of l found.
func Describe(l Layer) Info {
	if d, ok := l.(interface{ describe() Info }); ok {
		return d.describe()
	}
	return Info{}
}

func (l *tarLayer) describe() Info { return l.info }

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
	l.info = Info{Format: k.String()}
	if l.blobDigest != "" {
		l.srcDigest = l.blobDigest
	}
	if !k.compressed() || l.cache == nil {
		if k.compressed() {
			l.info.Cache = "off"
		}
		return l.walk(fn, k, nil)
	}

	// Compressed, with a cache: walk the stored tar stream if there is
	// one, else decompress and store it.
	key, err := l.key()
	if err != nil {
		return l.errorf("", "reading: %w", err)
	}
	hit, ok, bad := l.cache.lookup(key)
	if bad != nil {
		l.info.Note = bad.Error() + "; decompressed again"
	}
	if ok {
		if l.diffID != "" && hit.diffID != l.diffID {
			hit.f.Close()
			return l.errorf("", "%w: uncompressed layer has sha256:%s, its diff_id is sha256:%s", ErrDigest, hit.diffID, l.diffID)
		}
		if err := l.spill.keep(hit.f); err != nil {
			return l.errorf("", "%w", err)
		}
		sub := *l
		sub.src = region{ra: hit.f, off: 0, size: hit.size}
		sub.storedSize = l.src.size
		sub.cache, sub.blobDigest, sub.diffID, sub.wantDiffID = nil, "", "", false
		err := sub.walk(fn, kindTar, nil)
		l.info.Entries, l.info.Bytes = sub.info.Entries, sub.info.Bytes
		l.info.Cache, l.info.DiffID = "hit", "sha256:"+hit.diffID
		return err
	}
	cw, err := l.cache.create(key, l.spill)
	if err != nil {
		l.info.Cache, l.info.Note = "off", err.Error()
		return l.walk(fn, k, nil)
	}
	if err := l.walk(fn, k, cw); err != nil {
		cw.abort()
		return err
	}
	sum, serr := cw.commit()
	l.info.DiffID = "sha256:" + sum
	if serr != nil {
		l.info.Cache, l.info.Note = "off", "not stored in the cache: "+serr.Error()
	} else {
		l.info.Cache = "stored"
	}
	return nil
}

// cached reports whether l is the walk of a cache entry.
func (l *tarLayer) cached() bool { return l.storedSize > 0 }

// key returns the hex sha256 of the layer's bytes as stored: its key in
// the cache. A blob's digest is known already (and checked by the walk
// that stores it); anything else is hashed once.
func (l *tarLayer) key() (string, error) {
	if l.srcDigest != "" {
		return l.srcDigest, nil
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{l.src.reader()}, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	l.srcDigest = hex.EncodeToString(h.Sum(nil))
	l.info.Digest = "sha256:" + l.srcDigest
	return l.srcDigest, nil
}

// walk reads the archive, of outer format k, from its start. With cw, the
// decompressed tar stream is also written to a new cache entry, and the
// contents of regular files are regions of it instead of spill copies.
func (l *tarLayer) walk(fn func(e *Entry) error, k kind, cw *cacheWriter) error {
	if l.srcDigest != "" {
		l.info.Digest = "sha256:" + l.srcDigest
	}
	b := l.budget()

	raw := l.src.reader()
	var rawR io.Reader = raw
	var blobH hash.Hash
	if l.blobDigest != "" || (k == kindTar && (l.diffID != "" || l.wantDiffID)) {
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
		// The tar stream is the file itself. A walk of a cache entry
		// counts it entry by entry instead, as the compressed stream it
		// stands for was counted, so that an error names the entry.
		if !l.cached() {
			if err := b.take(l.src.size); err != nil {
				return l.errorf("", "%w", err)
			}
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
		var zr io.Reader
		if k == kindXz {
			// Blocks are decoded on every core, ahead of the walk, from
			// the file itself; the digest of its bytes, when one is
			// wanted, is taken in a pass of its own.
			if blobH != nil {
				if _, err := io.CopyBuffer(blobH, struct{ io.Reader }{raw}, make([]byte, 1<<20)); err != nil {
					return l.errorf("", "reading: %w", err)
				}
			}
			xr, err := xz.NewReader(l.src.ra, l.src.off, l.src.size, 0)
			if err != nil {
				return l.errorf("", "%w", err)
			}
			defer xr.Close()
			zr = xr
		} else {
			rawBR = bufio.NewReaderSize(rawR, 64<<10)
			dec, release, err := decompress(k, rawBR)
			if err != nil {
				return l.errorf("", "%w", err)
			}
			defer release()
			zr = dec
		}
		var dr io.Reader = budgetReader{r: zr, b: b}
		if (l.diffID != "" || l.wantDiffID) && cw == nil {
			// (A cache entry being stored hashes the same stream.)
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
		if cw != nil {
			cnt.tee = cw
		}
		tarR = cnt
	default:
		return l.errorf("", "%w: not a tar archive, plain or compressed with gzip, xz, zstd or bzip2", ErrFormat)
	}

	sw := &spillWriter{s: l.spill}
	tr := tar.NewReader(tarR)
	prev := ""
	var sawIndex, sawBlobs bool // image markers of a rootfs tar
	var counted int64           // of a cache entry's stream, what the budget has taken
	for {
		h, err := tr.Next()
		if l.cached() {
			if terr := b.take(cnt.n - counted); terr != nil {
				return l.errorf(prev, "%w", terr)
			}
			counted = cnt.n
		}
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
		if l.rootfs {
			if err := imageMarker(e, &sawIndex, &sawBlobs); err != nil {
				return l.errorf(h.Name, "%w", err)
			}
		}
		if e.Type == TypeReg {
			// Refuse what would go past the limit before spilling it.
			switch {
			case isSparse(h):
				err = b.take(e.Size)
			case (!inPlace || l.cached()) && e.Size > b.left:
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
			case cw != nil && !isSparse(h):
				// The data goes to the cache entry as archive/tar reads
				// it; the content is that region of the entry.
				pos := cnt.n
				if _, err := io.CopyBuffer(discard{}, tr, sw.buffer()); err != nil {
					if errors.Is(err, ErrTooLarge) {
						return l.errorf(h.Name, "%w", err)
					}
					return l.errorf(h.Name, "reading data: %w", err)
				}
				if cnt.n-pos < e.Size {
					return l.errorf(h.Name, "reading data: %w", io.ErrUnexpectedEOF)
				}
				e.Content = sectionContent{ra: cw, off: pos, size: e.Size}
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
		l.info.Entries++
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
	l.info.Bytes = cnt.n
	if l.cached() {
		if err := b.take(cnt.n - counted); err != nil {
			return l.errorf("", "after the end of the tar archive: %w", err)
		}
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
	if diffH != nil || cw != nil {
		var got string
		if cw != nil {
			got = cw.sum()
		} else {
			got = hex.EncodeToString(diffH.Sum(nil))
		}
		l.info.DiffID = "sha256:" + got
		if l.diffID != "" && got != l.diffID {
			return l.errorf("", "%w: uncompressed layer has sha256:%s, its diff_id is sha256:%s", ErrDigest, got, l.diffID)
		}
	}
	return nil
}

// counter tracks the position of a reader in its region. With a seeker
// it lets archive/tar seek over file data.
type counter struct {
	r   io.Reader
	s   io.Seeker // nil: reads only
	n   int64
	tee io.Writer // nil, or receives every byte read
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.tee != nil && n > 0 {
		if _, werr := c.tee.Write(p[:n]); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// discard is io.Discard without ReadFrom, so that io.CopyBuffer reads
// with the buffer it is given.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// seekingCounter is a counter that is also an io.Seeker.
type seekingCounter struct{ *counter }

func (c seekingCounter) Seek(off int64, whence int) (int64, error) {
	n, err := c.s.Seek(off, whence)
	if err == nil {
		c.n = n
	}
	return n, err
}
