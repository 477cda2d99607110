// Package all is the list of the filesystems kiln writes and reads: the
// one place a filesystem is registered. pkg/build takes its writers from
// here (by the spec's filesystem: value), and kiln inspect and kiln diff
// recognise and read partitions through it.
//
// It imports pkg/fs and the filesystem packages, and nothing else.
package all

import (
	"errors"
	"io"

	"github.com/kiln-build/kiln/pkg/fs"
	"github.com/kiln-build/kiln/pkg/fs/erofs"
	"github.com/kiln-build/kiln/pkg/fs/ext4"
	"github.com/kiln-build/kiln/pkg/fs/fat"
)

// Kinds are kiln's filesystems, in the order Probe tries them. Adding a
// filesystem is its package under pkg/fs and one line here.
var Kinds = []fs.Kind{
	ext4.Kind,
	fat.Kind,
	erofs.Kind,
}

// Writers are the Kinds that have a writer, by the spec's filesystem:
// value.
func Writers() fs.Registry {
	r := fs.Registry{}
	for _, k := range Kinds {
		if k.New != nil {
			r[k.Name] = k.New
		}
	}
	return r
}

// ErrUnknown is Probe's error for a partition no Kind recognises.
var ErrUnknown = errors.New("no filesystem kiln reads")

// Probe recognises the filesystem on r, a partition of size bytes: the
// first of Kinds whose Probe accepts it.
func Probe(r io.ReaderAt, size int64) (fs.Kind, *fs.Info, error) {
	for _, k := range Kinds {
		if info, err := k.Probe(r, size); err == nil {
			return k, info, nil
		}
	}
	return fs.Kind{}, nil, ErrUnknown
}
