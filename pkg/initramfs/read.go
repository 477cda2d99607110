package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/internal/xz"
	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// readContent reads a regular file of the tree, at most limit bytes.
func readContent(n *tree.Inode, limit int64) ([]byte, error) {
	if n.Size > limit {
		return nil, fmt.Errorf("%d bytes: larger than %d", n.Size, limit)
	}
	if n.Content == nil {
		if n.Size != 0 {
			return nil, fmt.Errorf("BUG: file of %d bytes has no content", n.Size)
		}
		return nil, nil
	}
	rc, err := n.Content.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, n.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n.Size {
		return nil, fmt.Errorf("content is %d bytes, the tree says %d", len(b), n.Size)
	}
	return b, nil
}

// readModule reads a module file and decompresses it (comp "xz", "zst",
// "gz" or "" for none), at most maxModuleSize bytes either way.
func readModule(n *tree.Inode, comp string) ([]byte, error) {
	if n.Kind != tree.Regular {
		return nil, fmt.Errorf("a %v, not a file", n.Kind)
	}
	if comp == "" {
		return readContent(n, maxModuleSize)
	}
	if n.Size > maxModuleSize || n.Content == nil {
		return nil, fmt.Errorf("%d bytes: not a %s stream of at most %d bytes", n.Size, comp, maxModuleSize)
	}
	r, release, err := moduleDecoder(n, comp)
	if err != nil {
		return nil, err
	}
	defer release()
	b, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", comp, err)
	}
	if len(b) > maxModuleSize {
		return nil, fmt.Errorf("%s: decompresses to more than %d bytes", comp, maxModuleSize)
	}
	if len(b) == 0 {
		return nil, errors.New(comp + ": empty")
	}
	return b, nil
}

// moduleDecoder returns the decompressed stream of a module file and a
// function releasing it.
func moduleDecoder(n *tree.Inode, comp string) (io.Reader, func(), error) {
	if comp == "xz" {
		// internal/xz, as for xz layers: it refuses a dictionary over
		// xz.MaxDict before allocating anything, and needs the file whole
		// (its index): a module, at most maxModuleSize, is read first.
		zb, err := readContent(n, maxModuleSize)
		if err != nil {
			return nil, nil, err
		}
		xr, err := xz.NewStreamReader(bytes.NewReader(zb), 0, int64(len(zb)))
		if err != nil {
			return nil, nil, err
		}
		return xr, func() { xr.Close() }, nil
	}
	rc, err := n.Content.Open()
	if err != nil {
		return nil, nil, err
	}
	switch comp {
	case "zst":
		zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleSize))
		if err != nil {
			rc.Close()
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, func() { zr.Close(); rc.Close() }, nil
	case "gz":
		gr, err := gzip.NewReader(rc)
		if err != nil {
			rc.Close()
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return gr, func() { gr.Close(); rc.Close() }, nil
	}
	rc.Close()
	return nil, nil, fmt.Errorf("BUG: unknown module compression %q", comp)
}
