package ext4

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/pkg/tree"
)

// failingWriterAt accepts ok bytes of writes, then fails every write.
type failingWriterAt struct {
	mu      sync.Mutex
	ok      int64
	written int64
}

var errDiskFull = errors.New("test: disk full")

func (w *failingWriterAt) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.written+int64(len(p)) > w.ok {
		return 0, errDiskFull
	}
	w.written += int64(len(p))
	return len(p), nil
}

// countingContent is size bytes of non-zero content, counting what is
// read of it into *read.
type countingContent struct {
	size int64
	read *atomic.Int64
}

func (c countingContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(&countingReader{left: c.size, read: c.read}), nil
}

type countingReader struct {
	left int64
	read *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.left))
	for i := range p[:n] {
		p[i] = byte(i%251) + 1
	}
	r.left -= int64(n)
	r.read.Add(int64(n))
	return n, nil
}

// TestWriteStopsAtFirstWriteError writes a tree of 256 MiB of content to
// a WriterAt that fails after some bytes: Write must return that error
// having read little more than it wrote (not the rest of the tree, as it
// did when the background writer's error surfaced only at close), and
// leave no goroutine behind (a failure on the first write, the journal's,
// returned without ending the background writer).
func TestWriteStopsAtFirstWriteError(t *testing.T) {
	for _, c := range []struct {
		ok, size int64
	}{
		{0, 512 << 20},
		{8 << 20, 512 << 20},
		{0, 128 << 30}, // a 1 GiB journal of 8 extents: its extent tree block is the first write
	} {
		t.Run(fmt.Sprintf("fail after %d of %d", c.ok, c.size), func(t *testing.T) {
			const files, fileSize = 32, 8 << 20
			var read atomic.Int64
			tr := tree.New(1700000000)
			for i := 0; i < files; i++ {
				tr.Root.SetChild(fmt.Sprintf("f%02d", i), &tree.Inode{Kind: tree.Regular, Mode: 0o644, Mtime: 1700000000,
					Size: fileSize, Content: countingContent{size: fileSize, read: &read}})
			}
			before := runtime.NumGoroutine()
			w := &failingWriterAt{ok: c.ok}
			err := Write(w, c.size, tr, testOptions())
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("Write: %v, want the writer's error", err)
			}
			// What may be read past the failure: the write buffers in
			// flight (asyncWriteBufs of writeBufSize) and the read buffer
			// (files this large are not read ahead).
			slack := int64(asyncWriteBufs*writeBufSize + 2*readBufSize)
			if got, limit := read.Load(), w.ok+slack; got > limit {
				t.Errorf("read %d bytes of content after a write failed at %d: more than %d, Write went on", got, w.ok, limit)
			}
			if after := waitGoroutines(before); after > before {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines before Write, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// waitGoroutines returns the number of goroutines once it is at most
// want, or after giving the scheduler a bounded number of chances to end
// the ones that are exiting.
func waitGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 1000 && n > want; i++ {
		runtime.Gosched()
		n = runtime.NumGoroutine()
	}
	return n
}
