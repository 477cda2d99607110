package ext4

import (
	"bytes"
	"fmt"
	"io"
)

var zeroBlock [blockSize]byte

func isZero(b []byte) bool {
	for len(b) >= blockSize {
		if !bytes.Equal(b[:blockSize], zeroBlock[:]) {
			return false
		}
		b = b[blockSize:]
	}
	return bytes.Equal(b, zeroBlock[:len(b)])
}

// blockWriter writes whole blocks at block addresses relative to the
// filesystem window, skipping all-zero blocks and merging blocks that
// follow each other on disk into large WriteAt calls. An async one hands
// full buffers to a goroutine, so that writing overlaps with reading and
// encoding; close waits for it. The goroutine's first write error stops
// the writer: the next put or flush returns it, so that Write stops at
// the first failed write instead of reading the rest of its input.
type blockWriter struct {
	w     io.WriterAt
	buf   []byte // pending bytes, len is a multiple of blockSize
	start uint64 // block of buf[0]
	limit uint64 // blocks in the filesystem: writes past it are a BUG

	async  bool
	jobs   chan writeJob
	free   chan []byte
	done   chan struct{}
	failed chan struct{} // closed by the goroutine at its first error
	err    error         // the goroutine's first error, read after failed or done
	nbufs  int
}

type writeJob struct {
	blk  uint64
	data []byte
}

const (
	writeBufSize   = 4 << 20
	asyncWriteBufs = 3
)

func newBlockWriter(w io.WriterAt, limit uint64, async bool) *blockWriter {
	bw := &blockWriter{w: w, buf: make([]byte, 0, writeBufSize), limit: limit, async: async}
	if async {
		bw.nbufs = 1
		bw.jobs = make(chan writeJob, asyncWriteBufs)
		bw.free = make(chan []byte, asyncWriteBufs)
		bw.done = make(chan struct{})
		bw.failed = make(chan struct{})
		go func() {
			defer close(bw.done)
			for j := range bw.jobs {
				if bw.err == nil {
					if err := bw.writeAt(j.blk, j.data); err != nil {
						bw.err = err
						close(bw.failed)
					}
				}
				bw.free <- j.data[:0] // never blocks: free holds every buffer
			}
		}()
	}
	return bw
}

// failure returns the goroutine's write error, if it has had one.
func (bw *blockWriter) failure() error {
	if !bw.async {
		return nil
	}
	select {
	case <-bw.failed:
		return bw.err
	default:
		return nil
	}
}

// close flushes and, for an async writer, waits for all writes; it must
// be called once, also on error paths, to end the goroutine.
func (bw *blockWriter) close() error {
	err := bw.failure()
	if err == nil {
		err = bw.flush()
	}
	if bw.async {
		close(bw.jobs)
		<-bw.done
		if err == nil {
			err = bw.err
		}
	}
	return err
}

// write writes data (a multiple of blockSize) at block blk.
func (bw *blockWriter) write(blk uint64, data []byte) error {
	if len(data)%blockSize != 0 {
		return fmt.Errorf("BUG: ext4: write of %d bytes is not whole blocks", len(data))
	}
	if blk+uint64(len(data)/blockSize) > bw.limit {
		return fmt.Errorf("BUG: ext4: write of blocks %d+%d past the end (%d)", blk, len(data)/blockSize, bw.limit)
	}
	for len(data) > 0 {
		if isZero(data[:blockSize]) {
			data = data[blockSize:]
			blk++
			continue
		}
		// Take the run of non-zero blocks.
		n := blockSize
		for n < len(data) && !isZero(data[n:n+blockSize]) {
			n += blockSize
		}
		if err := bw.put(blk, data[:n]); err != nil {
			return err
		}
		blk += uint64(n / blockSize)
		data = data[n:]
	}
	return nil
}

// put queues non-zero blocks.
func (bw *blockWriter) put(blk uint64, data []byte) error {
	if err := bw.failure(); err != nil {
		return err
	}
	if len(bw.buf) > 0 && bw.start+uint64(len(bw.buf)/blockSize) != blk {
		if err := bw.flush(); err != nil {
			return err
		}
	}
	if len(bw.buf) == 0 {
		bw.start = blk
		if !bw.async && len(data) >= writeBufSize/2 { // large: no copy
			return bw.writeAt(blk, data)
		}
	}
	for len(data) > 0 {
		n := min(len(data), cap(bw.buf)-len(bw.buf))
		bw.buf = append(bw.buf, data[:n]...)
		data = data[n:]
		blk += uint64(n / blockSize)
		if len(bw.buf) == cap(bw.buf) {
			if err := bw.flush(); err != nil {
				return err
			}
			bw.start = blk
		}
	}
	return nil
}

func (bw *blockWriter) flush() error {
	if len(bw.buf) == 0 {
		return nil
	}
	if !bw.async {
		err := bw.writeAt(bw.start, bw.buf)
		bw.buf = bw.buf[:0]
		return err
	}
	if err := bw.failure(); err != nil {
		return err
	}
	bw.jobs <- writeJob{bw.start, bw.buf}
	if bw.nbufs < asyncWriteBufs {
		bw.nbufs++
		bw.buf = make([]byte, 0, writeBufSize)
		return nil
	}
	bw.buf = <-bw.free
	return bw.failure()
}

func (bw *blockWriter) writeAt(blk uint64, data []byte) error {
	if _, err := bw.w.WriteAt(data, int64(blk)<<blockShift); err != nil {
		return fmt.Errorf("ext4: write at block %d: %w", blk, err)
	}
	return nil
}
