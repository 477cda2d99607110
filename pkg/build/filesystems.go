package build

import (
	"fmt"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/fs/all"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
)

// filesystems are the filesystem writers, by the spec's filesystem: value
// (spec.Filesystems, but "none"): those of pkg/fs/all, where a filesystem
// is registered.
var filesystems = all.Writers()

// filesystemParams is a partition's filesystem identity: every ID from the
// seed unless the spec gives it (parsed by pkg/spec), derived as
// partition/NAME/PURPOSE.
func filesystemParams(p *spec.Partition, seed string, epoch int64) fs.Params {
	given := map[string]*repro.UUID{
		"fs-uuid":      p.UUIDValue,
		"hash-seed":    p.HashSeedValue,
		"journal-uuid": p.JournalUUIDValue,
	}
	given32 := map[string]*uint32{
		"volume-id": p.VolumeIDValue,
	}
	return fs.Params{
		Name:  p.Name,
		Label: p.Label,
		Epoch: epoch,
		UUID: func(purpose string) [16]byte {
			if v := given[purpose]; v != nil {
				return *v
			}
			return repro.Derive(seed, "partition/"+p.Name+"/"+purpose)
		},
		ID32: func(purpose string) uint32 {
			if v := given32[purpose]; v != nil {
				return *v
			}
			return repro.Derive32(seed, "partition/"+p.Name+"/"+purpose)
		},
		Compression: p.Compression,
	}
}

// newFilesystem makes partition p's filesystem writer (nil for none).
func newFilesystem(p *spec.Partition, seed string, epoch int64) (fs.Filesystem, error) {
	if p.Filesystem == "none" {
		return nil, nil
	}
	mk, err := filesystems.Lookup(p.Filesystem)
	if err != nil {
		return nil, fmt.Errorf("BUG: partition %s: %w, yet the spec passed validation", p.Name, err)
	}
	return mk(filesystemParams(p, seed, epoch))
}
