// Package erofs writes EROFS, the Linux kernel's read-only filesystem, in
// its plain uncompressed layout (block size 4096, no fragments, no
// deduplication), which every kernel since 5.4 mounts, or with
// Options.Compression "lz4" with regular files LZ4-compressed in the
// full-index layout of compress.go (kernels since 5.4: zero padding, 4
// KiB physical clusters, no big pclusters, compact indexes, tail packing
// or fragments). Regular files whose zero blocks make it worth a block
// or more are chunk based, their holes not stored (sparse.go): an image
// with such a file needs Linux 5.15 or later (its superblock says so, and
// older kernels refuse it).
//
// The layout follows mkfs.erofs's: the superblock at byte 1024 of block 0
// (with its crc32c checksum), then the inodes from byte 1152 (metadata
// starts at block 0, so a nid is the inode's byte offset / 32), each
// inode followed by its xattrs and, where the tail of its data fits in
// the same block, that tail (FLAT_INLINE), placed best fit into the
// metadata blocks already started (metalloc.go); whole blocks of data
// follow the metadata (FLAT_PLAIN). Inodes are compact (32 bytes) unless a field
// needs the extended (64-byte) form: uid or gid above 65535, size of 4 GiB
// or more, more than 65535 links, or an mtime other than the epoch (the
// superblock's build time, which compact inodes take): per-file mtimes
// are kept, as mkfs.erofs keeps them by default.
//
// Xattrs are stored under the name indexes user., trusted., security.,
// system.posix_acl_access and system.posix_acl_default: in the inode
// (ibody xattrs), or, for a name and value that two inodes or more carry
// (a common SELinux label, the same security.capability), once in the
// shared xattr area after the inodes (xattr_blkaddr), each inode listing
// their 4-byte ids (h_shared_count), as mkfs.erofs does; every EROFS
// kernel (5.4 on) reads both. An xattr of another namespace is refused,
// since the kernel could not show it.
//
// Everything is laid out in the tree's sorted order: two writes of one
// tree are byte-identical.
//
// ReadTree reads the same layout back (and mkfs.erofs's uncompressed
// images, shared xattrs included, and its -zlz4 ones, compact indexes
// included, without big pclusters, tail packing or fragments), bounded:
// images are hostile.
//
// It imports pkg/fs, pkg/tree and pkg/repro.
package erofs

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// On-disk constants, as erofs_fs.h names them.
const (
	blockSize   = 4096
	blkszBits   = 12
	superOffset = 1024
	superSize   = 128
	superMagic  = 0xE0F5E1E2

	featureCompatSBChksum = 0x1

	compactSize  = 32
	extendedSize = 64

	layoutFlatPlain  = 0
	layoutFlatInline = 2

	direntSize = 12

	xattrHeaderSize = 12
	xattrEntrySize  = 4

	// metaStart is where the first inode goes: after the superblock,
	// 32-byte aligned (nid 36, as mkfs.erofs).
	metaStart = superOffset + superSize

	// maxSymlink bounds a symlink's target (PATH_MAX less its NUL).
	maxSymlink = 4095
)

// File types of a directory entry (EROFS_FT_*).
const (
	ftReg     = 1
	ftDir     = 2
	ftChr     = 3
	ftBlk     = 4
	ftFIFO    = 5
	ftSymlink = 7
)

// Options are an EROFS filesystem's identity.
type Options struct {
	UUID  repro.UUID
	Label string // at most 16 bytes
	Epoch int64  // the build time: compact inodes' time
	// Compression is "" or "none" (no file compressed) or "lz4"
	// (regular files compressed where that saves blocks: compress.go).
	Compression string

	// noChunks keeps every file in the flat (or compressed) layouts,
	// never chunk based: for tests of those layouts on files of zeros.
	noChunks bool
}

// node is one inode as laid out.
type node struct {
	in       *tree.Inode
	path     string // its first name, for errors
	ino      uint32
	nlink    uint64
	parent   *node
	children []child // directories: sorted by name, with . and ..
	dirBlks  [][]child

	size     int64 // data bytes: content, target, or directory blocks
	extended bool
	xattrs   []byte // the ibody xattrs, or nil
	layout   int
	tail     int64       // bytes of data inline after the inode
	nblocks  int64       // whole blocks of data in the data area
	zblocks  int64       // a compressed file's pclusters (0: not compressed)
	zsrc     *zent       // its compression as planned
	sp       *sparseInfo // its zeros as planned (sp.chunk: chunk based)
	blkaddr  uint32
	pos      int64 // the inode's byte offset: nid = pos/32
}

type child struct {
	name string
	n    *node
}

func (n *node) isize() int64 {
	if n.extended {
		return extendedSize
	}
	return compactSize
}

func (n *node) nid() uint64 { return uint64(n.pos / 32) }

// layout is a tree laid out as EROFS.
type layout struct {
	nodes     []*node // in walk order; nodes[0] is the root
	metaEnd   int64   // end of the metadata (inodes, xattrs, tails)
	dataStart int64   // first data block
	blocks    int64   // blocks in use
	zfiles    int64   // compressed files
	chunked   int64   // chunk-based files
	shared    []byte  // the shared xattrs area
	sharedPos int64   // where it is
	xattrBlk  int64   // xattr_blkaddr: the block it starts in
}

// MinSize returns the smallest size, a multiple of 1 MiB, that holds t.
func MinSize(t *tree.Tree, o Options) (int64, error) {
	return minSize(t, o, nil)
}

func minSize(t *tree.Tree, o Options, zc *zcache) (int64, error) {
	l, err := plan(t, o, zc)
	if err != nil {
		return 0, err
	}
	const mib = 1 << 20
	return (l.blocks*blockSize + mib - 1) / mib * mib, nil
}

// Write writes t as an EROFS filesystem into [0,size) of w, which must
// read as zeros beforehand.
func Write(w io.WriterAt, size int64, t *tree.Tree, o Options) error {
	zc := newZcache()
	defer zc.release()
	_, err := write(w, size, t, o, zc)
	return err
}

func checkOptions(o Options) error {
	if len(o.Label) > 16 {
		return fmt.Errorf("erofs: label %q is longer than 16 bytes", o.Label)
	}
	switch o.Compression {
	case "", "none", "lz4":
	default:
		return fmt.Errorf("erofs: compression %q is not one of none, lz4", o.Compression)
	}
	return nil
}

// plan lays the tree out: inodes placed in the tree's sorted walk order,
// root first (metaAlloc), then the data blocks in the same order.
//
// zc, when not nil, keeps what compression decided for each file from
// one plan to the next (MinSize's to Write's), so that files are not
// compressed once more only to count their blocks.
func plan(t *tree.Tree, o Options, zc *zcache) (*layout, error) {
	if err := checkOptions(o); err != nil {
		return nil, err
	}
	if t == nil || t.Root == nil || t.Root.Kind != tree.Dir {
		return nil, errors.New("erofs: the tree has no root directory")
	}
	l := &layout{}
	seen := map[*tree.Inode]*node{}
	var visit func(p string, in *tree.Inode, parent *node) (*node, error)
	visit = func(p string, in *tree.Inode, parent *node) (*node, error) {
		if n := seen[in]; n != nil {
			if in.Kind == tree.Dir {
				return nil, fmt.Errorf("erofs: %s: a directory with two names", p)
			}
			n.nlink++
			return n, nil
		}
		if len(l.nodes) >= math.MaxUint32-1 {
			return nil, fmt.Errorf("erofs: %s: more than %d inodes", p, uint32(math.MaxUint32-1))
		}
		n := &node{in: in, path: p, ino: uint32(len(l.nodes) + 1), nlink: 1, parent: parent}
		seen[in] = n
		l.nodes = append(l.nodes, n)
		if err := n.prepare(o); err != nil {
			return nil, err
		}
		if in.Kind != tree.Dir {
			return n, nil
		}
		if parent == nil {
			n.parent = n
		}
		n.nlink = 2
		prefix := p
		if prefix != "/" {
			prefix += "/"
		}
		kids := in.Children()
		n.children = make([]child, 0, len(kids)+2)
		n.children = append(n.children, child{".", n}, child{"..", n.parent})
		for _, d := range kids {
			if d.Name == "" || d.Name == "." || d.Name == ".." || len(d.Name) > 255 || strings.ContainsAny(d.Name, "/\x00") {
				return nil, fmt.Errorf("erofs: %s: invalid name %q", p, d.Name)
			}
			if d.Inode == nil {
				return nil, fmt.Errorf("erofs: %s%s: no inode", prefix, d.Name)
			}
			c, err := visit(prefix+d.Name, d.Inode, n)
			if err != nil {
				return nil, err
			}
			if d.Inode.Kind == tree.Dir {
				n.nlink++
			}
			n.children = append(n.children, child{d.Name, c})
		}
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
		n.size = n.packDir()
		return n, nil
	}
	if _, err := visit("/", t.Root, nil); err != nil {
		return nil, err
	}
	shared, sharedIDs, err := sharedXattrs(l.nodes)
	if err != nil {
		return nil, err
	}
	if shared != nil {
		for _, n := range l.nodes {
			if len(n.in.Xattrs) > 0 {
				if n.xattrs, err = encodeXattrs(n.in.Xattrs, sharedIDs); err != nil {
					return nil, fmt.Errorf("erofs: %s: %w", n.path, err)
				}
			}
		}
	}
	if !o.noChunks {
		if err := splan(l.nodes, zc); err != nil {
			return nil, err
		}
	}
	if o.Compression == "lz4" {
		if err := zplan(l.nodes, zc); err != nil {
			return nil, err
		}
		for _, n := range l.nodes {
			if n.zblocks > 0 && n.sp != nil && n.sp.chunk {
				// The smaller of the two: chunks (data and block map)
				// or pclusters (and their indexes).
				if n.zblocks*blockSize+zMetaSize(0, n.size) <= n.sp.blocks*blockSize+n.sp.mapBytes() {
					n.sp = nil
				} else {
					n.zblocks, n.zsrc = 0, nil
				}
			}
			if n.zblocks > 0 {
				l.zfiles++
			}
		}
	}

	// Metadata: each inode, its xattrs and (where it fits) its data's
	// tail, from byte 1152, placed by metaAlloc (best fit into the
	// metadata blocks already started, in walk order).
	var ma metaAlloc
	ma.init()
	for _, n := range l.nodes {
		if n.nlink > math.MaxUint16 {
			n.extended = true
		}
		if n.extended {
			if n.nlink > math.MaxUint32 {
				return nil, fmt.Errorf("erofs: %s: %d links", n.path, n.nlink)
			}
		}
		meta := n.isize() + int64(len(n.xattrs))
		tail := n.size % blockSize
		switch {
		case n.sp != nil && n.sp.chunk:
			n.layout = layoutChunkBased
			head := meta
			meta += n.sp.mapBytes()
			if meta <= blockSize {
				n.pos = ma.fit(meta)
			} else {
				n.pos = ma.span(meta, head)
			}
			l.chunked++
		case n.zblocks > 0:
			// The inode, its xattrs and the map header in one block;
			// the indexes may cross blocks (each is read alone).
			n.layout = layoutCompressedFull
			head := (meta+7)/8*8 + zMapHeaderSize
			meta += zMetaSize(meta, n.size)
			if meta <= blockSize {
				n.pos = ma.fit(meta)
			} else {
				n.pos = ma.span(meta, head)
			}
		case tail > 0 && meta+tail <= blockSize:
			// The inode and its inline tail in one block (kernels
			// before 5.7 cannot read an inode that crosses blocks, no
			// kernel inline data that does).
			n.layout, n.tail = layoutFlatInline, tail
			n.pos = ma.fit(meta + tail)
		case meta <= blockSize:
			n.layout = layoutFlatPlain
			n.pos = ma.fit(meta)
		default:
			// More than a block of xattrs: from a block's start.
			n.layout = layoutFlatPlain
			n.pos = ma.span(meta, blockSize)
		}
		if n.pos/32 > math.MaxUint32 || (n == l.nodes[0] && n.pos/32 > math.MaxUint16) {
			return nil, fmt.Errorf("erofs: %s: the metadata is too large", n.path)
		}
		n.nblocks = (n.size - n.tail + blockSize - 1) / blockSize
		if n.zblocks > 0 {
			n.nblocks = n.zblocks
		}
		if n.layout == layoutChunkBased {
			n.nblocks = n.sp.blocks
		}
	}
	if shared != nil {
		// The shared xattrs after the inodes, from where the last
		// block's used bytes end: xattr_blkaddr is that block, and
		// each id in the inodes counts from its start.
		l.shared = shared
		l.sharedPos = ma.span(int64(len(shared)), xattrEntrySize)
		l.xattrBlk = l.sharedPos / blockSize
		base := uint32(l.sharedPos % blockSize / 4)
		for _, n := range l.nodes {
			if len(n.xattrs) == 0 {
				continue
			}
			for i := 0; i < int(n.xattrs[4]); i++ {
				id := n.xattrs[xattrHeaderSize+4*i:]
				binary.LittleEndian.PutUint32(id, binary.LittleEndian.Uint32(id)+base)
			}
		}
	}
	cur := ma.end()
	l.metaEnd = cur
	l.dataStart = (cur + blockSize - 1) / blockSize
	blk := l.dataStart
	for _, n := range l.nodes {
		if n.nblocks > 0 {
			n.blkaddr = uint32(blk)
			blk += n.nblocks
			if blk > math.MaxUint32 {
				return nil, fmt.Errorf("erofs: %s: the filesystem needs more than 2^32 blocks", n.path)
			}
		}
	}
	l.blocks = blk
	return l, nil
}

// prepare checks an inode and works out its data size, inode form and
// xattrs (directories' sizes come once their entries are known).
func (n *node) prepare(o Options) error {
	in := n.in
	if in.Mode&^0o7777 != 0 {
		return fmt.Errorf("erofs: %s: mode %o has bits beyond 07777", n.path, in.Mode)
	}
	switch in.Kind {
	case tree.Regular:
		if in.Size < 0 {
			return fmt.Errorf("erofs: %s: negative size %d", n.path, in.Size)
		}
		if in.Size > 0 && in.Content == nil {
			return fmt.Errorf("erofs: %s: no content for %d bytes", n.path, in.Size)
		}
		n.size = in.Size
	case tree.Symlink:
		if len(in.Target) == 0 || len(in.Target) > maxSymlink {
			return fmt.Errorf("erofs: %s: symlink target of %d bytes (1 to %d)", n.path, len(in.Target), maxSymlink)
		}
		if strings.IndexByte(in.Target, 0) >= 0 {
			return fmt.Errorf("erofs: %s: symlink target %q holds a NUL byte", n.path, in.Target)
		}
		n.size = int64(len(in.Target))
	case tree.Dir, tree.FIFO:
	case tree.CharDev, tree.BlockDev:
		if in.Major >= 1<<12 || in.Minor >= 1<<20 {
			return fmt.Errorf("erofs: %s: device %d:%d does not fit 12:20 bits", n.path, in.Major, in.Minor)
		}
	default:
		return fmt.Errorf("erofs: %s: unknown kind %v", n.path, in.Kind)
	}
	x, err := encodeXattrs(in.Xattrs, nil)
	if err != nil {
		return fmt.Errorf("erofs: %s: %w", n.path, err)
	}
	n.xattrs = x
	n.extended = in.UID > math.MaxUint16 || in.GID > math.MaxUint16 || n.size > math.MaxUint32 ||
		in.Mtime != o.Epoch || in.Nsec != 0
	return nil
}

// packDir splits a directory's sorted entries into blocks (each block's
// dirents, then its names) and returns the directory's size: whole
// blocks, and the bytes the last one uses.
func (n *node) packDir() int64 {
	used := 0
	var blk []child
	for _, c := range n.children {
		need := direntSize + len(c.name)
		if used+need > blockSize {
			n.dirBlks = append(n.dirBlks, blk)
			blk, used = nil, 0
		}
		blk = append(blk, c)
		used += need
	}
	n.dirBlks = append(n.dirBlks, blk)
	return int64(len(n.dirBlks)-1)*blockSize + int64(used)
}

// xattrPrefixes are the name indexes (EROFS_XATTR_INDEX_*) the kernel
// lists; exact names for the POSIX ACLs.
var xattrPrefixes = []struct {
	prefix string
	index  byte
	exact  bool
}{
	{"system.posix_acl_access", 2, true},
	{"system.posix_acl_default", 3, true},
	{"user.", 1, false},
	{"trusted.", 4, false},
	{"security.", 6, false},
}

// encodeXattrs is the ibody xattrs: the header (h_shared_count), the
// ids of the xattrs stored in the shared area (shared: relative ids by
// name and value, nil for none), then each other entry, in the tree's
// order (sorted by name).
func encodeXattrs(xs []tree.Xattr, shared map[string]uint32) ([]byte, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	var ids []uint32
	var body []byte
	for i, x := range xs {
		if i > 0 && xs[i-1].Name >= x.Name {
			return nil, fmt.Errorf("xattrs not sorted or repeated at %q", x.Name)
		}
		e, err := xattrEntry(x)
		if err != nil {
			return nil, err
		}
		if id, ok := shared[xattrKey(x)]; ok && len(ids) < math.MaxUint8 {
			ids = append(ids, id)
			continue
		}
		body = append(body, e...)
	}
	b := make([]byte, xattrHeaderSize, xattrHeaderSize+4*len(ids)+len(body))
	b[4] = byte(len(ids))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	b = append(b, body...)
	if (len(b)-xattrHeaderSize)/4+1 > math.MaxUint16 {
		return nil, errors.New("xattrs take more than 256 KiB")
	}
	return b, nil
}

// xattrKey is an xattr's name and value, as the shared area is keyed
// (a name holds no NUL).
func xattrKey(x tree.Xattr) string { return x.Name + "\x00" + string(x.Value) }

// xattrEntry encodes one xattr entry: name length, name index, value
// size, name suffix, value, 4-byte aligned.
func xattrEntry(x tree.Xattr) ([]byte, error) {
	idx, suffix := byte(0), ""
	for _, p := range xattrPrefixes {
		if p.exact && x.Name == p.prefix {
			idx = p.index
			break
		}
		if !p.exact && strings.HasPrefix(x.Name, p.prefix) && len(x.Name) > len(p.prefix) {
			idx, suffix = p.index, x.Name[len(p.prefix):]
			break
		}
	}
	if idx == 0 {
		return nil, fmt.Errorf("xattr %q: EROFS stores only user., trusted., security. and POSIX ACLs", x.Name)
	}
	if len(suffix) > math.MaxUint8 || len(x.Value) > math.MaxUint16 {
		return nil, fmt.Errorf("xattr %q: name or value too long (%d bytes of value)", x.Name, len(x.Value))
	}
	e := make([]byte, xattrEntrySize, xattrEntrySize+len(suffix)+len(x.Value)+3)
	e[0] = byte(len(suffix))
	e[1] = idx
	binary.LittleEndian.PutUint16(e[2:], uint16(len(x.Value)))
	e = append(e, suffix...)
	e = append(e, x.Value...)
	for len(e)%4 != 0 {
		e = append(e, 0)
	}
	return e, nil
}

// sharedXattrs chooses the xattrs stored once in the shared area, as
// mkfs.erofs does: each name and value that two inodes or more carry,
// in the order of their names and values. It returns the area and each
// one's id relative to the area's start (its offset / 4).
func sharedXattrs(nodes []*node) ([]byte, map[string]uint32, error) {
	count := map[string]int{}
	byKey := map[string]tree.Xattr{}
	for _, n := range nodes {
		for _, x := range n.in.Xattrs {
			k := xattrKey(x)
			count[k]++
			byKey[k] = x
		}
	}
	var keys []string
	for k, c := range count {
		if c >= 2 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	sort.Strings(keys)
	var area []byte
	ids := make(map[string]uint32, len(keys))
	for _, k := range keys {
		e, err := xattrEntry(byKey[k])
		if err != nil {
			return nil, nil, err // prepare reported it with its path
		}
		if int64(len(area))/4 > math.MaxUint32/2 {
			return nil, nil, errors.New("erofs: the shared xattrs take more than 8 GiB")
		}
		ids[k] = uint32(len(area) / 4)
		area = append(area, e...)
	}
	return area, ids, nil
}

// write writes the laid-out tree and returns the layout (for extents).
func write(w io.WriterAt, size int64, t *tree.Tree, o Options, zc *zcache) (*layout, error) {
	l, err := plan(t, o, zc)
	if err != nil {
		return nil, err
	}
	if l.blocks*blockSize > size {
		return nil, fmt.Errorf("erofs: the tree needs %d bytes, the filesystem has %d", l.blocks*blockSize, size)
	}
	mw := &metaWriter{w: w, buf: make([]byte, metaWindow)}
	buf := make([]byte, 1<<20)
	var z *zwriter
	var ahead *zahead
	// The metadata is written in increasing offsets, through a window.
	order := slices.Clone(l.nodes)
	slices.SortFunc(order, func(a, b *node) int { return cmp.Compare(a.pos, b.pos) })
	if l.zfiles > 0 {
		ahead = startZahead(order)
		defer ahead.stop()
	}
	for _, n := range order {
		if n.zblocks > 0 {
			if z == nil && !n.spilled() && ahead.jobs[n] == nil {
				z = newZwriter()
			}
			if err := n.writeCompressed(w, mw, ahead, z, o); err != nil {
				return nil, err
			}
			continue
		}
		var mapBytes int64
		if n.layout == layoutChunkBased {
			mapBytes = n.sp.mapBytes()
		}
		m, err := mw.at(n.pos, n.isize()+int64(len(n.xattrs))+n.tail+mapBytes)
		if err != nil {
			return nil, err
		}
		n.putInode(m[:n.isize()], o)
		copy(m[n.isize():], n.xattrs)
		if n.layout == layoutChunkBased {
			if err := n.writeChunked(w, m[n.isize()+int64(len(n.xattrs)):], int64(n.blkaddr)*blockSize, buf); err != nil {
				return nil, err
			}
			continue
		}
		tail := m[n.isize()+int64(len(n.xattrs)):]
		data := int64(n.blkaddr) * blockSize
		switch n.in.Kind {
		case tree.Regular:
			if err := n.copyContent(w, data, tail, buf); err != nil {
				return nil, err
			}
		case tree.Symlink:
			if n.tail > 0 {
				copy(tail, n.in.Target)
			} else if _, err := w.WriteAt([]byte(n.in.Target), data); err != nil {
				return nil, fmt.Errorf("erofs: %s: %w", n.path, err)
			}
		case tree.Dir:
			d := n.dirBytes()
			if n.tail > 0 {
				copy(tail, d[int64(len(d))-n.tail:])
				d = d[:int64(len(d))-n.tail]
			}
			if len(d) > 0 {
				if _, err := w.WriteAt(d, data); err != nil {
					return nil, fmt.Errorf("erofs: %s: %w", n.path, err)
				}
			}
		}
	}
	for k := int64(0); k < int64(len(l.shared)); k += 64 << 10 {
		piece := l.shared[k:min(k+64<<10, int64(len(l.shared)))]
		m, err := mw.at(l.sharedPos+k, int64(len(piece)))
		if err != nil {
			return nil, err
		}
		copy(m, piece)
	}
	block0, err := mw.finish()
	if err != nil {
		return nil, err
	}
	putSuper(block0, l, o)
	if _, err := w.WriteAt(block0, 0); err != nil {
		return nil, fmt.Errorf("erofs: writing the superblock: %w", err)
	}
	return l, nil
}

// metaWindow is how much metadata is held before it is written: more
// than one inode's largest metadata (64 + 256 KiB of xattrs + a 4 KiB
// tail, or a chunk-based file's block map of at most 256 KiB) and a
// block; the shared xattrs are written through it in pieces.
const metaWindow = 1 << 20

// metaWriter writes the metadata area through a window that moves
// forward (inodes are laid out in increasing offsets), so that memory
// does not grow with the tree. Block 0 is kept to the end: the
// superblock's checksum covers the inodes that share its block.
type metaWriter struct {
	w      io.WriterAt
	base   int64  // the window's first byte, a block boundary
	buf    []byte // [base, base+len(buf))
	block0 []byte // block 0, once the window has left it
}

// at returns the n bytes at off of the metadata, to fill.
func (m *metaWriter) at(off, n int64) ([]byte, error) {
	if off < m.base || n+blockSize > int64(len(m.buf)) {
		return nil, fmt.Errorf("BUG: erofs: metadata at %d (%d bytes) behind the window at %d", off, n, m.base)
	}
	if off+n > m.base+int64(len(m.buf)) {
		next := off / blockSize * blockSize
		done := m.buf[:next-m.base]
		if m.base == 0 {
			m.block0 = bytes.Clone(done[:blockSize])
			done = done[blockSize:]
			if _, err := m.w.WriteAt(done, blockSize); err != nil {
				return nil, fmt.Errorf("erofs: writing the metadata: %w", err)
			}
		} else if _, err := m.w.WriteAt(done, m.base); err != nil {
			return nil, fmt.Errorf("erofs: writing the metadata: %w", err)
		}
		k := copy(m.buf, m.buf[next-m.base:])
		clear(m.buf[k:])
		m.base = next
	}
	return m.buf[off-m.base : off-m.base+n], nil
}

// finish writes what the window holds, less block 0, which it returns.
func (m *metaWriter) finish() ([]byte, error) {
	rest, at := m.buf, m.base
	if m.base == 0 {
		m.block0 = bytes.Clone(m.buf[:blockSize])
		rest, at = m.buf[blockSize:], blockSize
	}
	if _, err := m.w.WriteAt(bytes.TrimRight(rest, "\x00"), at); err != nil {
		return nil, fmt.Errorf("erofs: writing the metadata: %w", err)
	}
	return m.block0, nil
}

// putInode encodes n's inode into b.
func (n *node) putInode(b []byte, o Options) {
	in := n.in
	le := binary.LittleEndian
	format := uint16(n.layout << 1)
	if n.extended {
		format |= 1
	}
	le.PutUint16(b[0:], format)
	if len(n.xattrs) > 0 {
		le.PutUint16(b[2:], uint16((len(n.xattrs)-xattrHeaderSize)/4+1))
	}
	le.PutUint16(b[4:], uint16(in.Kind.ModeType()|in.Mode))
	var iu uint32
	switch {
	case in.Kind == tree.CharDev || in.Kind == tree.BlockDev:
		iu = in.Minor&0xff | in.Major<<8 | (in.Minor&^0xff)<<12
	case n.zblocks > 0:
		iu = uint32(n.zblocks) // compressed_blocks
	case n.layout == layoutChunkBased:
		iu = uint32(n.sp.bits) // chunk_info.format: the block map
	default:
		iu = n.blkaddr
	}
	le.PutUint32(b[16:], iu)
	le.PutUint32(b[20:], n.ino)
	if n.extended {
		le.PutUint64(b[8:], uint64(n.size))
		le.PutUint32(b[24:], in.UID)
		le.PutUint32(b[28:], in.GID)
		le.PutUint64(b[32:], uint64(in.Mtime))
		le.PutUint32(b[40:], in.Nsec)
		le.PutUint32(b[44:], uint32(n.nlink))
		return
	}
	le.PutUint16(b[6:], uint16(n.nlink))
	le.PutUint32(b[8:], uint32(n.size))
	le.PutUint16(b[24:], uint16(in.UID))
	le.PutUint16(b[26:], uint16(in.GID))
}

// dirBytes encodes a directory's blocks: in each, the dirents (nid,
// name offset, file type), then the names, unterminated.
func (n *node) dirBytes() []byte {
	out := make([]byte, n.size)
	for i, blk := range n.dirBlks {
		b := out[int64(i)*blockSize:]
		off := direntSize * len(blk)
		for j, c := range blk {
			e := b[j*direntSize:]
			binary.LittleEndian.PutUint64(e[0:], c.n.nid())
			binary.LittleEndian.PutUint16(e[8:], uint16(off))
			e[10] = c.n.in.Kind.DirentType()
			off += copy(b[off:], c.name)
		}
	}
	return out
}

// copyContent streams a regular file's content: whole blocks to the data
// area at data, the rest into tail (when inline).
func (n *node) copyContent(w io.WriterAt, data int64, tail, buf []byte) error {
	if n.size == 0 {
		return nil
	}
	r, err := n.in.Content.Open()
	if err != nil {
		return fmt.Errorf("erofs: %s: %w", n.path, err)
	}
	defer r.Close()
	plain := n.size - n.tail
	var done int64
	for done < plain {
		k := int64(len(buf))
		if plain-done < k {
			k = plain - done
		}
		m, err := io.ReadFull(r, buf[:k])
		if err != nil {
			return fmt.Errorf("erofs: %s: content is %d bytes, want %d: %w", n.path, done+int64(m), n.size, err)
		}
		if _, err := w.WriteAt(buf[:k], data+done); err != nil {
			return fmt.Errorf("erofs: %s: %w", n.path, err)
		}
		done += k
	}
	if m, err := io.ReadFull(r, tail); err != nil {
		return fmt.Errorf("erofs: %s: content is %d bytes, want %d: %w", n.path, done+int64(m), n.size, err)
	}
	if m, _ := r.Read(buf[:1]); m != 0 {
		return fmt.Errorf("erofs: %s: content is longer than its size %d", n.path, n.size)
	}
	return nil
}

// putSuper encodes the superblock and its checksum: crc32c (seed ~0, no
// final inversion) of block 0 from byte 1024, the checksum field zero.
func putSuper(meta []byte, l *layout, o Options) {
	le := binary.LittleEndian
	s := meta[superOffset : superOffset+superSize]
	le.PutUint32(s[0:], superMagic)
	le.PutUint32(s[8:], featureCompatSBChksum)
	s[12] = blkszBits
	le.PutUint16(s[14:], uint16(l.nodes[0].nid()))
	le.PutUint64(s[16:], uint64(len(l.nodes)))
	var incompat uint32
	if l.zfiles > 0 {
		incompat |= featureIncompatZeroPadding
		le.PutUint16(s[84:], lz4MaxOffset) // lz4_max_distance
	}
	if l.chunked > 0 {
		incompat |= featureIncompatChunkedFile
	}
	le.PutUint32(s[80:], incompat)
	le.PutUint64(s[24:], uint64(o.Epoch))
	le.PutUint32(s[36:], uint32(l.blocks))
	// meta_blkaddr is 0: metadata starts at block 0.
	le.PutUint32(s[44:], uint32(l.xattrBlk))
	copy(s[48:64], o.UUID[:])
	copy(s[64:80], o.Label)
	le.PutUint32(s[4:], superChecksum(meta[superOffset:blockSize]))
}

// superChecksum is the superblock's checksum of block 0 from byte 1024
// (b), whose checksum field is taken as zero.
func superChecksum(b []byte) uint32 {
	c := make([]byte, len(b))
	copy(c, b)
	binary.LittleEndian.PutUint32(c[4:], 0)
	return ^crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli))
}
