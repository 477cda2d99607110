package build

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Default identifiers are derived from the spec and the content digests of
// its layers (spec.IDSeed): this file gathers those digests, one for each
// layer of the spec, once it is merged.
//
//   - A tar layer, plain or compressed, of a file, a .deb or an image: the
//     sha256 of its uncompressed tar stream, its diff_id (the walk finds it,
//     layer.Options.DiffID), so that recompressing a layer, or moving it,
//     does not change identity; an image's layers, in order.
//   - A directory layer: the sha256 of its entries as the walk gives them
//     (after the mode policy), contents included, mtimes not: time is not
//     identity.

// layerIDs gathers the content digests of the spec's layers.
type layerIDs struct {
	parts [][]string // by spec layer: a digest per layer it opened to
}

func newLayerIDs(n int) *layerIDs { return &layerIDs{parts: make([][]string, n)} }

// add records the digest of l, the layer of spec layer i just merged (dl:
// its hashing wrapper if it is a directory layer).
func (ids *layerIDs) add(i int, l layer.Layer, dl *digestLayer) error {
	var d string
	if dl != nil {
		d = "dir:" + dl.sum()
	} else if info := layer.Describe(l); info.DiffID != "" {
		d = "tar:" + info.DiffID
	} else {
		return fmt.Errorf("BUG: layer %s has no content digest after its walk", l.Name())
	}
	ids.parts[i] = append(ids.parts[i], d)
	return nil
}

func (ids *layerIDs) digests() []string {
	out := make([]string, len(ids.parts))
	for i, p := range ids.parts {
		out[i] = strings.Join(p, ",")
	}
	return out
}

// digestLayer is a directory layer whose walk also hashes its entries.
type digestLayer struct {
	layer.Layer
	h hash.Hash
}

func newDigestLayer(l layer.Layer) *digestLayer {
	return &digestLayer{Layer: l, h: sha256.New()}
}

func (d *digestLayer) Walk(fn func(e *tree.Entry) error) error {
	d.h.Reset()
	buf := make([]byte, 64<<10)
	return d.Layer.Walk(func(e *tree.Entry) error {
		if err := d.add(e, buf); err != nil {
			return err
		}
		return fn(e)
	})
}

// add hashes one entry: every field the image keeps but the mtime, then
// the content of a regular file. Strings are length-prefixed.
func (d *digestLayer) add(e *tree.Entry, buf []byte) error {
	var b []byte
	str := func(s string) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(e.Path)
	b = append(b, byte(e.Type))
	b = binary.BigEndian.AppendUint32(b, e.Mode)
	b = binary.BigEndian.AppendUint32(b, e.UID)
	b = binary.BigEndian.AppendUint32(b, e.GID)
	str(e.Linkname)
	b = binary.BigEndian.AppendUint32(b, e.Major)
	b = binary.BigEndian.AppendUint32(b, e.Minor)
	b = binary.BigEndian.AppendUint64(b, uint64(len(e.Xattrs)))
	for _, x := range e.Xattrs {
		str(x.Name)
		str(string(x.Value))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.Size))
	d.h.Write(b)
	if e.Type != tree.TypeReg || e.Size == 0 || e.Content == nil {
		return nil
	}
	rc, err := e.Content.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.CopyBuffer(d.h, io.LimitReader(rc, e.Size), buf)
	if err != nil {
		return err
	}
	if n != e.Size {
		return &layer.Error{Layer: d.Name(), Entry: e.Path, Err: fmt.Errorf("content is %d bytes, the walk said %d", n, e.Size)}
	}
	return nil
}

func (d *digestLayer) sum() string { return "sha256:" + hex.EncodeToString(d.h.Sum(nil)) }
