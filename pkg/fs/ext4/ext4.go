package ext4

import (
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Options are the identity and tuning of a filesystem.
type Options struct {
	Label string     // volume label, at most 16 bytes
	UUID  repro.UUID // filesystem UUID; required
	// HashSeed is s_hash_seed for htree directories; zero derives it from
	// UUID (UUIDv5 of "ext4/hash-seed" in UUID's namespace).
	HashSeed repro.UUID
	// JournalUUID is the jbd2 superblock's s_uuid; zero means UUID (as
	// mke2fs does).
	JournalUUID repro.UUID
	// Epoch is the time of the superblock's mkfs/write/check times and of
	// a created lost+found.
	Epoch int64
	// ReservedPercent is the share of blocks reserved for root, 0..50.
	// The default, 0, differs from mke2fs's 5: an image is sized to its
	// content (MinSize) and usually grown on first boot, and reserved
	// blocks in a tight image only make it look full to non-root writers.
	ReservedPercent int
	// InodeRatio is bytes per inode (1024..64 MiB); 0 means 16384 like
	// mke2fs. There are always at least 1/8 (and 16) more inodes than the
	// tree uses.
	InodeRatio int
}

func (o *Options) check() error {
	if o.UUID.IsZero() {
		return errors.New("ext4: options: UUID is required")
	}
	if len(o.Label) > 16 {
		return fmt.Errorf("ext4: options: label %q is longer than 16 bytes", o.Label)
	}
	if o.ReservedPercent < 0 || o.ReservedPercent > 50 {
		return fmt.Errorf("ext4: options: reserved percent %d is not in 0..50", o.ReservedPercent)
	}
	if o.InodeRatio != 0 && (o.InodeRatio < 1024 || o.InodeRatio > 64<<20) {
		return fmt.Errorf("ext4: options: inode ratio %d is not in 1024..%d", o.InodeRatio, 64<<20)
	}
	return nil
}

func (o *Options) hashSeed() [4]uint32 {
	s := o.seedUUID()
	return [4]uint32{le.Uint32(s[0:]), le.Uint32(s[4:]), le.Uint32(s[8:]), le.Uint32(s[12:])}
}

func (o *Options) seedUUID() repro.UUID {
	if !o.HashSeed.IsZero() {
		return o.HashSeed
	}
	return repro.NewV5(o.UUID, "ext4/hash-seed")
}

func (o *Options) journalUUID() repro.UUID {
	if o.JournalUUID.IsZero() {
		return o.UUID
	}
	return o.JournalUUID
}

// Write formats the window [0,size) of w as ext4 holding tree t. w reads
// as zeros beforehand (a fresh sparse file); Write only writes blocks
// that are not all zero. size is a multiple of 4096.
func Write(w io.WriterAt, size int64, t *tree.Tree, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	if size <= 0 || size%blockSize != 0 {
		return fmt.Errorf("ext4: size %d is not a positive multiple of %d", size, blockSize)
	}
	a, err := analyze(t)
	if err != nil {
		return err
	}
	g, err := newGeometry(uint64(size/blockSize), a.wantInodes(), &o)
	if err != nil {
		return fmt.Errorf("ext4: %w", err)
	}
	fw := newFsWriter(w, g, a, &o)
	return fw.run(t)
}

// MinSize returns a size (bytes, multiple of 1 MiB) that is enough to
// hold t with its metadata and journal. It counts every byte of file
// content as allocated (holes are only found while writing), so a tree
// with sparse files fits in less.
func MinSize(t *tree.Tree, o Options) (int64, error) {
	if err := o.check(); err != nil {
		return 0, err
	}
	a, err := analyze(t)
	if err != nil {
		return 0, err
	}
	data, err := a.dataBlocks(o.hashSeed())
	if err != nil {
		return 0, err
	}
	const mib = (1 << 20) / blockSize
	n := data + data/32 + 4096
	for i := 0; i < 200; i++ {
		n = (n + mib - 1) / mib * mib
		g, err := newGeometry(n, a.wantInodes(), &o)
		if err != nil {
			var ge *geomError
			if errors.As(err, &ge) && ge.tooSmall {
				n += n/4 + mib
				continue
			}
			return 0, fmt.Errorf("ext4: %w", err)
		}
		free := g.blocks - g.metaBlocks
		if free >= data {
			return int64(n) * blockSize, nil
		}
		n += data - free
	}
	return 0, fmt.Errorf("BUG: ext4: no size found for %d data blocks", data)
}
