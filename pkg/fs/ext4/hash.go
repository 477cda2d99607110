package ext4

import (
	"encoding/binary"
	"math/bits"
)

// dirHash is the kernel's ext4fs_dirhash for DX_HASH_HALF_MD4 with signed
// chars (the superblock carries EXT2_FLAGS_SIGNED_HASH, as mke2fs sets on
// x86): it returns the major hash with the low bit cleared, as stored in
// dx entries, and the minor hash.
func dirHash(name string, seed [4]uint32) (hash, minor uint32) {
	buf := [4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}
	if seed != ([4]uint32{}) {
		buf = seed
	}
	var in [8]uint32
	p := name
	for n := len(p); n > 0; n -= 32 {
		str2hashbuf(p, n, in[:])
		halfMD4Transform(&buf, &in)
		if len(p) > 32 {
			p = p[32:]
		} else {
			p = ""
		}
	}
	hash = buf[1] & ^uint32(1)
	if hash == 0x7fffffff<<1 { // EXT4_HTREE_EOF_32BIT << 1
		hash = (0x7fffffff - 1) << 1
	}
	return hash, buf[2]
}

// str2hashbuf is str2hashbuf_signed: msg's bytes as signed chars, padded
// with a word derived from the remaining length.
func str2hashbuf(msg string, n int, out []uint32) {
	pad := uint32(n) | uint32(n)<<8
	pad |= pad << 16
	val := pad
	num := len(out)
	if n > num*4 {
		n = num * 4
	}
	o := 0
	for i := 0; i < n; i++ {
		val = uint32(int32(int8(msg[i]))) + (val << 8)
		if i%4 == 3 {
			out[o] = val
			o++
			val = pad
			num--
		}
	}
	num--
	if num >= 0 {
		out[o] = val
		o++
	}
	for num--; num >= 0; num-- {
		out[o] = pad
		o++
	}
}

func halfMD4Transform(buf *[4]uint32, in *[8]uint32) {
	const k2, k3 = 013240474631, 015666365641
	f := func(x, y, z uint32) uint32 { return z ^ (x & (y ^ z)) }
	g := func(x, y, z uint32) uint32 { return (x & y) + ((x ^ y) & z) }
	h := func(x, y, z uint32) uint32 { return x ^ y ^ z }
	a, b, c, d := buf[0], buf[1], buf[2], buf[3]

	a = bits.RotateLeft32(a+f(b, c, d)+in[0], 3)
	d = bits.RotateLeft32(d+f(a, b, c)+in[1], 7)
	c = bits.RotateLeft32(c+f(d, a, b)+in[2], 11)
	b = bits.RotateLeft32(b+f(c, d, a)+in[3], 19)
	a = bits.RotateLeft32(a+f(b, c, d)+in[4], 3)
	d = bits.RotateLeft32(d+f(a, b, c)+in[5], 7)
	c = bits.RotateLeft32(c+f(d, a, b)+in[6], 11)
	b = bits.RotateLeft32(b+f(c, d, a)+in[7], 19)

	a = bits.RotateLeft32(a+g(b, c, d)+in[1]+k2, 3)
	d = bits.RotateLeft32(d+g(a, b, c)+in[3]+k2, 5)
	c = bits.RotateLeft32(c+g(d, a, b)+in[5]+k2, 9)
	b = bits.RotateLeft32(b+g(c, d, a)+in[7]+k2, 13)
	a = bits.RotateLeft32(a+g(b, c, d)+in[0]+k2, 3)
	d = bits.RotateLeft32(d+g(a, b, c)+in[2]+k2, 5)
	c = bits.RotateLeft32(c+g(d, a, b)+in[4]+k2, 9)
	b = bits.RotateLeft32(b+g(c, d, a)+in[6]+k2, 13)

	a = bits.RotateLeft32(a+h(b, c, d)+in[3]+k3, 3)
	d = bits.RotateLeft32(d+h(a, b, c)+in[7]+k3, 9)
	c = bits.RotateLeft32(c+h(d, a, b)+in[2]+k3, 11)
	b = bits.RotateLeft32(b+h(c, d, a)+in[6]+k3, 15)
	a = bits.RotateLeft32(a+h(b, c, d)+in[1]+k3, 3)
	d = bits.RotateLeft32(d+h(a, b, c)+in[5]+k3, 9)
	c = bits.RotateLeft32(c+h(d, a, b)+in[0]+k3, 11)
	b = bits.RotateLeft32(b+h(c, d, a)+in[4]+k3, 15)

	buf[0] += a
	buf[1] += b
	buf[2] += c
	buf[3] += d
}

// xattrEntryHash is ext4_xattr_hash_entry (unsigned name chars, as the
// kernel writes since 6.2; e2fsck and the kernel accept it) over the name
// without its prefix and the value padded to 4 bytes.
func xattrEntryHash(name string, value []byte) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = (h << 5) ^ (h >> 27) ^ uint32(name[i])
	}
	for i := 0; i < len(value); i += 4 {
		var w [4]byte
		copy(w[:], value[i:])
		h = (h << 16) ^ (h >> 16) ^ binary.LittleEndian.Uint32(w[:])
	}
	return h
}

// xattrBlockHash is ext4_xattr_rehash: the block header's h_hash from its
// entries' hashes, in on-disk order.
func xattrBlockHash(entryHashes []uint32) uint32 {
	var h uint32
	for _, e := range entryHashes {
		if e == 0 {
			return 0
		}
		h = (h << 16) ^ (h >> 16) ^ e
	}
	return h
}
