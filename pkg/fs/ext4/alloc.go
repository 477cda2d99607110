package ext4

import (
	"encoding/binary"
	"math/bits"
)

// bitmap is the block bitmap of the whole filesystem, one bit per block
// (set = in use), in on-disk bit order: block b is bit b%8 of byte b/8.
type bitmap struct {
	b     []byte
	n     uint64 // blocks
	count uint64 // bits set
}

func newBitmap(n uint64) *bitmap {
	// Round up to whole groups so each group's bitmap is a slice of it.
	groups := (n + blocksPerGroup - 1) / blocksPerGroup
	return &bitmap{b: make([]byte, groups*blocksPerGroup/8), n: n}
}

func (m *bitmap) isSet(i uint64) bool { return m.b[i>>3]&(1<<(i&7)) != 0 }

func (m *bitmap) set(i uint64) {
	if !m.isSet(i) {
		m.b[i>>3] |= 1 << (i & 7)
		m.count++
	}
}

func (m *bitmap) setRange(start, n uint64) {
	for i := start; i < start+n; i++ {
		m.set(i)
	}
}

// nextFree returns the first clear bit at or after i, or m.n.
func (m *bitmap) nextFree(i uint64) uint64 {
	for i < m.n {
		if i&63 == 0 && i+64 <= m.n {
			w := binary.LittleEndian.Uint64(m.b[i>>3:])
			if w == ^uint64(0) {
				i += 64
				continue
			}
			return i + uint64(bits.TrailingZeros64(^w))
		}
		if !m.isSet(i) {
			return i
		}
		i++
	}
	return m.n
}

// freeRunLen returns how many clear bits start at i, up to max.
func (m *bitmap) freeRunLen(i, max uint64) uint64 {
	n := uint64(0)
	for n < max && i+n < m.n {
		j := i + n
		if j&63 == 0 && j+64 <= m.n && n+64 <= max && binary.LittleEndian.Uint64(m.b[j>>3:]) == 0 {
			n += 64
			continue
		}
		if m.isSet(j) {
			break
		}
		n++
	}
	return n
}

// allocRun finds the first run of n free blocks at or after *cur, marks
// it used and moves *cur past it.
func (m *bitmap) allocRun(cur *uint64, n uint64) (uint64, bool) {
	i := *cur
	for {
		i = m.nextFree(i)
		if i+n > m.n {
			return 0, false
		}
		l := m.freeRunLen(i, n)
		if l == n {
			m.setRange(i, n)
			*cur = i + n
			return i, true
		}
		i += l
	}
}

// alloc takes the first n free blocks at or after *cur, as runs, and
// moves *cur past them. It takes nothing if there are fewer than n.
func (m *bitmap) alloc(cur *uint64, n uint64) ([]run, bool) {
	var rs []run
	i := *cur
	left := n
	for left > 0 {
		i = m.nextFree(i)
		if i >= m.n {
			for _, r := range rs { // give back
				for b := r.start; b < r.start+r.n; b++ {
					m.b[b>>3] &^= 1 << (b & 7)
				}
				m.count -= r.n
			}
			return nil, false
		}
		l := m.freeRunLen(i, left)
		m.setRange(i, l)
		if k := len(rs); k > 0 && rs[k-1].start+rs[k-1].n == i {
			rs[k-1].n += l
		} else {
			rs = append(rs, run{i, l})
		}
		i += l
		left -= l
	}
	*cur = i
	return rs, true
}

// freeIn counts the clear bits of [start, start+n).
func (m *bitmap) freeIn(start, n uint64) uint64 {
	used := uint64(0)
	i := start
	end := start + n
	for ; i < end && i&7 != 0; i++ {
		if m.isSet(i) {
			used++
		}
	}
	for ; i+64 <= end; i += 64 {
		used += uint64(bits.OnesCount64(binary.LittleEndian.Uint64(m.b[i>>3:])))
	}
	for ; i < end; i++ {
		if m.isSet(i) {
			used++
		}
	}
	return n - used
}
