package fat

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Extent is a run of consecutive sectors of a file's data.
type Extent struct {
	Sector uint64 // first sector, counted from the start of the file system (its boot sector is 0)
	Count  uint64 // sectors in the run
}

// FileExtents finds the file at path (slash-separated, from the root;
// names compare without regard to case, by long or short name, as FAT
// compares them) in the FAT file system at the start of r, whose size is
// size bytes, and returns the sectors that hold its data, in file order,
// consecutive sectors merged into one extent, and its size in bytes. The
// extents cover exactly the ceil(size/SectorSize) sectors the data needs
// (Info.SectorSize: 512 for every volume kiln writes), however long the
// last cluster is; an empty file has none.
//
// It is for boot loaders that record where a file lies, such as syslinux's
// ldlinux.sys. The volume is read as hostile: cluster chains that leave the
// volume, loop or end before the file does, and directories that are not
// what their entries say, are errors.
func FileExtents(r io.ReaderAt, size int64, path string) ([]Extent, int64, error) {
	in, err := Probe(r, size)
	if err != nil {
		return nil, 0, err
	}
	v := newVolume(r, in)
	var names []string
	for _, el := range strings.Split(path, "/") {
		if el != "" && el != "." {
			names = append(names, el)
		}
	}
	if len(names) == 0 {
		return nil, 0, fmt.Errorf("fat: %q names the root directory, not a file", path)
	}
	dir := dirRef{root: true}
	for i, name := range names {
		ent, err := v.find(dir, name)
		if err != nil {
			return nil, 0, fmt.Errorf("fat: %s: %w", path, err)
		}
		last := i == len(names)-1
		switch {
		case ent.attr&attrDir != 0 && last:
			return nil, 0, fmt.Errorf("fat: %s is a directory", path)
		case ent.attr&attrDir == 0 && !last:
			return nil, 0, fmt.Errorf("fat: %s: %s is not a directory", path, strings.Join(names[:i+1], "/"))
		case last:
			exts, err := v.fileExtents(ent.cluster, int64(ent.size))
			if err != nil {
				return nil, 0, fmt.Errorf("fat: %s: %w", path, err)
			}
			return exts, int64(ent.size), nil
		}
		if ent.cluster == 0 { // ".." to the root on FAT12/16 and FAT32
			dir = dirRef{root: true}
		} else {
			dir = dirRef{cluster: ent.cluster}
		}
	}
	panic("BUG: fat: FileExtents fell out of its loop")
}

// volume reads files and directories of a probed FAT volume.
type volume struct {
	fatReader
	dataSector uint64 // first sector of cluster 2
	rootSector uint64 // FAT12/16: first sector of the fixed root directory
	spc        uint64 // sectors per cluster
	eoc        uint32 // the least end-of-chain value
}

func newVolume(r io.ReaderAt, in *Info) *volume {
	bps := uint64(in.SectorSize)
	root := uint64(in.ReservedSectors) + uint64(in.NumFATs)*uint64(in.FATSectors)
	rootSecs := (uint64(in.RootEntries)*dirEntrySize + bps - 1) / bps
	v := &volume{
		fatReader:  fatReader{r: r, in: in, off: int64(in.ReservedSectors) * int64(bps)},
		rootSector: root,
		dataSector: root + rootSecs,
		spc:        uint64(in.ClusterSize) / bps,
	}
	switch in.FATType {
	case 12:
		v.eoc = 0xFF8
	case 16:
		v.eoc = 0xFFF8
	default:
		v.eoc = 0x0FFFFFF8
	}
	return v
}

// chain returns the clusters of the chain that starts at c, at most max
// of them (all if max is 0), checking each against the volume.
func (v *volume) chain(c uint32, max int) ([]uint32, error) {
	var out []uint32
	limit := int(v.in.TotalClusters) // a longer chain loops
	for {
		if c < 2 || c >= v.in.TotalClusters+2 {
			return nil, fmt.Errorf("cluster chain reaches cluster %d, outside the volume's 2..%d", c, v.in.TotalClusters+1)
		}
		out = append(out, c)
		if len(out) == max {
			return out, nil
		}
		if len(out) > limit {
			return nil, errors.New("cluster chain loops")
		}
		next, err := v.entry(c)
		if err != nil {
			return nil, err
		}
		if next >= v.eoc {
			return out, nil
		}
		c = next
	}
}

// fileExtents maps a file's data, starting at cluster first, to sectors.
func (v *volume) fileExtents(first uint32, size int64) ([]Extent, error) {
	if size == 0 {
		return nil, nil
	}
	cb := int64(v.in.ClusterSize)
	need := int((size + cb - 1) / cb)
	clus, err := v.chain(first, need)
	if err != nil {
		return nil, err
	}
	if len(clus) < need {
		return nil, fmt.Errorf("the cluster chain has %d clusters, the file's %d bytes need %d", len(clus), size, need)
	}
	left := uint64((size + int64(v.in.SectorSize) - 1) / int64(v.in.SectorSize))
	var out []Extent
	for _, c := range clus {
		n := min(v.spc, left)
		s := v.dataSector + uint64(c-2)*v.spc
		if k := len(out); k > 0 && out[k-1].Sector+out[k-1].Count == s {
			out[k-1].Count += n
		} else {
			out = append(out, Extent{Sector: s, Count: n})
		}
		left -= n
	}
	return out, nil
}

// dirRef is a directory: the root, or the one starting at a cluster.
type dirRef struct {
	root    bool
	cluster uint32
}

// foundEntry is what find returns of a directory entry.
type foundEntry struct {
	attr    uint8
	cluster uint32
	size    uint32
}

// dirBytes reads a whole directory.
func (v *volume) dirBytes(d dirRef) ([]byte, error) {
	const maxBytes = maxDirEntries * dirEntrySize
	if d.root && v.in.FATType != 32 {
		b := make([]byte, int64(v.in.RootEntries)*dirEntrySize)
		if _, err := v.r.ReadAt(b, int64(v.rootSector)*int64(v.in.SectorSize)); err != nil {
			return nil, fmt.Errorf("reading the root directory: %w", err)
		}
		return b, nil
	}
	c := d.cluster
	if d.root {
		c = v.in.RootCluster
	}
	clus, err := v.chain(c, maxBytes/v.in.ClusterSize+1)
	if err != nil {
		return nil, fmt.Errorf("directory at cluster %d: %w", c, err)
	}
	if len(clus)*v.in.ClusterSize > maxBytes {
		return nil, fmt.Errorf("directory at cluster %d is longer than the %d entries FAT allows", c, maxDirEntries)
	}
	b := make([]byte, len(clus)*v.in.ClusterSize)
	for i, k := range clus {
		off := int64(v.dataSector+uint64(k-2)*v.spc) * int64(v.in.SectorSize)
		if _, err := v.r.ReadAt(b[i*v.in.ClusterSize:(i+1)*v.in.ClusterSize], off); err != nil {
			return nil, fmt.Errorf("reading the directory at cluster %d: %w", c, err)
		}
	}
	return b, nil
}

// find looks up name in directory d, by its long name if it has a valid
// one, and by its short name.
func (v *volume) find(d dirRef, name string) (foundEntry, error) {
	b, err := v.dirBytes(d)
	if err != nil {
		return foundEntry{}, err
	}
	var (
		long    []uint16 // the long name gathered so far, in order
		want    int      // the ordinal the next LFN entry must have; 0: none pending
		sum     uint8    // the checksum the LFN entries carry
		longOK  bool     // long holds a complete name
		matched *foundEntry
	)
	for e := 0; e+dirEntrySize <= len(b); e += dirEntrySize {
		ent := b[e : e+dirEntrySize]
		if ent[0] == 0 {
			break
		}
		if ent[0] == 0xE5 {
			want, longOK = 0, false
			continue
		}
		if ent[11]&0x3F == attrLFN {
			ord := int(ent[0] &^ lfnLast)
			switch {
			case ent[0]&lfnLast != 0 && ord >= 1 && ord <= 20:
				long, want, sum = make([]uint16, ord*lfnChars), ord, ent[13]
			case want == 0 || ord != want || ent[13] != sum:
				want = 0 // a broken sequence: ignore it
				continue
			}
			piece := long[(ord-1)*lfnChars : ord*lfnChars]
			for i := 0; i < 5; i++ {
				piece[i] = uint16(ent[1+2*i]) | uint16(ent[2+2*i])<<8
			}
			for i := 0; i < 6; i++ {
				piece[5+i] = uint16(ent[14+2*i]) | uint16(ent[15+2*i])<<8
			}
			for i := 0; i < 2; i++ {
				piece[11+i] = uint16(ent[28+2*i]) | uint16(ent[29+2*i])<<8
			}
			want--
			longOK = want == 0
			if want == 0 {
				want = -1 // complete; the short entry must follow
			}
			continue
		}
		var sn shortName
		copy(sn[:], ent[:11])
		hasLong := longOK && want == -1 && sn.checksum() == sum
		want, longOK = 0, false
		if ent[11]&attrVolumeID != 0 {
			continue
		}
		if sn[0] == 0x05 {
			sn[0] = 0xE5
		}
		ok := strings.EqualFold(sn.String(), name)
		if hasLong {
			n := len(long)
			for i, u := range long {
				if u == 0 {
					n = i
					break
				}
			}
			ok = ok || strings.EqualFold(string(utf16.Decode(long[:n])), name)
		}
		if !ok {
			continue
		}
		if matched != nil {
			return foundEntry{}, fmt.Errorf("%q is in its directory twice", name)
		}
		matched = &foundEntry{
			attr:    ent[11],
			cluster: uint32(ent[26]) | uint32(ent[27])<<8 | uint32(ent[20])<<16 | uint32(ent[21])<<24,
			size:    uint32(ent[28]) | uint32(ent[29])<<8 | uint32(ent[30])<<16 | uint32(ent[31])<<24,
		}
		if v.in.FATType != 32 {
			matched.cluster &= 0xFFFF // the high word is not a cluster field on FAT12/16
		}
	}
	if matched == nil {
		return foundEntry{}, fmt.Errorf("%q not found", name)
	}
	if matched.attr&attrDir == 0 && matched.size > 0 && matched.cluster == 0 {
		return foundEntry{}, fmt.Errorf("%q has %d bytes but no first cluster", name, matched.size)
	}
	return *matched, nil
}
