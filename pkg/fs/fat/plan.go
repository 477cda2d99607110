package fat

import (
	"errors"
	"fmt"
	"path"

	"github.com/kiln-build/kiln/pkg/tree"
)

// node is a file or directory of the tree as it will be laid out.
type node struct {
	path   string
	inode  *tree.Inode
	parent *node     // nil for the root
	names  []fatName // directories: the entries' names, in tree order
	kids   []*node   // directories: the entries' nodes, parallel to names
	slots  int       // directories: 32-byte entries needed
	start  uint32    // first cluster, 0 if none
	nclus  uint32    // clusters
}

func (n *node) isDir() bool { return n.inode.Kind == tree.Dir }

// plan is a tree prepared for FAT: names assigned, nodes in tree.Walk
// order, which is the order their clusters are allocated in.
type plan struct {
	nodes []*node
	label string // normalised; noName for none
}

func (p *plan) root() *node { return p.nodes[0] }

func kindError(k tree.Kind) string {
	switch k {
	case tree.Symlink:
		return "symlinks"
	case tree.CharDev:
		return "character devices"
	case tree.BlockDev:
		return "block devices"
	case tree.FIFO:
		return "FIFOs"
	}
	return fmt.Sprintf("inodes of kind %d", k)
}

// newPlan walks t, checks that FAT can store every entry and names them.
func newPlan(t *tree.Tree, label string) (*plan, error) {
	if t == nil || t.Root == nil || t.Root.Kind != tree.Dir {
		return nil, errors.New("fat: the tree has no root directory")
	}
	p := &plan{label: label}
	dirs := map[string]*node{}
	err := t.Walk(func(pth string, d tree.Dirent) error {
		n := &node{path: pth, inode: d.Inode}
		if pth != "/" {
			parent := dirs[path.Dir(pth)]
			if parent == nil {
				return fmt.Errorf("BUG: fat: %s: parent not walked before it", pth)
			}
			i := len(parent.kids)
			if i >= len(parent.names) || parent.names[i].name != d.Name {
				return fmt.Errorf("BUG: fat: %s: walked out of the directory's order", pth)
			}
			n.parent = parent
			parent.kids = append(parent.kids, n)
		}
		switch d.Inode.Kind {
		case tree.Regular:
			if d.Inode.Size < 0 || d.Inode.Size > maxFileSize {
				return fmt.Errorf("fat: %s: %d bytes is more than a FAT file can hold (4 GiB - 1)", pth, d.Inode.Size)
			}
			if d.Inode.Size > 0 && d.Inode.Content == nil {
				return fmt.Errorf("BUG: fat: %s: %d-byte file has no content", pth, d.Inode.Size)
			}
		case tree.Dir:
			children := d.Inode.Children()
			names := make([]string, len(children))
			for i, c := range children {
				names[i] = c.Name
			}
			fn, err := nameDir(pth, names)
			if err != nil {
				return err
			}
			n.names = fn
			n.kids = make([]*node, 0, len(fn))
			if pth == "/" {
				if label != noName {
					n.slots++ // volume label entry
				}
			} else {
				n.slots += 2 // "." and ".."
			}
			for i := range fn {
				n.slots += fn[i].slots()
			}
			if n.slots > maxDirEntries {
				return fmt.Errorf("fat: %s: directory needs %d entries, FAT allows %d", pth, n.slots, maxDirEntries)
			}
			dirs[pth] = n
		default:
			return fmt.Errorf("fat: %s: %s cannot be stored on FAT", pth, kindError(d.Inode.Kind))
		}
		p.nodes = append(p.nodes, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range p.nodes {
		if n.isDir() && len(n.kids) != len(n.names) {
			return nil, fmt.Errorf("BUG: fat: %s: walked %d of %d entries", n.path, len(n.kids), len(n.names))
		}
	}
	return p, nil
}

// clustersOf is how many clusters of cb bytes node n takes; the fixed
// root directory of FAT12/16 takes none.
func clustersOf(n *node, cb int64, fatType int) uint32 {
	if !n.isDir() {
		return uint32((n.inode.Size + cb - 1) / cb)
	}
	if n.parent == nil && fatType != 32 {
		return 0
	}
	return uint32(max(1, (int64(n.slots)*dirEntrySize+cb-1)/cb))
}

// needed is the number of clusters of cb bytes the plan takes.
func (p *plan) needed(cb int64, fatType int) uint64 {
	var sum uint64
	for _, n := range p.nodes {
		sum += uint64(clustersOf(n, cb, fatType))
	}
	return sum
}

// allocate gives every node its clusters, contiguous and in plan order,
// and returns how many clusters are used.
func (p *plan) allocate(l *layout) (uint32, error) {
	if need := p.needed(l.clusterBytes(), l.fatType); need > uint64(l.clusters) {
		return 0, fmt.Errorf("fat: the tree needs %d clusters of %d bytes, the %d-byte FAT%d volume has %d: %w",
			need, l.clusterBytes(), int64(l.totSectors)*sectorSize, l.fatType, l.clusters, ErrNoSpace)
	}
	next := uint32(2)
	for _, n := range p.nodes {
		n.nclus = clustersOf(n, l.clusterBytes(), l.fatType)
		n.start = 0
		if n.nclus > 0 {
			n.start = next
			next += n.nclus
		}
	}
	if l.fatType == 32 && p.root().start != rootCluster32 {
		return 0, fmt.Errorf("BUG: fat: root directory at cluster %d, not %d", p.root().start, rootCluster32)
	}
	if l.fatType != 32 && uint32(p.root().slots) > l.rootEntries {
		return 0, fmt.Errorf("BUG: fat: root directory needs %d entries, the layout has %d", p.root().slots, l.rootEntries)
	}
	return next - 2, nil
}
