package fat

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Options are the parameters of a FAT volume.
type Options struct {
	// Label is the volume label: at most 11 bytes of ASCII, stored upper
	// case; "" means none ("NO NAME" in the boot sector, no label entry).
	Label string
	// VolumeID is the volume serial number.
	VolumeID uint32
	// Epoch (Unix seconds) timestamps the volume label entry.
	Epoch int64
	// HiddenSectors is the BPB's hidden-sector count: the start LBA of the
	// partition, which boot loaders such as syslinux read.
	HiddenSectors uint32
	// FATType is 12, 16 or 32 to force a FAT type, or 0 for FAT32 where
	// the size gives it enough clusters (about 33 MiB and up), else FAT16,
	// else FAT12.
	FATType int
}

// ErrNoSpace is returned (wrapped) when a tree does not fit a volume.
var ErrNoSpace = errors.New("not enough space")

const (
	maxFileSize   = math.MaxUint32 // FAT's file size field is 32 bits
	maxDirEntries = 65536          // entries a FAT directory may have (fatgen103)
	copyBufSize   = 1 << 20
	fatChunk      = 64 << 10 // FAT entries encoded at a time
)

// Write formats [0,size) of w as a FAT file system holding t. size must be
// a multiple of 512. w must read as zeros beforehand (a fresh sparse file):
// Write only writes what is not zero. A tree that does not fit gives an
// error wrapping ErrNoSpace.
func Write(w io.WriterAt, size int64, t *tree.Tree, o Options) error {
	_, _, err := write(w, size, t, o)
	return err
}

// write is Write, returning the plan and layout it wrote, from which
// files' places are known.
func write(w io.WriterAt, size int64, t *tree.Tree, o Options) (*plan, *layout, error) {
	if size <= 0 || size%sectorSize != 0 {
		return nil, nil, fmt.Errorf("fat: size %d is not a positive multiple of %d", size, sectorSize)
	}
	if size/sectorSize > math.MaxUint32 {
		return nil, nil, fmt.Errorf("fat: size %d is larger than FAT allows (2 TiB)", size)
	}
	label, err := checkLabel(o.Label)
	if err != nil {
		return nil, nil, err
	}
	p, err := newPlan(t, label)
	if err != nil {
		return nil, nil, err
	}
	l, err := newLayout(uint32(size/sectorSize), o.FATType, uint32(p.root().slots))
	if err != nil {
		return nil, nil, err
	}
	used, err := p.allocate(l)
	if err != nil {
		return nil, nil, err
	}
	if err := p.write(w, l, &o, used); err != nil {
		return nil, nil, err
	}
	return p, l, nil
}

func (p *plan) write(w io.WriterAt, l *layout, o *Options, used uint32) error {
	boot := bootSector(l, o, p.label)
	if err := writeAt(w, boot, 0); err != nil {
		return err
	}
	if l.fatType == 32 {
		free, next := l.clusters-used, used+2
		if free == 0 {
			next = unknown32
		}
		info := fsInfoSectorBytes(free, next)
		for _, s := range []struct {
			b   []byte
			sec int64
		}{{info, fsInfoSector}, {boot, backupBootSector}, {info, backupBootSector + fsInfoSector}} {
			if err := writeAt(w, s.b, s.sec*sectorSize); err != nil {
				return err
			}
		}
	}
	if err := p.writeFATs(w, l, used); err != nil {
		return err
	}
	buf := make([]byte, copyBufSize)
	for _, n := range p.nodes {
		if n.isDir() {
			off := l.clusterOffset(n.start)
			if n.parent == nil && l.fatType != 32 {
				off = int64(l.rootStart()) * sectorSize
			}
			if err := writeAt(w, p.dirBytes(n, o.Epoch), off); err != nil {
				return err
			}
			continue
		}
		if err := copyContent(w, l.clusterOffset(n.start), n, buf); err != nil {
			return err
		}
	}
	return nil
}

func writeAt(w io.WriterAt, b []byte, off int64) error {
	if _, err := w.WriteAt(b, off); err != nil {
		return fmt.Errorf("fat: writing %d bytes at %d: %w", len(b), off, err)
	}
	return nil
}

// writeFATs encodes the used part of the FAT once, a chunk at a time, and
// writes it to every FAT copy. Each node's clusters form one chain.
func (p *plan) writeFATs(w io.WriterAt, l *layout, used uint32) error {
	var eoc uint32
	first := [2]uint32{}
	switch l.fatType {
	case 12:
		eoc, first = 0xFFF, [2]uint32{0xF00 | media, 0xFFF}
	case 16:
		eoc, first = 0xFFFF, [2]uint32{0xFF00 | media, 0xFFFF}
	case 32:
		// FAT[1]'s top bits say "cleanly unmounted, no errors".
		eoc, first = 0x0FFFFFFF, [2]uint32{0x0FFFFFF0 | media, 0x0FFFFFFF}
	}
	var ends []uint32 // last cluster of every chain, ascending
	for _, n := range p.nodes {
		if n.nclus > 0 {
			ends = append(ends, n.start+n.nclus-1)
		}
	}
	total := used + 2 // entries to write
	bits := uint32(l.fatType)
	chunk := make([]byte, fatChunk*bits/8)
	k := 0
	for lo := uint32(0); lo < total; lo += fatChunk {
		hi := min(total, lo+fatChunk)
		b := chunk[:((hi-lo)*bits+7)/8]
		clear(b)
		for c := lo; c < hi; c++ {
			var v uint32
			switch {
			case c < 2:
				v = first[c]
			case k < len(ends) && c == ends[k]:
				v = eoc
				k++
			default:
				v = c + 1
			}
			putEntry(b, l.fatType, c-lo, v)
		}
		for i := 0; i < numFATs; i++ {
			off := int64(l.fatStart(i))*sectorSize + int64(lo)*int64(bits)/8
			if err := writeAt(w, b, off); err != nil {
				return err
			}
		}
	}
	if k != len(ends) {
		return fmt.Errorf("BUG: fat: %d of %d chains ended in the FAT", k, len(ends))
	}
	return nil
}

// putEntry stores FAT entry i (relative to the start of b, which must
// begin on an even entry for FAT12) with value v.
func putEntry(b []byte, fatType int, i, v uint32) {
	switch fatType {
	case 12:
		o := i * 3 / 2
		if i%2 == 0 {
			b[o] = byte(v)
			b[o+1] = b[o+1]&0xF0 | byte(v>>8)&0x0F
		} else {
			b[o] = b[o]&0x0F | byte(v<<4)
			b[o+1] = byte(v >> 4)
		}
	case 16:
		b[2*i], b[2*i+1] = byte(v), byte(v>>8)
	case 32:
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
}

// dirBytes encodes directory n's entries.
func (p *plan) dirBytes(n *node, epoch int64) []byte {
	b := make([]byte, 0, n.slots*dirEntrySize)
	if n.parent == nil {
		if p.label != noName {
			e := dirEntry{Name: shortName(volLabel(p.label)), Attr: attrVolumeID}
			e.setTimes(epoch, 0)
			e.CrtTimeTenth = 0
			b = appendEntry(b, &e)
		}
	} else {
		dot := dirEntry{Name: shortName(volLabel(".")), Attr: attrDir}
		dot.setTimes(n.inode.Mtime, n.inode.Nsec)
		dot.setCluster(n.start)
		b = appendEntry(b, &dot)
		dotdot := dot
		dotdot.Name = shortName(volLabel(".."))
		dotdot.setCluster(0) // the root, whatever its cluster
		if n.parent.parent != nil {
			dotdot.setCluster(n.parent.start)
		}
		b = appendEntry(b, &dotdot)
	}
	for i := range n.names {
		f, kid := &n.names[i], n.kids[i]
		if f.long != nil {
			b = appendLFN(b, f.long, f.short.checksum())
		}
		e := dirEntry{Name: f.short, NTRes: f.ntCase}
		e.setTimes(kid.inode.Mtime, kid.inode.Nsec)
		e.setCluster(kid.start)
		if kid.isDir() {
			e.Attr = attrDir
		} else {
			e.Attr = attrArchive
			if kid.inode.Mode&0o200 == 0 {
				e.Attr |= attrReadOnly
			}
			e.FileSize = uint32(kid.inode.Size)
		}
		b = appendEntry(b, &e)
	}
	if len(b) != n.slots*dirEntrySize {
		panic(fmt.Sprintf("BUG: fat: %s: encoded %d bytes of entries, planned %d", n.path, len(b), n.slots*dirEntrySize))
	}
	return b
}

// copyContent streams a file's content to its clusters, skipping blocks
// of zeros (w reads as zeros already).
func copyContent(w io.WriterAt, off int64, n *node, buf []byte) (err error) {
	size := n.inode.Size
	if size == 0 {
		return nil
	}
	rc, err := n.inode.Content.Open()
	if err != nil {
		return fmt.Errorf("fat: %s: opening content: %w", n.path, err)
	}
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("fat: %s: closing content: %w", n.path, cerr)
		}
	}()
	for done := int64(0); done < size; {
		b := buf[:min(int64(len(buf)), size-done)]
		if k, err := io.ReadFull(rc, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("fat: %s: content ended after %d of %d bytes", n.path, done+int64(k), size)
			}
			return fmt.Errorf("fat: %s: reading content: %w", n.path, err)
		}
		if !allZero(b) {
			if err := writeAt(w, b, off+done); err != nil {
				return err
			}
		}
		done += int64(len(b))
	}
	var one [1]byte
	switch _, err := io.ReadFull(rc, one[:]); {
	case err == nil:
		return fmt.Errorf("fat: %s: content is longer than its size of %d bytes", n.path, size)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("fat: %s: reading content: %w", n.path, err)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// MinSize returns a volume size, a multiple of 1 MiB, that holds t: as
// FAT32 when o.FATType is 0 or 32 (at least about 33 MiB, the least FAT32
// allows), as FAT16 or FAT12 when o.FATType forces those. Write with the
// same tree and options succeeds at that size.
func MinSize(t *tree.Tree, o Options) (int64, error) {
	label, err := checkLabel(o.Label)
	if err != nil {
		return 0, err
	}
	p, err := newPlan(t, label)
	if err != nil {
		return 0, err
	}
	want := o.FATType
	if want == 0 {
		want = 32
	}
	var limit int64
	switch want {
	case 12:
		limit = 256 << 20
	case 16:
		limit = 4 << 30
	case 32:
		limit = (math.MaxUint32 / 2048) << 20 // sectors fit 32 bits
	default:
		return 0, fmt.Errorf("fat: FAT type %d: want 0 (automatic), 12, 16 or 32", o.FATType)
	}
	const mib = 1 << 20
	need := map[uint32]uint64{} // by sectors per cluster
	size := max(mib, (int64(p.needed(sectorSize, want))*sectorSize)/mib*mib)
	for size <= limit {
		l, err := newLayout(uint32(size/sectorSize), want, uint32(p.root().slots))
		if err != nil {
			size += mib // too small for this FAT type yet
			continue
		}
		n, ok := need[l.secPerClus]
		if !ok {
			n = p.needed(l.clusterBytes(), want)
			need[l.secPerClus] = n
		}
		if n <= uint64(l.clusters) {
			return size, nil
		}
		// Grow by the missing clusters' bytes; the FATs grow too, so
		// this may take a few rounds, but it never overshoots much.
		size += max(mib, int64(n-uint64(l.clusters))*l.clusterBytes()/mib*mib)
	}
	return 0, fmt.Errorf("fat: the tree needs more than FAT%d can hold: %w", want, ErrNoSpace)
}
