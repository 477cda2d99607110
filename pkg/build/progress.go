package build

import "sync/atomic"

// Phase is the step a build is in.
type Phase int32

const (
	PhaseStart  Phase = iota
	PhaseLayers       // reading and merging layers
	PhasePlan         // boot files, sizes, partition plan
	PhaseWrite        // partition table and filesystems
	PhaseCommit       // boot patches and the image format's final pass (compression)
	PhaseDone
)

func (p Phase) String() string {
	return [...]string{"starting", "layers", "planning", "writing", "finishing", "done"}[p]
}

// Progress is what a build has done so far. The build updates it as it
// goes; another goroutine may read it at any time (for a progress line).
type Progress struct {
	phase atomic.Int32

	LayersTotal, LayersDone atomic.Int64 // layers to merge, and merged
	Entries, EntryBytes     atomic.Int64 // layer entries walked, and their file bytes
	WriteTotal              atomic.Int64 // bytes of file data the filesystems will hold
	Written                 atomic.Int64 // bytes written to the image so far (data and metadata)
}

// Phase returns the step the build is in.
func (p *Progress) Phase() Phase { return Phase(p.phase.Load()) }

func (p *Progress) setPhase(ph Phase) { p.phase.Store(int32(ph)) }
