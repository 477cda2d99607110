package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time" // repro-ok: timings of the summary, never image bytes

	"github.com/kiln-build/kiln/pkg/build"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/spec"
)

// buildSummary is what `kiln build --json` prints: enough to record in a
// pipeline what went in and what came out.
type buildSummary struct {
	Kiln   kilnSummary   `json:"kiln"`
	Spec   specSummary   `json:"spec"`
	Epoch  int64         `json:"epoch"`
	Output outputSummary `json:"output"`
	Disk   diskSummary   `json:"disk"`
	// Platform is the OS/ARCH[/VARIANT] whose image is taken from
	// multi-platform OCI layers: the architecture's, or --platform's.
	Platform   string        `json:"platform"`
	Partitions []partSummary `json:"partitions"`
	// Verity are the sealed partitions (verity: true): root_hash is what
	// the kernel command line's roothash= carries.
	Verity  []build.VerityResult `json:"verity,omitempty"`
	Inputs  []inputSummary       `json:"inputs"`
	Layers  []layerSummary       `json:"layers"`
	Cache   string               `json:"cache"`
	Timings timingsSummary       `json:"timings"`
}

// kilnSummary is what, besides the inputs, determines the output bytes:
// kiln's own version and source revision, the kiln-init it put into a
// generated initramfs, and the versions of the encoders whose output
// reaches the image.
type kilnSummary struct {
	Version     string `json:"version"`
	Go          string `json:"go"`
	VCSRevision string `json:"vcs_revision,omitempty"`
	VCSModified bool   `json:"vcs_modified,omitempty"`
	// Init is the kiln-init binary of a generated initramfs (boot.initrd:
	// kiln); absent when the build generated none.
	Init     *initSummary     `json:"kiln_init,omitempty"`
	Encoders []encoderSummary `json:"encoders"`
}

type initSummary struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// encoderSummary names the module that implements an encoder and its
// version as built into this kiln.
type encoderSummary struct {
	Name    string `json:"name"`
	Use     string `json:"use"`
	Module  string `json:"module"`
	Version string `json:"version"`
}

// encoders are the compressors whose output becomes image bytes; a new
// version of one may change those bytes.
var encoders = []encoderSummary{
	{Name: "zstd", Use: "qcow2 zstd clusters; initramfs compression zstd", Module: "github.com/klauspost/compress"},
	{Name: "deflate", Use: "qcow2 zlib clusters, VMDK grains; initramfs compression gzip", Module: "github.com/klauspost/compress"},
	{Name: "xz", Use: "initramfs compression xz (the default)", Module: "github.com/ulikunitz/xz"},
}

// kilnInfo describes this kiln binary, from the version the Makefile
// stamps and the module and VCS information Go embeds.
func kilnInfo() kilnSummary {
	k := kilnSummary{Version: version, Go: runtime.Version(), VCSRevision: revision}
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version + " (replaces " + d.Version + ")"
			}
			deps[d.Path] = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if k.VCSRevision == "" {
					k.VCSRevision = s.Value
				}
			case "vcs.modified":
				k.VCSModified = s.Value == "true"
			}
		}
	}
	for _, e := range encoders {
		e.Version = deps[e.Module]
		if e.Version == "" {
			e.Version = "unknown"
		}
		k.Encoders = append(k.Encoders, e)
	}
	return k
}

type specSummary struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // of the file's bytes
	Digest string `json:"digest"` // of its canonical form (the ID seed unless the spec gives one)
}

type outputSummary struct {
	Path        string `json:"path"`
	Format      string `json:"format"`
	Compression string `json:"compression,omitempty"`
	VirtualSize int64  `json:"virtual_size"`
	FileSize    int64  `json:"file_size"`
	SHA256      string `json:"sha256"`
}

type diskSummary struct {
	Arch      string `json:"arch"` // the target architecture (disk.arch or --arch), as kiln names it: x86-64, arm64, ...
	Table     string `json:"table"`
	GUID      string `json:"guid,omitempty"`
	Signature string `json:"signature,omitempty"`
	Size      int64  `json:"size"`
}

type partSummary struct {
	Number     int    `json:"number"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	TypeGUID   string `json:"type_guid,omitempty"`
	MBRType    string `json:"mbr_type,omitempty"`
	PartUUID   string `json:"partuuid"`
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	Bootable   bool   `json:"bootable,omitempty"`
	Filesystem string `json:"filesystem,omitempty"`
	FSUUID     string `json:"fs_uuid,omitempty"`
	Label      string `json:"label,omitempty"`
	Files      int64  `json:"files,omitempty"`
	DataBytes  int64  `json:"data_bytes,omitempty"`
}

// inputSummary is a layer as the spec names it: a file's sha256, or a
// directory (which has none).
type inputSummary struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // file, dir
	SHA256 string `json:"sha256,omitempty"`
}

// layerSummary is one layer merged (a file may hold several: an image).
type layerSummary struct {
	Input   string `json:"input"`
	Name    string `json:"name"`
	Format  string `json:"format"`
	Digest  string `json:"digest,omitempty"`
	DiffID  string `json:"diff_id,omitempty"`
	Cache   string `json:"cache,omitempty"`
	Note    string `json:"note,omitempty"`
	Entries int64  `json:"entries"`
	Bytes   int64  `json:"bytes"`
}

type timingsSummary struct {
	Layers float64 `json:"layers_s"`
	Plan   float64 `json:"plan_s"`
	Write  float64 `json:"write_s"`
	Commit float64 `json:"commit_s"`
	Build  float64 `json:"build_s"`
	Hash   float64 `json:"hash_s"`
}

// summarize describes a finished build. It hashes the spec, the layer
// files and the output.
func summarize(specFile string, s *spec.Spec, res *build.Result, plat layer.Platform, cacheDir string, start time.Time) (*buildSummary, error) {
	buildTime := time.Since(start) // repro-ok: timings
	hashStart := time.Now()        // repro-ok: timings
	sum := &buildSummary{Kiln: kilnInfo(), Epoch: res.Epoch, Cache: cacheDir, Verity: res.Verity}
	if res.Init != nil {
		sum.Kiln.Init = &initSummary{Path: res.Init.Path, SHA256: res.Init.SHA256}
	}
	if sum.Cache == "" {
		sum.Cache = "off"
	}
	var err error
	sum.Spec = specSummary{Path: specFile, Digest: "sha256:" + s.Digest()}
	if sum.Spec.SHA256, err = fileSHA256(specFile); err != nil {
		return nil, err
	}

	seen := map[string]bool{}
	for _, sl := range s.Layers {
		if seen[sl.Path] {
			continue
		}
		seen[sl.Path] = true
		in := inputSummary{Path: sl.Path, Kind: "dir"}
		p := s.Resolve(sl.Path)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			in.Kind = "file"
			if in.SHA256, err = fileSHA256(p); err != nil {
				return nil, err
			}
		}
		sum.Inputs = append(sum.Inputs, in)
	}
	for _, l := range res.Layers {
		sum.Layers = append(sum.Layers, layerSummary{
			Input: l.Spec, Name: l.Name, Format: l.Format, Digest: l.Digest, DiffID: l.DiffID,
			Cache: l.Cache, Note: l.Note, Entries: l.Entries, Bytes: l.Bytes,
		})
	}

	lay := res.Layout
	sum.Disk = diskSummary{Table: lay.Table.String(), Size: lay.Size}
	if sum.Disk.Arch, err = disk.NormalizeArch(s.Disk.Arch); err != nil {
		return nil, err
	}
	if plat == (layer.Platform{}) {
		if plat, err = layer.PlatformForArch(sum.Disk.Arch); err != nil {
			return nil, err
		}
	}
	sum.Platform = plat.String()
	if lay.Table == disk.GPT {
		sum.Disk.GUID = lay.DiskGUID.String()
	} else {
		sum.Disk.Signature = fmt.Sprintf("%08x", lay.DiskSignature)
	}
	for i, p := range lay.Partitions {
		ps := partSummary{Number: p.Number, Name: p.Name, Type: typeName(p.Type()), PartUUID: lay.PartUUID(p),
			Start: p.Start, Size: p.Size, Bootable: p.Bootable}
		if lay.Table == disk.GPT {
			ps.TypeGUID = p.TypeGUID.String()
		} else {
			ps.MBRType = fmt.Sprintf("0x%02x", p.MBRType)
		}
		if i < len(res.Filesystems) && res.Filesystems[i] != nil {
			f := res.Filesystems[i]
			ps.Filesystem, ps.FSUUID, ps.Label, ps.Files, ps.DataBytes = f.Type, f.UUID, f.Label, f.Files, f.Bytes
		}
		sum.Partitions = append(sum.Partitions, ps)
	}

	sum.Output = outputSummary{Path: res.Output, Format: s.Output.Format, VirtualSize: lay.Size}
	if s.Output.Format == "qcow2" {
		sum.Output.Compression = s.Output.Compression
		if sum.Output.Compression == "" {
			sum.Output.Compression = "none"
		}
	}
	fi, err := os.Stat(res.Output)
	if err != nil {
		return nil, err
	}
	sum.Output.FileSize = fi.Size()
	if sum.Output.SHA256, err = fileSHA256(res.Output); err != nil {
		return nil, err
	}

	t := res.Timings
	sum.Timings = timingsSummary{
		Layers: t.Layers.Seconds(), Plan: t.Boot.Seconds(), Write: t.Write.Seconds(), Commit: t.Commit.Seconds(),
		Build: buildTime.Seconds(), Hash: time.Since(hashStart).Seconds(), // repro-ok: timings
	}
	return sum, nil
}

// fileSHA256 returns "sha256:HEX" of a file's bytes.
func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
