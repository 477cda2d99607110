package diff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"iter"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/fs/all"
	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Image is a virtual disk to compare. An Image that also has the
// Extents method of imgfmt.Image is compared over its allocated ranges
// only (the rest reads as zeros); one that has not, over all its bytes.
type Image interface {
	io.ReaderAt
	Size() int64
}

// extenter is what an image with allocation information has.
type extenter interface {
	Extents(ctx context.Context, fn func(imgfmt.Extent) error) error
}

// Field is one named value that differs.
type Field struct {
	Name string `json:"name"`
	A    string `json:"a"`
	B    string `json:"b"`
}

// File is a path whose entry differs.
type File struct {
	Path   string  `json:"path"`
	Change string  `json:"change"` // added, removed, changed
	Fields []Field `json:"fields,omitempty"`
}

// Range is a run of differing bytes, [Start, End).
type Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Partition is what differs in one partition (by number).
type Partition struct {
	Number     int      `json:"number"`
	Name       string   `json:"name"`
	Filesystem string   `json:"filesystem,omitempty"`
	Fields     []Field  `json:"fields,omitempty"` // superblock / boot sector
	Files      []File   `json:"files,omitempty"`
	Problems   []string `json:"problems,omitempty"` // what could not be compared
	// Unexplained are differing byte ranges of a partition where neither
	// its fields nor its files differ.
	Unexplained []Range `json:"unexplained,omitempty"`
	// DifferingBytes counts the bytes that differ inside the partition.
	DifferingBytes int64 `json:"differing_bytes"`
}

// Report is the whole comparison.
type Report struct {
	Identical  bool        `json:"identical"`
	Table      []Field     `json:"table,omitempty"`
	Partitions []Partition `json:"partitions,omitempty"`
	// Outside are differing ranges outside every partition and not in the
	// partition table's own sectors when the table fields differ.
	Outside []Range `json:"outside,omitempty"`
}

// Empty reports whether nothing differs.
func (r *Report) Empty() bool { return r.Identical }

// Images compares a and b. Once ctx is done it stops, with an error that
// wraps ctx.Err(): every read of a or b fails from then on, so that even
// the filesystem readers give up at once.
func Images(ctx context.Context, a, b Image) (*Report, error) {
	a, b = ctxImage{a, ctx}, ctxImage{b, ctx}
	ranges, err := byteRanges(ctx, a, b)
	if err != nil {
		return nil, err
	}
	rep := &Report{Identical: len(ranges) == 0 && a.Size() == b.Size()}
	if rep.Identical {
		return rep, nil
	}
	la, errA := disk.Read(a, a.Size())
	lb, errB := disk.Read(b, b.Size())
	if errA != nil || errB != nil {
		rep.Table = append(rep.Table, Field{"partition table", errString(errA, "readable"), errString(errB, "readable")})
		rep.Outside = ranges
		return rep, nil
	}
	rep.Table = tableFields(la, lb)
	covered := make([]bool, len(ranges))
	byNum := map[int]disk.Partition{}
	for _, p := range lb.Partitions {
		byNum[p.Number] = p
	}
	for _, pa := range la.Partitions {
		pb, ok := byNum[pa.Number]
		if !ok {
			continue
		}
		pd := Partition{Number: pa.Number, Name: pa.Name}
		var inside []Range
		for i, r := range ranges {
			s, e := max(r.Start, pa.Start), min(r.End, pa.End())
			if s < e {
				inside = append(inside, Range{s - pa.Start, e - pa.Start})
				pd.DifferingBytes += e - s
				if r.Start >= pa.Start && r.End <= pa.End() {
					covered[i] = true
				}
			}
		}
		if len(inside) == 0 && pa.Start == pb.Start && pa.Size == pb.Size {
			continue
		}
		ra := io.NewSectionReader(a, pa.Start, pa.Size)
		rb := io.NewSectionReader(b, pb.Start, pb.Size)
		compareFS(&pd, ra, rb, pa.Size, pb.Size)
		if len(pd.Fields) == 0 && len(pd.Files) == 0 {
			pd.Unexplained = inside
		}
		rep.Partitions = append(rep.Partitions, pd)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	for i, r := range ranges {
		if covered[i] {
			continue
		}
		if len(rep.Table) > 0 && inTableArea(r, la) {
			continue
		}
		rep.Outside = append(rep.Outside, r)
	}
	return rep, nil
}

func errString(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// inTableArea reports whether r lies in the partition table's sectors
// (MBR, GPT header and entries at both ends).
func inTableArea(r Range, l *disk.Layout) bool {
	const tableEnd = 34 * disk.SectorSize
	if r.End <= tableEnd {
		return true
	}
	if l.Table == disk.GPT && r.Start >= l.Size-33*disk.SectorSize {
		return true
	}
	return false
}

// fieldList collects the fields whose printed values differ.
type fieldList []Field

func (fs *fieldList) add(name string, x, y any) {
	xs, ys := fmt.Sprint(x), fmt.Sprint(y)
	if xs != ys {
		*fs = append(*fs, Field{name, xs, ys})
	}
}

func tableFields(a, b *disk.Layout) []Field {
	var fs fieldList
	add := fs.add
	add("table", a.Table, b.Table)
	add("disk size", a.Size, b.Size)
	add("disk GUID", a.DiskGUID, b.DiskGUID)
	add("disk signature", fmt.Sprintf("%08x", a.DiskSignature), fmt.Sprintf("%08x", b.DiskSignature))
	add("partitions", len(a.Partitions), len(b.Partitions))
	n := max(len(a.Partitions), len(b.Partitions))
	for i := 0; i < n; i++ {
		var pa, pb disk.Partition
		if i < len(a.Partitions) {
			pa = a.Partitions[i]
		}
		if i < len(b.Partitions) {
			pb = b.Partitions[i]
		}
		pre := fmt.Sprintf("partition %d ", i+1)
		add(pre+"name", pa.Name, pb.Name)
		add(pre+"type", pa.Type().Name+" "+pa.TypeGUID.String(), pb.Type().Name+" "+pb.TypeGUID.String())
		add(pre+"mbr type", fmt.Sprintf("0x%02x", pa.MBRType), fmt.Sprintf("0x%02x", pb.MBRType))
		add(pre+"GUID", pa.GUID, pb.GUID)
		add(pre+"first LBA", pa.FirstLBA(), pb.FirstLBA())
		add(pre+"size", pa.Size, pb.Size)
		add(pre+"attributes", fmt.Sprintf("%#x", pa.Attributes), fmt.Sprintf("%#x", pb.Attributes))
		add(pre+"bootable", pa.Bootable, pb.Bootable)
	}
	return fs
}

// compareFS fills pd with the filesystem's field and file differences:
// when both sides hold the same filesystem (pkg/fs/all recognises it), its
// header fields by name and its file trees; else which filesystems they
// are.
func compareFS(pd *Partition, a, b io.ReaderAt, sizeA, sizeB int64) {
	ka, _, ea := all.Probe(a, sizeA)
	kb, _, eb := all.Probe(b, sizeB)
	if ea == nil && eb == nil && ka.Name == kb.Name {
		pd.Filesystem = ka.Name
		pd.Fields = rawFields(a, b, ka.HeaderOffset, ka.Fields)
		ta, errA := ka.ReadTree(a, sizeA)
		tb, errB := kb.ReadTree(b, sizeB)
		compareTrees(pd, ta, tb, errA, errB)
		return
	}
	kind := func(k fs.Kind, err error) string {
		if err != nil {
			return "unknown"
		}
		return k.Name
	}
	if na, nb := kind(ka, ea), kind(kb, eb); na != nb {
		pd.Fields = append(pd.Fields, Field{"filesystem", na, nb})
	}
}

func compareTrees(pd *Partition, ta, tb *tree.Tree, errA, errB error) {
	if errA != nil || errB != nil {
		pd.Problems = append(pd.Problems, fmt.Sprintf("file trees not compared: %s / %s", errString(errA, "ok"), errString(errB, "ok")))
		return
	}
	na, nb := flatten(ta), flatten(tb)
	var paths []string
	seen := map[string]bool{}
	for p := range na {
		paths = append(paths, p)
		seen[p] = true
	}
	for p := range nb {
		if !seen[p] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		x, y := na[p], nb[p]
		switch {
		case x == nil:
			pd.Files = append(pd.Files, File{Path: p, Change: "added"})
		case y == nil:
			pd.Files = append(pd.Files, File{Path: p, Change: "removed"})
		default:
			if fs := inodeFields(x, y); len(fs) > 0 {
				pd.Files = append(pd.Files, File{Path: p, Change: "changed", Fields: fs})
			}
		}
	}
}

func flatten(t *tree.Tree) map[string]*tree.Inode {
	m := map[string]*tree.Inode{}
	t.Walk(func(p string, d tree.Dirent) error {
		m[p] = d.Inode
		return nil
	})
	return m
}

func inodeFields(a, b *tree.Inode) []Field {
	var fs fieldList
	add := fs.add
	add("type", a.Kind, b.Kind)
	add("mode", fmt.Sprintf("%04o", a.Mode), fmt.Sprintf("%04o", b.Mode))
	add("owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
	add("mtime", fmt.Sprintf("%d.%09d", a.Mtime, a.Nsec), fmt.Sprintf("%d.%09d", b.Mtime, b.Nsec))
	if a.Kind == tree.Regular || b.Kind == tree.Regular {
		add("size", a.Size, b.Size)
		ha, hb := contentHash(a), contentHash(b)
		add("content sha256", ha, hb)
	}
	add("link target", a.Target, b.Target)
	if a.Kind == tree.CharDev || a.Kind == tree.BlockDev {
		add("device", fmt.Sprintf("%d:%d", a.Major, a.Minor), fmt.Sprintf("%d:%d", b.Major, b.Minor))
	}
	add("xattrs", xattrString(a), xattrString(b))
	return fs
}

func contentHash(n *tree.Inode) string {
	if n.Kind != tree.Regular {
		return "-"
	}
	h := sha256.New()
	if n.Content != nil && n.Size > 0 {
		r, err := n.Content.Open()
		if err != nil {
			return "unreadable: " + err.Error()
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "unreadable: " + err.Error()
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func xattrString(n *tree.Inode) string {
	var parts []string
	for _, x := range n.Xattrs {
		parts = append(parts, x.Name+"="+hex.EncodeToString(x.Value))
	}
	return strings.Join(parts, " ")
}

// ctxImage fails every read once ctx is done.
type ctxImage struct {
	Image
	ctx context.Context
}

func (c ctxImage) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.Image.ReadAt(p, off)
}

// extents iterates over the allocated ranges of an image: all of it when
// it cannot tell. The error, if any, is in *err once the loop ends.
func extents(ctx context.Context, img Image, err *error) iter.Seq[imgfmt.Extent] {
	return func(yield func(imgfmt.Extent) bool) {
		x, ok := img.(extenter)
		if ci, isCtx := img.(ctxImage); isCtx {
			x, ok = ci.Image.(extenter)
		}
		if !ok {
			if img.Size() > 0 {
				yield(imgfmt.Extent{Off: 0, Len: img.Size()})
			}
			return
		}
		stop := fmt.Errorf("stop")
		e := x.Extents(ctx, func(e imgfmt.Extent) error {
			if !yield(e) {
				return stop
			}
			return nil
		})
		if e != nil && e != stop {
			*err = e
		}
	}
}

// unionExtents calls fn with the union of the allocated ranges of a and
// b, in increasing order: outside it both read as zeros.
func unionExtents(ctx context.Context, a, b Image, fn func(imgfmt.Extent) error) error {
	var errA, errB error
	nextA, stopA := iter.Pull(extents(ctx, a, &errA))
	defer stopA()
	nextB, stopB := iter.Pull(extents(ctx, b, &errB))
	defer stopB()
	ea, okA := nextA()
	eb, okB := nextB()
	var cur imgfmt.Extent
	for okA || okB {
		var e imgfmt.Extent
		if okA && (!okB || ea.Off <= eb.Off) {
			e = ea
			ea, okA = nextA()
		} else {
			e = eb
			eb, okB = nextB()
		}
		if cur.Len > 0 && e.Off <= cur.End() {
			cur.Len = max(cur.End(), e.End()) - cur.Off
			continue
		}
		if cur.Len > 0 {
			if err := fn(cur); err != nil {
				return err
			}
		}
		cur = e
	}
	stopA()
	stopB()
	if errA != nil {
		return errA
	}
	if errB != nil {
		return errB
	}
	if cur.Len > 0 {
		return fn(cur)
	}
	return nil
}

// maxRanges bounds the differing ranges byteRanges keeps (1 MiB of them).
const maxRanges = 1 << 16

// byteRanges returns where a and b differ (a size difference counts as
// differing bytes at the end of the longer one). It reads only the ranges
// that are allocated in a or in b: elsewhere both read as zeros.
func byteRanges(ctx context.Context, a, b Image) ([]Range, error) {
	const chunk = 1 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	var out []Range
	addRange := func(s, e int64) {
		// Past maxRanges, ranges are joined to the last one: the report
		// gets coarser, the memory it takes stays bounded.
		if len(out) > 0 && (out[len(out)-1].End >= s-512 || len(out) >= maxRanges) {
			out[len(out)-1].End = e
			return
		}
		out = append(out, Range{s, e})
	}
	err := unionExtents(ctx, a, b, func(ext imgfmt.Extent) error {
		for off := ext.Off; off < ext.End(); {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := min(chunk-off%chunk, ext.End()-off)
			xa, xb := ba[:m], bb[:m]
			if err := readFull(a, xa, off); err != nil {
				return err
			}
			if err := readFull(b, xb, off); err != nil {
				return err
			}
			if !bytes.Equal(xa, xb) {
				for i := int64(0); i < m; i++ {
					if xa[i] != xb[i] {
						j := i
						for j < m && xa[j] != xb[j] {
							j++
						}
						addRange(off+i, off+j)
						i = j
					}
				}
			}
			off += m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readFull reads p at off; past the image's end it reads zeros (sizes are
// compared separately).
func readFull(r Image, p []byte, off int64) error {
	clear(p)
	if off >= r.Size() {
		return nil
	}
	n := min(int64(len(p)), r.Size()-off)
	_, err := r.ReadAt(p[:n], off)
	if err == io.EOF {
		err = nil
	}
	return err
}
