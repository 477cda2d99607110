package main

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/kiln-build/kiln/pkg/verity"
)

// verityHashes are the digests dm-verity superblocks may name, by the
// kernel's crypto API name (pkg/verity writes the same three).
var verityHashes = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// verityGeometry is what the hash partition's superblock says, checked
// against the data partition and the root hash.
type verityGeometry struct {
	Params     verity.Params
	DataBlocks int64
	HashStart  int64 // the first hash block (the top of the tree), in hash blocks
}

// checkVerity reads the hash partition's superblock, checks that the data
// partition holds the blocks it covers and the hash partition the whole
// tree, and that the digest of the tree's top block (of the only data
// block when there is no tree) salted as the superblock says is
// rootHash: the kernel checks every block below against it as it reads
// them, so a partition pair that does not match the command line is
// refused here, before any device is created. Errors say which partition
// and field.
func checkVerity(data io.ReaderAt, dataSize int64, hashdev io.ReaderAt, hashSize int64, rootHash string) (*verityGeometry, error) {
	p, blocks, err := verity.ReadSuperblock(hashdev)
	if err != nil {
		return nil, fmt.Errorf("hash partition: %s", strings.TrimPrefix(err.Error(), "verity: "))
	}
	newHash := verityHashes[p.Algorithm]
	if newHash == nil { // ReadSuperblock accepts only what it can compute
		return nil, fmt.Errorf("BUG: hash partition: superblock algorithm %q unknown to kiln-init", p.Algorithm)
	}
	want, err := hex.DecodeString(rootHash)
	if err != nil {
		return nil, fmt.Errorf("BUG: roothash=%s is not hex: %v", rootHash, err)
	}
	if n := newHash().Size(); len(want) != n {
		return nil, fmt.Errorf("roothash= has %d hex digits, but the hash partition's superblock says %s, whose digests have %d", len(rootHash), p.Algorithm, 2*n)
	}
	dbs, hbs := int64(p.DataBlockSize), int64(p.HashBlockSize)
	// ReadSuperblock bounds blocks so that blocks*dbs does not overflow.
	if blocks > dataSize/dbs {
		return nil, fmt.Errorf("data partition of %d bytes is smaller than the %d blocks of %d bytes the hash partition's superblock covers (%d bytes)", dataSize, blocks, dbs, blocks*dbs)
	}
	treeSize, err := verity.HashSize(blocks*dbs, p)
	if err != nil {
		return nil, fmt.Errorf("hash partition: superblock: %s", strings.TrimPrefix(err.Error(), "verity: "))
	}
	if treeSize > hashSize {
		return nil, fmt.Errorf("hash partition of %d bytes is smaller than the superblock and hash tree of %d data blocks (%d bytes)", hashSize, blocks, treeSize)
	}
	g := &verityGeometry{Params: p, DataBlocks: blocks, HashStart: (verity.SuperblockSize + hbs - 1) / hbs}
	var top []byte
	if blocks == 1 {
		top = make([]byte, dbs)
		if err := readAtFull(data, top, 0); err != nil {
			return nil, fmt.Errorf("data partition: reading its only block: %v", err)
		}
	} else {
		top = make([]byte, hbs)
		if err := readAtFull(hashdev, top, g.HashStart*hbs); err != nil {
			return nil, fmt.Errorf("hash partition: reading the top hash block at offset %d: %v", g.HashStart*hbs, err)
		}
	}
	h := newHash()
	h.Write(p.Salt)
	h.Write(top)
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return nil, fmt.Errorf("root hash mismatch: the kernel command line says roothash=%s, but the hash partition's tree has root hash %x: this disk is not the one the command line was built for, or it was modified; refusing to boot it", rootHash, got)
	}
	return g, nil
}

// table is the dm-verity target of the device: the data partition's
// sectors the superblock covers, mapped through the tree. The devices are
// "major:minor". No optional arguments: a block that does not match its
// hash reads as EIO and the kernel logs "device-mapper: verity: ...: data
// block N is corrupted".
func (g *verityGeometry) table(dataDev, hashDev, rootHash string) dmTarget {
	salt := "-"
	if len(g.Params.Salt) > 0 {
		salt = hex.EncodeToString(g.Params.Salt)
	}
	p := g.Params
	return dmTarget{
		Start:  0,
		Length: uint64(g.DataBlocks) * uint64(p.DataBlockSize) / 512,
		Type:   "verity",
		Params: fmt.Sprintf("1 %s %s %d %d %d %d %s %s %s",
			dataDev, hashDev, p.DataBlockSize, p.HashBlockSize, g.DataBlocks, g.HashStart, p.Algorithm, rootHash, salt),
	}
}

// dmUUID is the device-mapper UUID veritysetup gives a verity device,
// "CRYPT-VERITY-<hash device UUID, 32 hex digits>-<name>", so that
// `veritysetup status` and udev's rules in the booted system know it.
func (g *verityGeometry) dmUUID(name string) string {
	return fmt.Sprintf("CRYPT-VERITY-%x-%s", g.Params.UUID[:], name)
}

// readAtFull reads len(b) bytes at off; a short read is an error.
func readAtFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
