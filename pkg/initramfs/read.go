package initramfs

import (
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
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
	rc, err := n.Content.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r io.Reader
	switch comp {
	case "xz":
		xr, err := xz.NewReader(rc)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		r = xr
	case "zst":
		zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleSize))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	case "gz":
		gr, err := gzip.NewReader(rc)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gr.Close()
		r = gr
	default:
		return nil, fmt.Errorf("BUG: unknown module compression %q", comp)
	}
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
