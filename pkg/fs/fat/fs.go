package fat

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/tree"
)

// New is the fs.New of FAT ("vfat" in the spec): the label is p.Label,
// else the first 11 bytes of p.Name upper-cased; the volume ID is
// p.ID32("volume-id"). Write sets the BPB's hidden sectors to the
// region's start sector on its disk.
func New(p fs.Params) (fs.Filesystem, error) {
	label := p.Label
	if label == "" {
		label = strings.ToUpper(p.LabelOr(11))
	}
	if p.ID32 == nil {
		return nil, errors.New("BUG: fat: no volume ID source")
	}
	return filesystem{Options{Label: label, VolumeID: p.ID32("volume-id"), Epoch: p.Epoch}}, nil
}

// filesystem is FAT behind fs.Filesystem.
type filesystem struct{ o Options }

func (f filesystem) MinSize(t *tree.Tree) (int64, error) { return MinSize(t, f.o) }

func (f filesystem) Write(w io.WriterAt, r fs.Region, t *tree.Tree) (*fs.Report, error) {
	o := f.o
	o.HiddenSectors = uint32(r.DiskOffset / sectorSize)
	exts, err := WriteLocate(w, r.Size, t, o, r.Locate)
	if err != nil {
		return nil, err
	}
	return &fs.Report{
		UUID:    fmt.Sprintf("%04X-%04X", o.VolumeID>>16, o.VolumeID&0xffff),
		Label:   o.Label,
		Extents: exts,
	}, nil
}

// WriteLocate is Write that also returns where the regular files at paths
// (absolute, as the tree names them) lie: their data's byte ranges from
// the volume's start, in file order, together exactly the file's size (an
// empty file has none). Write allocates each file's clusters contiguously,
// so a file has at most one extent.
func WriteLocate(w io.WriterAt, size int64, t *tree.Tree, o Options, paths []string) (map[string][]fs.Extent, error) {
	p, l, err := write(w, size, t, o)
	if err != nil || len(paths) == 0 {
		return nil, err
	}
	byPath := make(map[string]*node, len(p.nodes))
	for _, n := range p.nodes {
		byPath[n.path] = n
	}
	out := make(map[string][]fs.Extent, len(paths))
	for _, pth := range paths {
		n := byPath[pth]
		switch {
		case n == nil:
			return nil, fmt.Errorf("fat: %s: not in the tree written", pth)
		case n.inode.Kind != tree.Regular:
			return nil, fmt.Errorf("fat: %s: not a regular file", pth)
		case n.inode.Size == 0:
			out[pth] = nil
		default:
			out[pth] = []fs.Extent{{Offset: l.clusterOffset(n.start), Length: n.inode.Size}}
		}
	}
	return out, nil
}
