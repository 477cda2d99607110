package ext4

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Small files are read ahead by one goroutine, in the order Write takes
// them (inode order, which is walk order), so that opening and reading
// them overlaps with encoding and writing. The data still lands in the
// same order and places: reading ahead changes timing, not bytes. At most
// prefetchBufs buffers of prefetchMax bytes are in flight.
const (
	prefetchMax  = 1 << 20
	prefetchBufs = 32
)

type prefetched struct {
	ino  uint32
	data []byte // the content; nil for files too big to read ahead
	buf  []byte // data's buffer, to give back
	err  error
}

type prefetcher struct {
	ch    chan prefetched
	free  chan []byte
	done  chan struct{}
	wg    sync.WaitGroup
	nbufs int
}

func startPrefetch(a *analysis) *prefetcher {
	p := &prefetcher{
		ch:   make(chan prefetched, prefetchBufs),
		free: make(chan []byte, prefetchBufs),
		done: make(chan struct{}),
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(p.ch)
		for ino, n := range a.byIno {
			if n == nil || n.Kind != tree.Regular || n.Size == 0 {
				continue
			}
			item := prefetched{ino: uint32(ino)}
			if n.Size <= prefetchMax {
				buf, ok := p.buffer()
				if !ok {
					return
				}
				item.buf = buf
				item.data, item.err = readContent(n, buf)
			}
			select {
			case p.ch <- item:
			case <-p.done:
				return
			}
		}
	}()
	return p
}

// buffer returns a free buffer, allocating up to prefetchBufs of them.
func (p *prefetcher) buffer() ([]byte, bool) {
	select {
	case b := <-p.free:
		return b, true
	default:
	}
	if p.nbufs < prefetchBufs {
		p.nbufs++
		return make([]byte, prefetchMax+1), true
	}
	select {
	case b := <-p.free:
		return b, true
	case <-p.done:
		return nil, false
	}
}

// next returns the read-ahead content of inode ino.
func (p *prefetcher) next(ino uint32) (prefetched, error) {
	item, ok := <-p.ch
	if !ok || item.ino != ino {
		return item, fmt.Errorf("BUG: ext4: read ahead inode %d (%v), want %d", item.ino, ok, ino)
	}
	return item, nil
}

func (p *prefetcher) release(buf []byte) {
	if buf != nil {
		p.free <- buf
	}
}

// stop ends the read-ahead and waits for it.
func (p *prefetcher) stop() {
	close(p.done)
	p.wg.Wait()
}

var (
	errShortContent = errors.New("content ended before its size")
	errLongContent  = errors.New("content is longer than its size")
)

// readContent reads all of n's content into buf (at least n.Size+1
// bytes) and checks that it is exactly n.Size bytes.
func readContent(n *tree.Inode, buf []byte) ([]byte, error) {
	rc, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("open content: %w", err)
	}
	k, err := io.ReadFull(rc, buf[:n.Size+1])
	cerr := rc.Close()
	switch {
	case int64(k) > n.Size:
		return nil, fmt.Errorf("%w of %d bytes", errLongContent, n.Size)
	case int64(k) < n.Size:
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w of %d bytes (%d read)", errShortContent, n.Size, k)
		}
		return nil, fmt.Errorf("read content: %w", err)
	case err != nil && err != io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("read content: %w", err)
	case cerr != nil:
		return nil, fmt.Errorf("close content: %w", cerr)
	}
	return buf[:n.Size], nil
}
