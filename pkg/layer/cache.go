package layer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2" // repro-ok: names of temporary files in the cache, never image bytes
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time" // repro-ok: last-use times of cache entries, for prune; never image bytes
)

// Cache is a content-addressed store of decompressed layers, shared by
// builds: the tar stream of a compressed layer, kept under the sha256 of
// the layer's bytes as stored (the file, the .deb member or the OCI blob).
// A build that finds its layer there walks the stored tar in place, as it
// would a plain tar file, and skips decompression altogether.
//
// An entry is one file, DIR/v1/sha256/HEX.tar: the tar stream, then a
// trailer holding its length, its sha256 (the layer's diff_id), its
// CRC32C and the key, with a CRC of the trailer. Entries
// are written to a temporary file in DIR/v1/tmp and renamed into place
// only once the layer has been walked to its end and every digest and
// check of the source has passed, so a reader never sees a partial entry,
// and builds running at the same time may store the same entry (the last
// rename wins; both are identical). Before use an entry's length and
// CRC32C are checked (CRC32C runs at memory speed; a sha256 would cost a
// fifth of a warm build): a truncated or corrupt entry is removed, and
// the layer is decompressed again and stored anew.
//
// The cache holds only what a successful walk produced, so it is no more
// trusted than the layers were; limits (Options.MaxBytes, MaxRatio) still
// apply to a cached walk.
type Cache struct {
	dir string // DIR/v1
}

const (
	cacheVersion  = "v1"
	cacheMagic    = "KILNLC02"
	cacheTrailer  = 512 // bytes: magic, tar length, sha256 of tar, key, crc32c of tar, crc32 of the trailer
	cacheTmpGrace = 24 * time.Hour
)

// OpenCache returns the cache in dir, creating it if needed.
func OpenCache(dir string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("layer cache: no folder given")
	}
	c := &Cache{dir: filepath.Join(dir, cacheVersion)}
	for _, d := range []string{c.entryDir(), c.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("layer cache: %w", err)
		}
	}
	return c, nil
}

// Dir is the folder the cache keeps its entries in.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) entryDir() string { return filepath.Join(c.dir, "sha256") }
func (c *Cache) tmpDir() string   { return filepath.Join(c.dir, "tmp") }

func (c *Cache) entryPath(key string) string { return filepath.Join(c.entryDir(), key+".tar") }

// cacheHit is an entry found whole: the open file and what its trailer says.
type cacheHit struct {
	f      *os.File
	size   int64  // length of the tar stream
	diffID string // hex sha256 of the tar stream
}

// ErrCacheCorrupt is the cause given when a cache entry fails its checks.
var ErrCacheCorrupt = errors.New("corrupt layer cache entry")

// lookup returns the entry for key, checked, or ok=false if there is none
// or it failed its checks (then it is removed and bad says why).
func (c *Cache) lookup(key string) (hit cacheHit, ok bool, bad error) {
	p := c.entryPath(key)
	f, err := os.Open(p)
	if err != nil {
		return hit, false, nil
	}
	hit, err = checkEntry(f, key)
	if err != nil {
		f.Close()
		os.Remove(p)
		return hit, false, fmt.Errorf("%w %s: %v", ErrCacheCorrupt, p, err)
	}
	now := time.Now() // repro-ok: last use, for prune
	os.Chtimes(p, now, now)
	return hit, true, nil
}

// checkEntry reads the trailer of an entry and checks the tar stream
// against it.
func checkEntry(f *os.File, key string) (cacheHit, error) {
	fi, err := f.Stat()
	if err != nil {
		return cacheHit{}, err
	}
	if fi.Size() < cacheTrailer {
		return cacheHit{}, errors.New("shorter than its trailer")
	}
	t := make([]byte, cacheTrailer)
	if _, err := f.ReadAt(t, fi.Size()-cacheTrailer); err != nil {
		return cacheHit{}, err
	}
	size, sum, k, crc, err := parseTrailer(t)
	if err != nil {
		return cacheHit{}, err
	}
	if k != key {
		return cacheHit{}, fmt.Errorf("holds the layer sha256:%s", k)
	}
	if size != fi.Size()-cacheTrailer {
		return cacheHit{}, fmt.Errorf("truncated: %d bytes of tar, its trailer says %d", fi.Size()-cacheTrailer, size)
	}
	h := crc32.New(castagnoli)
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), buf); err != nil {
		return cacheHit{}, err
	}
	if got := h.Sum32(); got != crc {
		return cacheHit{}, fmt.Errorf("its tar has CRC32C %08x, its trailer says %08x", got, crc)
	}
	return cacheHit{f: f, size: size, diffID: sum}, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func makeTrailer(size int64, sum, key string, crc uint32) []byte {
	t := make([]byte, cacheTrailer)
	copy(t, cacheMagic)
	binary.LittleEndian.PutUint64(t[8:], uint64(size))
	s, _ := hex.DecodeString(sum)
	k, _ := hex.DecodeString(key)
	copy(t[16:48], s)
	copy(t[48:80], k)
	binary.LittleEndian.PutUint32(t[80:84], crc)
	binary.LittleEndian.PutUint32(t[cacheTrailer-4:], crc32.ChecksumIEEE(t[:cacheTrailer-4]))
	return t
}

func parseTrailer(t []byte) (size int64, sum, key string, crc uint32, err error) {
	if !bytes.Equal(t[:8], []byte(cacheMagic)) {
		return 0, "", "", 0, errors.New("no trailer (truncated, or not an entry)")
	}
	if crc32.ChecksumIEEE(t[:cacheTrailer-4]) != binary.LittleEndian.Uint32(t[cacheTrailer-4:]) {
		return 0, "", "", 0, errors.New("its trailer fails its CRC")
	}
	size = int64(binary.LittleEndian.Uint64(t[8:]))
	if size < 0 {
		return 0, "", "", 0, errors.New("its trailer gives a negative size")
	}
	return size, hex.EncodeToString(t[16:48]), hex.EncodeToString(t[48:80]), binary.LittleEndian.Uint32(t[80:84]), nil
}

// cacheWriter receives the decompressed tar stream of a walk (the bytes
// archive/tar consumes, in order) and stores it as a new entry. Contents
// of the walk are regions of its file: ReadAt flushes what they need.
type cacheWriter struct {
	c    *Cache
	key  string
	f    *os.File
	path string    // the temporary file
	h    hash.Hash // sha256 of the stream
	crc  hash.Hash32

	mu      sync.Mutex
	buf     []byte
	flushed int64 // bytes in the file
	err     error
}

// create starts a new entry for key in a temporary file; spill takes
// ownership of the open file, so that Contents stay readable until it is
// closed.
func (c *Cache) create(key string, spill *Spill) (*cacheWriter, error) {
	name := fmt.Sprintf("%s.%d.%08x.part", key, os.Getpid(), rand.Uint32())
	p := filepath.Join(c.tmpDir(), name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		// The cache folder may have been pruned away: make it again once.
		if os.MkdirAll(c.tmpDir(), 0o755) == nil {
			f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		}
		if err != nil {
			return nil, fmt.Errorf("layer cache: %w", err)
		}
	}
	if err := spill.keep(f); err != nil {
		os.Remove(p)
		return nil, err
	}
	return &cacheWriter{c: c, key: key, f: f, path: p, h: sha256.New(), crc: crc32.New(castagnoli), buf: make([]byte, 0, 1<<20)}, nil
}

// Write appends to the entry. An error (a full disk) fails the walk, as
// a spill file's would: the walk's contents live in the entry.
func (w *cacheWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	w.h.Write(p)
	w.crc.Write(p)
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			w.flushLocked()
		}
	}
	return n, w.err
}

func (w *cacheWriter) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if w.err == nil {
		if _, err := w.f.WriteAt(w.buf, w.flushed); err != nil {
			w.err = err
		}
	}
	w.flushed += int64(len(w.buf))
	w.buf = w.buf[:0]
}

// ReadAt reads stored bytes, flushing first if they are still buffered.
func (w *cacheWriter) ReadAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	if off+int64(len(p)) > w.flushed {
		w.flushLocked()
	}
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return w.f.ReadAt(p, off)
}

// sum returns the hex sha256 of the stream written so far.
func (w *cacheWriter) sum() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return hex.EncodeToString(w.h.Sum(nil))
}

// commit stores the entry under its key, once the walk has passed every
// check; it returns the hex sha256 of the tar stream. A failure to store
// is not an error of the build: the layer was read; the cache just does
// not keep it (storeErr says why).
func (w *cacheWriter) commit() (sum string, storeErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	sum = hex.EncodeToString(w.h.Sum(nil)) // as sum(), under the lock held here
	if w.err != nil {
		os.Remove(w.path)
		return sum, w.err
	}
	if _, err := w.f.WriteAt(makeTrailer(w.flushed, sum, w.key, w.crc.Sum32()), w.flushed); err != nil {
		os.Remove(w.path)
		return sum, err
	}
	if err := os.Rename(w.path, w.c.entryPath(w.key)); err != nil {
		os.Remove(w.path)
		return sum, err
	}
	return sum, nil
}

// abort drops the entry: the walk failed or stopped early.
func (w *cacheWriter) abort() {
	os.Remove(w.path)
}

// CacheEntry is one stored layer, as List and Prune report it.
type CacheEntry struct {
	Key      string // hex sha256 of the layer as stored
	Size     int64  // bytes on disk
	LastUsed time.Time
}

// List returns the cache's entries, most recently used first.
func (c *Cache) List() ([]CacheEntry, error) {
	des, err := os.ReadDir(c.entryDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var out []CacheEntry
	for _, de := range des {
		key, ok := strings.CutSuffix(de.Name(), ".tar")
		if !ok || !isHexDigest(key) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, CacheEntry{Key: key, Size: fi.Size(), LastUsed: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.After(out[j].LastUsed)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// PruneOptions say what Prune removes. With every field zero it removes
// only the leftovers of builds that died (temporary files older than a day).
type PruneOptions struct {
	All       bool          // every entry
	OlderThan time.Duration // entries not used for this long (0: no age limit)
	MaxBytes  int64         // then the least recently used entries until the rest fit (0: no size limit)
	Now       time.Time     // the time ages are measured from (zero: now)
}

// PruneResult says what Prune removed and what is left.
type PruneResult struct {
	Removed, Kept           int
	RemovedBytes, KeptBytes int64
}

// Prune removes entries as o says. It is safe while builds run: a build
// that has an entry open keeps reading it (the file lives until closed),
// and one that finds it gone decompresses the layer again.
func (c *Cache) Prune(o PruneOptions) (PruneResult, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now() // repro-ok: ages of cache entries
	}
	var r PruneResult
	if tmps, err := os.ReadDir(c.tmpDir()); err == nil {
		for _, de := range tmps {
			fi, err := de.Info()
			if err != nil || now.Sub(fi.ModTime()) < cacheTmpGrace {
				continue
			}
			if os.Remove(filepath.Join(c.tmpDir(), de.Name())) == nil {
				r.Removed++
				r.RemovedBytes += fi.Size()
			}
		}
	}
	entries, err := c.List()
	if err != nil {
		return r, err
	}
	var kept int64
	for _, e := range entries { // most recent first
		drop := o.All || (o.OlderThan > 0 && now.Sub(e.LastUsed) > o.OlderThan) ||
			(o.MaxBytes > 0 && kept+e.Size > o.MaxBytes)
		if !drop {
			kept += e.Size
			r.Kept++
			continue
		}
		if err := os.Remove(c.entryPath(e.Key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r, err
		}
		r.Removed++
		r.RemovedBytes += e.Size
	}
	r.KeptBytes = kept
	return r, nil
}

// DefaultCacheDir is where builds keep the cache unless told otherwise:
// kiln under the user's cache folder ($XDG_CACHE_HOME, else ~/.cache).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kiln"), nil
}
