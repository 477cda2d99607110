package ext4

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Extended attributes. Each entry (struct ext4_xattr_entry) is
//
//	e_name_len u8, e_name_index u8, e_value_offs u16, e_value_inum u32,
//	e_value_size u32, e_hash u32, e_name (padded to 4)
//
// followed by a 4-byte zero terminator; values (padded to 4) are packed
// from the end of the area downwards. In the inode the area starts after
// i_extra_isize with the magic, and value offsets count from the first
// entry; in a block it starts after the 32-byte header and offsets count
// from the block start.

const (
	xattrMagic       = 0xEA020000
	xattrEntryHdr    = 16
	xattrBlockHdr    = 32
	xattrIbodySpace  = inodeSize - iXattrStart // 96: magic + entries + values
	xattrBlockHashOf = 0x0C                    // h_hash
	xattrBlockCsumOf = 0x10                    // h_checksum
	aclUserObj       = 0x01
	aclUser          = 0x02
	aclGroupObj      = 0x04
	aclGroup         = 0x08
	aclMask          = 0x10
	aclOther         = 0x20
)

// Name prefixes and their e_name_index (e2fsprogs ea_names). Order
// matters: the exact ACL names before "system.".
var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"system.posix_acl_access", 2},
	{"system.posix_acl_default", 3},
	{"user.", 1},
	{"trusted.", 4},
	{"security.", 6},
	{"system.", 7},
}

// xattr is an attribute ready to encode.
type xattr struct {
	index uint8
	name  string // without the prefix
	value []byte // on-disk value
	hash  uint32
}

func (x *xattr) size() int { return xattrEntryHdr + pad4(len(x.name)) + pad4(len(x.value)) }

func pad4(n int) int { return (n + 3) &^ 3 }

// prepareXattrs converts a tree's attributes into on-disk form, sorted as
// the kernel keeps block entries: by index, name length, name.
func prepareXattrs(in []tree.Xattr) ([]xattr, error) {
	out := make([]xattr, 0, len(in))
	for _, a := range in {
		x := xattr{index: 0}
		for _, p := range xattrPrefixes {
			if strings.HasPrefix(a.Name, p.prefix) {
				x.index, x.name = p.index, a.Name[len(p.prefix):]
				break
			}
		}
		if x.index == 0 {
			return nil, fmt.Errorf("xattr %q: unsupported namespace (want user., trusted., security. or system.)", a.Name)
		}
		if (x.index == 2 || x.index == 3) && x.name != "" {
			return nil, fmt.Errorf("xattr %q: unsupported name", a.Name)
		}
		if x.index == 7 && x.name == "data" {
			return nil, fmt.Errorf("xattr %q: reserved for inline data", a.Name)
		}
		if x.index != 2 && x.index != 3 && x.name == "" {
			return nil, fmt.Errorf("xattr %q: empty name", a.Name)
		}
		if len(x.name) > 255 {
			return nil, fmt.Errorf("xattr %q: name longer than 255 bytes", a.Name)
		}
		x.value = a.Value
		if x.index == 2 || x.index == 3 {
			v, err := aclToDisk(a.Value)
			if err != nil {
				return nil, fmt.Errorf("xattr %q: %w", a.Name, err)
			}
			x.value = v
		}
		x.hash = xattrEntryHash(x.name, x.value)
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b xattr) int {
		if c := cmp.Compare(a.index, b.index); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.name), len(b.name)); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	for i := 1; i < len(out); i++ {
		if out[i].index == out[i-1].index && out[i].name == out[i-1].name {
			return nil, fmt.Errorf("xattr index %d name %q: duplicate", out[i].index, out[i].name)
		}
	}
	return out, nil
}

// aclToDisk converts a POSIX ACL from its xattr form (what getxattr
// returns: le32 version 2, then {le16 tag, le16 perm, le32 id} entries)
// into ext4's on-disk form (le32 version 1, then entries of 4 bytes, or 8
// with the id for ACL_USER and ACL_GROUP), as the kernel's ext4_acl_to_disk.
func aclToDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || (len(v)-4)%8 != 0 || le.Uint32(v) != 2 {
		return nil, fmt.Errorf("not a version 2 POSIX ACL (%d bytes)", len(v))
	}
	out := make([]byte, 4, len(v))
	le.PutUint32(out, 1)
	for p := v[4:]; len(p) > 0; p = p[8:] {
		tag := le.Uint16(p)
		switch tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			out = append(out, p[:4]...)
		case aclUser, aclGroup:
			out = append(out, p[:8]...)
		default:
			return nil, fmt.Errorf("POSIX ACL entry with unknown tag %#x", tag)
		}
	}
	return out, nil
}

// splitXattrs puts the longest prefix of xs that fits in the inode there
// and the rest in a block; it fails if the rest does not fit in a block.
func splitXattrs(xs []xattr) (ibody, block []xattr, err error) {
	used := 4 + 4 // magic and terminator
	i := 0
	for ; i < len(xs); i++ {
		if used+xs[i].size() > xattrIbodySpace {
			break
		}
		used += xs[i].size()
	}
	ibody, block = xs[:i], xs[i:]
	if len(block) > 0 {
		need := xattrBlockHdr + 4
		for _, x := range block {
			need += x.size()
		}
		if need > blockSize {
			return nil, nil, fmt.Errorf("extended attributes need %d bytes, more than the inode and one block hold", need)
		}
	}
	return ibody, block, nil
}

// encodeXattrArea writes entries from entOff and values downwards from
// end in b; value offsets are relative to base.
func encodeXattrArea(b []byte, entOff, base, end int, xs []xattr) {
	valEnd := end
	for _, x := range xs {
		valOff := valEnd - pad4(len(x.value))
		if len(x.value) == 0 {
			valOff = 0
		} else {
			copy(b[valOff:], x.value)
			valEnd = valOff
			valOff -= base
		}
		b[entOff] = uint8(len(x.name))
		b[entOff+1] = x.index
		le.PutUint16(b[entOff+2:], uint16(valOff))
		le.PutUint32(b[entOff+4:], 0) // e_value_inum
		le.PutUint32(b[entOff+8:], uint32(len(x.value)))
		le.PutUint32(b[entOff+12:], x.hash)
		copy(b[entOff+16:], x.name)
		entOff += xattrEntryHdr + pad4(len(x.name))
	}
	// The 4-byte terminator stays zero.
}

// encodeIbodyXattrs returns the in-inode xattr area (from iXattrStart).
func encodeIbodyXattrs(xs []xattr) []byte {
	if len(xs) == 0 {
		return nil
	}
	b := make([]byte, xattrIbodySpace)
	le.PutUint32(b, xattrMagic)
	encodeXattrArea(b, 4, 4, len(b), xs)
	return b
}

// encodeXattrBlock returns the xattr block stored at block blk.
func encodeXattrBlock(xs []xattr, blk uint64, fsSeed uint32) []byte {
	b := make([]byte, blockSize)
	le.PutUint32(b[0:], xattrMagic)
	le.PutUint32(b[4:], 1) // h_refcount
	le.PutUint32(b[8:], 1) // h_blocks
	encodeXattrArea(b, xattrBlockHdr, 0, blockSize, xs)
	hs := make([]uint32, len(xs))
	for i := range xs {
		hs[i] = xs[i].hash
	}
	le.PutUint32(b[xattrBlockHashOf:], xattrBlockHash(hs))
	c := crc32cU64(fsSeed, blk)
	le.PutUint32(b[xattrBlockCsumOf:], crc32c(c, b))
	return b
}
