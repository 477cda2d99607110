package layer

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ar archive layout (the format of .deb packages).
const (
	arMagicLen = 8
	arHdrLen   = 60
)

// debData finds the data.tar member of a Debian package held in r.
// The package must start with a "debian-binary" member of version 2.x;
// the member's name may carry any compression suffix, as the format of
// its bytes is told by magic.
func debData(r region) (region, error) {
	pos := int64(arMagicLen)
	for i := 0; ; i++ {
		if pos == r.size {
			return region{}, fmt.Errorf("%w: Debian package without a data.tar member", ErrFormat)
		}
		if pos+arHdrLen > r.size {
			return region{}, fmt.Errorf("truncated ar archive: member header at offset %d", pos)
		}
		var hdr [arHdrLen]byte
		if _, err := r.ra.ReadAt(hdr[:], r.off+pos); err != nil {
			return region{}, fmt.Errorf("reading ar member header at offset %d: %w", pos, err)
		}
		if hdr[58] != '`' || hdr[59] != '\n' {
			return region{}, fmt.Errorf("corrupt ar archive: bad member header at offset %d", pos)
		}
		name := strings.TrimSuffix(strings.TrimRight(string(hdr[0:16]), " "), "/")
		size, err := strconv.ParseInt(strings.TrimRight(string(hdr[48:58]), " "), 10, 64)
		if err != nil || size < 0 {
			return region{}, fmt.Errorf("corrupt ar archive: member %q: bad size %q", name, hdr[48:58])
		}
		data := pos + arHdrLen
		if size > r.size-data {
			return region{}, fmt.Errorf("truncated ar archive: member %q of %d bytes at offset %d runs past the end", name, size, data)
		}
		member := region{ra: r.ra, off: r.off + data, size: size}
		switch {
		case i == 0:
			if name != "debian-binary" {
				return region{}, fmt.Errorf("%w: ar archive is not a Debian package (its first member is %q, not debian-binary)", ErrFormat, name)
			}
			v := make([]byte, min(size, 16))
			if _, err := r.ra.ReadAt(v, member.off); err != nil && err != io.EOF {
				return region{}, err
			}
			if !bytes.HasPrefix(v, []byte("2.")) {
				return region{}, fmt.Errorf("unsupported Debian package format %q", bytes.TrimSpace(v))
			}
		case name == "data.tar" || strings.HasPrefix(name, "data.tar."):
			if _, err := checkTarStream(member.ra, member.off, member.size); err != nil {
				return region{}, fmt.Errorf("member %s: %w", name, err)
			}
			return member, nil
		}
		pos = data + size + size%2
	}
}
