package xz

import (
	"errors"
)

// The LZMA decoder, after xz-embedded's xz_dec_lzma2.c: a range decoder
// on a byte slice and the symbol loop, writing into a byte slice that is
// both the output and the dictionary.

type prob = uint16

const (
	probInit  = 1 << 10 // 0.5, of probTotal
	probTotal = 1 << 11
	moveBits  = 5
	// probAdapt makes the update of a probability after a 0 branch-free:
	// p + (probTotal-p)>>moveBits == p - (p-probAdapt)>>moveBits, with
	// an arithmetic shift.
	probAdapt = probTotal - 1<<moveBits + 1
)

var (
	errDistance = errors.New("a match reaches before the start of its dictionary")
	errLZMAData = errors.New("bad LZMA data")
)

// rangeDec is the range decoder, reading one LZMA2 chunk. in holds the
// chunk and at least rcSlack more bytes, which it may read but which are
// not its: one symbol reads at most 48 bytes, and the symbol loop stops
// once p is past end, so a corrupt chunk is found without a bounds check
// in shift.
type rangeDec struct {
	rng, code uint32
	p         int
	end       int
	in        []byte
}

const rcSlack = 64

// init starts decoding in[:end], whose first byte must be zero.
func (rc *rangeDec) init(in []byte, end int) error {
	if end < 5 || in[0] != 0 || len(in) < end+rcSlack {
		return errLZMAData
	}
	rc.rng = 0xffffffff
	rc.code = uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	rc.in, rc.p, rc.end = in, 5, end
	return nil
}

func (rc *rangeDec) shift() {
	rc.rng <<= 8
	rc.code = rc.code<<8 | uint32(rc.in[rc.p])
	rc.p++
}

// finished tells whether the chunk's input ended exactly where it should.
func (rc *rangeDec) finished() bool {
	if rc.rng < 1<<24 {
		rc.shift()
	}
	return rc.code == 0 && rc.p == rc.end
}

func (rc *rangeDec) bit(p *prob) uint32 {
	if rc.rng < 1<<24 {
		rc.shift()
	}
	bound := (rc.rng >> 11) * uint32(*p)
	if rc.code < bound {
		rc.rng = bound
		*p += (probTotal - *p) >> moveBits
		return 0
	}
	rc.rng -= bound
	rc.code -= bound
	*p -= *p >> moveBits
	return 1
}

// normalize reads one more byte if the range needs it.
func normalize(rng, code uint32, p int, in []byte) (uint32, uint32, int) {
	if rng < 1<<24 {
		rng <<= 8
		code = code<<8 | uint32(in[p])
		p++
	}
	return rng, code, p
}

// litBit decodes one bit, branch-free, after normalize.
func litBit(rng, code uint32, pr *prob) (uint32, uint32, uint32) {
	b := int32(*pr)
	bound := (rng >> 11) * uint32(b)
	var bit uint32
	if code >= bound {
		bit = 1
	}
	mask := 0 - bit
	rng = bound ^ ((bound ^ (rng - bound)) & mask)
	code -= bound & mask
	// b + (2048-b)>>5 for a 0, b - b>>5 for a 1.
	*pr = prob(b - (b-int32(probAdapt&^mask))>>moveBits)
	return rng, code, bit
}

// tree decodes a bits-bit symbol, most significant bit first,
// branch-free as the literals.
func (rc *rangeDec) tree(probs []prob, bits uint) uint32 {
	rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
	sym := uint32(1)
	for sym < 1<<bits {
		var bit uint32
		rng, code, p = normalize(rng, code, p, in)
		rng, code, bit = litBit(rng, code, &probs[sym])
		sym = sym<<1 | bit
	}
	rc.rng, rc.code, rc.p = rng, code, p
	return sym - 1<<bits
}

// tree3 is tree(probs, 3), unrolled.
func (rc *rangeDec) tree3(probs *[8]prob) uint32 {
	rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
	var bit uint32
	sym := uint32(1)
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rc.rng, rc.code, rc.p = rng, code, p
	return sym - 8
}

// tree6 is tree(probs, 6), unrolled.
func (rc *rangeDec) tree6(probs *[64]prob) uint32 {
	rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
	var bit uint32
	sym := uint32(1)
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym])
	sym = sym<<1 | bit
	rng, code, p = normalize(rng, code, p, in)
	rng, code, bit = litBit(rng, code, &probs[sym&63])
	sym = sym<<1 | bit
	rc.rng, rc.code, rc.p = rng, code, p
	return sym - 64
}

// align decodes the four low bits of a long distance: reverse(probs, 4),
// unrolled.
func (rc *rangeDec) align(probs *[16]prob) uint32 {
	rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
	var b0, b1, b2, b3 uint32
	rng, code, p = normalize(rng, code, p, in)
	rng, code, b0 = litBit(rng, code, &probs[1])
	rng, code, p = normalize(rng, code, p, in)
	rng, code, b1 = litBit(rng, code, &probs[2|b0])
	rng, code, p = normalize(rng, code, p, in)
	rng, code, b2 = litBit(rng, code, &probs[4|b0<<1|b1])
	rng, code, p = normalize(rng, code, p, in)
	rng, code, b3 = litBit(rng, code, &probs[(8|b0<<2|b1<<1|b2)&15])
	rc.rng, rc.code, rc.p = rng, code, p
	return b0 | b1<<1 | b2<<2 | b3<<3
}

// reverse decodes a bits-bit symbol, least significant bit first.
func (rc *rangeDec) reverse(probs []prob, bits uint) uint32 {
	rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
	sym, r := uint32(1), uint32(0)
	for i := range bits {
		var bit uint32
		rng, code, p = normalize(rng, code, p, in)
		rng, code, bit = litBit(rng, code, &probs[sym])
		sym = sym<<1 | bit
		r |= bit << i
	}
	rc.rng, rc.code, rc.p = rng, code, p
	return r
}

// direct decodes bits bits of probability one half.
func (rc *rangeDec) direct(bits uint) uint32 {
	rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
	var r uint32
	for ; bits > 0; bits-- {
		if rng < 1<<24 {
			rng <<= 8
			code = code<<8 | uint32(in[p])
			p++
		}
		rng >>= 1
		code -= rng
		mask := 0 - (code >> 31)
		code += rng & mask
		r = r<<1 + mask + 1
	}
	rc.rng, rc.code, rc.p = rng, code, p
	return r
}

type lenDec struct {
	choice, choice2 prob
	low             [16][8]prob
	mid             [16][8]prob
	high            [256]prob
}

func (rc *rangeDec) length(l *lenDec, posState uint32) int {
	if rc.bit(&l.choice) == 0 {
		return 2 + int(rc.tree3(&l.low[posState&15]))
	}
	if rc.bit(&l.choice2) == 0 {
		return 10 + int(rc.tree3(&l.mid[posState&15]))
	}
	return 18 + int(rc.tree(l.high[:], 8))
}

// lzmaState is what an LZMA state reset resets.
type lzmaState struct {
	state       uint32
	rep         [4]uint32 // distances minus one
	isMatch     [12 << 4]prob
	isRep       [12]prob
	isRepG0     [12]prob
	isRepG1     [12]prob
	isRepG2     [12]prob
	isRep0Long  [12 << 4]prob
	distSlot    [4][64]prob
	distSpecial [115]prob // one more than xz-embedded's: see match
	distAlign   [16]prob
	matchLen    lenDec
	repLen      lenDec
	literal     [0x300 << 4]prob
}

func (s *lzmaState) reset(lc, lp uint) {
	s.state = 0
	s.rep = [4]uint32{}
	fill := func(p []prob) {
		for i := range p {
			p[i] = probInit
		}
	}
	fill(s.isMatch[:])
	fill(s.isRep[:])
	fill(s.isRepG0[:])
	fill(s.isRepG1[:])
	fill(s.isRepG2[:])
	fill(s.isRep0Long[:])
	for i := range s.distSlot {
		fill(s.distSlot[i][:])
	}
	fill(s.distSpecial[:])
	fill(s.distAlign[:])
	for _, l := range []*lenDec{&s.matchLen, &s.repLen} {
		l.choice, l.choice2 = probInit, probInit
		for i := range l.low {
			fill(l.low[i][:])
			fill(l.mid[i][:])
		}
		fill(l.high[:])
	}
	fill(s.literal[:0x300<<(lc+lp)])
}

// lzmaDec decodes LZMA into a window: dict[dictStart:pos] is what has
// been decoded since the last dictionary reset (dictStart < 0 once the
// window has slid), of which matches may reach back dictSize bytes.
type lzmaDec struct {
	lzmaState
	rc         rangeDec
	lc, lp, pb uint
	dict       []byte
	pos        int
	dictStart  int
	dictSize   int
	pending    int // bytes of the last match not yet copied
}

// setProps sets lc, lp and pb from an LZMA2 properties byte.
func (d *lzmaDec) setProps(b byte) error {
	if b >= 9*5*5 {
		return errors.New("bad LZMA properties")
	}
	lc, lp, pb := uint(b%9), uint(b/9%5), uint(b/45)
	if lc+lp > 4 {
		return errors.New("bad LZMA2 properties: lc+lp > 4")
	}
	d.lc, d.lp, d.pb = lc, lp, pb
	return nil
}

// decode decodes symbols until d.pos reaches limit. A match that goes
// past limit is left pending, for the next call.
func (d *lzmaDec) decode(limit int) error {
	dict := d.dict[:limit]
	pos := d.pos
	rc := &d.rc
	s := &d.lzmaState
	if d.pending > 0 {
		dist := int(s.rep[0]) + 1
		n := min(d.pending, limit-pos)
		if pos-dist < 0 {
			return errDistance
		}
		for i := range n {
			dict[pos+i] = dict[pos-dist+i]
		}
		pos += n
		d.pending -= n
	}
	posMask := uint32(1)<<d.pb - 1
	litPosMask := uint32(1)<<d.lp - 1
	lc := d.lc
	dictStart, dictSize := d.dictStart, d.dictSize
	for pos < limit {
		if rc.p > rc.end {
			return errLZMAData
		}
		now := uint32(pos - dictStart)
		posState := now & posMask
		st := s.state
		if rc.bit(&s.isMatch[st<<4|posState]) == 0 {
			prev := uint32(0)
			if pos > max(dictStart, 0) { // a window slid to 0 can only be in a block that decodes to too much
				prev = uint32(dict[pos-1])
			}
			base := 0x300 * int((now&litPosMask)<<lc+prev>>(8-lc))
			probs := (*[0x300]prob)(s.literal[base : base+0x300])
			// The literal's eight bits, the range decoder's state in
			// registers, branch-free: literals are hard to predict.
			rng, code, p, in := rc.rng, rc.code, rc.p, rc.in
			sym := uint32(1)
			if st < 7 {
				// Unrolled: a loop's exit is a branch the predictor
				// misses.
				var bit uint32
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
				rng, code, p = normalize(rng, code, p, in)
				rng, code, bit = litBit(rng, code, &probs[sym&0xff])
				sym = sym<<1 | bit
			} else {
				at := pos - int(s.rep[0]) - 1
				if at < dictStart || at < 0 {
					return errDistance
				}
				match := uint32(dict[at])
				offset := uint32(0x100)
				for sym < 0x100 {
					match <<= 1
					mbit := match & offset
					var bit uint32
					rng, code, p = normalize(rng, code, p, in)
					rng, code, bit = litBit(rng, code, &probs[offset+mbit+sym])
					sym = sym<<1 | bit
					mask := 0 - bit
					// bit 1: offset = mbit; bit 0: offset ^= mbit.
					offset = (mbit & mask) | ((offset ^ mbit) &^ mask)
				}
			}
			rc.rng, rc.code, rc.p = rng, code, p
			dict[pos] = byte(sym)
			pos++
			switch {
			case st < 4:
				s.state = 0
			case st < 10:
				s.state = st - 3
			default:
				s.state = st - 6
			}
			continue
		}
		var n int
		if rc.bit(&s.isRep[st]) == 0 {
			if st < 7 {
				s.state = 7
			} else {
				s.state = 10
			}
			s.rep[3], s.rep[2], s.rep[1] = s.rep[2], s.rep[1], s.rep[0]
			n = rc.length(&s.matchLen, posState)
			slot := rc.tree6(&s.distSlot[min(n-2, 3)])
			if slot < 4 {
				s.rep[0] = slot
			} else {
				bits := uint(slot>>1 - 1)
				dist := (2 | slot&1) << bits
				if slot < 14 {
					dist += rc.reverse(s.distSpecial[dist-slot:], bits)
				} else {
					dist += rc.direct(bits-4) << 4
					dist += rc.align(&s.distAlign)
				}
				s.rep[0] = dist
			}
		} else {
			if rc.bit(&s.isRepG0[st]) == 0 {
				if rc.bit(&s.isRep0Long[st<<4|posState]) == 0 {
					if st < 7 {
						s.state = 9
					} else {
						s.state = 11
					}
					n = 1
					goto copy
				}
			} else {
				var dist uint32
				if rc.bit(&s.isRepG1[st]) == 0 {
					dist = s.rep[1]
				} else {
					if rc.bit(&s.isRepG2[st]) == 0 {
						dist = s.rep[2]
					} else {
						dist = s.rep[3]
						s.rep[3] = s.rep[2]
					}
					s.rep[2] = s.rep[1]
				}
				s.rep[1] = s.rep[0]
				s.rep[0] = dist
			}
			if st < 7 {
				s.state = 8
			} else {
				s.state = 11
			}
			n = rc.length(&s.repLen, posState)
		}
	copy:
		dist := int(s.rep[0]) + 1
		if dist > pos-dictStart || dist > dictSize || dist > pos {
			return errDistance
		}
		if left := limit - pos; n > left {
			d.pending = n - left
			n = left
		}
		src := pos - dist
		if n <= 16 && dist >= 16 && pos+16 <= len(dict) {
			// Sixteen bytes in one move, the ones past the match
			// overwritten later.
			*(*[16]byte)(dict[pos:]) = *(*[16]byte)(dict[src:])
			pos += n
		} else if n <= 16 {
			to, from := dict[pos:pos+n], dict[src:src+n]
			for i := range to {
				to[i] = from[i]
			}
			pos += n
		} else if dist >= n {
			copy(dict[pos:pos+n], dict[src:src+n])
			pos += n
		} else {
			end := pos + n
			for pos < end {
				pos += copy(dict[pos:end], dict[src:pos])
			}
		}
	}
	d.pos = pos
	return nil
}
