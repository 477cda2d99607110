package imgfmt

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// unit is one piece of the disk on its way into an image: a qcow2 cluster,
// a VMDK grain, a VHD block, or a 64 KiB chunk to hash. Workers read and
// encode units in parallel; the emitter receives them strictly in
// increasing index order, so the bytes written never depend on scheduling.
type unit struct {
	idx  int64  // unit index: disk offset / unit size
	data []byte // the unit's bytes (zeros past the end of the disk)
	zero bool   // data is all zero
	enc  []byte // the encoder's output (compressed data); empty: store data as it is
	// digests of the unit's non-zero 64 KiB chunks, in order, when the
	// image's ID is derived from its content.
	digests []chunkDigest
	err     error
	done    chan struct{}
}

// chunkDigest is one non-zero 64 KiB chunk's contribution to a content ID.
type chunkDigest struct {
	chunk int64
	sum   [sha256.Size]byte
}

// encodeFunc turns u.data into u.enc (or leaves enc empty to store the
// data as it is). Each worker gets its own, so it may keep compressor state.
type encodeFunc func(u *unit) error

// pipeline walks the units of a disk in order.
type pipeline struct {
	ctx      context.Context // stops the walk when done (nil: never)
	src      io.ReaderAt     // the virtual disk
	size     int64           // its size
	unitSize int64
	// units lists the candidate unit indices in increasing order (the
	// others are known to be all zero and are skipped); it stops when
	// yield returns false.
	units func(yield func(u int64) bool) error
	// newEncoder makes one worker's encoder (nil: no encoding).
	newEncoder func() encodeFunc
	// digest: hash each non-zero chunk for a content ID.
	digest bool
}

// maxWorkers is how many goroutines encode units: one per CPU Go may use.
func maxWorkers() int { return runtime.GOMAXPROCS(0) }

// inFlightBytes bounds the memory units in flight may take, whatever the
// number of CPUs: peak RSS does not grow with the machine or the disk.
const inFlightBytes = 64 << 20

// run reads, checks and encodes every candidate unit on GOMAXPROCS workers
// and calls emit with each one that is not all zero, in increasing index
// order, from the calling goroutine. emit must not keep u or its slices.
// The first error stops the walk.
func (p *pipeline) run(emit func(u *unit) error) error {
	if p.digest && p.unitSize%chunkSize != 0 {
		return fmt.Errorf("BUG: content IDs hash %d-byte chunks, units are %d bytes", chunkSize, p.unitSize)
	}
	workers := maxWorkers()
	// Each unit in flight holds its data and, at worst, a compressed copy.
	slots := int(min(int64(2*workers+2), max(3, inFlightBytes/(2*p.unitSize))))
	workers = max(1, min(workers, slots-1))

	free := make(chan *unit, slots)
	for range slots {
		free <- &unit{data: make([]byte, p.unitSize)}
	}
	work := make(chan *unit, slots)
	order := make(chan *unit, slots)
	quit := make(chan struct{})

	var wg sync.WaitGroup
	for range workers {
		var enc encodeFunc
		if p.newEncoder != nil {
			enc = p.newEncoder()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				u.err = p.prepare(u, enc)
				close(u.done)
			}
		}()
	}

	var srcErr error
	go func() {
		defer close(work)
		defer close(order)
		srcErr = p.units(func(idx int64) bool {
			if p.ctx != nil && p.ctx.Err() != nil {
				return false
			}
			var u *unit
			select {
			case u = <-free:
			case <-quit:
				return false
			}
			u.idx, u.zero, u.enc, u.digests, u.err = idx, false, u.enc[:0], u.digests[:0], nil
			u.done = make(chan struct{})
			// Both channels have room for every unit there is.
			work <- u
			order <- u
			return true
		})
	}()

	var err error
	for u := range order {
		<-u.done
		if err == nil {
			if u.err != nil {
				err = u.err
			} else if !u.zero {
				err = emit(u)
			}
			if err != nil {
				close(quit)
			}
		}
		free <- u
	}
	wg.Wait()
	if err == nil {
		err = srcErr
	}
	if err == nil && p.ctx != nil {
		err = p.ctx.Err()
	}
	return err
}

// prepare reads unit u, finds whether it is all zero, hashes and encodes it.
func (p *pipeline) prepare(u *unit, enc encodeFunc) error {
	off := u.idx * p.unitSize
	data := u.data
	if rest := p.size - off; rest < int64(len(data)) {
		clear(data[rest:])
		data = data[:rest]
	}
	if _, err := p.src.ReadAt(data, off); err != nil && err != io.EOF {
		return err
	}
	u.zero = isZero(u.data)
	if u.zero {
		return nil
	}
	if p.digest {
		for o := int64(0); o < p.unitSize; o += chunkSize {
			c := u.data[o:min(o+chunkSize, p.unitSize)]
			if !isZero(c) {
				u.digests = append(u.digests, chunkDigest{chunk: (off + o) / chunkSize, sum: sha256.Sum256(c)})
			}
		}
	}
	if enc != nil {
		return enc(u)
	}
	return nil
}
