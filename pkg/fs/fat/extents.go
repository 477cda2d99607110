package fat

import (
	"fmt"
	"io"
	"strings"
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
// It reads a volume someone else wrote (a judge of what boot loaders
// record; kiln's own writer reports where it put a file, WriteLocate).
// Directories are decoded as ReadTree decodes them (parseEntries, the one
// long-name decoder), and the volume is read as hostile as ReadTree reads
// it: cluster chains that leave the volume, loop, end before the file does
// or run past it, and directories that loop, are errors.
func FileExtents(r io.ReaderAt, size int64, path string) ([]Extent, int64, error) {
	in, err := Probe(r, size)
	if err != nil {
		return nil, 0, err
	}
	tr := newTreeReader(r, in, ReadOptions{MaxEntries: DefaultMaxEntries, MaxDepth: DefaultMaxDepth})
	var names []string
	for _, el := range strings.Split(path, "/") {
		if el != "" && el != "." {
			names = append(names, el)
		}
	}
	if len(names) == 0 {
		return nil, 0, fmt.Errorf("fat: %q names the root directory, not a file", path)
	}
	if len(names) > DefaultMaxDepth {
		return nil, 0, fmt.Errorf("fat: %q is deeper than %d directories", path, DefaultMaxDepth)
	}
	dir := tr.rootRef()
	for i, name := range names {
		ent, err := tr.find(dir, name)
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
			exts, err := tr.fileExtents(ent)
			if err != nil {
				return nil, 0, fmt.Errorf("fat: %s: %w", path, err)
			}
			return exts, int64(ent.size), nil
		case ent.cluster == 0:
			return nil, 0, fmt.Errorf("fat: %s: %s: directory entry without a first cluster", path, strings.Join(names[:i+1], "/"))
		}
		dir = dirRef{cluster: ent.cluster}
	}
	panic("BUG: fat: FileExtents fell out of its loop")
}

// find looks up name in directory d, by its long name and by its short
// name, without regard to case.
func (tr *treeReader) find(d dirRef, name string) (readEntry, error) {
	b, err := tr.dirData(d)
	if err != nil {
		return readEntry{}, err
	}
	ents, err := parseEntries(b, tr.v.in.FATType)
	if err != nil {
		return readEntry{}, err
	}
	var matched *readEntry
	for i := range ents {
		e := &ents[i]
		ok := strings.EqualFold(e.name, name)
		if !ok {
			short, err := shortNameString(e.short, e.nt)
			ok = err == nil && strings.EqualFold(short, name)
		}
		if !ok {
			continue
		}
		if matched != nil {
			return readEntry{}, fmt.Errorf("%q is in its directory twice", name)
		}
		matched = e
	}
	if matched == nil {
		return readEntry{}, fmt.Errorf("%q not found", name)
	}
	return *matched, nil
}

// fileExtents maps the data of the file of entry e to sectors.
func (tr *treeReader) fileExtents(e readEntry) ([]Extent, error) {
	runs, err := tr.fileRuns(e)
	if err != nil {
		return nil, err
	}
	in := tr.v.in
	bps := int64(in.SectorSize)
	left := (int64(e.size) + bps - 1) / bps
	var out []Extent
	for _, r := range runs {
		n := min(r.n/bps, left)
		out = append(out, Extent{Sector: uint64(r.off / bps), Count: uint64(n)})
		if left -= n; left == 0 {
			break
		}
	}
	return out, nil
}
