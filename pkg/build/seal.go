package build

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/verity"
)

// A sealed partition (verity: true) is written before the partition plan,
// because its root hash is needed before then: it goes on the kernel
// command line of every loader, whose files fill the ESP (which an auto
// size measures), and it names the data and hash partitions (their GPT
// GUIDs are its first and last 128 bits, as the Discoverable Partitions
// Specification has it). So the filesystem is written to a temporary file
// of the partition's size, the hash tree computed over it into another,
// and both are copied into the image in the write phase.

// seal is one sealed partition on its way to the disk.
type seal struct {
	data, hash int      // indices of the data and hash partitions in parts
	dataFile   *os.File // the filesystem, dataSize bytes (sparse)
	hashFile   *os.File // the hash device, hashBytes bytes
	dataSize   int64
	hashBytes  int64
	params     verity.Params
	rootHash   []byte
	report     *fs.Report
}

// VerityResult is a sealed partition of a finished build: what the kernel
// command line's roothash= and the partition GUIDs are made of.
type VerityResult struct {
	Partition     string `json:"partition"`      // the data partition
	HashPartition string `json:"hash_partition"` // its hash partition
	RootHash      string `json:"root_hash"`      // hex, as roothash= takes it
	Algorithm     string `json:"algorithm"`
	Salt          string `json:"salt"` // hex
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    int64  `json:"data_blocks"`
	HashBytes     int64  `json:"hash_bytes"` // of the hash device (the partition is rounded up to 1 MiB)
	DataUUID      string `json:"data_partition_uuid"`
	HashUUID      string `json:"hash_partition_uuid"`
}

// sealPartitions writes every sealed partition's filesystem and hash tree
// to temporary files in tempDir and fixes both partitions' sizes. The
// caller closes the seals (removing the files) after the image is written.
func sealPartitions(ctx context.Context, s *spec.Spec, parts []*part, seed, tempDir string) ([]*seal, error) {
	var seals []*seal
	fail := func(err error) ([]*seal, error) {
		closeSeals(seals)
		return nil, err
	}
	for i, p := range parts {
		sp := p.spec
		if !sp.Verity {
			continue
		}
		if i+1 >= len(parts) || parts[i+1].spec.HashFor != sp.Name {
			return fail(fmt.Errorf("BUG: partition %s: verity without its hash partition after it", sp.Name))
		}
		if p.fs == nil || p.tree == nil {
			return fail(fmt.Errorf("BUG: sealed partition %s has no filesystem", sp.Name))
		}
		sl := &seal{data: i, hash: i + 1}
		seals = append(seals, sl)
		size := p.size
		if sp.Auto {
			// No free: space: nothing ever writes to a read-only
			// filesystem, and the hash tree would cover it for nothing.
			n, err := p.fs.MinSize(p.tree)
			if err != nil {
				return fail(fmt.Errorf("partition %s: sizing: %w", sp.Name, err))
			}
			size = roundUp(n, mib)
		}
		sl.dataSize = size
		var err error
		if sl.dataFile, err = os.CreateTemp(tempDir, "kiln-sealed-*"); err != nil {
			return fail(fmt.Errorf("partition %s: %w", sp.Name, err))
		}
		os.Remove(sl.dataFile.Name()) // unlinked: gone with the process, whatever happens
		if err := sl.dataFile.Truncate(size); err != nil {
			return fail(fmt.Errorf("partition %s: %w", sp.Name, err))
		}
		rep, err := p.fs.Write(ctxWriterAt{ctx, sl.dataFile, nil}, fs.Region{Size: size}, p.tree)
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			return fail(fmt.Errorf("partition %s (%s): %w", sp.Name, sp.Filesystem, err))
		}
		sl.report = rep

		// The salt and the hash device's UUID come from the seed: the
		// spec and the layers' content, so the same inputs give the same
		// root hash and different ones never share a salt.
		salt := repro.Derive(seed, "partition/"+sp.Name+"/verity-salt")
		salt2 := repro.Derive(seed, "partition/"+sp.Name+"/verity-salt-2")
		sl.params = verity.Params{Salt: append(salt[:], salt2[:]...), UUID: repro.Derive(seed, "partition/"+sp.Name+"/verity-uuid")}
		if sl.hashBytes, err = verity.HashSize(size, sl.params); err != nil {
			return fail(fmt.Errorf("partition %s: verity: %w", sp.Name, err))
		}
		if sl.hashFile, err = os.CreateTemp(tempDir, "kiln-verity-*"); err != nil {
			return fail(fmt.Errorf("partition %s: %w", sp.Name, err))
		}
		os.Remove(sl.hashFile.Name())
		res, err := verity.Format(ctxWriterAt{ctx, sl.hashFile, nil}, sl.dataFile, size, sl.params)
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			return fail(fmt.Errorf("partition %s: verity: %w", sp.Name, err))
		}
		sl.rootHash = res.RootHash
		if len(sl.rootHash) != 32 {
			return fail(fmt.Errorf("BUG: partition %s: a root hash of %d bytes", sp.Name, len(sl.rootHash)))
		}
		p.size = size
		parts[i+1].size = roundUp(sl.hashBytes, mib)
		var dg, hg repro.UUID
		copy(dg[:], sl.rootHash[:16])
		copy(hg[:], sl.rootHash[16:])
		p.guid, parts[i+1].guid = &dg, &hg
	}
	return seals, nil
}

// closeSeals removes the temporary files.
func closeSeals(seals []*seal) {
	for _, sl := range seals {
		for _, f := range []*os.File{sl.dataFile, sl.hashFile} {
			if f != nil {
				f.Close()
			}
		}
	}
}

// rootHash is the hex root hash of the sealed partition mounted at /, or
// "" when there is none.
func rootHashOf(seals []*seal, parts []*part) string {
	for _, sl := range seals {
		if parts[sl.data].spec.Mount == "/" {
			return hex.EncodeToString(sl.rootHash)
		}
	}
	return ""
}

// write copies a seal's files into their partitions of the image.
func (sl *seal) write(ctx context.Context, w io.WriterAt, dataStart, hashStart int64) error {
	if err := copyData(ctx, io.NewOffsetWriter(w, dataStart), sl.dataFile, sl.dataSize); err != nil {
		return err
	}
	return copyData(ctx, io.NewOffsetWriter(w, hashStart), sl.hashFile, sl.hashBytes)
}

// copyData copies the data extents of f's first size bytes to w, leaving
// holes and all-zero blocks unwritten (the image reads as zeros there).
func copyData(ctx context.Context, w io.WriterAt, f *os.File, size int64) error {
	buf := make([]byte, mib)
	for off := int64(0); off < size; {
		start, end, ok := imgfmt.NextData(f, off, size)
		if !ok {
			return nil
		}
		for pos := start; pos < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int(min(int64(len(buf)), end-pos))
			if _, err := f.ReadAt(buf[:n], pos); err != nil {
				return err
			}
			if !allZero(buf[:n]) {
				if _, err := w.WriteAt(buf[:n], pos); err != nil {
					return err
				}
			}
			pos += int64(n)
		}
		off = end
	}
	return nil
}

var zeroBlock = make([]byte, mib)

func allZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// result describes the seal for the build's result.
func (sl *seal) result(parts []*part) VerityResult {
	p := sl.params
	return VerityResult{
		Partition:     parts[sl.data].spec.Name,
		HashPartition: parts[sl.hash].spec.Name,
		RootHash:      hex.EncodeToString(sl.rootHash),
		Algorithm:     "sha256",
		Salt:          hex.EncodeToString(p.Salt),
		DataBlockSize: 4096,
		HashBlockSize: 4096,
		DataBlocks:    sl.dataSize / 4096,
		HashBytes:     sl.hashBytes,
		DataUUID:      parts[sl.data].guid.String(),
		HashUUID:      parts[sl.hash].guid.String(),
	}
}
