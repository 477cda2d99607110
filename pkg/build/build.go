package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time" // repro-ok: phase timings for the build summary, never image bytes

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

const mib = 1 << 20

// Options are a build's inputs besides the spec.
type Options struct {
	// Output overrides the spec's output.path when set.
	Output string
	// EnvEpoch is SOURCE_DATE_EPOCH, used when the spec has no epoch:
	// read once by the command line, never here.
	EnvEpoch *int64
	// TempDir holds spill files of compressed layers ("" = os.TempDir()).
	TempDir string
	// Log receives progress lines (nil = silent).
	Log io.Writer
	// Init gives the kiln-init put in generated initramfs images, for the
	// spec's architecture; nil reads InitPath.
	Init InitSource
	// InitPath is the kiln-init binary put in generated initramfs images
	// when Init is nil.
	InitPath string
	// MaxLayerBytes and MaxLayerRatio bound how far each layer may
	// expand (layer.Options.MaxBytes and MaxRatio): 0 means pkg/layer's
	// defaults, a negative value no limit.
	MaxLayerBytes, MaxLayerRatio int64
	// Cache, when set, keeps decompressed layers between builds.
	Cache *layer.Cache
	// Progress, when set, is updated as the build goes.
	Progress *Progress
	// Signatures is the external signer's signatures file (kiln build
	// --signatures) for a spec with boot.secureboot.signer external;
	// without it such a build writes the signing request and no image.
	Signatures string
	// Platform is the platform whose image is taken from multi-platform
	// OCI layers (kiln build --platform); the zero value means the
	// platform of disk.arch (layer.PlatformForArch: arm64 is
	// linux/arm64/v8).
	Platform layer.Platform
}

// Result describes a finished build.
type Result struct {
	Output string
	Epoch  int64
	Layout *disk.Layout
	// Layers are the layers merged, in order.
	Layers []LayerResult
	// Filesystems are the partitions' filesystems, by index in Layout
	// (nil for a partition without one).
	Filesystems []*FilesystemResult
	// LayerDigests are the content digests of the spec's layers, in
	// order, which seed the derived identifiers unless the spec sets seed:
	// (see spec.IDSeed).
	LayerDigests []string
	// Timings of the build's phases.
	Timings Timings
	// Init is the kiln-init put into a generated initramfs (nil when the
	// build generated none): its bytes become image bytes.
	Init *InitInfo
	// Verity are the sealed partitions (verity: true), in disk order.
	Verity []VerityResult
}

// InitInfo names the kiln-init binary a build used.
type InitInfo struct {
	Path   string
	SHA256 string // "sha256:HEX" of the bytes read
}

// LayerResult is one layer merged.
type LayerResult struct {
	Spec string // the path the spec gives
	Name string // the layer's name (spec path, plus @sha256:... inside an image)
	layer.Info
}

// FilesystemResult is one partition's filesystem.
type FilesystemResult struct {
	Type  string // ext4, vfat
	UUID  string // ext4 UUID, or the FAT volume ID as XXXX-XXXX
	Label string
	Files int64 // regular files
	Bytes int64 // bytes of regular file data
}

// Timings are the wall-clock durations of a build's phases.
type Timings struct {
	Layers time.Duration // opening, reading and merging layers
	Boot   time.Duration // kernel, initramfs, loaders; splitting; planning
	Write  time.Duration // partition table and filesystems
	Commit time.Duration // boot patches, then the image format's final pass
}

// part is a partition on its way to the disk.
type part struct {
	spec     *spec.Partition
	tree     *tree.Tree // nil without a filesystem
	size     int64      // bytes; 0 for "rest" until planned
	bootable bool       // set by the boot stage (MBR active flag, GPT legacy BIOS bootable)
	fs       fs.Filesystem
	locate   []string    // files whose extents the boot stage needs from the writer
	written  *fs.Report  // what the writer wrote
	guid     *repro.UUID // the GPT GUID a sealed partition takes from its root hash
}

// Build assembles the image the spec describes.
func Build(ctx context.Context, s *spec.Spec, o Options) (*Result, error) {
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	epoch := int64(0)
	if s.Epoch != nil {
		epoch = *s.Epoch
	} else if o.EnvEpoch != nil {
		epoch = *o.EnvEpoch
	}
	outPath := s.Output.Path
	if o.Output != "" {
		outPath = o.Output
	}
	if outPath == "" {
		return nil, &spec.Error{File: s.File, Msg: "output.path: missing (set it in the spec or pass -o)"}
	}
	if o.Output == "" {
		outPath = s.Resolve(outPath)
	}

	// Secure Boot's key and certificate are read before any layer.
	sg, err := loadSigner(s, o.Signatures)
	if err != nil {
		return nil, err
	}

	prog := o.Progress
	if prog == nil {
		prog = new(Progress)
	}
	res := &Result{Output: outPath, Epoch: epoch}
	mark := time.Now() // repro-ok: timings
	lap := func(d *time.Duration) {
		now := time.Now() // repro-ok: timings
		*d, mark = now.Sub(mark), now
	}

	// 1. Layers, merged in order.
	prog.setPhase(PhaseLayers)
	t, closeLayers, digests, err := mergeLayers(ctx, s, epoch, o, logf, prog, res)
	if err != nil {
		return nil, err
	}
	defer closeLayers()
	lap(&res.Timings.Layers)
	prog.setPhase(PhasePlan)

	seed := s.IDSeed(digests)
	res.LayerDigests = digests
	// 2. What the boot stage needs from the whole tree: kernel, loaders,
	// the generated initramfs.
	initSrc := o.Init
	if initSrc == nil {
		initSrc = pathInit(o.InitPath)
	}
	bootIn, err := resolveBoot(s, t, seed, epoch, initSrc)
	if err != nil {
		return nil, err
	}
	if bootIn != nil && bootIn.initSHA256 != "" {
		res.Init = &InitInfo{Path: bootIn.initName, SHA256: bootIn.initSHA256}
	}

	// 3. Each partition's share of the tree, and the boot files on the ESP.
	parts, err := splitTree(s, t, epoch)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if p.fs, err = newFilesystem(p.spec, seed, epoch); err != nil {
			return nil, err
		}
	}
	// Sealed partitions first: their root hash goes on the command line
	// the boot files carry and names their partitions.
	seals, err := sealPartitions(ctx, s, parts, seed, o.TempDir)
	if err != nil {
		return nil, err
	}
	defer closeSeals(seals)
	if bootIn != nil && bootIn.sealed {
		h := rootHashOf(seals, parts)
		if h == "" {
			return nil, fmt.Errorf("BUG: a sealed root without a root hash")
		}
		bootIn.cmdline += " roothash=" + h
	}
	post, err := installBoot(s, bootIn, parts, epoch)
	if err != nil {
		return nil, err
	}
	if sg != nil && post != nil {
		if err := sg.signESP(parts[post.esp].tree, post, outPath); err != nil {
			return nil, err
		}
	}

	// 4. Sizes and the partition plan.
	layout, err := plan(s, parts, seed)
	if err != nil {
		return nil, err
	}
	logf("layout: %s, %d bytes, %d partitions", s.Disk.Table, layout.Size, len(layout.Partitions))
	res.Layout = layout
	res.Filesystems = make([]*FilesystemResult, len(parts))
	for i, p := range parts {
		if p.tree == nil {
			continue
		}
		fr := &FilesystemResult{Type: p.spec.Filesystem}
		fr.Files, fr.Bytes = dataOf(p.tree)
		prog.WriteTotal.Add(fr.Bytes)
		res.Filesystems[i] = fr
	}
	lap(&res.Timings.Boot)
	prog.setPhase(PhaseWrite)

	// 5. The image: partition table, then each filesystem in its window,
	// then what bootloaders patch into them.
	out, err := imgfmt.Create(outPath, s.Output.Format, layout.Size, imgfmt.Options{
		Compression: s.Output.Compression,
		ClusterSize: s.Output.ClusterBytes,
		Subformat:   s.Output.Subformat,
		Azure:       s.Output.Azure,
		Epoch:       epoch,
		ID:          repro.Derive(seed, "image/id"),
	})
	if err != nil {
		return nil, err
	}
	defer out.Abort()
	w := ctxWriterAt{ctx, out, &prog.Written}
	if err := disk.Write(w, layout); err != nil {
		return nil, fmt.Errorf("writing partition table: %w", err)
	}
	for _, sl := range seals {
		ld, lh := layout.Partitions[sl.data], layout.Partitions[sl.hash]
		if err := sl.write(ctx, w, ld.Start, lh.Start); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("partition %s: %w", parts[sl.data].spec.Name, err)
		}
		res.Filesystems[sl.data].UUID, res.Filesystems[sl.data].Label = sl.report.UUID, sl.report.Label
		parts[sl.data].written = sl.report
		res.Verity = append(res.Verity, sl.result(parts))
		logf("partition %s: %s under dm-verity (root hash %x), %d bytes at %d; hash partition %s, %d bytes at %d",
			parts[sl.data].spec.Name, parts[sl.data].spec.Filesystem, sl.rootHash, ld.Size, ld.Start, parts[sl.hash].spec.Name, lh.Size, lh.Start)
	}
	for i, p := range parts {
		if p.tree == nil || p.written != nil {
			continue
		}
		lp := layout.Partitions[i]
		win := io.NewOffsetWriter(w, lp.Start)
		if p.fs == nil {
			return nil, fmt.Errorf("BUG: partition %s has a tree but no filesystem writer", p.spec.Name)
		}
		rep, err := p.fs.Write(win, fs.Region{Size: lp.Size, DiskOffset: lp.Start, Locate: p.locate}, p.tree)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("partition %s (%s): %w", p.spec.Name, p.spec.Filesystem, err)
		}
		res.Filesystems[i].UUID, res.Filesystems[i].Label = rep.UUID, rep.Label
		p.written = rep
		logf("partition %s: %s, %d bytes at %d", p.spec.Name, p.spec.Filesystem, lp.Size, lp.Start)
	}
	lap(&res.Timings.Write)
	prog.setPhase(PhaseCommit)
	if err := finishBoot(post, parts, layout, ctxRW{ctx, out}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := out.CommitContext(ctx); err != nil {
		return nil, err
	}
	lap(&res.Timings.Commit)
	prog.setPhase(PhaseDone)
	logf("wrote %s", outPath)
	return res, nil
}

// dataOf counts the regular files of a tree and their bytes, each inode
// once.
func dataOf(t *tree.Tree) (files, bytes int64) {
	seen := map[*tree.Inode]bool{}
	t.Walk(func(_ string, d tree.Dirent) error {
		if n := d.Inode; n.Kind == tree.Regular && !seen[n] {
			seen[n] = true
			files++
			bytes += n.Size
		}
		return nil
	})
	return files, bytes
}

// mergeLayers opens every layer of the spec and merges them in order.
// The returned close releases the spill store that the tree's file
// contents live in: call it after the image is written. It also returns
// the content digest of each of the spec's layers (see ids.go).
func mergeLayers(ctx context.Context, s *spec.Spec, epoch int64, o Options, logf func(string, ...any), prog *Progress, res *Result) (*tree.Tree, func(), []string, error) {
	m := tree.NewMerger(epoch)
	spill := layer.NewSpill(o.TempDir)
	closeAll := func() { spill.Close() }
	type opened struct {
		spec string
		idx  int // of the spec's layer
		l    layer.Layer
		dl   *digestLayer // a directory layer, hashed as it is walked
	}
	var all []opened
	ids := newLayerIDs(len(s.Layers))
	plat := o.Platform
	if plat == (layer.Platform{}) {
		a, err := disk.NormalizeArch(s.Disk.Arch)
		if err == nil {
			plat, err = layer.PlatformForArch(a)
		}
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
	}
	for i, sl := range s.Layers {
		lo := layer.Options{Epoch: epoch, SHA256: sl.SHA256, TempDir: o.TempDir, Spill: spill, KeepRoot: true,
			MaxBytes: o.MaxLayerBytes, MaxRatio: o.MaxLayerRatio, Cache: o.Cache, DiffID: true, Platform: plat}
		if sl.UID != nil {
			lo.DirUID = *sl.UID
		}
		if sl.GID != nil {
			lo.DirGID = *sl.GID
		}
		if sl.PreserveModes {
			lo.DirModes = layer.ModesPreserve
		}
		lo.DirChmod = sl.ChmodModes
		if !plainDir(s.Resolve(sl.Path)) {
			if err := dirOnlyKeys(s, sl); err != nil {
				closeAll()
				return nil, nil, nil, err
			}
		}
		ls, err := layer.Open(s.Resolve(sl.Path), lo)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		for _, l := range ls {
			op := opened{spec: sl.Path, idx: i, l: l}
			if plainDir(s.Resolve(sl.Path)) {
				op.dl = newDigestLayer(l)
			}
			all = append(all, op)
		}
	}
	prog.LayersTotal.Store(int64(len(all)))
	for _, ol := range all {
		if err := ctx.Err(); err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		apply := ol.l
		if ol.dl != nil {
			apply = ol.dl
		}
		if err := m.Apply(ctxLayer{ctx, apply, prog}); err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		if err := ids.add(ol.idx, ol.l, ol.dl); err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		info := layer.Describe(ol.l)
		res.Layers = append(res.Layers, LayerResult{Spec: ol.spec, Name: ol.l.Name(), Info: info})
		prog.LayersDone.Add(1)
		switch {
		case info.Cache == "hit":
			logf("layer %s merged (from the cache)", ol.l.Name())
		case info.Note != "":
			logf("layer %s merged (%s)", ol.l.Name(), info.Note)
		default:
			logf("layer %s merged", ol.l.Name())
		}
	}
	return m.Tree(), closeAll, ids.digests(), nil
}

// ctxLayer stops the walk of a layer once the build is cancelled, so that
// SIGINT is not held up by a layer of a million entries; it also counts
// entries and bytes for the progress display.
type ctxLayer struct {
	ctx context.Context
	layer.Layer
	prog *Progress
}

func (c ctxLayer) Walk(fn func(e *tree.Entry) error) error {
	return c.Layer.Walk(func(e *tree.Entry) error {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		c.prog.Entries.Add(1)
		c.prog.EntryBytes.Add(e.Size)
		return fn(e)
	})
}

// dirOnlyKeys refuses the keys of a layer that only a directory layer
// takes (uid, gid, modes, chmod) on a layer that is not one: its entries
// carry their own owners and modes, and the value would be ignored.
func dirOnlyKeys(s *spec.Spec, sl spec.Layer) error {
	for _, k := range []struct {
		key   string
		given bool
		what  string
	}{
		{"uid", sl.UID != nil, "owners"}, {"gid", sl.GID != nil, "owners"},
		{"modes", sl.Modes != "", "modes"}, {"chmod", len(sl.Chmod) > 0, "modes"},
	} {
		if !k.given {
			continue
		}
		line := sl.Line
		if l, ok := sl.KeyLines[k.key]; ok {
			line = l
		}
		msg := fmt.Sprintf("layer %s: %s is for directory layers; this layer stores its own %s", sl.Path, k.key, k.what)
		if k.what == "modes" {
			msg = fmt.Sprintf("layer %s: modes and chmod are for directory layers; this layer stores its own modes", sl.Path)
		}
		return &spec.Error{File: s.File, Line: line, Msg: msg}
	}
	return nil
}

// splitTree gives each partition with a mount its subtree: deepest mounts
// first, so nested mounts work; the partition mounted at "/" gets the rest.
func splitTree(s *spec.Spec, t *tree.Tree, epoch int64) ([]*part, error) {
	parts := make([]*part, len(s.Disk.Partitions))
	var order []int
	rootIdx := -1
	for i := range s.Disk.Partitions {
		p := &s.Disk.Partitions[i]
		parts[i] = &part{spec: p, size: p.SizeBytes}
		switch {
		case p.Mount == "/":
			rootIdx = i
		case p.Mount != "":
			order = append(order, i)
		case p.Filesystem != "none":
			parts[i].tree = tree.New(epoch) // an empty filesystem
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		return strings.Count(s.Disk.Partitions[order[a]].Mount, "/") > strings.Count(s.Disk.Partitions[order[b]].Mount, "/")
	})
	for _, i := range order {
		sub, err := t.Detach(parts[i].spec.Mount, epoch)
		if err != nil {
			return nil, &spec.Error{File: s.File, Line: keyLine(parts[i].spec, "mount"), Msg: fmt.Sprintf("partition %s: %v", parts[i].spec.Name, err)}
		}
		parts[i].tree = sub
	}
	if rootIdx >= 0 {
		parts[rootIdx].tree = t
		return parts, nil
	}
	// Without a root partition, nothing but directories may be left over.
	var stray string
	t.Walk(func(p string, d tree.Dirent) error {
		if stray == "" && d.Inode.Kind != tree.Dir {
			stray = p
		}
		return nil
	})
	if stray != "" {
		return nil, &spec.Error{File: s.File, Line: s.Disk.Line, Msg: fmt.Sprintf("no partition is mounted at / but the layers have %s, which no partition's mount covers", stray)}
	}
	return parts, nil
}

// keyLine is the line of a partition's key, else of the partition.
func keyLine(p *spec.Partition, key string) int {
	if l, ok := p.KeyLines[key]; ok {
		return l
	}
	return p.Line
}

// plan sizes auto partitions from their content and places all of them.
func plan(s *spec.Spec, parts []*part, seed string) (*disk.Layout, error) {
	table := s.Disk.TableValue
	autoDisk := s.Disk.SizeBytes == 0
	specs := make([]disk.PartitionSpec, len(parts))
	var fixed []int64
	for i, p := range parts {
		sp := p.spec
		ps := disk.PartitionSpec{Name: sp.Name, Type: sp.Type, Size: p.size, Bootable: sp.Bootable || p.bootable,
			GUID: partitionGUID(sp, seed)}
		if p.guid != nil {
			ps.GUID = *p.guid
		}
		if sp.Verity || sp.HashFor != "" {
			// Sized by sealPartitions.
		} else if sp.Auto || (sp.Rest && autoDisk) {
			if p.tree == nil {
				return nil, &spec.Error{File: s.File, Line: keyLine(sp, "size"), Msg: fmt.Sprintf("partition %s: size rest on a disk of size auto needs a filesystem to measure", sp.Name)}
			}
			if p.fs == nil {
				return nil, fmt.Errorf("BUG: partition %s has a tree but no filesystem writer", sp.Name)
			}
			n, err := p.fs.MinSize(p.tree)
			if err != nil {
				return nil, fmt.Errorf("partition %s: sizing: %w", sp.Name, err)
			}
			ps.Size = roundUp(n+s.Disk.FreeBytes, mib)
		} else if sp.Rest {
			ps.Rest = true
		}
		specs[i] = ps
		if !ps.Rest {
			fixed = append(fixed, ps.Size)
		}
	}
	po := disk.PlanOptions{Arch: s.Disk.Arch, DiskSignature: diskSignature(s, seed)}
	if s.Disk.GUIDValue != nil {
		po.DiskGUID = *s.Disk.GUIDValue
	} else {
		po.DiskGUID = repro.Derive(seed, "disk/guid")
	}
	size := s.Disk.SizeBytes
	if autoDisk {
		var err error
		if size, err = disk.MinDiskSize(table, fixed, po); err != nil {
			return nil, &spec.Error{File: s.File, Line: s.Disk.Line, Msg: "disk: " + err.Error()}
		}
	}
	l, err := disk.Plan(table, size, specs, po)
	if err != nil {
		return nil, &spec.Error{File: s.File, Line: s.Disk.Line, Msg: "disk: " + err.Error()}
	}
	return l, nil
}

// partitionGUID is a partition's unique GPT GUID: the spec's, or derived.
func partitionGUID(sp *spec.Partition, seed string) repro.UUID {
	if sp.GUIDValue != nil {
		return *sp.GUIDValue
	}
	return repro.Derive(seed, "partition/"+sp.Name+"/guid")
}

// diskSignature is the MBR disk signature: the spec's, or derived.
func diskSignature(s *spec.Spec, seed string) uint32 {
	if s.Disk.SignatureValue != nil {
		return *s.Disk.SignatureValue
	}
	return repro.Derive32(seed, "disk/signature")
}

// partUUID is what Linux calls the partition (root=PARTUUID=...): the GPT
// partition GUID, or on MBR the disk signature and the partition number.
func partUUID(s *spec.Spec, idx int, seed string) string {
	if s.Disk.TableValue == disk.MBR {
		return fmt.Sprintf("%08x-%02x", diskSignature(s, seed), idx+1)
	}
	return partitionGUID(&s.Disk.Partitions[idx], seed).String()
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// ctxWriterAt fails writes once the build is cancelled, so that a long
// filesystem write stops promptly on SIGINT and the output is removed.
type ctxWriterAt struct {
	ctx     context.Context
	w       io.WriterAt
	written *atomic.Int64 // nil, or counts bytes written
}

func (c ctxWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.WriteAt(p, off)
	if c.written != nil {
		c.written.Add(int64(n))
	}
	return n, err
}

// ctxRW is ctxWriterAt for an image that is also read back.
type ctxRW struct {
	ctx context.Context
	rw  imgfmt.Output
}

func (c ctxRW) ReadAt(p []byte, off int64) (int, error) { return c.rw.ReadAt(p, off) }
func (c ctxRW) WriteAt(p []byte, off int64) (int, error) {
	return ctxWriterAt{c.ctx, c.rw, nil}.WriteAt(p, off)
}

// plainDir reports whether p is a directory layer: a directory, not an
// OCI image layout.
func plainDir(p string) bool {
	fi, err := os.Stat(p)
	if err != nil || !fi.IsDir() {
		return false
	}
	_, err = os.Lstat(filepath.Join(p, "oci-layout"))
	return err != nil
}
