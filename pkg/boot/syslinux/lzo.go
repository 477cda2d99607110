package syslinux

import (
	"errors"
	"fmt"
)

// lzo1xLength decodes an LZO1X stream (the format of liblzo's
// lzo1x_decompress_safe, which syslinux's core uses for its 32-bit part)
// without keeping the output: it returns how many bytes the stream decodes
// to and how many bytes of in it takes, up to and including its end marker.
// It fails if the output would exceed max bytes, if a match refers to
// before the start of the output, or if in ends before the end marker.
//
// It exists to verify what Extract finds: the compressed part of
// ldlinux.sys must decode to exactly the length its code expects, ending
// exactly where its length field says.
func lzo1xLength(in []byte, max int) (outLen, inLen int, err error) {
	var (
		ip, op int
		state  int // literals after the last match (0-3), or 4 after a literal run
	)
	errShort := errors.New("lzo: the stream ends before its end marker")
	byteAt := func() (int, error) {
		if ip >= len(in) {
			return 0, errShort
		}
		ip++
		return int(in[ip-1]), nil
	}
	// zeroRun reads the extension of a length field: zero bytes count 255
	// each, then a non-zero byte.
	zeroRun := func() (int, error) {
		n := 0
		for {
			b, err := byteAt()
			if err != nil {
				return 0, err
			}
			if b != 0 {
				return n + b, nil
			}
			n += 255
			if n > max {
				return 0, fmt.Errorf("lzo: a length field runs past %d bytes", max)
			}
		}
	}
	literals := func(n int) error {
		if ip+n > len(in) {
			return errShort
		}
		if op+n > max {
			return fmt.Errorf("lzo: output longer than %d bytes", max)
		}
		ip += n
		op += n
		return nil
	}
	match := func(dist, n int) error {
		if dist <= 0 || dist > op {
			return fmt.Errorf("lzo: a match at output byte %d refers %d bytes back", op, dist)
		}
		if op+n > max {
			return fmt.Errorf("lzo: output longer than %d bytes", max)
		}
		op += n
		return nil
	}
	if len(in) > 0 && in[0] > 17 {
		ip = 1
		n := int(in[0]) - 17
		if err := literals(n); err != nil {
			return 0, 0, err
		}
		state = 4
		if n < 4 {
			state = n
		}
	}
	for {
		t, err := byteAt()
		if err != nil {
			return 0, 0, err
		}
		var dist, n, next int
		switch {
		case t < 16 && state == 0: // a literal run
			n = t
			if n == 0 {
				k, err := zeroRun()
				if err != nil {
					return 0, 0, err
				}
				n = 15 + k
			}
			if err := literals(n + 3); err != nil {
				return 0, 0, err
			}
			state = 4
			continue
		case t < 16 && state != 4: // a 2-byte match, near
			b, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			dist, n, next = 1+t>>2+b<<2, 2, t&3
		case t < 16: // a 3-byte match, 2049-3072 back
			b, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			dist, n, next = 1+0x800+t>>2+b<<2, 3, t&3
		case t >= 64: // M2
			b, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			dist, n, next = 1+(t>>2)&7+b<<3, t>>5+1, t&3
		case t >= 32: // M3
			n = t & 31
			if n == 0 {
				k, err := zeroRun()
				if err != nil {
					return 0, 0, err
				}
				n = 31 + k
			}
			n += 2
			lo, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			hi, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			d := lo | hi<<8
			dist, next = 1+d>>2, d&3
		default: // M4, 16 <= t < 32, or the end marker
			n = t & 7
			if n == 0 {
				k, err := zeroRun()
				if err != nil {
					return 0, 0, err
				}
				n = 7 + k
			}
			n += 2
			lo, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			hi, err := byteAt()
			if err != nil {
				return 0, 0, err
			}
			d := lo | hi<<8
			dist = (t&8)<<11 + d>>2
			if dist == 0 {
				if n != 3 {
					return 0, 0, fmt.Errorf("lzo: end marker with length %d", n)
				}
				return op, ip, nil
			}
			dist += 0x4000
			next = d & 3
		}
		if err := match(dist, n); err != nil {
			return 0, 0, err
		}
		if err := literals(next); err != nil {
			return 0, 0, err
		}
		state = next
	}
}
