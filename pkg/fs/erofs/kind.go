package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Kind is EROFS as kiln's filesystems list it (pkg/fs/all): its writer,
// how inspect and diff recognise it, and the superblock fields diff
// compares.
var Kind = fs.Kind{
	Name:         "erofs",
	New:          New,
	Probe:        Probe,
	ReadTree:     ReadTree,
	HeaderOffset: superOffset,
	Fields:       superblockFields,
}

// New is the fs.New of EROFS: the label is p.Label, else the first 16
// bytes of p.Name; the UUID is p.UUID("fs-uuid"); the build time is
// p.Epoch; the compression is p.Compression ("", "none" or "lz4").
func New(p fs.Params) (fs.Filesystem, error) {
	label := p.LabelOr(16)
	if p.UUID == nil {
		return nil, errors.New("BUG: erofs: no UUID source")
	}
	o := Options{Label: label, UUID: repro.UUID(p.UUID("fs-uuid")), Epoch: p.Epoch, Compression: p.Compression}
	if err := checkOptions(o); err != nil {
		return nil, err
	}
	return &filesystem{o: o, zc: newZcache()}, nil
}

// filesystem is EROFS behind fs.Filesystem. What MinSize's compression
// decided is kept for Write (files are compressed once to count their
// blocks, once to write them).
type filesystem struct {
	o  Options
	zc *zcache
}

func (f *filesystem) MinSize(t *tree.Tree) (int64, error) { return minSize(t, f.o, f.zc) }

func (f *filesystem) Write(w io.WriterAt, r fs.Region, t *tree.Tree) (*fs.Report, error) {
	l, err := write(w, r.Size, t, f.o, f.zc)
	f.zc.release()
	if err != nil {
		return nil, err
	}
	rep := &fs.Report{UUID: f.o.UUID.String(), Label: f.o.Label}
	for _, p := range r.Locate {
		if rep.Extents == nil {
			rep.Extents = map[string][]fs.Extent{}
		}
		in := t.Lookup(p)
		var n *node
		for _, c := range l.nodes {
			if c.in == in {
				n = c
				break
			}
		}
		if in == nil || in.Kind != tree.Regular || n == nil {
			return nil, fmt.Errorf("erofs: %s is not a regular file of the tree", p)
		}
		if n.zblocks > 0 {
			return nil, fmt.Errorf("erofs: %s is compressed: it has no extents to locate", p)
		}
		if n.layout == layoutChunkBased {
			return nil, fmt.Errorf("erofs: %s is stored in chunks with holes: it has no extents to locate", p)
		}
		var ext []fs.Extent
		if plain := n.size - n.tail; plain > 0 {
			ext = append(ext, fs.Extent{Offset: int64(n.blkaddr) * blockSize, Length: plain})
		}
		if n.tail > 0 {
			ext = append(ext, fs.Extent{Offset: n.pos + n.isize() + int64(len(n.xattrs)), Length: n.tail})
		}
		rep.Extents[p] = ext
	}
	return rep, nil
}

// Probe recognises an EROFS superblock on r (a partition of size bytes):
// its magic, a 4 KiB block size, its checksum when it has one, and a
// block count within the partition.
func Probe(r io.ReaderAt, size int64) (*fs.Info, error) {
	if size < blockSize {
		return nil, errors.New("erofs: partition smaller than one block")
	}
	b := make([]byte, blockSize-superOffset)
	if _, err := r.ReadAt(b, superOffset); err != nil {
		return nil, fmt.Errorf("erofs: reading the superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != superMagic {
		return nil, errors.New("erofs: no superblock magic")
	}
	if b[12] != blkszBits {
		return nil, fmt.Errorf("erofs: superblock: block size 2^%d, kiln reads 4096", b[12])
	}
	if le.Uint32(b[8:])&featureCompatSBChksum != 0 {
		if got, want := le.Uint32(b[4:]), superChecksum(b); got != want {
			return nil, fmt.Errorf("erofs: superblock checksum %#08x, computed %#08x", got, want)
		}
	}
	blocks := int64(le.Uint32(b[36:]))
	if blocks*blockSize > size {
		return nil, fmt.Errorf("erofs: superblock: %d blocks in a partition of %d bytes", blocks, size)
	}
	var u repro.UUID
	copy(u[:], b[48:64])
	return &fs.Info{
		Type:  "erofs",
		Label: strings.TrimRight(string(b[64:80]), "\x00"),
		UUID:  u.String(),
		Size:  blocks * blockSize,
		Used:  blocks * blockSize,
		// inos, as mkfs.erofs and kiln write it: the inodes the image
		// holds (a count, not bounded by anything else here).
		Inodes: int64(min(le.Uint64(b[16:]), 1<<62)),
	}, nil
}

// superblockFields are the superblock's fields (offsets from byte 1024),
// as erofs_fs.h names them.
var superblockFields = []fs.HeaderField{
	fs.Field("magic", 0, 4, "hex"), fs.Field("checksum", 4, 4, "hex"), fs.Field("feature_compat", 8, 4, "hex"),
	fs.Field("blkszbits", 12, 1, "u"), fs.Field("sb_extslots", 13, 1, "u"), fs.Field("root_nid", 14, 2, "u"),
	fs.Field("inos", 16, 8, "u"), fs.Field("build_time", 24, 8, "u"), fs.Field("build_time_nsec", 32, 4, "u"),
	fs.Field("blocks", 36, 4, "u"), fs.Field("meta_blkaddr", 40, 4, "u"), fs.Field("xattr_blkaddr", 44, 4, "u"),
	fs.Field("uuid", 48, 16, "uuid"), fs.Field("volume_name", 64, 16, "str"), fs.Field("feature_incompat", 80, 4, "hex"),
	fs.Field("lz4_max_distance", 84, 2, "hex") /* u.available_compr_algs with COMPR_CFGS, which kiln does not write */, fs.Field("extra_devices", 86, 2, "u"), fs.Field("devt_slotoff", 88, 2, "u"),
	fs.Field("dirblkbits", 90, 1, "u"), fs.Field("packed_nid", 96, 8, "u"),
}
