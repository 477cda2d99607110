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
	"github.com/kiln-build/kiln/pkg/tree"
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
func (l *tarLayer) Walk(fn func(e *tree.Entry) error) error {
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

// plainDigestKnown says whether srcDigest, the sha256 of a plain tar's
// bytes checked at open, stands for its diff_id: not a blob or image
// layer, whose digests each walk checks against what the image says, nor
// a cache entry.
func (l *tarLayer) plainDigestKnown() bool {
	return l.srcDigest != "" && l.blobDigest == "" && l.diffID == "" && !l.cached()
}

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
//
// It reads as the tar format does: the stream under its compression
// (open), then for each entry its header, with the PAX and GNU extended
// headers before it applied (next), the entry that header describes
// (entry), the limit its data must stay within (limit) and the region of
// the stream that holds that data (content); at the end, the rest of the
// stream and its digests (finish).
func (l *tarLayer) walk(fn func(e *tree.Entry) error, k kind, cw *cacheWriter) error {
	if l.srcDigest != "" {
		l.info.Digest = "sha256:" + l.srcDigest
	}
	b := l.budget()
	s, err := l.open(k, cw, b)
	if err != nil {
		return err
	}
	defer s.close()
	w := &tarWalk{l: l, s: s, b: b, cw: cw, tr: tar.NewReader(s.r), sw: &spillWriter{s: l.spill}}
	if err := w.entries(fn); err != nil {
		return err
	}
	return w.finish()
}

// tarStream is the tar stream of one walk, under its compression if any,
// and the digests taken of it along the way.
type tarStream struct {
	r     io.Reader     // what tar.Reader reads
	cnt   *counter      // position in the tar stream
	blobH hash.Hash     // of the layer's bytes as stored, or nil
	diffH hash.Hash     // of the uncompressed tar stream, or nil
	rawBR *bufio.Reader // the bytes as stored, under a decompressor; or nil
	// inPlace: contents are read from src, at cnt's position.
	inPlace bool
	close   func() // releases the decompressor
}

// open returns the tar stream of l, of outer format k, from its start,
// counted against b.
func (l *tarLayer) open(k kind, cw *cacheWriter, b *budget) (*tarStream, error) {
	s := &tarStream{close: func() {}}
	raw := l.src.reader()
	var rawR io.Reader = raw
	// A plain tar's diff_id is the sha256 of its bytes: when a pin was
	// checked at open, that is it, and the file is not hashed again.
	if k == kindTar && l.wantDiffID && l.plainDigestKnown() {
		l.info.DiffID = "sha256:" + l.srcDigest
	} else if l.blobDigest != "" || (k == kindTar && (l.diffID != "" || l.wantDiffID)) {
		s.blobH = sha256.New()
		rawR = io.TeeReader(raw, s.blobH)
	}
	var err error
	switch {
	case k == kindTar:
		err = l.openPlain(s, b, raw, rawR)
	case k.compressed():
		err = l.openCompressed(s, k, cw, b, raw, rawR)
	default:
		return nil, l.errorf("", "%w: not a tar archive, plain or compressed with gzip, xz, zstd or bzip2", ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openPlain sets s up to read a plain tar: the tar stream is the file
// itself. raw is the layer's bytes; rawR the same, through s.blobH when
// that is set.
func (l *tarLayer) openPlain(s *tarStream, b *budget, raw *io.SectionReader, rawR io.Reader) error {
	// A walk of a cache entry counts the stream entry by entry instead,
	// as the compressed stream it stands for was counted, so that an
	// error names the entry.
	if !l.cached() {
		if err := b.take(l.src.size); err != nil {
			return l.errorf("", "%w", err)
		}
	}
	s.inPlace = true
	if s.blobH == nil {
		// Nothing to hash: let archive/tar seek over file data.
		s.cnt = &counter{r: raw, s: raw}
		s.r = seekingCounter{s.cnt}
		return nil
	}
	// Every byte is hashed, so every byte is read; the counter above the
	// buffer still counts what archive/tar consumed.
	s.cnt = &counter{r: bufio.NewReaderSize(rawR, 64<<10)}
	s.diffH = s.blobH
	s.r = s.cnt
	return nil
}

// openCompressed sets s up to read the tar stream of a layer of
// compressed format k, counted against b, and checks that it is one. With
// cw, the stream is also written to that cache entry.
func (l *tarLayer) openCompressed(s *tarStream, k kind, cw *cacheWriter, b *budget, raw *io.SectionReader, rawR io.Reader) error {
	zr, err := l.decompressor(k, s, raw, rawR)
	if err != nil {
		return err
	}
	var dr io.Reader = budgetReader{r: zr, b: b}
	if (l.diffID != "" || l.wantDiffID) && cw == nil {
		// (A cache entry being stored hashes the same stream.)
		s.diffH = sha256.New()
		dr = io.TeeReader(dr, s.diffH)
	}
	br := bufio.NewReaderSize(dr, 64<<10)
	inner, err := br.Peek(sniffLen)
	if errors.Is(err, ErrTooLarge) {
		s.close()
		return l.errorf("", "%w", err)
	}
	if !isTarHeader(inner) {
		s.close()
		return l.errorf("", "%w", notTar(k, err))
	}
	s.cnt = &counter{r: br}
	if cw != nil {
		s.cnt.tee = cw
	}
	s.r = s.cnt
	return nil
}

// decompressor returns the decompressed stream of l, of compressed format
// k, and sets s.close to release it. raw is the layer's bytes as stored;
// rawR the same, through s.blobH when that is set.
func (l *tarLayer) decompressor(k kind, s *tarStream, raw *io.SectionReader, rawR io.Reader) (io.Reader, error) {
	if k == kindXz {
		// Blocks are decoded on every core, ahead of the walk, from the
		// file itself; the digest of its bytes, when one is wanted, is
		// taken in a pass of its own.
		if s.blobH != nil {
			if _, err := io.CopyBuffer(s.blobH, struct{ io.Reader }{raw}, make([]byte, 1<<20)); err != nil {
				return nil, l.errorf("", "reading: %w", err)
			}
		}
		xr, err := xz.NewReader(l.src.ra, l.src.off, l.src.size, 0)
		if err != nil {
			return nil, l.errorf("", "%w", err)
		}
		s.close = func() { xr.Close() }
		return xr, nil
	}
	s.rawBR = bufio.NewReaderSize(rawR, 64<<10)
	dec, release, err := decompress(k, s.rawBR)
	if err != nil {
		return nil, l.errorf("", "%w", err)
	}
	s.close = release
	return dec, nil
}

// tarWalk is the state of one walk through the entries of a tar stream.
type tarWalk struct {
	l  *tarLayer
	s  *tarStream
	b  *budget
	cw *cacheWriter
	tr *tar.Reader
	sw *spillWriter
	// prev is the name of the last header read, for errors.
	prev string
	// Image markers of a rootfs tar.
	sawIndex, sawBlobs bool
	// Of a cache entry's stream, what the budget has taken.
	counted int64
}

// entries calls fn for each entry of the archive, up to its end.
func (w *tarWalk) entries(fn func(e *tree.Entry) error) error {
	for {
		h, err := w.next()
		if err != nil || h == nil {
			return err
		}
		e, err := w.entry(h)
		if err != nil {
			return err
		}
		if e == nil {
			continue
		}
		if e.Type == tree.TypeReg {
			if err := w.limit(h, e); err != nil {
				return err
			}
			if e.Content, err = w.content(h, e); err != nil {
				return err
			}
		}
		w.l.info.Entries++
		if err := fn(e); err != nil {
			return err
		}
	}
}

// next reads the next header, with the PAX and GNU extended headers
// before it (long names, xattrs, sparse maps) already applied by
// archive/tar. It returns nil, nil at the end of the archive.
func (w *tarWalk) next() (*tar.Header, error) {
	l := w.l
	h, err := w.tr.Next()
	if l.cached() {
		if terr := w.b.take(w.s.cnt.n - w.counted); terr != nil {
			return nil, l.errorf(w.prev, "%w", terr)
		}
		w.counted = w.s.cnt.n
	}
	if err == io.EOF {
		// archive/tar takes a stream cut inside the padding of the last
		// entry for a clean end; a whole archive ends on a block.
		if w.s.cnt.n%512 != 0 {
			return nil, l.errorf(w.prev, "truncated archive: it ends inside a block, at byte %d", w.s.cnt.n)
		}
		return nil, nil
	}
	if errors.Is(err, tar.ErrInsecurePath) && h != nil {
		err = nil // cleanPath decides, whatever GODEBUG says
	}
	if errors.Is(err, ErrTooLarge) {
		return nil, l.errorf(w.prev, "%w", err)
	}
	if err != nil {
		if w.prev == "" {
			return nil, l.errorf("", "reading the first tar header: %w", err)
		}
		return nil, l.errorf(w.prev, "reading on after this entry: %w", err)
	}
	return h, nil
}

// entry returns the entry h describes, by its type flag, or nil for a
// header that carries no file. A rootfs tar is refused if it turns out
// to be an image archive.
func (w *tarWalk) entry(h *tar.Header) (*tree.Entry, error) {
	e, err := fromHeader(h, w.l.keepRoot)
	if err != nil {
		return nil, w.l.errorf(h.Name, "%w", err)
	}
	w.prev = h.Name
	if e == nil {
		return nil, nil
	}
	if w.l.rootfs {
		if err := imageMarker(e, &w.sawIndex, &w.sawBlobs); err != nil {
			return nil, w.l.errorf(h.Name, "%w", err)
		}
	}
	return e, nil
}

// limit refuses a regular file whose data would take the walk past its
// budget, before any of it is spilled. A sparse entry counts its whole
// size (its holes are spilled as zeros); the data of a plain tar read in
// place was counted with the file, but for a cache entry's.
func (w *tarWalk) limit(h *tar.Header, e *tree.Entry) error {
	var err error
	switch {
	case isSparse(h):
		err = w.b.take(e.Size)
	case (!w.s.inPlace || w.l.cached()) && e.Size > w.b.left:
		err = w.b.err
	}
	if err != nil {
		return w.l.errorf(h.Name, "%w", err)
	}
	return nil
}

// content returns the data of the regular file e: a region of the layer
// file when it is read in place, of the cache entry being stored, or else
// a spill copy.
func (w *tarWalk) content(h *tar.Header, e *tree.Entry) (tree.Content, error) {
	switch {
	case e.Size == 0:
		return emptyContent{}, nil
	case w.s.inPlace && !isSparse(h):
		return w.inPlaceContent(h, e)
	case w.cw != nil && !isSparse(h):
		return w.cacheContent(h, e)
	}
	c, err := w.sw.copy(w.tr, e.Size)
	if errors.Is(err, ErrTooLarge) {
		return nil, w.l.errorf(h.Name, "%w", err)
	}
	if err != nil {
		return nil, w.l.errorf(h.Name, "reading data: %w", err)
	}
	return c, nil
}

// inPlaceContent returns e's data as the region of the layer file at the
// stream's position.
func (w *tarWalk) inPlaceContent(h *tar.Header, e *tree.Entry) (tree.Content, error) {
	l := w.l
	pos := w.s.cnt.n
	if pos+e.Size > l.src.size {
		return nil, l.errorf(h.Name, "truncated archive: %d bytes of data at offset %d, beyond its end at %d", e.Size, pos, l.src.size)
	}
	return sectionContent{ra: l.src.ra, off: l.src.off + pos, size: e.Size}, nil
}

// cacheContent reads e's data, which goes to the cache entry as
// archive/tar reads it, and returns that region of the entry.
func (w *tarWalk) cacheContent(h *tar.Header, e *tree.Entry) (tree.Content, error) {
	pos := w.s.cnt.n
	if _, err := io.CopyBuffer(discard{}, w.tr, w.sw.buffer()); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, w.l.errorf(h.Name, "%w", err)
		}
		return nil, w.l.errorf(h.Name, "reading data: %w", err)
	}
	if w.s.cnt.n-pos < e.Size {
		return nil, w.l.errorf(h.Name, "reading data: %w", io.ErrUnexpectedEOF)
	}
	return sectionContent{ra: w.cw, off: pos, size: e.Size}, nil
}

// finish reads every stream to its end, so that compressed framing and
// digests are checked, and checks the digests.
func (w *tarWalk) finish() error {
	l, s := w.l, w.s
	if _, err := io.Copy(io.Discard, s.cnt); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return l.errorf("", "after the end of the tar archive: %w", err)
		}
		return l.errorf("", "reading past the end of the tar archive: %w", err)
	}
	l.info.Bytes = s.cnt.n
	if l.cached() {
		if err := w.b.take(s.cnt.n - w.counted); err != nil {
			return l.errorf("", "after the end of the tar archive: %w", err)
		}
	}
	if s.rawBR != nil && s.blobH != nil {
		if _, err := io.Copy(io.Discard, s.rawBR); err != nil {
			return l.errorf("", "reading to the end of the blob: %w", err)
		}
	}
	return w.checkDigests()
}

// checkDigests compares the digests taken by the walk with those the
// layer is known by, and records the diff_id found.
func (w *tarWalk) checkDigests() error {
	l, s := w.l, w.s
	if s.blobH != nil && l.blobDigest != "" {
		if got := hex.EncodeToString(s.blobH.Sum(nil)); got != l.blobDigest {
			return l.errorf("", "%w: blob sha256:%s has sha256:%s", ErrDigest, l.blobDigest, got)
		}
	}
	if s.diffH != nil || w.cw != nil {
		var got string
		if w.cw != nil {
			got = w.cw.sum()
		} else {
			got = hex.EncodeToString(s.diffH.Sum(nil))
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
