package verity

import (
	"bytes"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
)

// workers is how many goroutines hash data blocks; tests vary it to show
// the output does not depend on it.
var workers = runtime.GOMAXPROCS(0)

// batchBytes is about how much data is read and hashed at a time.
const batchBytes = 4 << 20

// level is the hash block of one tree level being filled.
type level struct {
	buf        []byte // the block being filled; unused slots stay zero
	n          int    // digests in buf
	next       int64  // byte offset where buf goes
	end        int64  // byte offset just past the level
	prev       []byte // the last block written, and its digest:
	prevDigest []byte // sparse data repeats whole hash blocks
}

// builder consumes digests in block order and emits the tree's blocks.
type builder struct {
	g      *geometry
	emit   func(off int64, b []byte) error
	levels []level
	h      hash.Hash
	root   []byte
}

// digest is H(salt || b), appended to dst.
func digest(h hash.Hash, salt, b, dst []byte) []byte {
	h.Reset()
	h.Write(salt)
	h.Write(b)
	return h.Sum(dst)
}

// push adds the digest of a block of level i-1 (of data for i == 0) to
// level i; a digest pushed past the top level is the root hash.
func (b *builder) push(i int, d []byte) error {
	if i == len(b.levels) {
		if b.root != nil {
			return fmt.Errorf("BUG: verity: a second root digest")
		}
		b.root = append([]byte{}, d...)
		return nil
	}
	l := &b.levels[i]
	copy(l.buf[l.n*b.g.slotSize:], d)
	l.n++
	if l.n == b.g.perBlock {
		return b.flush(i)
	}
	return nil
}

// flush emits level i's block, if it holds any digest, and pushes its
// digest up.
func (b *builder) flush(i int) error {
	l := &b.levels[i]
	if l.n == 0 {
		return nil
	}
	if l.next >= l.end {
		return fmt.Errorf("BUG: verity: level %d overflows at offset %d", i, l.next)
	}
	if err := b.emit(l.next, l.buf); err != nil {
		return err
	}
	l.next += int64(len(l.buf))
	if l.prev == nil || !bytes.Equal(l.prev, l.buf) {
		l.prev = append(l.prev[:0], l.buf...)
		l.prevDigest = digest(b.h, b.g.p.Salt, l.buf, l.prevDigest[:0])
	}
	clear(l.buf)
	l.n = 0
	return b.push(i+1, l.prevDigest)
}

// batch is a run of data blocks read at once.
type batch struct {
	buf []byte
	err error
}

// tree reads the data block by block, hashes it and hands every hash block
// to emit (in an order of its choosing, each exactly once, the buffer valid
// only during the call); it returns the root hash.
func (g *geometry) tree(data io.ReaderAt, emit func(off int64, b []byte) error) ([]byte, error) {
	hbs := g.p.HashBlockSize
	b := &builder{g: g, emit: emit, h: g.newHash(), levels: make([]level, len(g.levelCount))}
	for i := range b.levels {
		b.levels[i] = level{
			buf:  make([]byte, hbs),
			next: g.levelStart[i],
			end:  g.levelStart[i] + g.levelCount[i]*int64(hbs),
		}
	}

	dbs := int64(g.p.DataBlockSize)
	perBatch := max(1, batchBytes/dbs)
	zero := make([]byte, dbs)
	zeroDigest := digest(g.newHash(), g.p.Salt, zero, nil)

	// A reader goroutine fills batches ahead of the hashing; done stops it
	// when hashing fails.
	free := make(chan []byte, 2)
	for range 2 {
		free <- make([]byte, perBatch*dbs)
	}
	full := make(chan batch, 1)
	done := make(chan struct{})
	var reader sync.WaitGroup
	defer func() { close(done); reader.Wait() }()
	reader.Go(func() {
		defer close(full)
		for off := int64(0); off < g.dataBlocks*dbs; {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			n := min(int64(len(buf)), g.dataBlocks*dbs-off)
			buf = buf[:n]
			var err error
			if err = readFull(data, buf, off); err != nil {
				err = fmt.Errorf("verity: reading data at offset %d: %w", off, err)
			}
			select {
			case full <- batch{buf, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
			off += n
		}
	})

	nw := max(1, workers)
	hashes := make([]hash.Hash, nw)
	for i := range hashes {
		hashes[i] = g.newHash()
	}
	ds := g.digestSize
	digests := make([]byte, perBatch*int64(ds))
	hashRange := func(h hash.Hash, buf []byte, from, to int64) {
		for k := from; k < to; k++ {
			blk := buf[k*dbs : (k+1)*dbs]
			d := digests[k*int64(ds) : k*int64(ds)]
			if bytes.Equal(blk, zero) {
				copy(d[:ds], zeroDigest)
			} else {
				digest(h, g.p.Salt, blk, d)
			}
		}
	}
	for bt := range full {
		if bt.err != nil {
			return nil, bt.err
		}
		blocks := int64(len(bt.buf)) / dbs
		w := min(int64(nw), blocks)
		if w <= 1 {
			hashRange(hashes[0], bt.buf, 0, blocks)
		} else {
			var wg sync.WaitGroup
			for j := range w {
				wg.Go(func() { hashRange(hashes[j], bt.buf, blocks*j/w, blocks*(j+1)/w) })
			}
			wg.Wait()
		}
		for k := range blocks {
			if err := b.push(0, digests[k*int64(ds):(k+1)*int64(ds)]); err != nil {
				return nil, err
			}
		}
		free <- bt.buf[:cap(bt.buf)]
	}
	for i := range b.levels {
		if err := b.flush(i); err != nil {
			return nil, err
		}
		if l := &b.levels[i]; l.next != l.end {
			return nil, fmt.Errorf("BUG: verity: level %d ends at offset %d, not %d", i, l.next, l.end)
		}
	}
	if b.root == nil {
		return nil, fmt.Errorf("BUG: verity: no root digest")
	}
	return b.root, nil
}
