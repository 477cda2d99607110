package erofs

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// LZ4 block format (lz4's doc/lz4_Block_format.md): sequences of a token
// (literal length in the high nibble, match length - 4 in the low one,
// 15 meaning "more bytes follow, each adding up to 255"), the literals,
// a 2-byte little-endian offset back into the output (1 to 65535) and the
// match length's extra bytes. The last sequence holds literals only; the
// last 5 bytes of a block are literals and the last match starts at
// least 12 bytes before its end.
const (
	lz4MinMatch     = 4
	lz4LastLiterals = 5
	lz4MFLimit      = 12
	lz4MaxOffset    = 65535
	lz4HashLog      = 16
	lz4ChainMask    = 1<<16 - 1
	// lz4Depth is how many earlier positions of one hash the matcher
	// tries: a hash chain, greedy.
	lz4Depth = 16
	// lz4GoodEnough stops the search at a match this long.
	lz4GoodEnough = 256
)

// lz4Encoder is an LZ4 block compressor with a "destSize" mode, as
// mkfs.erofs uses liblz4's LZ4_compress_destSize: it compresses as much
// of its input as fits a fixed output. Each call is an independent block
// (no dictionary). It is deterministic: its output depends only on its
// input.
type lz4Encoder struct {
	// head[h] is the last position of hash h, chain[p&mask] the one
	// before p with p's hash; positions are base+index, so entries of
	// earlier calls (below base) are not matched.
	head  [1 << lz4HashLog]int32
	chain [lz4ChainMask + 1]int32
	base  int32
}

func lz4Hash(v uint32) uint32 { return (v * 2654435761) >> (32 - lz4HashLog) }

// litCost is the encoded size of a last sequence of n literals.
func litCost(n int) int {
	if n < 15 {
		return 1 + n
	}
	return 1 + n + (n-15)/255 + 1
}

// extraLen is how many bytes a length of n past its nibble takes.
func extraLen(n int) int {
	if n < 15 {
		return 0
	}
	return (n-15)/255 + 1
}

// destSize compresses a prefix of src into dst as one LZ4 block and
// returns how many bytes of src it holds and how many bytes of dst it
// wrote: as much of src as fits len(dst).
func (e *lz4Encoder) destSize(src, dst []byte) (consumed, written int) {
	if e.base <= 0 || int64(e.base)+int64(len(src)) >= 1<<30 {
		clear(e.head[:])
		clear(e.chain[:])
		e.base = 1
	}
	base := e.base
	e.base += int32(len(src)) + 1
	budget := len(dst)
	anchor, ip, op := 0, 0, 0
	matchLimit := len(src) - lz4LastLiterals // a match ends at or before
	ipLimit := len(src) - lz4MFLimit         // a match starts at or before
	insert := func(p int) {
		h := lz4Hash(binary.LittleEndian.Uint32(src[p:]))
		a := base + int32(p)
		e.chain[a&lz4ChainMask] = e.head[h]
		e.head[h] = a
	}
	for ip <= ipLimit {
		// Literals alone no longer fit: stop looking.
		if op+litCost(ip-anchor+1) > budget {
			break
		}
		bestLen, bestOff := e.find(src, base, ip, matchLimit)
		if bestLen < lz4MinMatch {
			// Skip faster through data that does not match (as lz4's
			// acceleration does).
			ip += 1 + (ip-anchor)>>7
			continue
		}
		lit := ip - anchor
		cost := 1 + extraLen(lit) + lit + 2 + extraLen(bestLen-lz4MinMatch)
		end := ip + bestLen
		minFinal := max(lz4LastLiterals, ip+lz4MFLimit-end)
		if op+cost+litCost(minFinal) > budget {
			// A shorter match may fit (a long run of zeros does not):
			// k bytes of extra length hold a match of 255k+18 bytes.
			k := budget - op - (1 + extraLen(lit) + lit + 2) - litCost(lz4LastLiterals)
			if k < 0 {
				break
			}
			short := 18
			if k > 0 {
				short = 255*k + 18
			}
			if short >= bestLen || short < lz4MFLimit-lz4LastLiterals {
				break
			}
			bestLen, end = short, ip+short
		}
		op = putSequence(dst, op, src[anchor:ip], bestOff, bestLen)
		// Positions inside the match: its first few and its last two
		// (all of a long match costs time for little gain).
		for p := ip + 1; p < end && p <= ipLimit; p++ {
			if p-ip > 8 && p < end-2 {
				p = end - 3
				continue
			}
			insert(p)
		}
		anchor, ip = end, end
	}
	// The last literals: all that is left, or as many as fit.
	n := len(src) - anchor
	avail := budget - op
	if litCost(n) > avail {
		n = avail - 1
		for n > 0 && litCost(n) > avail {
			n--
		}
	}
	op = putSequence(dst, op, src[anchor:anchor+n], 0, 0)
	return anchor + n, op
}

// find returns the longest match (length, offset back) for src[ip:]
// among the earlier positions of its hash, and hashes ip.
func (e *lz4Encoder) find(src []byte, base int32, ip, matchLimit int) (int, int) {
	cur := base + int32(ip)
	v := binary.LittleEndian.Uint32(src[ip:])
	h := lz4Hash(v)
	cand := e.head[h]
	bestLen, bestOff := 0, 0
	prev := cur
	for d := lz4Depth; d > 0 && cand >= base && cand < prev && cur-cand <= lz4MaxOffset; d-- {
		c := int(cand - base)
		// The first 4 bytes (a match's least), then the byte that would
		// make it longer than the best so far.
		if binary.LittleEndian.Uint32(src[c:]) == v && src[c+bestLen] == src[ip+bestLen] {
			if n := matchLen(src[c:], src[ip:matchLimit]); n > bestLen {
				bestLen, bestOff = n, ip-c
				if n >= lz4GoodEnough || ip+n >= matchLimit {
					break
				}
			}
		}
		prev = cand
		cand = e.chain[cand&lz4ChainMask]
	}
	e.chain[cur&lz4ChainMask] = e.head[h]
	e.head[h] = cur
	return bestLen, bestOff
}

// matchLen is how many leading bytes a and b share (b no longer than a
// is assumed only up to len(b)).
func matchLen(a, b []byte) int {
	n := 0
	for n+8 <= len(b) {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)/8
		}
		n += 8
	}
	for n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// putSequence writes one sequence at dst[op:]: the literals, then a
// match of mlen bytes at off back (none when mlen is 0).
func putSequence(dst []byte, op int, lit []byte, off, mlen int) int {
	tok := op
	op++
	l := len(lit)
	if l >= 15 {
		dst[tok] = 15 << 4
		op = putLen(dst, op, l-15)
	} else {
		dst[tok] = byte(l << 4)
	}
	op += copy(dst[op:], lit)
	if mlen == 0 {
		return op
	}
	binary.LittleEndian.PutUint16(dst[op:], uint16(off))
	op += 2
	m := mlen - lz4MinMatch
	if m >= 15 {
		dst[tok] |= 15
		op = putLen(dst, op, m-15)
	} else {
		dst[tok] |= byte(m)
	}
	return op
}

func putLen(dst []byte, op, n int) int {
	for n >= 255 {
		dst[op] = 255
		op++
		n -= 255
	}
	dst[op] = byte(n)
	return op + 1
}

var errLZ4 = errors.New("corrupt lz4 block")

// lz4Decode decodes the LZ4 block src into dst, which it must fill
// exactly, using all of src (as the kernel's LZ4_decompress_safe does
// for a pcluster with EROFS's zero padding).
func lz4Decode(dst, src []byte) error { return lz4DecodeAs(dst, src, false) }

// lz4DecodeAs is lz4Decode, or when partial, decodes only until dst is
// full, whatever follows (LZ4_decompress_safe_partial: pclusters
// without zero padding are followed by zeros).
func lz4DecodeAs(dst, src []byte, partial bool) error {
	ip, op := 0, 0
	length := func(n int) (int, bool) {
		for {
			if ip >= len(src) {
				return 0, false
			}
			b := src[ip]
			ip++
			n += int(b)
			if n > len(dst)+len(src) {
				return 0, false
			}
			if b != 255 {
				return n, true
			}
		}
	}
	for {
		if ip >= len(src) {
			return errLZ4
		}
		tok := src[ip]
		ip++
		lit := int(tok >> 4)
		if lit == 15 {
			var ok bool
			if lit, ok = length(lit); !ok {
				return errLZ4
			}
		}
		if partial && lit > len(dst)-op {
			lit = len(dst) - op
		}
		if lit > len(src)-ip || lit > len(dst)-op {
			return errLZ4
		}
		op += copy(dst[op:], src[ip:ip+lit])
		ip += lit
		if partial && op == len(dst) {
			return nil
		}
		if ip == len(src) {
			if op != len(dst) {
				return errLZ4
			}
			return nil
		}
		if len(src)-ip < 2 {
			return errLZ4
		}
		off := int(binary.LittleEndian.Uint16(src[ip:]))
		ip += 2
		if off == 0 || off > op {
			return errLZ4
		}
		ml := int(tok & 15)
		if ml == 15 {
			var ok bool
			if ml, ok = length(ml); !ok {
				return errLZ4
			}
		}
		ml += lz4MinMatch
		if partial && ml > len(dst)-op {
			ml = len(dst) - op
		}
		if ml > len(dst)-op {
			return errLZ4
		}
		// Byte by byte where the match overlaps what it writes.
		from := op - off
		if off >= ml {
			op += copy(dst[op:op+ml], dst[from:from+ml])
		} else {
			// The pattern of off bytes repeats: copy it doubling.
			end := op + ml
			for op < end {
				op += copy(dst[op:end], dst[from:op])
			}
		}
		if partial && op == len(dst) {
			return nil
		}
	}
}
