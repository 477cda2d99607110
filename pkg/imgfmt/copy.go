package imgfmt

import (
	"context"
	"fmt"
	"io"
)

// copyChunk is how much Copy reads and writes at a time.
const copyChunk = 1 << 20

// Copy writes the virtual disk of src to dst, visiting only the ranges
// src says are allocated: unallocated ranges, and chunks that read as all
// zeros, are never written, so they stay holes in a raw or fixed VHD
// output and unallocated in the others. A 16 TiB image with one cluster
// written costs one cluster, not 16 TiB of reads. It returns ctx's error
// (wrapped) once ctx is done.
func Copy(ctx context.Context, dst io.WriterAt, src Image) error {
	buf := make([]byte, copyChunk)
	return src.Extents(ctx, func(e Extent) error {
		for off := e.Off; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Chunks aligned on the disk, so that the writers see whole
			// clusters and grains where they can.
			n := min(copyChunk-off%copyChunk, e.End()-off)
			p := buf[:n]
			if _, err := src.ReadAt(p, off); err != nil && err != io.EOF {
				return fmt.Errorf("reading the %s image at %d: %w", src.Format(), off, err)
			}
			if !isZero(p) {
				if _, err := dst.WriteAt(p, off); err != nil {
					return fmt.Errorf("writing at %d: %w", off, err)
				}
			}
			off += n
		}
		return nil
	})
}
