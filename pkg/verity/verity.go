package verity

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"strings"
)

// Sizes and defaults of the format.
const (
	SuperblockSize   = 512        // bytes of the superblock at offset 0
	MaxSaltSize      = 256        // the superblock's salt field
	MinBlockSize     = 512        // smallest data or hash block veritysetup accepts
	MaxBlockSize     = 512 * 1024 // largest one
	DefaultBlockSize = 4096
	DefaultAlgorithm = "sha256"
)

// ErrCorrupt is wrapped by Verify's errors when the data, the hash tree or
// the root hash do not agree.
var ErrCorrupt = errors.New("verity: hash mismatch")

// Params are the choices recorded in the superblock. The zero value of a
// field means its default; Salt and UUID have none: kiln derives them from
// the data's digest and the build seed, so that the hash device and the
// root hash are reproducible.
type Params struct {
	DataBlockSize int      // bytes, a power of two in [512, 512 KiB]; 0 means 4096
	HashBlockSize int      // bytes, a power of two in [512, 512 KiB]; 0 means 4096
	Salt          []byte   // at most 256 bytes; empty means no salt (veritysetup --salt=-)
	UUID          [16]byte // the hash device's UUID, as veritysetup --uuid takes it
	Algorithm     string   // "sha256" (default), "sha512" or "sha1"
}

// algorithms are the hashes this package computes, by the name the kernel's
// crypto API and the superblock give them.
var algorithms = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// superblock is the on-disk verity header, little-endian, 512 bytes
// (cryptsetup lib/verity/verity.c, struct verity_sb).
type superblock struct {
	Signature     [8]byte  // "verity\0\0"
	Version       uint32   // superblock version, 1
	HashType      uint32   // 1: the normal format (0 is Chrome OS's, not written here)
	UUID          [16]byte // UUID of the hash device
	Algorithm     [32]byte // hash name, NUL-padded
	DataBlockSize uint32   // bytes
	HashBlockSize uint32   // bytes
	DataBlocks    uint64   // number of data blocks the tree covers
	SaltSize      uint16   // bytes of Salt in use
	_             [6]byte  // padding
	Salt          [256]byte
	_             [168]byte // padding to 512
}

var signature = [8]byte{'v', 'e', 'r', 'i', 't', 'y', 0, 0}

// geometry is everything derived from the parameters and the data size.
type geometry struct {
	p          Params
	newHash    func() hash.Hash
	dataBlocks int64
	digestSize int   // bytes of one digest
	slotSize   int   // bytes a digest occupies in a hash block (power of two)
	perBlock   int   // digests per hash block (power of two)
	treeStart  int64 // byte offset of the first hash block
	levelStart []int64
	levelCount []int64 // hash blocks of each level; index 0 hashes the data
	size       int64   // bytes of the whole hash device
}

func (p Params) withDefaults() Params {
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	if p.Algorithm == "" {
		p.Algorithm = DefaultAlgorithm
	}
	return p
}

func checkBlockSize(field string, n int) error {
	if n < MinBlockSize || n > MaxBlockSize || n&(n-1) != 0 {
		return fmt.Errorf("verity: %s %d is not a power of two between %d and %d", field, n, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// check validates the parameters (defaults applied).
func (p Params) check() (func() hash.Hash, error) {
	if err := checkBlockSize("data block size", p.DataBlockSize); err != nil {
		return nil, err
	}
	if err := checkBlockSize("hash block size", p.HashBlockSize); err != nil {
		return nil, err
	}
	if len(p.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("verity: salt of %d bytes is longer than %d", len(p.Salt), MaxSaltSize)
	}
	nh, ok := algorithms[p.Algorithm]
	if !ok {
		return nil, fmt.Errorf("verity: hash algorithm %q is not one of sha256, sha512, sha1", p.Algorithm)
	}
	return nh, nil
}

// plan lays the hash device out for dataSize bytes of data.
func plan(dataSize int64, p Params) (*geometry, error) {
	p = p.withDefaults()
	nh, err := p.check()
	if err != nil {
		return nil, err
	}
	dbs, hbs := int64(p.DataBlockSize), int64(p.HashBlockSize)
	if dataSize <= 0 {
		return nil, fmt.Errorf("verity: data size %d: there must be at least one data block", dataSize)
	}
	if dataSize%dbs != 0 {
		return nil, fmt.Errorf("verity: data size %d is not a multiple of the data block size %d", dataSize, dbs)
	}
	g := &geometry{p: p, newHash: nh, dataBlocks: dataSize / dbs}
	g.digestSize = nh().Size()
	g.slotSize = 1 << bits.Len(uint(g.digestSize-1))                     // next power of two
	g.perBlock = 1 << (bits.Len(uint(p.HashBlockSize/g.digestSize)) - 1) // largest power of two that fits
	if g.perBlock < 2 || g.perBlock*g.slotSize > p.HashBlockSize {
		return nil, fmt.Errorf("BUG: verity: %d digests of %d bytes in a hash block of %d", g.perBlock, g.slotSize, hbs)
	}
	// Levels from the bottom: each has ceil(previous / perBlock) blocks,
	// until one block remains. One data block needs no tree.
	for n := g.dataBlocks; n > 1; {
		n = (n + int64(g.perBlock) - 1) / int64(g.perBlock)
		g.levelCount = append(g.levelCount, n)
	}
	// On disk: the superblock, then the levels from the top down.
	g.treeStart = (SuperblockSize + hbs - 1) / hbs * hbs
	g.levelStart = make([]int64, len(g.levelCount))
	pos := g.treeStart
	for i := len(g.levelCount) - 1; i >= 0; i-- {
		g.levelStart[i] = pos
		pos += g.levelCount[i] * hbs
	}
	g.size = pos
	return g, nil
}

// HashSize returns the bytes of the hash device for dataSize bytes of data,
// to plan the partition before writing it. It fails as Format would on the
// same size and parameters.
func HashSize(dataSize int64, p Params) (int64, error) {
	g, err := plan(dataSize, p)
	if err != nil {
		return 0, err
	}
	return g.size, nil
}

// Result is what Format made.
type Result struct {
	RootHash []byte // the digest the kernel checks (roothash=)
	Size     int64  // bytes written to the hash device, HashSize's answer
}

// Format writes to dst the hash device of the dataSize bytes of data (a
// multiple of the data block size): the superblock at offset 0, zeros to
// the first hash block, then the tree; every byte of [0, Size) is written,
// so dst need not be zeroed. The bytes are those `veritysetup format
// --salt=HEX --uuid=UUID` writes with the same parameters.
func Format(dst io.WriterAt, data io.ReaderAt, dataSize int64, p Params) (Result, error) {
	g, err := plan(dataSize, p)
	if err != nil {
		return Result{}, err
	}
	head := make([]byte, g.treeStart)
	copy(head, g.superblock())
	if _, err := dst.WriteAt(head, 0); err != nil {
		return Result{}, fmt.Errorf("verity: writing the superblock: %w", err)
	}
	root, err := g.tree(data, func(off int64, b []byte) error {
		if _, err := dst.WriteAt(b, off); err != nil {
			return fmt.Errorf("verity: writing the hash block at offset %d: %w", off, err)
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	return Result{RootHash: root, Size: g.size}, nil
}

// superblock encodes the header.
func (g *geometry) superblock() []byte {
	sb := superblock{
		Signature:     signature,
		Version:       1,
		HashType:      1,
		UUID:          g.p.UUID,
		DataBlockSize: uint32(g.p.DataBlockSize),
		HashBlockSize: uint32(g.p.HashBlockSize),
		DataBlocks:    uint64(g.dataBlocks),
		SaltSize:      uint16(len(g.p.Salt)),
	}
	copy(sb.Algorithm[:], g.p.Algorithm)
	copy(sb.Salt[:], g.p.Salt)
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &sb); err != nil || b.Len() != SuperblockSize {
		panic(fmt.Sprintf("BUG: verity superblock of %d bytes: %v", b.Len(), err))
	}
	return b.Bytes()
}

// ReadSuperblock decodes and checks the superblock at the start of a hash
// device: the parameters it records and the number of data blocks its tree
// covers. Only version 1, hash type 1 and the algorithms Format writes are
// accepted; errors name the field.
func ReadSuperblock(hashdev io.ReaderAt) (Params, int64, error) {
	buf := make([]byte, SuperblockSize)
	if err := readFull(hashdev, buf, 0); err != nil {
		return Params{}, 0, fmt.Errorf("verity: reading the superblock: %w", err)
	}
	var sb superblock
	if err := binary.Read(bytes.NewReader(buf), binary.LittleEndian, &sb); err != nil {
		return Params{}, 0, fmt.Errorf("BUG: verity: decoding the superblock: %w", err)
	}
	if sb.Signature != signature {
		return Params{}, 0, fmt.Errorf("verity: superblock signature %q is not %q", sb.Signature[:], signature[:])
	}
	if sb.Version != 1 {
		return Params{}, 0, fmt.Errorf("verity: superblock version %d is not 1", sb.Version)
	}
	if sb.HashType != 1 {
		return Params{}, 0, fmt.Errorf("verity: superblock hash type %d is not 1", sb.HashType)
	}
	name, _, terminated := strings.Cut(string(sb.Algorithm[:]), "\x00")
	if !terminated {
		return Params{}, 0, fmt.Errorf("verity: superblock algorithm name is not NUL-terminated")
	}
	if sb.SaltSize > MaxSaltSize {
		return Params{}, 0, fmt.Errorf("verity: superblock salt size %d is larger than %d", sb.SaltSize, MaxSaltSize)
	}
	p := Params{
		DataBlockSize: int(min(sb.DataBlockSize, 1<<30)),
		HashBlockSize: int(min(sb.HashBlockSize, 1<<30)),
		Salt:          append([]byte{}, sb.Salt[:sb.SaltSize]...),
		UUID:          sb.UUID,
		Algorithm:     name,
	}
	if _, err := p.check(); err != nil {
		return Params{}, 0, fmt.Errorf("superblock: %w", err)
	}
	if sb.DataBlocks == 0 || sb.DataBlocks > uint64(1<<63-1)/uint64(p.DataBlockSize) {
		return Params{}, 0, fmt.Errorf("verity: superblock data blocks %d is out of range", sb.DataBlocks)
	}
	return p, int64(sb.DataBlocks), nil
}

// Verify checks data against the hash device and the expected root hash,
// as `veritysetup verify` does: it reads the parameters from the
// superblock, requires its data block count to match dataSize, recomputes
// the tree and compares every hash block and the root. Mismatches wrap
// ErrCorrupt and name the offset. Bytes between the superblock and the
// first hash block and after the tree are not checked (neither the kernel
// nor veritysetup reads them).
func Verify(data io.ReaderAt, dataSize int64, hashdev io.ReaderAt, root []byte) error {
	p, blocks, err := ReadSuperblock(hashdev)
	if err != nil {
		return err
	}
	if dataSize%int64(p.DataBlockSize) != 0 || dataSize/int64(p.DataBlockSize) != blocks {
		return fmt.Errorf("verity: superblock data blocks %d (of %d bytes) does not cover the data's %d bytes",
			blocks, p.DataBlockSize, dataSize)
	}
	g, err := plan(dataSize, p)
	if err != nil {
		return err
	}
	if len(root) != g.digestSize {
		return fmt.Errorf("verity: root hash of %d bytes, %s digests have %d", len(root), p.Algorithm, g.digestSize)
	}
	have := make([]byte, p.HashBlockSize)
	got, err := g.tree(data, func(off int64, b []byte) error {
		if err := readFull(hashdev, have, off); err != nil {
			return fmt.Errorf("verity: reading the hash block at offset %d: %w", off, err)
		}
		if !bytes.Equal(have, b) {
			return fmt.Errorf("%w: hash block at offset %d", ErrCorrupt, off)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !bytes.Equal(got, root) {
		return fmt.Errorf("%w: root hash %x, expected %x", ErrCorrupt, got, root)
	}
	return nil
}

// readFull reads len(b) bytes at off; a short read is io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Info is what a hash device claims about its data: the parameters and
// data block count of its superblock, and the root hash its tree's top
// block gives.
type Info struct {
	Params
	DataBlocks int64
	RootHash   []byte
}

// ReadRoot reads the superblock of hashdev and computes the root hash its
// tree claims: the salted digest of the top hash block (of the only data
// block, when the data is one block and there is no tree). It reads one
// block, not the data: Verify checks the data against it. The kernel
// checks every block it reads against this root, so a root hash that is
// not the one expected refuses the pair at once.
func ReadRoot(data, hashdev io.ReaderAt) (Info, error) {
	p, blocks, err := ReadSuperblock(hashdev)
	if err != nil {
		return Info{}, err
	}
	g, err := plan(blocks*int64(p.DataBlockSize), p)
	if err != nil {
		return Info{}, err
	}
	var top []byte
	var off int64
	src := hashdev
	if n := len(g.levelStart); n == 0 {
		top, src = make([]byte, p.DataBlockSize), data
	} else {
		top, off = make([]byte, p.HashBlockSize), g.levelStart[n-1]
	}
	if err := readFull(src, top, off); err != nil {
		if src == data {
			return Info{}, fmt.Errorf("verity: reading the only data block: %w", err)
		}
		return Info{}, fmt.Errorf("verity: reading the top hash block at offset %d: %w", off, err)
	}
	root := digest(g.newHash(), p.Salt, top, nil)
	return Info{Params: p, DataBlocks: blocks, RootHash: root}, nil
}
