package layer

import (
	"archive/tar"
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

const (
	schilyXattr     = "SCHILY.xattr."
	libarchiveXattr = "LIBARCHIVE.xattr."
	maxXattrValue   = 65536 // XATTR_SIZE_MAX
)

// typeRegA is the regular-file flag of pre-POSIX tars, NUL (archive/tar's
// TypeRegA, deprecated as a name to write, still found in old layers).
const typeRegA = '\x00'

// fromHeader converts a tar header, with the PAX and GNU extended headers
// before it applied, into an entry. It returns nil, nil for headers that
// carry no file (the root unless keepRoot, PAX global headers, volume
// labels). Content is left for the caller to fill in.
func fromHeader(h *tar.Header, keepRoot bool) (*tree.Entry, error) {
	t, err := entryType(h.Typeflag)
	if t == 0 || err != nil {
		return nil, err
	}
	e := &tree.Entry{Type: t}

	p, err := cleanPath(h.Name)
	if err != nil {
		return nil, err
	}
	if p == "" {
		if e.Type != tree.TypeDir {
			return nil, fmt.Errorf("the layer root must be a directory, not a %s", e.Type)
		}
		if !keepRoot {
			return nil, nil
		}
		p = "."
	}
	e.Path = p

	switch e.Type {
	case tree.TypeHardlink:
		l, err := cleanPath(h.Linkname)
		if err != nil {
			return nil, fmt.Errorf("hardlink target: %w", err)
		}
		if l == "" {
			return nil, fmt.Errorf("hardlink to the layer root")
		}
		e.Linkname = l
	case tree.TypeSymlink:
		if err := checkSymlinkTarget(h.Linkname); err != nil {
			return nil, err
		}
		e.Linkname = h.Linkname
	case tree.TypeChar, tree.TypeBlock:
		if h.Devmajor < 0 || h.Devmajor > math.MaxUint32 || h.Devminor < 0 || h.Devminor > math.MaxUint32 {
			return nil, fmt.Errorf("device number %d,%d out of range", h.Devmajor, h.Devminor)
		}
		e.Major, e.Minor = uint32(h.Devmajor), uint32(h.Devminor)
	case tree.TypeReg:
		if h.Size < 0 {
			return nil, fmt.Errorf("negative size %d", h.Size)
		}
		e.Size = h.Size
	}

	e.Mode = uint32(h.Mode & 0o7777)
	if h.Uid < 0 || int64(h.Uid) > math.MaxUint32 || h.Gid < 0 || int64(h.Gid) > math.MaxUint32 {
		return nil, fmt.Errorf("owner %d:%d out of range", h.Uid, h.Gid)
	}
	e.UID, e.GID = uint32(h.Uid), uint32(h.Gid)
	e.Mtime = h.ModTime.Unix()
	e.Nsec = uint32(h.ModTime.Nanosecond())

	if e.Xattrs, err = xattrsFromPAX(h.PAXRecords); err != nil {
		return nil, err
	}
	return e, nil
}

// entryType returns the type of entry a tar type flag stands for; 0, nil
// for the flags of headers that carry no file (PAX global headers, volume
// labels).
func entryType(flag byte) (tree.EntryType, error) {
	switch flag {
	case tar.TypeReg, typeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return tree.TypeReg, nil
	case tar.TypeDir, 'D': // 'D': GNU dump directory
		return tree.TypeDir, nil
	case tar.TypeSymlink:
		return tree.TypeSymlink, nil
	case tar.TypeLink:
		return tree.TypeHardlink, nil
	case tar.TypeChar:
		return tree.TypeChar, nil
	case tar.TypeBlock:
		return tree.TypeBlock, nil
	case tar.TypeFifo:
		return tree.TypeFIFO, nil
	case tar.TypeXGlobalHeader, 'V': // 'V': GNU volume label
		return 0, nil
	}
	return 0, fmt.Errorf("unsupported tar entry type %q", flag)
}

// isSparse reports whether archive/tar expands h from a GNU sparse map, so
// that its data is not a plain run of bytes in the archive.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// xattrsFromPAX collects the extended attributes of PAX records, sorted by
// name. SCHILY.xattr.NAME holds the raw value; LIBARCHIVE.xattr.NAME has a
// URL-escaped name and a base64 value (libarchive writes it unpadded). If
// both give the same name, the SCHILY record wins.
func xattrsFromPAX(recs map[string]string) ([]tree.Xattr, error) {
	var xs []tree.Xattr
	seen := map[string]bool{}
	for k, v := range recs {
		if name, ok := strings.CutPrefix(k, schilyXattr); ok {
			xs = append(xs, tree.Xattr{Name: name, Value: []byte(v)})
			seen[name] = true
		}
	}
	for k, v := range recs {
		enc, ok := strings.CutPrefix(k, libarchiveXattr)
		if !ok {
			continue
		}
		name, err := url.PathUnescape(enc)
		if err != nil {
			return nil, fmt.Errorf("PAX record %q: bad escaped name: %w", k, err)
		}
		if seen[name] {
			continue
		}
		val, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			return nil, fmt.Errorf("PAX record %q: bad base64 value: %w", k, err)
		}
		xs = append(xs, tree.Xattr{Name: name, Value: val})
		seen[name] = true
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	for _, x := range xs {
		switch {
		case x.Name == "" || len(x.Name) > maxNameLen || strings.IndexByte(x.Name, 0) >= 0:
			return nil, fmt.Errorf("bad extended attribute name %q", x.Name)
		case len(x.Value) > maxXattrValue:
			return nil, fmt.Errorf("extended attribute %s: value of %d bytes (the limit is %d)", x.Name, len(x.Value), maxXattrValue)
		}
	}
	return xs, nil
}
