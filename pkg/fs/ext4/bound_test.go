package ext4

import (
	"bytes"
	"fmt"
	"io"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// sparseImg is an image of any size that reads as zeros except where
// parts say.
type sparseImg struct {
	size  int64
	parts map[int64][]byte
	file  io.ReaderAt // if set, what the image reads as instead of parts
}

func (s *sparseImg) ReadAt(b []byte, off int64) (int, error) {
	if s.file != nil {
		return s.file.ReadAt(b, off)
	}
	if off >= s.size {
		return 0, fmt.Errorf("offset %d past the end", off)
	}
	n := int(min(int64(len(b)), s.size-off))
	clear(b[:n])
	for o, d := range s.parts {
		lo, hi := max(o, off), min(o+int64(len(d)), off+int64(n))
		if lo < hi {
			copy(b[lo-off:hi-off], d[lo-o:hi-o])
		}
	}
	return n, nil
}

// heapAllocs is the bytes the process has allocated so far.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestReadBoundedHeaders reads crafted filesystems whose headers claim
// huge structures: each must fail (or read) allocating at most
// testkit.ReadBound, with an error naming what is wrong.
func TestReadBoundedHeaders(t *testing.T) {
	for _, c := range []struct {
		name string
		img  func(t *testing.T) (*sparseImg, ReadOptions)
		want string
	}{
		{"2^28 block groups", func(t *testing.T) (*sparseImg, ReadOptions) {
			// 1 KiB blocks filling a 2 TiB sparse image, 8 blocks and 1
			// inode per group: 2^28 groups, 10 bytes of state each.
			sb := make([]byte, sbSize)
			blocks := uint32(1<<31 - 1)
			groups := (blocks - 1 + 7) / 8
			le.PutUint32(sb[sbBlocksCountLo:], blocks)
			le.PutUint32(sb[sbFirstDataBlock:], 1)
			le.PutUint32(sb[sbBlocksPerGroup:], 8)
			le.PutUint32(sb[sbInodesPerGroup:], 1)
			le.PutUint32(sb[sbInodesCount:], groups)
			le.PutUint16(sb[sbMagic:], sbMagicValue)
			return &sparseImg{size: 2 << 40, parts: map[int64][]byte{sbOffset: sb}}, ReadOptions{}
		}, "block groups"},
		{"directory of repeated blocks", func(t *testing.T) (*sparseImg, ReadOptions) {
			return repeatedDirImage(t), ReadOptions{Lenient: true}
		}, "directory entries"},
		{"4200 values in ea_inode inodes", eaInodesImage, "bytes of xattr values in the filesystem"},
		{"a million reads of one indirect block", rereadImage, "more metadata blocks read"},
		{"file of scattered blocks", func(t *testing.T) (*sparseImg, ReadOptions) {
			return scatteredFileImage(t), ReadOptions{Lenient: true}
		}, "extents in the filesystem's files"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, o := c.img(t)
			var err error
			before := heapAllocs()
			testkit.BoundAlloc(t, testkit.ReadBound, func() {
				_, _, err = ReadTreeOptions(img, img.size, o)
			})
			t.Logf("allocated %d MiB: %v", (heapAllocs()-before)>>20, err)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ReadTree: %v, want an error about %q", err, c.want)
			}
		})
	}
}

// craftImage writes tr with kiln into an 80 MiB image and returns it with
// a reader of it and the on-disk inode at path p (a child of the root).
func craftImage(t *testing.T, tr *tree.Tree, p string) (*sparseImg, *fsReader, []byte, *rawInode) {
	t.Helper()
	file := rtWrite(t, tr, 80<<20)
	img := &sparseImg{size: rtSize(t, file), parts: map[int64][]byte{0: rtImageBytes(t, file)}}
	raw := img.parts[0]
	rd := &fsReader{img: &image{r: img, size: img.size}, o: ReadOptions{Lenient: true, MaxEntries: DefaultMaxEntries}}
	if err := rd.readSuper(); err != nil {
		t.Fatal(err)
	}
	if err := rd.readGroups(); err != nil {
		t.Fatal(err)
	}
	root, err := rd.readInode(rootIno)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := rd.dirEntries(root)
	if err != nil {
		t.Fatal(err)
	}
	var ino uint32
	for _, e := range ents {
		if "/"+e.name == p {
			ino = e.ino
		}
	}
	n, err := rd.readInode(ino)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(rd.itable[(ino-1)/rd.ipg])*blockSize + int64((ino-1)%rd.ipg)*int64(rd.inodeSize)
	return img, rd, raw[off : off+int64(rd.inodeSize)], n
}

// setBlockMap makes inode in block-mapped, size bytes, with i_block ptrs.
func setBlockMap(in []byte, size uint64, ptrs [15]uint32) {
	le.PutUint32(in[iFlags:], le.Uint32(in[iFlags:])&^(flagExtents|flagIndex))
	le.PutUint32(in[iSizeLo:], uint32(size))
	le.PutUint32(in[iSizeHigh:], uint32(size>>32))
	for i, p := range ptrs {
		le.PutUint32(in[iBlock+4*i:], p)
	}
}

// repeatedDirImage is a kiln filesystem whose directory /d, of one block
// of 300 entries (hard links to one file), is turned into a block-mapped
// directory of 16000 blocks that all point at that one block, through an
// indirect and a double indirect block.
func repeatedDirImage(t *testing.T) *sparseImg {
	t.Helper()
	tr := tree.New(rtEpoch)
	f := rtFile(0o644, []byte("x"))
	d := rtMkdir(tr, "/d")
	for i := 0; i < 300; i++ {
		d.SetChild(fmt.Sprintf("%04d", i), f)
	}
	img, rd, in, n := craftImage(t, tr, "/d")
	m, err := rd.blockMap(n)
	if err != nil || len(m) != 1 || m[0].n != 1 {
		t.Fatalf("/d: %v %v", m, err)
	}
	dblk := uint32(m[0].pblk)
	// Two free blocks at the end for the indirect blocks.
	ind, dind := uint32(rd.blocks-2), uint32(rd.blocks-1)
	indB, dindB := make([]byte, blockSize), make([]byte, blockSize)
	for i := 0; i < blockSize/4; i++ {
		le.PutUint32(indB[4*i:], dblk)
		le.PutUint32(dindB[4*i:], ind)
	}
	copy(img.parts[0][int64(ind)*blockSize:], indB)
	copy(img.parts[0][int64(dind)*blockSize:], dindB)
	var ptrs [15]uint32
	for i := range 12 {
		ptrs[i] = dblk
	}
	ptrs[12], ptrs[13] = ind, dind
	setBlockMap(in, 16000*blockSize, ptrs)
	return img
}

// scatteredFileImage is a kiln filesystem whose file /f is turned into a
// 4 TiB block-mapped file whose triple indirect block leads, through one
// shared double indirect and one shared indirect block, to 1024 pointers
// at every other block: a mapping per block, 2^30 of them.
func scatteredFileImage(t *testing.T) *sparseImg {
	t.Helper()
	tr := tree.New(rtEpoch)
	rtPut(tr, "/f", rtFile(0o644, []byte("x")))
	img, rd, in, _ := craftImage(t, tr, "/f")
	ind, dind, tind := uint32(rd.blocks-3), uint32(rd.blocks-2), uint32(rd.blocks-1)
	indB, dindB, tindB := make([]byte, blockSize), make([]byte, blockSize), make([]byte, blockSize)
	for i := 0; i < blockSize/4; i++ {
		le.PutUint32(indB[4*i:], uint32(1000+2*i))
		le.PutUint32(dindB[4*i:], ind)
		le.PutUint32(tindB[4*i:], dind)
	}
	copy(img.parts[0][int64(ind)*blockSize:], indB)
	copy(img.parts[0][int64(dind)*blockSize:], dindB)
	copy(img.parts[0][int64(tind)*blockSize:], tindB)
	var ptrs [15]uint32
	ptrs[14] = tind
	setBlockMap(in, 4<<40, ptrs)
	return img
}

// eaInodesImage is a kiln filesystem whose 4200 files /a/fN each have an
// xattr whose value is made to live in an inode of its own (ea_inode):
// the files /z/vN, each turned into a 64 KiB value inode over the same
// 16 blocks. 4200 values of 64 KiB are 262 MiB.
func eaInodesImage(t *testing.T) (*sparseImg, ReadOptions) {
	t.Helper()
	const n = 4200
	tr := tree.New(rtEpoch)
	a, z := rtMkdir(tr, "/a"), rtMkdir(tr, "/z")
	for i := 0; i < n; i++ {
		f := rtFile(0o644, nil)
		f.Xattrs = []tree.Xattr{{Name: "user.a", Value: []byte("x")}}
		a.SetChild(fmt.Sprintf("f%04d", i), f)
		z.SetChild(fmt.Sprintf("v%04d", i), rtFile(0o644, []byte("v")))
	}
	rtPut(tr, "/data", rtFile(0o644, bytes.Repeat([]byte("d"), 65536)))
	file := rtWrite(t, tr, 320<<20)
	img := &sparseImg{size: rtSize(t, file), parts: map[int64][]byte{0: rtImageBytes(t, file)}}
	raw := img.parts[0]
	rd := rtOpen(t, bytes.NewReader(raw), false)
	inodeAt := func(ino uint32) []byte {
		off := int64(rd.itable[(ino-1)/rd.ipg])*blockSize + int64((ino-1)%rd.ipg)*int64(rd.inodeSize)
		return raw[off : off+int64(rd.inodeSize)]
	}
	data, err := rd.readInode(rtLookup(t, rd, "/data"))
	if err != nil {
		t.Fatal(err)
	}
	dm, err := rd.blockMap(data)
	if err != nil || len(dm) != 1 || dm[0].n != 16 {
		t.Fatalf("/data: %v %v", dm, err)
	}
	inos := map[string]uint32{}
	for _, d := range []string{"/a", "/z"} {
		dr, err := rd.readInode(rtLookup(t, rd, d))
		if err != nil {
			t.Fatal(err)
		}
		ents, err := rd.dirEntries(dr)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			inos[d+"/"+e.name] = e.ino
		}
	}
	le.PutUint32(raw[sbOffset+sbFeatureIncompat:], le.Uint32(raw[sbOffset+sbFeatureIncompat:])|incompatEAInode)
	for i := 0; i < n; i++ {
		vino := inos[fmt.Sprintf("/z/v%04d", i)]
		v := inodeAt(vino)
		le.PutUint32(v[iFlags:], le.Uint32(v[iFlags:])|flagEAInode)
		le.PutUint32(v[iSizeLo:], 65536)
		// i_block: the extent header, then one extent of /data's 16 blocks.
		e := v[iBlock+12:]
		le.PutUint32(e[0:], 0)
		le.PutUint16(e[4:], 16)
		le.PutUint16(e[6:], uint16(dm[0].pblk>>32))
		le.PutUint32(e[8:], uint32(dm[0].pblk))
		f := inodeAt(inos[fmt.Sprintf("/a/f%04d", i)])
		extra := int(le.Uint16(f[iExtraIsize:]))
		ent := f[goodOldInode+extra+4:]
		if ent[0] != 1 || ent[1] != 1 {
			t.Fatalf("/a/f%04d: no in-inode user.a entry: %x", i, ent[:16])
		}
		le.PutUint16(ent[2:], 0)
		le.PutUint32(ent[4:], vino)
		le.PutUint32(ent[8:], 65536)
	}
	return img, ReadOptions{Lenient: true}
}

// rereadImage is a 2 GiB kiln filesystem (a sparse file) whose file /f
// is turned into a 4 TiB block-mapped file whose triple indirect block
// points 1024 times at one double indirect block, which points 1024
// times at one indirect block of zeros: a million metadata reads, and
// not one mapping.
func rereadImage(t *testing.T) (*sparseImg, ReadOptions) {
	t.Helper()
	tr := tree.New(rtEpoch)
	rtPut(tr, "/f", rtFile(0o644, []byte("x")))
	file := rtWrite(t, tr, 2<<30)
	rd := rtOpen(t, file, false)
	ino := rtLookup(t, rd, "/f")
	off := int64(rd.itable[(ino-1)/rd.ipg])*blockSize + int64((ino-1)%rd.ipg)*int64(rd.inodeSize)
	in := make([]byte, rd.inodeSize)
	if _, err := file.ReadAt(in, off); err != nil {
		t.Fatal(err)
	}
	ind, dind, tind := uint32(rd.blocks-3), uint32(rd.blocks-2), uint32(rd.blocks-1)
	dindB, tindB := make([]byte, blockSize), make([]byte, blockSize)
	for i := 0; i < blockSize/4; i++ {
		le.PutUint32(dindB[4*i:], ind)
		le.PutUint32(tindB[4*i:], dind)
	}
	var ptrs [15]uint32
	ptrs[14] = tind
	setBlockMap(in, 4<<40, ptrs)
	for _, w := range []struct {
		off int64
		b   []byte
	}{{off, in}, {int64(dind) * blockSize, dindB}, {int64(tind) * blockSize, tindB}} {
		if _, err := file.WriteAt(w.b, w.off); err != nil {
			t.Fatal(err)
		}
	}
	return &sparseImg{size: rtSize(t, file), parts: map[int64][]byte{}, file: file}, ReadOptions{Lenient: true}
}
