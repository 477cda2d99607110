package fat

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Read limits.
const (
	// DefaultMaxEntries is ReadOptions.MaxEntries when zero: directory
	// entries in the whole tree. A file costs some 500 bytes allocated
	// while reading (its directory's bytes, its entry, its inode and name,
	// its place in the directory's map), so that 2^18 of them keep a read
	// under the 256 MiB every image read is held to; an EFI system
	// partition has some hundreds.
	DefaultMaxEntries = 1 << 18
	// DefaultMaxDepth is ReadOptions.MaxDepth when zero: directories
	// nested below the root.
	DefaultMaxDepth = 2048

	fatCacheChunk  = 48 << 10 // bytes of FAT read at a time: a multiple of 3 and 4
	fatCacheChunks = 64       // chunks kept
	// maxRuns bounds the runs of contiguous clusters that files' content
	// keeps (16 bytes each): a fragmented FAT32 volume of 2^28 clusters
	// could otherwise make gigabytes of them.
	maxRuns = 1 << 20
	// maxDirBytes bounds the directory bytes ReadTree reads: directories
	// whose chains merge into one shared chain can make each of a
	// volume's clusters be read many times over.
	maxDirBytes = 1 << 30
)

// ReadOptions bound ReadTreeOptions.
type ReadOptions struct {
	// MaxEntries bounds the directory entries of the whole tree; 0 means
	// DefaultMaxEntries.
	MaxEntries int
	// MaxDepth bounds how deep directories nest; 0 means DefaultMaxDepth.
	MaxDepth int
}

// ReadTree reads the FAT12, FAT16 or FAT32 volume at the start of r, whose
// size is size bytes, into a tree.
//
// Names are the long (VFAT) names, decoded from UTF-16 with surrogate
// pairs, where a valid long name precedes the short entry; else the 8.3
// names, in code page 437, lower-cased as the Windows NT case bits say.
// The volume label entry is not a file. Directories get mode 0755; files
// 0644, or 0444 if read-only; everything uid and gid 0 and no xattrs. The
// mtime is the entry's write time, FAT's local time taken as UTC, to the
// 2 seconds FAT stores; the root directory, which has no entry, is dated
// 0. Regular files' Content reads the image through the cluster chain,
// lazily; Open may be called any number of times.
//
// The volume is hostile input: cluster chains that leave the volume, loop,
// end before their file or run past it, directories that loop or are
// longer than FAT allows, and chains that share clusters (cross-links, as
// found by the total length of all chains) are errors.
func ReadTree(r io.ReaderAt, size int64) (*tree.Tree, error) {
	return ReadTreeOptions(r, size, ReadOptions{})
}

// ReadTreeOptions is ReadTree with limits.
func ReadTreeOptions(r io.ReaderAt, size int64, o ReadOptions) (*tree.Tree, error) {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	in, err := Probe(r, size)
	if err != nil {
		return nil, err
	}
	tr := newTreeReader(r, in, o)
	root := tree.NewDir(0o755, 0, 0, 0)
	if err := tr.readDir("/", tr.rootRef(), root, 0); err != nil {
		return nil, fmt.Errorf("fat: read: %w", err)
	}
	return &tree.Tree{Root: root}, nil
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

// dirRef is a directory: the root, or the one starting at a cluster.
type dirRef struct {
	root    bool
	cluster uint32
}

// treeReader holds the state of one ReadTree.
type treeReader struct {
	v        *volume
	o        ReadOptions
	budget   int64           // clusters left to walk in chains
	runs     int             // runs of clusters kept, at most maxRuns
	dirBuf   []byte          // dirData's buffer
	dirBytes int64           // bytes of directories read, at most maxDirBytes
	entries  int             // directory entries read
	dirs     map[uint32]bool // first clusters of the directories read
	cache    map[int64][]byte
}

func newTreeReader(r io.ReaderAt, in *Info, o ReadOptions) *treeReader {
	return &treeReader{
		v:      newVolume(r, in),
		o:      o,
		budget: int64(in.TotalClusters),
		dirs:   map[uint32]bool{},
		cache:  map[int64][]byte{},
	}
}

// rootRef is the root directory.
func (tr *treeReader) rootRef() dirRef {
	d := dirRef{root: true}
	if tr.v.in.FATType == 32 {
		d.cluster = tr.v.in.RootCluster
	}
	return d
}

// fatEntry reads FAT entry c through a cache of FAT chunks.
func (tr *treeReader) fatEntry(c uint32) (uint32, error) {
	in := tr.v.in
	fatBytes := int64(in.FATSectors) * int64(in.SectorSize)
	off := int64(c) * int64(in.FATType) / 8
	k := off / fatCacheChunk
	b := tr.cache[k]
	if b == nil {
		n := min(fatCacheChunk, fatBytes-k*fatCacheChunk)
		if n <= 0 {
			return 0, fmt.Errorf("FAT entry %d is past the FAT", c)
		}
		if len(tr.cache) >= fatCacheChunks {
			// Evict a chunk and reuse its buffer: a chain that cycles
			// through more chunks than the cache holds must not allocate
			// a chunk per cluster.
			for old, ob := range tr.cache {
				delete(tr.cache, old)
				b = ob[:n]
				break
			}
		} else {
			b = make([]byte, n, fatCacheChunk)
		}
		if err := readFull(tr.v.r, b, tr.v.off+k*fatCacheChunk); err != nil {
			return 0, fmt.Errorf("reading the FAT: %w", err)
		}
		tr.cache[k] = b
	}
	i := off - k*fatCacheChunk
	switch in.FATType {
	case 12:
		if i+2 > int64(len(b)) {
			return 0, fmt.Errorf("FAT entry %d is past the FAT", c)
		}
		v := uint32(b[i]) | uint32(b[i+1])<<8
		if c%2 == 1 {
			v >>= 4
		}
		return v & 0xFFF, nil
	case 16:
		if i+2 > int64(len(b)) {
			return 0, fmt.Errorf("FAT entry %d is past the FAT", c)
		}
		return uint32(b[i]) | uint32(b[i+1])<<8, nil
	}
	if i+4 > int64(len(b)) {
		return 0, fmt.Errorf("FAT entry %d is past the FAT", c)
	}
	return (uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24) & 0x0FFFFFFF, nil
}

// readFull fills b from r at off.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%d bytes at offset %d: %w", len(b), off, err)
}

// byteRun is a run of bytes of the image.
type byteRun struct{ off, n int64 }

// walkChain follows the chain from cluster c and returns its clusters as
// runs of bytes. With need > 0 the chain must have exactly need clusters;
// with need 0 (a directory) it may have up to limit. Every cluster costs
// the budget, which a volume without cross-links never exhausts.
func (tr *treeReader) walkChain(c uint32, need, limit int) ([]byteRun, error) {
	v := tr.v
	cb := int64(v.in.ClusterSize)
	var out []byteRun
	for n := 1; ; n++ {
		if c < 2 || c >= v.in.TotalClusters+2 {
			return nil, fmt.Errorf("cluster chain reaches cluster %d, outside the volume's 2..%d", c, v.in.TotalClusters+1)
		}
		tr.budget--
		if tr.budget < 0 {
			return nil, fmt.Errorf("cluster chains are longer than the volume's %d clusters: they loop or share clusters", v.in.TotalClusters)
		}
		off := int64(v.dataSector+uint64(c-2)*v.spc) * int64(v.in.SectorSize)
		if k := len(out); k > 0 && out[k-1].off+out[k-1].n == off {
			out[k-1].n += cb
		} else {
			tr.runs++
			if tr.runs > maxRuns {
				return nil, fmt.Errorf("more than %d runs of clusters in the volume's chains, more than kiln reads", maxRuns)
			}
			out = append(out, byteRun{off, cb})
		}
		next, err := tr.fatEntry(c)
		if err != nil {
			return nil, err
		}
		end := next >= v.eoc
		switch {
		case need > 0 && n == need && !end:
			return nil, fmt.Errorf("the cluster chain runs past the file's %d clusters (cluster %d is followed by %d)", need, c, next)
		case end && need > 0 && n < need:
			return nil, fmt.Errorf("the cluster chain ends after %d clusters, the file needs %d", n, need)
		case end:
			return out, nil
		case need == 0 && n >= limit:
			return nil, fmt.Errorf("the directory is longer than the %d entries FAT allows", maxDirEntries)
		}
		c = next
	}
}

// readEntry is one directory entry as read.
type readEntry struct {
	index       int    // of the short entry in its directory
	name        string // the long name if there is a valid one, else the short name
	short       shortName
	nt          uint8 // the short name's NT case bits
	attr        uint8
	cluster     uint32
	size        uint32
	date, clock uint16 // write date and time
}

// readDir reads directory d, the tree inode n at path p, and everything
// below it.
func (tr *treeReader) readDir(p string, d dirRef, n *tree.Inode, depth int) error {
	b, err := tr.dirData(d)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	ents, err := parseEntries(b, tr.v.in.FATType)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	for _, e := range ents {
		cp := prefix + e.name
		if n.Child(e.name) != nil {
			return fmt.Errorf("%s: the name is in its directory twice", cp)
		}
		tr.entries++
		if tr.entries > tr.o.MaxEntries {
			return fmt.Errorf("%s: more than %d directory entries", cp, tr.o.MaxEntries)
		}
		mtime := entryTime(e.date, e.clock)
		if e.attr&attrDir != 0 {
			if e.cluster == 0 {
				return fmt.Errorf("%s: directory entry without a first cluster", cp)
			}
			c := tree.NewDir(0o755, 0, 0, mtime)
			n.SetChild(e.name, c)
			if depth+1 > tr.o.MaxDepth {
				return fmt.Errorf("%s: directories nest deeper than %d", cp, tr.o.MaxDepth)
			}
			if err := tr.readDir(cp, dirRef{cluster: e.cluster}, c, depth+1); err != nil {
				return err
			}
			continue
		}
		f := &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: mtime, Size: int64(e.size)}
		if e.attr&attrReadOnly != 0 {
			f.Mode = 0o444
		}
		runs, err := tr.fileRuns(e)
		if err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		if runs != nil {
			f.Content = &chainContent{r: tr.v.r, size: f.Size, runs: runs}
		}
		n.SetChild(e.name, f)
	}
	return nil
}

// fileRuns checks the entry of a file and walks its cluster chain, which
// must have exactly the clusters its size needs; an empty file has none.
func (tr *treeReader) fileRuns(e readEntry) ([]byteRun, error) {
	if e.size == 0 {
		if e.cluster != 0 {
			return nil, fmt.Errorf("empty file with a cluster chain from cluster %d", e.cluster)
		}
		return nil, nil
	}
	cb := int64(tr.v.in.ClusterSize)
	need := (int64(e.size) + cb - 1) / cb
	if e.cluster == 0 {
		return nil, fmt.Errorf("%d bytes but no first cluster", e.size)
	}
	if need > int64(tr.v.in.TotalClusters) {
		return nil, fmt.Errorf("%d bytes need %d clusters, the volume has %d", e.size, need, tr.v.in.TotalClusters)
	}
	return tr.walkChain(e.cluster, int(need), 0)
}

// dirData reads a directory's entries: the fixed root of FAT12/16, or a
// cluster chain.
func (tr *treeReader) dirData(d dirRef) ([]byte, error) {
	v := tr.v
	if d.root && v.in.FATType != 32 {
		b := make([]byte, int64(v.in.RootEntries)*dirEntrySize)
		if err := readFull(v.r, b, int64(v.rootSector)*int64(v.in.SectorSize)); err != nil {
			return nil, fmt.Errorf("reading the root directory: %w", err)
		}
		return b, nil
	}
	if tr.dirs[d.cluster] {
		return nil, fmt.Errorf("the directory at cluster %d has a second name: directories loop", d.cluster)
	}
	tr.dirs[d.cluster] = true
	limit := maxDirEntries * dirEntrySize / v.in.ClusterSize
	runs, err := tr.walkChain(d.cluster, 0, max(1, limit))
	if err != nil {
		return nil, fmt.Errorf("directory at cluster %d: %w", d.cluster, err)
	}
	total := int64(0)
	for _, r := range runs {
		total += r.n
	}
	tr.dirBytes += total
	if tr.dirBytes > maxDirBytes {
		return nil, fmt.Errorf("directory at cluster %d: more than %d bytes of directories read: they share clusters", d.cluster, maxDirBytes)
	}
	// One buffer for all directories: readDir keeps only what
	// parseEntries made of it.
	if int64(cap(tr.dirBuf)) < total {
		tr.dirBuf = make([]byte, total)
	}
	b := tr.dirBuf[:total]
	at := int64(0)
	for _, r := range runs {
		if err := readFull(v.r, b[at:at+r.n], r.off); err != nil {
			return nil, fmt.Errorf("reading the directory at cluster %d: %w", d.cluster, err)
		}
		at += r.n
	}
	return b, nil
}

// parseEntries decodes a directory's entries, without ".", ".." and the
// volume label.
func parseEntries(b []byte, fatType int) ([]readEntry, error) {
	var (
		out  []readEntry
		long []uint16 // the long name gathered so far
		want int      // the ordinal the next LFN entry must have; 0: none pending, -1: complete
		sum  uint8    // the checksum the LFN entries carry
	)
	for e := 0; e+dirEntrySize <= len(b); e += dirEntrySize {
		ent := b[e : e+dirEntrySize]
		if ent[0] == 0 {
			break
		}
		if ent[0] == 0xE5 {
			want = 0
			continue
		}
		if ent[11]&0x3F == attrLFN {
			ord := int(ent[0] &^ lfnLast)
			switch {
			case ent[0]&lfnLast != 0 && ord >= 1 && ord <= 20:
				long, want, sum = make([]uint16, ord*lfnChars), ord, ent[13]
			case want <= 0 || ord != want || ent[13] != sum:
				want = 0 // a broken sequence: the short name stands
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
			if want == 0 {
				want = -1 // complete: the short entry must follow
			}
			continue
		}
		var sn shortName
		copy(sn[:], ent[:11])
		hasLong := want == -1 && sn.checksum() == sum
		want = 0
		if ent[11]&attrVolumeID != 0 {
			continue
		}
		re := readEntry{
			index:   e / dirEntrySize,
			short:   sn,
			nt:      ent[12],
			attr:    ent[11],
			cluster: uint32(ent[26]) | uint32(ent[27])<<8 | uint32(ent[20])<<16 | uint32(ent[21])<<24,
			size:    uint32(ent[28]) | uint32(ent[29])<<8 | uint32(ent[30])<<16 | uint32(ent[31])<<24,
			clock:   uint16(ent[22]) | uint16(ent[23])<<8,
			date:    uint16(ent[24]) | uint16(ent[25])<<8,
		}
		if fatType != 32 {
			re.cluster &= 0xFFFF // the high word is not a cluster field on FAT12/16
		}
		if hasLong {
			re.name = longName(long)
		}
		if re.name == "" {
			if sn == (shortName{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}) || sn == (shortName{'.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}) {
				continue
			}
			name, err := shortNameString(sn, ent[12])
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", e/dirEntrySize, err)
			}
			re.name = name
		}
		out = append(out, re)
	}
	return out, nil
}

// longName decodes a long name, or returns "" if it is not one a tree can
// hold (empty, ".", "..", a '/', a lone surrogate), so that the short name
// stands, as Linux does with a long name it cannot use.
func longName(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	for i := 0; i < len(u); i++ {
		switch c := u[i]; {
		case c == '/':
			return ""
		case utf16.IsSurrogate(rune(c)):
			if c >= 0xDC00 || i+1 == len(u) || u[i+1] < 0xDC00 || u[i+1] > 0xDFFF {
				return ""
			}
			i++
		}
	}
	s := string(utf16.Decode(u))
	if s == "." || s == ".." || !utf8.ValidString(s) {
		return ""
	}
	return s
}

// shortNameString decodes an 8.3 name: code page 437, the base and the
// extension lower case where the NT case bits say so.
func shortNameString(sn shortName, nt uint8) (string, error) {
	if sn[0] == 0x05 {
		sn[0] = 0xE5
	}
	conv := func(b []byte, lower bool) (string, error) {
		var s strings.Builder
		for _, c := range b {
			switch {
			case c == 0 || c == '/':
				return "", fmt.Errorf("short name %q has the byte %#02x", sn[:], c)
			case c >= 0x80:
				s.WriteRune(cp437[c-0x80])
			case lower && 'A' <= c && c <= 'Z':
				s.WriteByte(c + 'a' - 'A')
			default:
				s.WriteByte(c)
			}
		}
		return s.String(), nil
	}
	base, err := conv([]byte(strings.TrimRight(string(sn[:8]), " ")), nt&caseLowerBase != 0)
	if err != nil {
		return "", err
	}
	ext, err := conv([]byte(strings.TrimRight(string(sn[8:]), " ")), nt&caseLowerExt != 0)
	if err != nil {
		return "", err
	}
	if base == "" || base == "." || base == ".." {
		return "", fmt.Errorf("short name %q has no base name", sn[:])
	}
	if ext == "" {
		return base, nil
	}
	return base + "." + ext, nil
}

// cp437 is the upper half of code page 437, the OEM code page of short
// names (Linux's default codepage=437).
var cp437 = [128]rune{
	'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å',
	'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ',
	'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»',
	'░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐',
	'└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧',
	'╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀',
	'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩',
	'≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u00A0',
}

// entryTime converts an entry's write date and time, FAT local time, to
// Unix seconds taken as UTC. Out-of-range fields are clamped or carried
// over (month 0 is January, day 0 the first, 24:00 the next day), never
// an error: any pair of 16-bit values is some time.
func entryTime(date, clock uint16) int64 {
	month := min(max(int(date>>5&0xF), 1), 12)
	day := max(int(date&0x1F), 1)
	return time.Date(int(date>>9)+1980, time.Month(month), day,
		int(clock>>11), int(clock>>5&0x3F), int(clock&0x1F)*2, 0, time.UTC).Unix()
}

// chainContent is a file's content: runs of bytes of the image.
type chainContent struct {
	r    io.ReaderAt
	size int64
	runs []byteRun
}

// Open returns a reader of the content; each has its own offset.
func (c *chainContent) Open() (io.ReadCloser, error) { return &chainReader{c: c}, nil }

// chainReader reads a chainContent from the start.
type chainReader struct {
	c   *chainContent
	off int64 // offset in the file
	run int   // run holding off
	in  int64 // offset of off in that run
}

// Read reads from the current run.
func (r *chainReader) Read(p []byte) (int, error) {
	c := r.c
	if r.off >= c.size {
		return 0, io.EOF
	}
	for r.in >= c.runs[r.run].n {
		r.run, r.in = r.run+1, 0
	}
	run := c.runs[r.run]
	n := min(int64(len(p)), c.size-r.off, run.n-r.in, 1<<20)
	if err := readFull(c.r, p[:n], run.off+r.in); err != nil {
		return 0, fmt.Errorf("fat: content at offset %d: %w", r.off, err)
	}
	r.off, r.in = r.off+n, r.in+n
	return int(n), nil
}

// Close does nothing.
func (r *chainReader) Close() error { return nil }
