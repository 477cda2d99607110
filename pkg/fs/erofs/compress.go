package erofs

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Compressed files (compression: lz4) are laid out with full indexes, as
// mkfs.erofs -zlz4 -E legacy-compress lays them out, and with zero
// padding, as mkfs.erofs -zlz4 does by default: the form Linux reads
// since 5.4, its first release with EROFS out of staging (ZERO_PADDING,
// then LZ4_0PADDING, came in 5.3; full indexes in 5.3's staging EROFS).
// None of the later features is used: no compact indexes, big pclusters
// (5.13), COMPR_CFGS (5.16), tail packing (5.17), fragments (6.1) or
// deduplication. In detail:
//
//   - the superblock has feature_incompat ZERO_PADDING (LZ4_0PADDING)
//     and lz4_max_distance 65535 (5.11 on reads it; before, the field
//     is reserved; LZ4's largest window either way), both set only
//     when a file is compressed: recent kernels take either as the
//     mark of a filesystem with LZ4-compressed inodes;
//   - a compressed file has data layout COMPRESSED_FULL (1): after its
//     inode and xattrs, aligned to 8 bytes, an 8-byte z_erofs_map_header
//     (LZ4 for both heads, 4 KiB logical clusters, no advise bits), 8
//     reserved bytes, then one 8-byte lcluster index per 4 KiB of the
//     file; its i_u is the count of compressed blocks;
//   - its data is a run of physical clusters of one block each: a
//     compressed one holds one LZ4 block (compressed "destSize": as much
//     of the file as fits 4096 bytes, more than 4096 bytes of it)
//     preceded by zeros up to the block's end, an uncompressed (PLAIN)
//     one 4096 bytes of the file as they are (the last, fewer, zero
//     padded);
//   - each extent (the file bytes one pcluster holds) has a HEAD (or
//     PLAIN) index at the lcluster where it starts, with the offset of
//     its start in that lcluster and its block; lclusters inside an
//     extent are NONHEAD, with their distances to their head and to the
//     next head; when the file ends inside an lcluster that no extent
//     starts in, that lcluster has a PLAIN index whose offset is the end
//     (as erofs-utils' z_erofs_write_indexes_final).
//
// A file is compressed only when that takes fewer blocks than
// ceil(size/4096), mkfs.erofs's rule; others (among them every file of at
// most 4096 bytes) keep the uncompressed layout with an inline tail, as
// do directories and symlinks.
const (
	layoutCompressedFull    = 1
	layoutCompressedCompact = 3 // read only

	featureIncompatZeroPadding = 0x1

	zMapHeaderSize = 16 // the z_erofs_map_header and 8 reserved bytes
	zIndexSize     = 8

	// lcluster index types (Z_EROFS_LCLUSTER_TYPE_*).
	zPlain   = 0
	zHead1   = 1
	zNonhead = 2

	// zMaxExtent bounds the file bytes of one compressed pcluster: the
	// kernel's delta[0] is below 2048 lclusters (8 MiB) without big
	// pclusters; kiln writes at most 768 KiB, within what mkfs.erofs 1.5
	// (Debian 12's, beside Linux 6.1) writes (its input window is 900
	// KiB: 3 MiB of zeros take 4 pclusters), and a read that starts
	// cold in an extent decompresses no more than that.
	zMaxExtent     = 768 << 10
	zReadMaxExtent = 2047 * blockSize
)

// zextent is one pcluster of a compressed file: where in the file the
// bytes it holds start, and whether they are stored as they are.
type zextent struct {
	start int64
	raw   bool
}

// zwriter compresses files: its buffers and LZ4 encoder are reused from
// file to file.
type zwriter struct {
	enc  lz4Encoder
	buf  []byte // the file's next bytes
	out  []byte // one block
	exts []zextent
}

func newZwriter() *zwriter {
	return &zwriter{buf: make([]byte, 2*zMaxExtent), out: make([]byte, blockSize)}
}

// compress reads a file's content (size bytes) and cuts it into
// pclusters; put, when not nil, gets each block to write. It returns the
// extents, in file order (valid until the next call).
func (z *zwriter) compress(in *tree.Inode, size int64, path string, put func(i int, blk []byte) error) ([]zextent, error) {
	r, err := in.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("erofs: %s: %w", path, err)
	}
	defer r.Close()
	z.exts = z.exts[:0]
	off, end := 0, 0    // the bytes read and not yet in a pcluster: buf[off:end]
	var read, pos int64 // bytes read from r; file offset of buf[off]
	for pos < size {
		// Keep at least zMaxExtent bytes ahead (or the rest of the
		// file): below that, what is left moves to the buffer's front
		// and the buffer is filled (about once per zMaxExtent bytes).
		if want := min(int64(zMaxExtent), size-pos); int64(end-off) < want {
			if off > 0 {
				end = copy(z.buf, z.buf[off:end])
				off = 0
			}
			k := min(int64(len(z.buf)-end), size-read)
			m, err := io.ReadFull(r, z.buf[end:end+int(k)])
			read += int64(m)
			if err != nil {
				return nil, fmt.Errorf("erofs: %s: content is %d bytes, want %d: %w", path, read, size, err)
			}
			end += m
		}
		src := z.buf[off:min(end, off+zMaxExtent)]
		var used int
		raw := true
		if len(src) > blockSize {
			var w int
			used, w = z.enc.destSize(src, z.out)
			if used > blockSize {
				// The zero padding goes first: the decompressor
				// finds the block's start at its first non-zero byte.
				copy(z.out[blockSize-w:], z.out[:w])
				clear(z.out[:blockSize-w])
				raw = false
			}
		}
		if raw {
			used = copy(z.out, src)
			clear(z.out[used:])
		}
		if put != nil {
			if err := put(len(z.exts), z.out); err != nil {
				return nil, err
			}
		}
		z.exts = append(z.exts, zextent{start: pos, raw: raw})
		pos += int64(used)
		off += used
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m != 0 {
		return nil, fmt.Errorf("erofs: %s: content is longer than its size %d", path, size)
	}
	return z.exts, nil
}

// zIndexes returns the number of lcluster indexes of a file of size
// bytes.
func zIndexes(size int64) int64 { return (size + blockSize - 1) / blockSize }

// zMetaSize is the bytes after a compressed inode's xattrs, from the
// end of its inode and xattrs (ibody, a multiple of 4) aligned to 8.
func zMetaSize(ibody, size int64) int64 {
	return (ibody+7)/8*8 - ibody + zMapHeaderSize + zIndexSize*zIndexes(size)
}

// putZIndexes encodes the lcluster indexes of extents (a file of size
// bytes whose first pcluster is block blk) into b, which holds the
// indexes from the index first on.
func putZIndexes(b []byte, first int64, exts []zextent, size int64, blk uint32) {
	le := binary.LittleEndian
	n := zIndexes(size)
	put := func(lcn int64, typ, ofs uint16, u uint32) {
		if lcn < first || lcn >= first+int64(len(b)/zIndexSize) {
			return
		}
		e := b[(lcn-first)*zIndexSize:]
		le.PutUint16(e[0:], typ)
		le.PutUint16(e[2:], ofs)
		le.PutUint32(e[4:], u)
	}
	for i, x := range exts {
		end := size
		if i+1 < len(exts) {
			end = exts[i+1].start
		}
		head := x.start / blockSize
		typ := uint16(zHead1)
		if x.raw {
			typ = zPlain
		}
		put(head, typ, uint16(x.start%blockSize), blk+uint32(i))
		next := end / blockSize
		for lcn := head + 1; lcn < next; lcn++ {
			put(lcn, zNonhead, 0, uint32(lcn-head)|uint32(next-lcn)<<16)
		}
	}
	// The file ends inside an lcluster that no extent starts in.
	if last := exts[len(exts)-1].start / blockSize; size%blockSize != 0 && last != n-1 {
		put(n-1, zPlain, uint16(size%blockSize), 0)
	}
}

// putZHeader encodes the map header: no advise bits, LZ4 (0) for both
// head types, 4 KiB lclusters (clusterbits 0), 8 reserved bytes.
func putZHeader(b []byte) { clear(b[:zMapHeaderSize]) }

// zcache is what compression decided for each file: its pclusters (0:
// not compressed) for the size it had, and, when it keeps them, the
// pclusters themselves and their extents, in a spill file: then Write
// copies them instead of compressing the file once more. It relies on
// what kiln's trees are: an inode's content does not change once the
// tree is merged (a Write without the spill compresses again, and
// refuses content that changed).
type zcache struct {
	mu    sync.Mutex
	m     map[*tree.Inode]*zent
	sp    map[*tree.Inode]*sparseInfo // what splan found
	spill bool                        // keep the pclusters (in unlinked temporary files)
	files []*os.File                  // the spill files
}

// zent is one file's compression.
type zent struct {
	size, blocks int64
	exts         []zextent // with the pclusters, or nil
	f            *os.File  // the spill file holding them
	off          int64     // at this offset
}

func newZcache() *zcache {
	return &zcache{m: map[*tree.Inode]*zent{}, sp: map[*tree.Inode]*sparseInfo{}, spill: true}
}

func (c *zcache) sparse(in *tree.Inode, size int64) *sparseInfo {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sp[in]; s != nil && s.size == size {
		return s
	}
	return nil
}

func (c *zcache) putSparse(in *tree.Inode, s *sparseInfo) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sp == nil {
		c.sp = map[*tree.Inode]*sparseInfo{}
	}
	c.sp[in] = s
}

func (c *zcache) get(in *tree.Inode, size int64) *zent {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[in]; e != nil && e.size == size {
		return e
	}
	return nil
}

// release closes the spill files: the pclusters are written; the counts
// stay (a later Write compresses again).
func (c *zcache) release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m {
		e.f, e.exts = nil, nil
	}
	for _, f := range c.files {
		f.Close()
	}
	c.files = nil
}

func (c *zcache) addFile(f *os.File) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = append(c.files, f)
}

func (c *zcache) put(in *tree.Inode, e *zent) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[in] = e
}

// spillFile appends pclusters to an unlinked temporary file (gone with
// the process, or when the zcache holding it is collected), through a
// buffer that a file not compressed after all can be taken back from.
type spillFile struct {
	f       *os.File
	flushed int64
	buf     []byte
}

func newSpillFile() *spillFile {
	f, err := os.CreateTemp("", "kiln-erofs-lz4-*")
	if err != nil {
		return nil // then Write compresses again
	}
	os.Remove(f.Name())
	return &spillFile{f: f, buf: make([]byte, 0, 4<<20)}
}

func (s *spillFile) end() int64 { return s.flushed + int64(len(s.buf)) }

func (s *spillFile) add(b []byte) error {
	if len(s.buf)+len(b) > cap(s.buf) {
		if err := s.flush(); err != nil {
			return err
		}
	}
	s.buf = append(s.buf, b...)
	return nil
}

func (s *spillFile) flush() error {
	if _, err := s.f.WriteAt(s.buf, s.flushed); err != nil {
		return fmt.Errorf("erofs: spilling compressed data: %w", err)
	}
	s.flushed += int64(len(s.buf))
	s.buf = s.buf[:0]
	return nil
}

// rewind forgets what was added from off on, where it is still held.
func (s *spillFile) rewind(off int64) {
	if off >= s.flushed {
		s.buf = s.buf[:off-s.flushed]
	}
}

// zplan decides which regular files are compressed: it compresses each
// (not already in zc) once to count its pclusters, on every CPU; each
// file's result depends only on its content, so the layout does not
// depend on the scheduling. With zc (and its spill), the pclusters are
// kept for the write. The error returned is the first file's in node
// order.
func zplan(nodes []*node, zc *zcache) error {
	var todo []*node
	for _, n := range nodes {
		if n.in.Kind != tree.Regular || n.size <= blockSize {
			continue
		}
		if e := zc.get(n.in, n.size); e != nil {
			n.zblocks, n.zsrc = e.blocks, e
			continue
		}
		todo = append(todo, n)
	}
	// Each worker has its own compressor and spill file; the spill file
	// is flushed when the worker stops.
	type worker struct {
		z       *zwriter
		sp      *spillFile
		spilled []*zent // entries whose pclusters sp holds
	}
	start := func() *worker {
		w := &worker{z: newZwriter()}
		if zc != nil && zc.spill {
			if w.sp = newSpillFile(); w.sp != nil {
				zc.addFile(w.sp.f)
			}
		}
		return w
	}
	stop := func(w *worker) {
		if w.sp == nil {
			return
		}
		if err := w.sp.flush(); err != nil {
			for _, e := range w.spilled {
				e.f, e.exts = nil, nil // Write compresses these again
			}
		}
	}
	return eachParallel(len(todo), start, stop, func(w *worker, i int) error {
		n, sp := todo[i], w.sp
		var put func(int, []byte) error
		var start int64
		if sp != nil {
			start = sp.end()
			put = func(_ int, blk []byte) error { return sp.add(blk) }
		}
		exts, err := w.z.compress(n.in, n.size, n.path, put)
		if err != nil {
			if sp != nil {
				sp.rewind(start)
			}
			return err
		}
		e := &zent{size: n.size}
		if int64(len(exts)) < zIndexes(n.size) {
			n.zblocks = int64(len(exts))
			e.blocks = n.zblocks
			if sp != nil {
				e.f, e.off, e.exts = sp.f, start, append([]zextent(nil), exts...)
				w.spilled = append(w.spilled, e)
			}
		} else if sp != nil {
			sp.rewind(start)
		}
		n.zsrc = e
		zc.put(n.in, e)
		return nil
	})
}

// eachParallel runs do(w, i) for every i below n on every CPU, each
// worker with its own state from start (and stop called on it when the
// worker ends; stop may be nil). It returns the error of the smallest i
// that failed, so the error does not depend on the scheduling.
func eachParallel[W any](n int, start func() W, stop func(W), do func(W, int) error) error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := start()
			if stop != nil {
				defer stop(w)
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				errs[i] = do(w, i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// spilled says whether n's pclusters are in a spill file.
func (n *node) spilled() bool { return n.zsrc != nil && n.zsrc.f != nil }

// zjob is a compressed file compressed ahead of the writer: its
// pclusters (zblocks blocks) and extents.
type zjob struct {
	n    *node
	done chan struct{}
	data []byte
	exts []zextent
	err  error
}

const (
	// zAheadBytes bounds the compressed blocks held ahead of the writer;
	// a file of more than zAheadFile is compressed by the writer itself.
	zAheadBytes = 64 << 20
	zAheadFile  = 16 << 20
)

// zahead compresses files ahead of the writer, on every CPU, in node
// order, holding at most zAheadBytes; the writer takes them in order.
type zahead struct {
	jobs    map[*node]*zjob
	mu      sync.Mutex
	cond    *sync.Cond
	avail   int64
	stopped bool
	wg      sync.WaitGroup
}

func startZahead(nodes []*node) *zahead {
	a := &zahead{jobs: map[*node]*zjob{}, avail: zAheadBytes}
	a.cond = sync.NewCond(&a.mu)
	var order []*zjob
	for _, n := range nodes {
		if n.zblocks > 0 && !n.spilled() && n.zblocks*blockSize <= zAheadFile {
			j := &zjob{n: n, done: make(chan struct{})}
			a.jobs[n] = j
			order = append(order, j)
		}
	}
	if len(order) == 0 {
		return a
	}
	ch := make(chan *zjob)
	a.wg.Add(1)
	go func() { // hands jobs out in order, within the budget
		defer a.wg.Done()
		defer close(ch)
		for _, j := range order {
			if !a.acquire(j.n.zblocks * blockSize) {
				return
			}
			ch <- j
		}
	}()
	for range runtime.GOMAXPROCS(0) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			z := newZwriter()
			for j := range ch {
				j.data = make([]byte, j.n.zblocks*blockSize)
				exts, err := z.compress(j.n.in, j.n.size, j.n.path, func(i int, blk []byte) error {
					if int64(i) >= j.n.zblocks {
						return fmt.Errorf("erofs: %s: content changed since it was planned (more than %d pclusters)", j.n.path, j.n.zblocks)
					}
					copy(j.data[i*blockSize:], blk)
					return nil
				})
				j.exts, j.err = append([]zextent(nil), exts...), err
				close(j.done)
			}
		}()
	}
	return a
}

func (a *zahead) acquire(n int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.avail < n && !a.stopped {
		a.cond.Wait()
	}
	a.avail -= n
	return !a.stopped
}

func (a *zahead) release(n int64) {
	a.mu.Lock()
	a.avail += n
	a.mu.Unlock()
	a.cond.Broadcast()
}

// stop ends the workers (after the files they are at) and waits for
// them: on an error, jobs not taken are left.
func (a *zahead) stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.cond.Broadcast()
	// Drain: workers blocked on nothing, the dispatcher may wait on a
	// send that no worker takes once they stopped; workers range over
	// the channel until it closes, so they take and finish what is
	// handed out.
	a.wg.Wait()
}

// writeCompressed writes a compressed file: its pclusters to the data
// area, its inode, xattrs, map header and indexes to the metadata. Its
// pclusters come from a (compressed ahead) or are compressed here by z.
func (n *node) writeCompressed(w io.WriterAt, mw *metaWriter, a *zahead, z *zwriter, o Options) error {
	ibody := n.isize() + int64(len(n.xattrs))
	hdr := (ibody+7)/8*8 + zMapHeaderSize
	m, err := mw.at(n.pos, hdr)
	if err != nil {
		return err
	}
	n.putInode(m[:n.isize()], o)
	copy(m[n.isize():], n.xattrs)
	putZHeader(m[hdr-zMapHeaderSize:])
	var exts []zextent
	if n.spilled() {
		// Compressed when planned: copied from the spill file.
		e := n.zsrc
		exts = e.exts
		buf := make([]byte, min(n.zblocks*blockSize, 1<<20))
		for done := int64(0); done < n.zblocks*blockSize; {
			k := min(int64(len(buf)), n.zblocks*blockSize-done)
			if _, err := e.f.ReadAt(buf[:k], e.off+done); err != nil {
				return fmt.Errorf("erofs: %s: reading back its compressed data: %w", n.path, err)
			}
			if _, err := w.WriteAt(buf[:k], int64(n.blkaddr)*blockSize+done); err != nil {
				return fmt.Errorf("erofs: %s: %w", n.path, err)
			}
			done += k
		}
	} else if j := a.jobs[n]; j != nil {
		<-j.done
		if j.err != nil {
			return j.err
		}
		exts = j.exts
		if int64(len(exts)) == n.zblocks {
			if _, err := w.WriteAt(j.data, int64(n.blkaddr)*blockSize); err != nil {
				return fmt.Errorf("erofs: %s: %w", n.path, err)
			}
		}
		j.data = nil
		a.release(n.zblocks * blockSize)
	} else {
		exts, err = z.compress(n.in, n.size, n.path, func(i int, blk []byte) error {
			if int64(i) >= n.zblocks {
				return fmt.Errorf("erofs: %s: content changed since it was planned (more than %d pclusters)", n.path, n.zblocks)
			}
			if _, err := w.WriteAt(blk, (int64(n.blkaddr)+int64(i))*blockSize); err != nil {
				return fmt.Errorf("erofs: %s: %w", n.path, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if int64(len(exts)) != n.zblocks {
		return fmt.Errorf("erofs: %s: content changed since it was planned (%d pclusters, planned %d)", n.path, len(exts), n.zblocks)
	}
	// The indexes, through the metadata window in chunks.
	const chunk = 1 << 16
	total := zIndexes(n.size)
	for first := int64(0); first < total; first += chunk {
		k := min(chunk, total-first)
		b, err := mw.at(n.pos+hdr+first*zIndexSize, k*zIndexSize)
		if err != nil {
			return err
		}
		putZIndexes(b, first, exts, n.size, n.blkaddr)
	}
	return nil
}
