package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// ReadTree reads an EROFS filesystem (FLAT_PLAIN and FLAT_INLINE data,
// regular files compressed with LZ4 in COMPRESSED_FULL layout as
// compress.go describes or COMPRESSED_COMPACT as mkfs.erofs writes it
// by default, chunk-based regular files with a block map or chunk
// indexes on one device, holes included, 4 KiB blocks, ibody and shared
// xattrs) back as a tree. File contents are not copied: each regular file's Content reads
// its extents from r. The image is hostile: every offset, size and count
// is checked against the partition's size before it is used, a directory
// reached twice (a loop) is an error, and a hardlinked file is one inode.
func ReadTree(r io.ReaderAt, size int64) (*tree.Tree, error) {
	rd, err := newReader(r, size)
	if err != nil {
		return nil, err
	}
	root, err := rd.inode(rd.rootNID, "/")
	if err != nil {
		return nil, err
	}
	if root.Kind != tree.Dir {
		return nil, errors.New("erofs: read: the root is not a directory")
	}
	type dir struct {
		nid  uint64
		path string
		in   *tree.Inode
		info *rinode
	}
	queue := []dir{{rd.rootNID, "/", root, rd.info[rd.rootNID]}}
	dirs := map[uint64]bool{rd.rootNID: true}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		ents, err := rd.dirents(d.info, d.path)
		if err != nil {
			return nil, err
		}
		prefix := d.path
		if prefix != "/" {
			prefix += "/"
		}
		for _, e := range ents {
			p := prefix + e.name
			c, err := rd.inode(e.nid, p)
			if err != nil {
				return nil, err
			}
			if c.Kind == tree.Dir {
				if dirs[e.nid] {
					return nil, fmt.Errorf("erofs: read: %s: directory nid %d reached twice", p, e.nid)
				}
				dirs[e.nid] = true
				queue = append(queue, dir{e.nid, p, c, rd.info[e.nid]})
			}
			d.in.SetChild(e.name, c)
		}
	}
	return &tree.Tree{Root: root}, nil
}

type reader struct {
	r         io.ReaderAt
	size      int64
	metaBase  int64
	xattrBase int64
	rootNID   uint64
	buildTime int64
	buildNsec uint32
	inodes    map[uint64]*tree.Inode
	info      map[uint64]*rinode
	maxInodes int
	zeroPad   bool // feature_incompat ZERO_PADDING
}

// rinode is what the reader keeps of an inode to read its data.
type rinode struct {
	nid     uint64
	layout  int
	size    int64
	blkaddr int64
	inline  int64 // byte offset of the inline tail
}

func newReader(r io.ReaderAt, size int64) (*reader, error) {
	if size < blockSize {
		return nil, errors.New("erofs: read: partition smaller than one block")
	}
	b := make([]byte, blockSize-superOffset)
	if _, err := r.ReadAt(b, superOffset); err != nil {
		return nil, fmt.Errorf("erofs: read: superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != superMagic {
		return nil, errors.New("erofs: read: no superblock magic")
	}
	if b[12] != blkszBits {
		return nil, fmt.Errorf("erofs: read: superblock: block size 2^%d, kiln reads 4096", b[12])
	}
	if le.Uint32(b[8:])&featureCompatSBChksum != 0 {
		if got, want := le.Uint32(b[4:]), superChecksum(b); got != want {
			return nil, fmt.Errorf("erofs: read: superblock checksum %#08x, computed %#08x", got, want)
		}
	}
	// 1: zero padding, for compressed data only; 4: chunk-based files.
	if inc := le.Uint32(b[80:]); inc&^(featureIncompatZeroPadding|featureIncompatChunkedFile) != 0 {
		return nil, fmt.Errorf("erofs: read: incompatible features %#x (compression, devices...) are not read", inc)
	}
	if b[13] != 0 {
		return nil, errors.New("erofs: read: superblock extension slots are not read")
	}
	if le.Uint16(b[86:]) != 0 {
		return nil, errors.New("erofs: read: extra devices are not read")
	}
	return &reader{
		r: r, size: size,
		metaBase:  int64(le.Uint32(b[40:])) * blockSize,
		xattrBase: int64(le.Uint32(b[44:])) * blockSize,
		rootNID:   uint64(le.Uint16(b[14:])),
		buildTime: int64(le.Uint64(b[24:])),
		buildNsec: le.Uint32(b[32:]),
		inodes:    map[uint64]*tree.Inode{},
		info:      map[uint64]*rinode{},
		maxInodes: int(size / compactSize),
		zeroPad:   le.Uint32(b[80:])&featureIncompatZeroPadding != 0,
	}, nil
}

// read reads n bytes at off, within the partition.
func (rd *reader) read(off, n int64, what string) ([]byte, error) {
	if off < 0 || n < 0 || off > rd.size || n > rd.size-off {
		return nil, fmt.Errorf("erofs: read: %s: %d bytes at %d beyond the partition (%d bytes)", what, n, off, rd.size)
	}
	b := make([]byte, n)
	if _, err := rd.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("erofs: read: %s: %w", what, err)
	}
	return b, nil
}

// inode reads the inode nid (once: a second name is a hardlink).
func (rd *reader) inode(nid uint64, p string) (*tree.Inode, error) {
	if in := rd.inodes[nid]; in != nil {
		return in, nil // a hardlink, or a directory loop the caller reports
	}
	if len(rd.inodes) >= rd.maxInodes {
		return nil, fmt.Errorf("erofs: read: %s: more inodes than the partition holds", p)
	}
	if nid > math.MaxInt64/64 {
		return nil, fmt.Errorf("erofs: read: %s: nid %d out of range", p, nid)
	}
	pos := rd.metaBase + int64(nid)*32
	what := fmt.Sprintf("%s (nid %d)", p, nid)
	b, err := rd.read(pos, compactSize, what)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	format := le.Uint16(b[0:])
	if format&^0xf != 0 {
		return nil, fmt.Errorf("erofs: read: %s: unknown inode format %#x", what, format)
	}
	extended := format&1 != 0
	ri := &rinode{nid: nid, layout: int(format>>1) & 7}
	in := &tree.Inode{}
	isize := int64(compactSize)
	mode := uint32(le.Uint16(b[4:]))
	iu := le.Uint32(b[16:])
	if extended {
		isize = extendedSize
		if b, err = rd.read(pos, extendedSize, what); err != nil {
			return nil, err
		}
		ri.size = int64(le.Uint64(b[8:]))
		in.UID, in.GID = le.Uint32(b[24:]), le.Uint32(b[28:])
		in.Mtime, in.Nsec = int64(le.Uint64(b[32:])), le.Uint32(b[40:])
	} else {
		ri.size = int64(le.Uint32(b[8:]))
		in.UID, in.GID = uint32(le.Uint16(b[24:])), uint32(le.Uint16(b[26:]))
		in.Mtime, in.Nsec = rd.buildTime, rd.buildNsec
	}
	maxSize := rd.size
	if ri.layout == layoutCompressedFull || ri.layout == layoutCompressedCompact {
		maxSize = rd.size / 2 * blockSize // 2 bytes of index at least per lcluster
	}
	if ri.layout == layoutChunkBased {
		// Holes take no room: at most 64 KiB of file per byte of the
		// partition (a 1 GiB file of holes in 16 KiB, 1 TiB in 16 MiB),
		// so that reading a hostile image's holes ends.
		maxSize = min(rd.size, math.MaxInt64>>17) << 16
	}
	if ri.size < 0 || ri.size > maxSize {
		return nil, fmt.Errorf("erofs: read: %s: size %d beyond the partition", what, ri.size)
	}
	in.Mode = mode & 0o7777
	var xsize int64
	if icount := int64(le.Uint16(b[2:])); icount > 0 {
		xsize = xattrHeaderSize + 4*(icount-1)
		if in.Xattrs, err = rd.xattrs(pos+isize, xsize, what); err != nil {
			return nil, err
		}
	}
	ri.inline = pos + isize + xsize
	switch ri.layout {
	case layoutFlatPlain, layoutFlatInline:
	case layoutCompressedFull, layoutCompressedCompact:
		if mode&^0o7777 != 0o100000 {
			return nil, fmt.Errorf("erofs: read: %s: a compressed file of type %#o is not read (only regular files)", what, mode&^0o7777)
		}
	case layoutChunkBased:
		if mode&^0o7777 != 0o100000 {
			return nil, fmt.Errorf("erofs: read: %s: a chunk-based file of type %#o is not read (only regular files)", what, mode&^0o7777)
		}
	default:
		return nil, fmt.Errorf("erofs: read: %s: data layout %d is not read", what, ri.layout)
	}
	ri.blkaddr = int64(iu) * blockSize
	if ri.layout == layoutFlatInline {
		tail := ri.size % blockSize
		if ri.size > 0 && tail == 0 {
			tail = blockSize
		}
		if ri.inline%blockSize+tail > blockSize {
			return nil, fmt.Errorf("erofs: read: %s: inline data crosses a block", what)
		}
	}
	switch mode &^ 0o7777 {
	case 0o100000:
		in.Kind = tree.Regular
		in.Size = ri.size
		if ri.layout == layoutCompressedFull || ri.layout == layoutCompressedCompact {
			if in.Content, err = rd.zcontent(ri, iu, what); err != nil {
				return nil, err
			}
			break
		}
		var ext [][2]int64
		if ri.layout == layoutChunkBased {
			ext, err = rd.chunks(ri, iu, what)
		} else {
			ext, err = rd.extents(ri, what)
		}
		if err != nil {
			return nil, err
		}
		in.Content = content{r: rd.r, ext: ext}
	case 0o040000:
		in.Kind = tree.Dir
		in = withChildren(in)
	case 0o120000:
		in.Kind = tree.Symlink
		if ri.size == 0 || ri.size > maxSymlink {
			return nil, fmt.Errorf("erofs: read: %s: symlink of %d bytes", what, ri.size)
		}
		t, err := rd.data(ri, what)
		if err != nil {
			return nil, err
		}
		in.Target, in.Size = string(t), ri.size
	case 0o020000, 0o060000:
		in.Kind = tree.CharDev
		if mode&^0o7777 == 0o060000 {
			in.Kind = tree.BlockDev
		}
		in.Major = (iu >> 8) & 0xfff
		in.Minor = iu&0xff | (iu>>12)&^0xff
	case 0o010000:
		in.Kind = tree.FIFO
	default:
		return nil, fmt.Errorf("erofs: read: %s: file type %#o is not read (sockets have no place in a tree)", what, mode&^0o7777)
	}
	rd.inodes[nid] = in
	rd.info[nid] = ri
	return in, nil
}

// withChildren returns a directory inode like in whose entries can be set.
func withChildren(in *tree.Inode) *tree.Inode {
	d := tree.NewDir(in.Mode, in.UID, in.GID, in.Mtime)
	d.Nsec, d.Xattrs = in.Nsec, in.Xattrs
	return d
}

// extents are where an inode's data is: whole blocks, then the inline tail.
func (rd *reader) extents(ri *rinode, what string) ([][2]int64, error) {
	if ri.size == 0 {
		return nil, nil
	}
	plain, tail := ri.size, int64(0)
	if ri.layout == layoutFlatInline {
		tail = ri.size % blockSize
		if tail == 0 {
			tail = blockSize
		}
		plain -= tail
	}
	var ext [][2]int64
	if plain > 0 {
		if ri.blkaddr > rd.size || plain > rd.size-ri.blkaddr {
			return nil, fmt.Errorf("erofs: read: %s: %d bytes of data at %d beyond the partition", what, plain, ri.blkaddr)
		}
		ext = append(ext, [2]int64{ri.blkaddr, plain})
	}
	if tail > 0 {
		if ri.inline > rd.size-tail {
			return nil, fmt.Errorf("erofs: read: %s: inline data beyond the partition", what)
		}
		ext = append(ext, [2]int64{ri.inline, tail})
	}
	return ext, nil
}

// data reads an inode's whole data (symlinks: at most 4095 bytes).
func (rd *reader) data(ri *rinode, what string) ([]byte, error) {
	ext, err := rd.extents(ri, what)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, ri.size)
	for _, e := range ext {
		b, err := rd.read(e[0], e[1], what)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

type rdirent struct {
	name string
	nid  uint64
}

// dirents reads a directory's entries, less . and .., one block at a
// time.
func (rd *reader) dirents(ri *rinode, p string) ([]rdirent, error) {
	ext, err := rd.extents(ri, p)
	if err != nil {
		return nil, err
	}
	var out []rdirent
	seen := map[string]bool{}
	nblk := 0
	for _, e := range ext {
		for o := int64(0); o < e[1]; o += blockSize {
			blk, err := rd.read(e[0]+o, min(blockSize, e[1]-o), p)
			if err != nil {
				return nil, err
			}
			if out, err = parseDirBlock(blk, nblk, p, seen, out); err != nil {
				return nil, err
			}
			nblk++
		}
	}
	return out, nil
}

// parseDirBlock appends the entries of one directory block to out.
func parseDirBlock(blk []byte, nblk int, p string, seen map[string]bool, out []rdirent) ([]rdirent, error) {
	le := binary.LittleEndian
	if len(blk) < direntSize {
		return nil, fmt.Errorf("erofs: read: %s: directory block %d too short", p, nblk)
	}
	first := int(le.Uint16(blk[8:]))
	if first%direntSize != 0 || first < direntSize || first > len(blk) {
		return nil, fmt.Errorf("erofs: read: %s: directory block %d: bad first name offset %d", p, nblk, first)
	}
	n := first / direntSize
	for i := 0; i < n; i++ {
		e := blk[i*direntSize:]
		start := int(le.Uint16(e[8:]))
		end := len(blk)
		if i+1 < n {
			end = int(le.Uint16(blk[(i+1)*direntSize+8:]))
		}
		if start < first || end > len(blk) || end <= start {
			return nil, fmt.Errorf("erofs: read: %s: directory block %d: bad name offsets %d..%d", p, nblk, start, end)
		}
		name := string(blk[start:end])
		if i+1 == n {
			if z := strings.IndexByte(name, 0); z >= 0 {
				name = name[:z]
			}
		}
		if name == "." || name == ".." {
			continue
		}
		if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("erofs: read: %s: invalid name %q", p, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("erofs: read: %s: name %q twice", p, name)
		}
		seen[name] = true
		out = append(out, rdirent{name, le.Uint64(e[0:])})
	}
	return out, nil
}

// xattrNames are the name prefixes by index (EROFS_XATTR_INDEX_*).
var xattrNames = map[byte]string{1: "user.", 2: "system.posix_acl_access", 3: "system.posix_acl_default", 4: "trusted.", 6: "security."}

// xattrs reads an inode's xattrs: the shared ones its header lists, then
// the ibody entries.
func (rd *reader) xattrs(off, n int64, what string) ([]tree.Xattr, error) {
	b, err := rd.read(off, n, what+": xattrs")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	shared := int(b[4])
	if xattrHeaderSize+4*int64(shared) > n {
		return nil, fmt.Errorf("erofs: read: %s: %d shared xattrs overflow the xattrs", what, shared)
	}
	var out []tree.Xattr
	entry := func(b []byte) (tree.Xattr, int, error) {
		if len(b) < xattrEntrySize {
			return tree.Xattr{}, 0, fmt.Errorf("erofs: read: %s: truncated xattr entry", what)
		}
		nl, idx, vl := int(b[0]), b[1], int(le.Uint16(b[2:]))
		prefix, ok := xattrNames[idx]
		if !ok {
			return tree.Xattr{}, 0, fmt.Errorf("erofs: read: %s: xattr name index %d is not read", what, idx)
		}
		l := (xattrEntrySize + nl + vl + 3) / 4 * 4
		if xattrEntrySize+nl+vl > len(b) {
			return tree.Xattr{}, 0, fmt.Errorf("erofs: read: %s: xattr entry overflows", what)
		}
		return tree.Xattr{Name: prefix + string(b[4:4+nl]), Value: append([]byte(nil), b[4+nl:4+nl+vl]...)}, min(l, len(b)), nil
	}
	for i := 0; i < shared; i++ {
		at := rd.xattrBase + int64(le.Uint32(b[xattrHeaderSize+4*i:]))*4
		h, err := rd.read(at, xattrEntrySize, what+": shared xattr")
		if err != nil {
			return nil, err
		}
		sb, err := rd.read(at, xattrEntrySize+int64(h[0])+int64(le.Uint16(h[2:])), what+": shared xattr")
		if err != nil {
			return nil, err
		}
		x, _, err := entry(sb)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	body := b[xattrHeaderSize+4*shared:]
	for len(body) > 0 {
		x, l, err := entry(body)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
		body = body[l:]
	}
	// The tree keeps xattrs sorted by name, once each.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, fmt.Errorf("erofs: read: %s: xattr %q twice", what, out[i].Name)
		}
	}
	return out, nil
}

// content is a regular file's data in the image: its extents, read on
// Open.
type content struct {
	r   io.ReaderAt
	ext [][2]int64
}

func (c content) Open() (io.ReadCloser, error) {
	rs := make([]io.Reader, len(c.ext))
	for i, e := range c.ext {
		if e[0] < 0 { // a hole
			rs[i] = io.LimitReader(zeroes{}, e[1])
			continue
		}
		rs[i] = io.NewSectionReader(c.r, e[0], e[1])
	}
	return io.NopCloser(io.MultiReader(rs...)), nil
}

// maxChunkExtents bounds a chunk-based file's extents (data chunks not
// adjacent, holes between): 16 MiB of them. kiln writes at most 65536
// chunks a file.
const maxChunkExtents = 1 << 20

// zeroes reads as zeros: a chunk-based file's holes.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// chunks are where a chunk-based file's data is: its chunks in order,
// holes (EROFS_NULL_ADDR) as extents at offset -1, adjacent ones merged.
// The block map (4-byte block addresses) or chunk indexes (8 bytes: on
// device 0, 32-bit addresses) follow the inode and xattrs; each chunk's
// blocks must lie within the partition.
func (rd *reader) chunks(ri *rinode, iu uint32, what string) ([][2]int64, error) {
	format := iu & 0xffff
	if format&^(chunkFormatBlkbits|chunkFormatIndexes) != 0 {
		return nil, fmt.Errorf("erofs: read: %s: chunk format %#x is not read", what, format)
	}
	if ri.size == 0 {
		return nil, nil
	}
	bits := int64(format & chunkFormatBlkbits)
	csize := int64(blockSize) << bits
	n := (ri.size-1)>>(bits+blkszBits) + 1
	unit, off := int64(4), ri.inline
	if format&chunkFormatIndexes != 0 {
		unit, off = 8, (off+7)/8*8
	}
	if n > rd.size/unit {
		return nil, fmt.Errorf("erofs: read: %s: %d chunks: a map beyond the partition", what, n)
	}
	var ext [][2]int64
	le := binary.LittleEndian
	const step = 1 << 16 // entries read at a time
	for first := int64(0); first < n; first += step {
		cnt := min(step, n-first)
		b, err := rd.read(off+first*unit, cnt*unit, what+": chunk map")
		if err != nil {
			return nil, err
		}
		for i := int64(0); i < cnt; i++ {
			c := first + i
			e := b[i*unit:]
			var addr uint32
			if unit == 8 {
				if dev := le.Uint16(e[2:]); dev != 0 || le.Uint16(e[0:]) != 0 {
					if le.Uint32(e[4:]) != nullAddr {
						return nil, fmt.Errorf("erofs: read: %s: chunk %d on device %d (advise %#x) is not read", what, c, dev, le.Uint16(e[0:]))
					}
				}
				addr = le.Uint32(e[4:])
			} else {
				addr = le.Uint32(e)
			}
			length := min(csize, ri.size-c*csize)
			at := int64(-1)
			if addr != nullAddr {
				at = int64(addr) * blockSize
				if at > rd.size || length > rd.size-at {
					return nil, fmt.Errorf("erofs: read: %s: chunk %d: %d bytes at %d beyond the partition", what, c, length, at)
				}
			}
			if k := len(ext) - 1; k >= 0 && ((at < 0 && ext[k][0] < 0) || (at >= 0 && ext[k][0] >= 0 && ext[k][0]+ext[k][1] == at)) {
				ext[k][1] += length
				continue
			}
			if len(ext) >= maxChunkExtents {
				return nil, fmt.Errorf("erofs: read: %s: more than %d separate chunk extents", what, maxChunkExtents)
			}
			ext = append(ext, [2]int64{at, length})
		}
	}
	return ext, nil
}
