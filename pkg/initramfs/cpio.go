package initramfs

import (
	"fmt"
	"io"
)

// newcMagic starts every "newc" entry (the SVR4 format without checksum).
const newcMagic = "070701"

// newcTrailer is the name of the entry that ends an archive.
const newcTrailer = "TRAILER!!!"

// File type bits of a cpio mode (as in stat's st_mode).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeCharDev = 0o020000
	modeSymlink = 0o120000
)

// newcHeader is the 110-byte header of a newc entry: the magic "070701"
// at offset 0, then thirteen fields, each 8 upper-case hexadecimal digits,
// in this order (offsets in bytes):
//
//	  6 c_ino        inode number; entries with nlink>1 and the same
//	                 ino are hard links of each other
//	 14 c_mode       file type and permission bits
//	 22 c_uid, 30 c_gid
//	 38 c_nlink      number of links
//	 46 c_mtime      seconds since the Unix epoch
//	 54 c_filesize   bytes of data after the name (a symlink's target)
//	 62 c_devmajor, 70 c_devminor    device holding the file
//	 78 c_rdevmajor, 86 c_rdevminor  device numbers of a device node
//	 94 c_namesize   length of the name including its NUL
//	102 c_check      0 for newc
//
// The name follows the header, NUL-terminated and padded with NULs so that
// header and name take a multiple of 4 bytes; the data follows, padded to
// a multiple of 4 likewise (buffer-format.rst in the kernel's
// Documentation/driver-api/early-userspace).
type newcHeader struct {
	Ino, Mode, UID, GID, Nlink, Mtime, FileSize     uint32
	DevMajor, DevMinor, RDevMajor, RDevMinor, Check uint32
}

// newcHeaderSize is the size of a header without the name.
const newcHeaderSize = 110

// cpioWriter writes newc entries to a stream.
type cpioWriter struct {
	w   io.Writer
	off int64
}

// entry writes one entry with its name (no leading "/") and data.
func (c *cpioWriter) entry(name string, h newcHeader, data []byte) error {
	if len(name) == 0 || len(name)+1 > 4096 {
		return fmt.Errorf("cpio: name %q: want 1 to 4095 bytes", name)
	}
	if uint64(len(data)) > 0xFFFFFFFF {
		return fmt.Errorf("cpio: %s: %d bytes do not fit newc's 32-bit size", name, len(data))
	}
	h.FileSize = uint32(len(data))
	fields := []uint32{h.Ino, h.Mode, h.UID, h.GID, h.Nlink, h.Mtime, h.FileSize,
		h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor, uint32(len(name) + 1), h.Check}
	buf := make([]byte, 0, newcHeaderSize+len(name)+4)
	buf = append(buf, newcMagic...)
	for _, f := range fields {
		buf = fmt.Appendf(buf, "%08X", f)
	}
	if len(buf) != newcHeaderSize {
		return fmt.Errorf("BUG: cpio header of %d bytes", len(buf))
	}
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	if err := c.write(buf); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.write(make([]byte, pad4(len(data))))
}

// trailer ends the archive.
func (c *cpioWriter) trailer() error {
	return c.entry(newcTrailer, newcHeader{Nlink: 1}, nil)
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	if err != nil {
		return fmt.Errorf("cpio: write at offset %d: %w", c.off, err)
	}
	return nil
}

// pad4 is how many bytes bring n to a multiple of 4.
func pad4(n int) int { return (4 - n%4) % 4 }
