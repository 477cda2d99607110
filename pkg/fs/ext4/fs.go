package ext4

import (
	"errors"
	"io"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/tree"
)

// New is the fs.New of ext4: the label is p.Label, else the first 16
// bytes of p.Name; the UUID, htree hash seed and journal UUID are
// p.UUID("fs-uuid"), p.UUID("hash-seed") and p.UUID("journal-uuid").
func New(p fs.Params) (fs.Filesystem, error) {
	label := p.LabelOr(16)
	if p.UUID == nil {
		return nil, errors.New("BUG: ext4: no UUID source")
	}
	return filesystem{Options{
		Label:       label,
		UUID:        repro.UUID(p.UUID("fs-uuid")),
		HashSeed:    repro.UUID(p.UUID("hash-seed")),
		JournalUUID: repro.UUID(p.UUID("journal-uuid")),
		Epoch:       p.Epoch,
	}}, nil
}

// filesystem is ext4 behind fs.Filesystem.
type filesystem struct{ o Options }

func (f filesystem) MinSize(t *tree.Tree) (int64, error) { return MinSize(t, f.o) }

func (f filesystem) Write(w io.WriterAt, r fs.Region, t *tree.Tree) (*fs.Report, error) {
	if len(r.Locate) > 0 {
		return nil, errors.New("ext4: reporting file extents is not implemented")
	}
	if err := Write(w, r.Size, t, f.o); err != nil {
		return nil, err
	}
	return &fs.Report{UUID: f.o.UUID.String(), Label: f.o.Label}, nil
}
