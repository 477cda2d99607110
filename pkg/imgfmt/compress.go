package imgfmt

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// The compressors are deterministic: for a given input and a given build
// of kiln (the module version of klauspost/compress is pinned in go.mod)
// they give the same bytes on every run, whatever the number of workers,
// because every unit is compressed on its own, with no shared history.

// qcow2DeflateWindow is the window qemu inflates qcow2 clusters with
// (inflateInit2 with windowBits -12): a match may reach at most 4 KiB back.
const qcow2DeflateWindow = 4096

// rawDeflater compresses qcow2 clusters as qemu writes them with zlib
// compression: a raw deflate stream (no zlib header or checksum) whose
// matches stay within qcow2DeflateWindow.
type rawDeflater struct {
	buf bytes.Buffer
	w   *flate.Writer
}

func newRawDeflater() *rawDeflater {
	d := &rawDeflater{}
	w, err := flate.NewWriterWindow(&d.buf, qcow2DeflateWindow)
	if err != nil {
		panic(fmt.Sprintf("BUG: deflate window %d: %v", qcow2DeflateWindow, err))
	}
	d.w = w
	return d
}

// compress appends the compressed src to dst.
func (d *rawDeflater) compress(dst, src []byte) ([]byte, error) {
	d.buf.Reset()
	d.w.Reset(&d.buf)
	if _, err := d.w.Write(src); err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	if err := d.w.Close(); err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	return append(dst, d.buf.Bytes()...), nil
}

// zlibDeflater compresses VMDK grains: a zlib stream (RFC 1950), which is
// what qemu's and VMware's readers uncompress().
type zlibDeflater struct {
	buf bytes.Buffer
	w   *zlib.Writer
}

func newZlibDeflater() *zlibDeflater {
	d := &zlibDeflater{}
	w, err := zlib.NewWriterLevel(&d.buf, zlib.DefaultCompression)
	if err != nil {
		panic(fmt.Sprintf("BUG: zlib level: %v", err))
	}
	d.w = w
	return d
}

func (d *zlibDeflater) compress(dst, src []byte) ([]byte, error) {
	d.buf.Reset()
	d.w.Reset(&d.buf)
	if _, err := d.w.Write(src); err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if err := d.w.Close(); err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	return append(dst, d.buf.Bytes()...), nil
}

// newZstdEncoder makes the zstd encoder for qcow2 clusters: one frame per
// cluster, at zstd's default level (qemu's too), without a checksum (qemu
// writes none). EncodeAll is safe for concurrent use; each call runs on
// one goroutine and its output does not depend on the others.
func newZstdEncoder(concurrency int) *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(false))
	if err != nil {
		panic(fmt.Sprintf("BUG: zstd encoder: %v", err))
	}
	return e
}

// Decompressors for the readers.

// inflateRaw decompresses a qcow2 zlib cluster: exactly len(dst) bytes
// from a raw deflate stream that may be followed by unrelated bytes (qcow2
// records compressed sizes in whole sectors).
func inflateRaw(dst, src []byte) error {
	r := flate.NewReader(bytes.NewReader(src))
	defer r.Close()
	if _, err := io.ReadFull(r, dst); err != nil {
		return fmt.Errorf("inflate: %w", err)
	}
	return nil
}

// zstdDecoder decompresses qcow2 zstd clusters. qemu's reader accepts one
// or more frames that together give exactly one cluster, followed by
// whatever is left of the last sector; a streaming decoder that stops
// after len(dst) bytes does the same.
type zstdDecoder struct{ d *zstd.Decoder }

// zstdMaxWindow bounds the window a compressed qcow2 cluster may ask for.
const zstdMaxWindow = 32 << 20

func newZstdDecoder() (*zstdDecoder, error) {
	// A frame's header says how large a window it needs: a hostile one
	// may claim the format's 512 MiB maximum. A qcow2 cluster is at most
	// 2 MiB, and what qemu and kiln write fits in 8 MiB; 32 MiB bounds
	// what one header can make the reader allocate.
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &zstdDecoder{d: d}, nil
}

func (z *zstdDecoder) decompress(dst, src []byte) error {
	if err := z.d.Reset(bytes.NewReader(src)); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if _, err := io.ReadFull(z.d, dst); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	return nil
}

func (z *zstdDecoder) close() { z.d.Close() }

// inflateZlib decompresses a VMDK grain (a zlib stream) into dst and
// returns how many bytes it gave, which may be fewer than len(dst).
func inflateZlib(dst, src []byte) (int, error) {
	r, err := zlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return 0, fmt.Errorf("zlib: %w", err)
	}
	defer r.Close()
	n, err := io.ReadFull(r, dst)
	if err != nil && err != io.ErrUnexpectedEOF {
		return n, fmt.Errorf("zlib: %w", err)
	}
	return n, nil
}
