package xz

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// NewReader decodes the xz file held in the region [off, off+size) of ra:
// every stream (concatenated streams and stream padding allowed), every
// block, with each block's check (none, CRC32, CRC64, SHA-256) and the
// index verified. Blocks are decoded by up to workers goroutines ahead of
// the reader (workers <= 0 means runtime.GOMAXPROCS(0)); output is in
// order.
//
// NewReader reads and checks the file's whole structure (footers, indexes,
// block headers) before it returns, so a truncated file, an unsupported
// filter or a dictionary larger than MaxDict fail here; errors in the
// compressed data come from Read. The workers call ra.ReadAt in parallel.
// Close stops the workers and waits for them; Read and Close must not be
// called concurrently.
func NewReader(ra io.ReaderAt, off, size int64, workers int) (io.ReadCloser, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := &file{ra: ra, off: off, size: size}
	streams, err := f.streams()
	if err != nil {
		return nil, err
	}
	var blocks int64
	for _, s := range streams {
		blocks += s.blocks
	}
	return &reader{f: f, streams: streams, workers: workers, parallel: blocks > 1}, nil
}

// NewStreamReader is NewReader decoding every block on the reader's own
// goroutine, as it is read, whole blocks never ahead: reading the first
// bytes of a file costs about those bytes, whatever its blocks' size.
func NewStreamReader(ra io.ReaderAt, off, size int64) (io.ReadCloser, error) {
	rc, err := NewReader(ra, off, size, 1)
	if err != nil {
		return nil, err
	}
	rc.(*reader).parallel = false
	return rc, nil
}

// reader hands over the blocks' output in order. Whole blocks are decoded
// by goroutines into buffers ahead of it; a block too large for that, or
// the only block of the file, is decoded streaming when its turn comes.
type reader struct {
	f        *file
	streams  []stream
	workers  int
	parallel bool // the file has more than one block

	it      *blockIter // the current stream's blocks, nil between streams
	next    int        // the next stream to iterate
	planErr error      // the error that ends the plan, after the queue

	queue []*job // planned blocks, in order; queue[0] is read next
	whole int    // jobs in queue decoded whole

	cur    []byte // what is left of the block being read, decoded whole
	curJob *job
	br     *blockReader // or the block being read streaming

	free   [][]byte // buffers to reuse
	inFree [][]byte // compressed-data buffers to reuse, guarded by mu
	mu     sync.Mutex

	err    error
	stop   atomic.Bool // tells the workers to give up
	closed bool
	wg     sync.WaitGroup
}

type job struct {
	b     block
	whole bool
	out   []byte
	err   error
	done  chan struct{}
}

// plan returns the next block of the file.
func (r *reader) plan() (block, bool, error) {
	for {
		if r.it == nil {
			if r.next == len(r.streams) {
				return block{}, false, nil
			}
			it, err := r.f.blockIter(r.streams[r.next])
			if err != nil {
				return block{}, false, err
			}
			r.it = it
			r.next++
		}
		b, ok, err := r.it.next()
		if err != nil || ok {
			return b, ok, err
		}
		r.it = nil
	}
}

// fill plans blocks ahead until workers blocks are being decoded whole.
func (r *reader) fill() {
	for r.planErr == nil && r.whole < r.workers && len(r.queue) <= r.workers {
		b, ok, err := r.plan()
		if err != nil {
			r.planErr = err
			return
		}
		if !ok {
			r.planErr = io.EOF
			return
		}
		j := &job{b: b}
		j.whole = r.parallel && b.uncompressed <= maxBuffered && b.dataSize <= maxBuffered
		if j.whole {
			j.out = r.buffer(int(b.uncompressed))
			j.done = make(chan struct{})
			r.whole++
			r.wg.Add(1)
			go r.decode(j)
		}
		r.queue = append(r.queue, j)
	}
}

func (r *reader) decode(j *job) {
	defer r.wg.Done()
	defer close(j.done)
	r.mu.Lock()
	var in []byte
	if n := len(r.inFree); n > 0 {
		in, r.inFree = r.inFree[n-1], r.inFree[:n-1]
	}
	r.mu.Unlock()
	in, j.err = r.f.decodeWhole(&j.b, j.out, in, &r.stop)
	r.mu.Lock()
	if len(r.inFree) < r.workers {
		r.inFree = append(r.inFree, in)
	}
	r.mu.Unlock()
}

// buffer returns a buffer of n bytes, reusing one if it can.
func (r *reader) buffer(n int) []byte {
	for i, b := range r.free {
		if cap(b) >= n {
			r.free = append(r.free[:i], r.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

func (r *reader) release(b []byte) {
	if len(r.free) > r.workers {
		// Keep the largest.
		small := 0
		for i, f := range r.free {
			if cap(f) < cap(r.free[small]) {
				small = i
			}
		}
		if cap(b) <= cap(r.free[small]) {
			return
		}
		r.free[small] = b
		return
	}
	r.free = append(r.free, b)
}

func (r *reader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			if r.err != io.EOF {
				r.stop.Store(true) // no use decoding ahead
			}
			return 0, r.err
		}
		if len(r.cur) > 0 {
			n := copy(p, r.cur)
			r.cur = r.cur[n:]
			return n, nil
		}
		if len(p) == 0 {
			return 0, nil
		}
		if r.br != nil {
			n, err := r.br.Read(p)
			if err == io.EOF {
				r.br = nil
				err = nil
			}
			if err != nil {
				r.err = err
				return 0, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if r.curJob != nil {
			r.release(r.curJob.out)
			r.curJob = nil
		}
		r.fill()
		if len(r.queue) == 0 {
			r.err = r.planErr
			continue
		}
		j := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		if !j.whole {
			br, err := r.f.newBlockReader(&j.b)
			if err != nil {
				r.err = err
				continue
			}
			r.br = br
			continue
		}
		<-j.done
		r.whole--
		if j.err != nil {
			r.err = j.err
			continue
		}
		r.cur, r.curJob = j.out, j
		r.fill()
	}
}

// Close stops the workers and waits for them to return.
func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.stop.Store(true)
	r.wg.Wait()
	r.err = ErrClosed
	r.queue, r.cur, r.curJob, r.br, r.free, r.inFree = nil, nil, nil, nil, nil, nil
	return nil
}
