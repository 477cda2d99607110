package ext4

import (
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// analysis is the first pass over the tree: inode numbers in walk order
// (first encounter for hardlinks), link counts, and validation.
type analysis struct {
	ino       map[*tree.Inode]uint32
	byIno     []*tree.Inode // index ino; nil for reserved and a created lost+found
	links     []uint32      // index ino: names (non-directories) or 2 + subdirectories
	maxIno    uint32
	lostFound *tree.Inode // the tree's /lost+found, or nil: Write creates it
}

const maxFileBlocks = 1 << 32 // logical blocks an extent-mapped file can have

func analyze(t *tree.Tree) (*analysis, error) {
	if t == nil || t.Root == nil || t.Root.Kind != tree.Dir {
		return nil, fmt.Errorf("ext4: tree has no root directory")
	}
	a := &analysis{
		ino:    map[*tree.Inode]uint32{t.Root: rootIno},
		byIno:  make([]*tree.Inode, firstIno+1, 1024),
		links:  make([]uint32, firstIno+1, 1024),
		maxIno: firstIno,
	}
	a.byIno[rootIno] = t.Root
	if lf := t.Root.Child("lost+found"); lf != nil {
		if lf.Kind != tree.Dir {
			return nil, fmt.Errorf("ext4: /lost+found: is a %s, must be a directory", lf.Kind)
		}
		a.lostFound = lf
		a.ino[lf] = firstIno
		a.byIno[firstIno] = lf
	}
	if err := checkInode("/", t.Root); err != nil {
		return nil, err
	}
	if err := a.visit("/", t.Root, rootIno); err != nil {
		return nil, err
	}
	if a.lostFound == nil {
		a.links[firstIno] = 2
	}
	return a, nil
}

// dirLinks is a directory's i_links_count: 2 + subdirectories, or 1 when
// that reaches EXT4_LINK_MAX (dir_nlink), as e2fsck counts.
func dirLinks(subdirs uint64) uint32 {
	l := 2 + subdirs
	if l > linkMax {
		return 1
	}
	return uint32(l)
}

func (a *analysis) visit(p string, dir *tree.Inode, dirIno uint32) error {
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	children := dir.Children()
	subdirs := uint64(0)
	if dirIno == rootIno && a.lostFound == nil {
		subdirs++
	}
	for _, c := range children {
		cp := prefix + c.Name
		if err := checkName(c.Name); err != nil {
			return fmt.Errorf("ext4: %s: %w", cp, err)
		}
		n := c.Inode
		if n == nil {
			return fmt.Errorf("ext4: %s: BUG: nil inode", cp)
		}
		ino, seen := a.ino[n]
		if seen && (ino != firstIno || a.links[ino] > 0) {
			if n.Kind == tree.Dir {
				return fmt.Errorf("ext4: %s: directory has more than one name", cp)
			}
			a.links[ino]++
			if a.links[ino] > linkMax {
				return fmt.Errorf("ext4: %s: more than %d hard links", cp, linkMax)
			}
			continue
		}
		if !seen {
			if a.maxIno == ^uint32(0) {
				return fmt.Errorf("ext4: %s: more than 2^32 inodes", cp)
			}
			a.maxIno++
			ino = a.maxIno
			a.ino[n] = ino
			a.byIno = append(a.byIno, n)
			a.links = append(a.links, 0)
		}
		if err := checkInode(cp, n); err != nil {
			return err
		}
		a.links[ino] = 1
		if n.Kind == tree.Dir {
			subdirs++
			if err := a.visit(cp, n, ino); err != nil {
				return err
			}
		}
	}
	a.links[dirIno] = dirLinks(subdirs)
	return nil
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case len(name) > maxNameLen:
		return fmt.Errorf("name longer than %d bytes", maxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name contains '/' or NUL")
	}
	return nil
}

// The largest device numbers an inode holds (i_block[1]'s encoding).
const (
	maxDevMajor = 1<<12 - 1
	maxDevMinor = 1<<20 - 1
)

func checkInode(p string, n *tree.Inode) error {
	xs, err := prepareXattrs(n.Xattrs)
	if err == nil {
		_, _, err = splitXattrs(xs)
	}
	if err != nil {
		return fmt.Errorf("ext4: %s: %w", p, err)
	}
	switch n.Kind {
	case tree.Dir, tree.FIFO:
	case tree.CharDev, tree.BlockDev:
		// The kernel's new_encode_dev holds 12 bits of major and 20 of
		// minor; more would be cut off into another device.
		if n.Major > maxDevMajor || n.Minor > maxDevMinor {
			return fmt.Errorf("ext4: %s: device %d:%d does not fit ext4's device numbers (major at most %d, minor at most %d)",
				p, n.Major, n.Minor, maxDevMajor, maxDevMinor)
		}
	case tree.Regular:
		if n.Size < 0 {
			return fmt.Errorf("ext4: %s: negative size %d", p, n.Size)
		}
		if n.Size > 0 && n.Content == nil {
			return fmt.Errorf("ext4: %s: %d bytes but no content", p, n.Size)
		}
		if uint64(n.Size) > maxFileBlocks*blockSize {
			return fmt.Errorf("ext4: %s: %d bytes is more than an ext4 file holds (16 TiB)", p, n.Size)
		}
	case tree.Symlink:
		if n.Target == "" {
			return fmt.Errorf("ext4: %s: symlink with an empty target", p)
		}
		if len(n.Target) >= blockSize {
			return fmt.Errorf("ext4: %s: symlink target of %d bytes, at most %d", p, len(n.Target), blockSize-1)
		}
		if strings.IndexByte(n.Target, 0) >= 0 {
			return fmt.Errorf("ext4: %s: symlink target contains NUL", p)
		}
	default:
		return fmt.Errorf("ext4: %s: unsupported inode kind %s", p, n.Kind)
	}
	return nil
}

// wantInodes is how many inodes a filesystem for the tree gets at least:
// the ones it uses plus 1/8 (and 16) for later use.
func (a *analysis) wantInodes() uint64 {
	return uint64(a.maxIno) + uint64(a.maxIno)/8 + 16
}

// maxExtents bounds the extents of b blocks allocated by the forward
// cursor: one per 32768 blocks plus two per group it may cross (metadata
// and the journal break runs), plus slack.
func maxExtents(b uint64) uint64 {
	return 2*(b/blocksPerGroup+2) + 2
}

// dataBlocks returns an upper bound of the blocks the tree's inodes take
// beyond the fixed metadata and journal: every byte of file content
// allocated (holes are not known before reading), directories, slow
// symlinks, xattr blocks and extent tree blocks.
func (a *analysis) dataBlocks(seed [4]uint32) (uint64, error) {
	total := uint64(0)
	if a.lostFound == nil {
		total += 4
	}
	for ino, n := range a.byIno {
		if n == nil {
			continue
		}
		p := fmt.Sprintf("inode %d", ino)
		xs, err := prepareXattrs(n.Xattrs)
		if err != nil {
			return 0, fmt.Errorf("BUG: ext4: %s: %w", p, err)
		}
		_, blk, err := splitXattrs(xs)
		if err != nil {
			return 0, fmt.Errorf("BUG: ext4: %s: %w", p, err)
		}
		if len(blk) > 0 {
			total++
		}
		var b uint64
		switch n.Kind {
		case tree.Regular:
			b = (uint64(n.Size) + blockSize - 1) / blockSize
		case tree.Symlink:
			if len(n.Target) >= 60 {
				b = 1
			}
		case tree.Dir:
			ents := a.dirEntries(uint32(ino), n.Children())
			minBlocks := 1
			if uint32(ino) == firstIno {
				minBlocks = 4
			}
			c, err := dirBlockCount(ents, seed, minBlocks)
			if err != nil {
				return 0, fmt.Errorf("ext4: %s: %w", p, err)
			}
			b = uint64(c)
		}
		if b > 0 {
			total += b + extentTreeBlocks(maxExtents(b))
		}
	}
	return total, nil
}

// dirEntries lists the entries of directory ino with children (in name
// order), including a created lost+found in the root.
func (a *analysis) dirEntries(ino uint32, children []tree.Dirent) []dentry {
	ents := make([]dentry, 0, len(children)+1)
	addLF := ino == rootIno && a.lostFound == nil
	for _, c := range children {
		if addLF && c.Name > "lost+found" {
			ents = append(ents, dentry{name: "lost+found", ino: firstIno, ftype: ftDir})
			addLF = false
		}
		ents = append(ents, dentry{name: c.Name, ino: a.ino[c.Inode], ftype: c.Inode.Kind.DirentType()})
	}
	if addLF {
		ents = append(ents, dentry{name: "lost+found", ino: firstIno, ftype: ftDir})
	}
	return ents
}
