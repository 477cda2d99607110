package erofs

import (
	"bytes"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Regular files with large all-zero ranges (a tar's GNU sparse files,
// whose holes a tree gives back as zeros) are written chunk based
// (EROFS_INODE_CHUNK_BASED, data layout 4), which Linux reads since 5.15
// (erofs-utils since 1.4, go-erofs 0.3): the file is cut into chunks of
// 2^chunkbits bytes, and after its inode and xattrs comes a block map,
// one little-endian 32-bit block address per chunk, EROFS_NULL_ADDR
// (0xffffffff) for a chunk that reads as zeros and is not stored. The
// inode's i_u is the chunk format: chunkbits less the block size's bits
// (no EROFS_CHUNK_FORMAT_INDEXES: the 4-byte block map, not the 8-byte
// indexes multi-device images need). The superblock has
// feature_incompat CHUNKED_FILE, so that a kernel before 5.15 refuses
// the filesystem instead of misreading it.
//
// The tree cannot tell holes: a file of sparseMinSize bytes or more is
// read once while planning, and the blocks that are all zeros noted (as
// runs of blocks holding data, at most sparseMaxRuns of them; a file
// with more keeps the flat layout). Its chunk size is then chosen to
// store the fewest bytes (the blocks of the chunks holding data, plus
// the block map), from 4 KiB up to the file's size, ties to the larger
// chunk (a smaller map), with at most sparseMaxChunks chunks (a map of
// at most 256 KiB, within the metadata window). The file is chunk based
// only when that stores at least a block less than the flat layout
// would (with lz4, than its compressed form); otherwise nothing changes.
const (
	layoutChunkBased           = 4
	featureIncompatChunkedFile = 0x4
	chunkFormatBlkbits         = 0x1f
	chunkFormatIndexes         = 0x20
	nullAddr                   = 0xffffffff

	sparseMinSize   = 64 << 10
	sparseMaxRuns   = 1 << 16
	sparseMaxChunks = 1 << 16
)

// sparseInfo is what planning found of a file's zeros.
type sparseInfo struct {
	size   int64
	runs   [][2]int64 // blocks [start, end) holding data, in order; nil: too many
	chunk  bool       // chunk based
	bits   int64      // then chunkbits less 12
	blocks int64      // its data blocks
}

func (s *sparseInfo) chunks() int64 {
	sz := int64(blockSize) << s.bits
	return (s.size + sz - 1) / sz
}

// mapBytes is the size of the block map.
func (s *sparseInfo) mapBytes() int64 { return 4 * s.chunks() }

// data returns, for each chunk, whether it holds data.
func (s *sparseInfo) data() []bool {
	out := make([]bool, s.chunks())
	for _, r := range s.runs {
		for c := r[0] >> s.bits; c <= (r[1]-1)>>s.bits; c++ {
			out[c] = true
		}
	}
	return out
}

// dataBlocks is the blocks that chunks of 2^bits blocks holding data
// take (the last one up to the file's last block).
func dataBlocks(runs [][2]int64, fileBlocks, bits int64) int64 {
	var n int64
	last := int64(-1)
	for _, r := range runs {
		for c := max(r[0]>>bits, last+1); c <= (r[1]-1)>>bits; c++ {
			n += min(int64(1)<<bits, fileBlocks-c<<bits)
			last = c
		}
	}
	return n
}

// choose picks the chunk size and says whether the file is chunk based
// (flat: the bytes the flat layout stores).
func (s *sparseInfo) choose(flat int64) {
	s.chunk = false
	if s.runs == nil {
		return
	}
	fileBlocks := (s.size + blockSize - 1) / blockSize
	best := int64(-1)
	for bits := int64(0); bits <= chunkFormatBlkbits; bits++ {
		chunks := (fileBlocks + 1<<bits - 1) >> bits
		if chunks <= sparseMaxChunks {
			blocks := dataBlocks(s.runs, fileBlocks, bits)
			if cost := blocks*blockSize + 4*chunks; best < 0 || cost <= best {
				best, s.bits, s.blocks = cost, bits, blocks
			}
		}
		if chunks == 1 {
			break
		}
	}
	s.chunk = best >= 0 && best+blockSize <= flat
}

// scanSparse reads a file's content and notes its blocks holding data.
func scanSparse(in *tree.Inode, size int64, path string, buf []byte) (*sparseInfo, error) {
	s := &sparseInfo{size: size}
	r, err := in.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("erofs: %s: %w", path, err)
	}
	defer r.Close()
	var zero [blockSize]byte
	var done int64
	for done < size {
		k := min(int64(len(buf)), size-done)
		if m, err := io.ReadFull(r, buf[:k]); err != nil {
			return nil, fmt.Errorf("erofs: %s: content is %d bytes, want %d: %w", path, done+int64(m), size, err)
		}
		for o := int64(0); o < k; o += blockSize {
			b := buf[o:min(o+blockSize, k)]
			if bytes.Equal(b, zero[:len(b)]) {
				continue
			}
			blk := (done + o) / blockSize
			if n := len(s.runs); n > 0 && s.runs[n-1][1] == blk {
				s.runs[n-1][1]++
			} else {
				if len(s.runs) >= sparseMaxRuns {
					return &sparseInfo{size: size}, nil // flat
				}
				s.runs = append(s.runs, [2]int64{blk, blk + 1})
			}
		}
		done += k
	}
	if s.runs == nil {
		s.runs = [][2]int64{} // all zeros
	}
	return s, nil
}

// splan scans the files that may be chunk based (not already in zc), on
// every CPU, and chooses their layout against the flat one. The error
// returned is the first file's in node order.
func splan(nodes []*node, zc *zcache) error {
	var todo []*node
	for _, n := range nodes {
		if n.in.Kind != tree.Regular || n.size < sparseMinSize {
			continue
		}
		if s := zc.sparse(n.in, n.size); s != nil {
			n.sp = s
			continue
		}
		todo = append(todo, n)
	}
	start := func() []byte { return make([]byte, 1<<20) }
	return eachParallel(len(todo), start, nil, func(buf []byte, i int) error {
		n := todo[i]
		s, err := scanSparse(n.in, n.size, n.path, buf)
		if err != nil {
			return err
		}
		s.choose((n.size + 31) / 32 * 32)
		n.sp = s
		zc.putSparse(n.in, s)
		return nil
	})
}

// writeChunked writes a chunk-based file: its block map into m (after
// the inode and xattrs) and the chunks holding data to the data area at
// data. The chunks planned as holes must still read as zeros.
func (n *node) writeChunked(w io.WriterAt, m []byte, data int64, buf []byte) error {
	s := n.sp
	r, err := n.in.Content.Open()
	if err != nil {
		return fmt.Errorf("erofs: %s: %w", n.path, err)
	}
	defer r.Close()
	var zero [blockSize]byte
	has := s.data()
	csize := int64(blockSize) << s.bits
	blk := int64(n.blkaddr)
	var done int64
	for c, d := range has {
		addr := uint32(nullAddr)
		if d {
			addr = uint32(blk)
		}
		m[4*c], m[4*c+1], m[4*c+2], m[4*c+3] = byte(addr), byte(addr>>8), byte(addr>>16), byte(addr>>24)
		end := min(done+csize, n.size)
		at := blk * blockSize
		for done < end {
			k := min(int64(len(buf)), end-done)
			if got, err := io.ReadFull(r, buf[:k]); err != nil {
				return fmt.Errorf("erofs: %s: content is %d bytes, want %d: %w", n.path, done+int64(got), n.size, err)
			}
			if d {
				if _, err := w.WriteAt(buf[:k], at); err != nil {
					return fmt.Errorf("erofs: %s: %w", n.path, err)
				}
				at += k
			} else {
				for o := int64(0); o < k; o += blockSize {
					b := buf[o:min(o+blockSize, k)]
					if !bytes.Equal(b, zero[:len(b)]) {
						return fmt.Errorf("erofs: %s: content changed since it was planned (data at %d, planned as a hole)", n.path, done+o)
					}
				}
			}
			done += k
		}
		if d {
			blk += (at - blk*blockSize + blockSize - 1) / blockSize
		}
	}
	if blk != int64(n.blkaddr)+n.nblocks {
		return fmt.Errorf("BUG: erofs: %s: %d data blocks written, %d planned", n.path, blk-int64(n.blkaddr), n.nblocks)
	}
	if got, _ := r.Read(buf[:1]); got != 0 {
		return fmt.Errorf("erofs: %s: content is longer than its size %d", n.path, n.size)
	}
	return nil
}
