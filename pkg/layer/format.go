package layer

import (
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	kxz "github.com/kiln-build/kiln/internal/xz"
)

// kind is a format told by magic bytes.
type kind int

const (
	kindUnknown kind = iota
	kindTar
	kindGzip
	kindXz
	kindZstd
	kindBzip2
	kindAr
)

func (k kind) String() string {
	return [...]string{"unknown", "tar", "gzip", "xz", "zstd", "bzip2", "ar"}[k]
}

// sniffLen is how many leading bytes sniff wants: a tar header block.
const sniffLen = 512

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicAr   = []byte("!<arch>\n")
	// bzip2: "BZh", a block size digit, then the magic of a block (pi) or
	// of the end of the stream (sqrt(pi)), for an empty one.
	bz2Block = []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}
	bz2End   = []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90}
)

// sniff tells the format of a stream from its first bytes (up to sniffLen).
func sniff(b []byte) kind {
	switch {
	case bytes.HasPrefix(b, magicAr):
		return kindAr
	case bytes.HasPrefix(b, magicXz):
		return kindXz
	case bytes.HasPrefix(b, magicZstd):
		return kindZstd
	case bytes.HasPrefix(b, magicGzip):
		return kindGzip
	case len(b) >= 10 && b[0] == 'B' && b[1] == 'Z' && b[2] == 'h' && b[3] >= '1' && b[3] <= '9' &&
		(bytes.Equal(b[4:10], bz2Block) || bytes.Equal(b[4:10], bz2End)):
		return kindBzip2
	case isTarHeader(b):
		return kindTar
	}
	return kindUnknown
}

// isTarHeader reports whether b starts with a tar header block: ustar or
// GNU magic, a V7 header whose checksum is right, or a zero block (the end
// of an empty archive).
func isTarHeader(b []byte) bool {
	if len(b) < sniffLen {
		return false
	}
	b = b[:sniffLen]
	if bytes.Equal(b[257:262], []byte("ustar")) {
		return true
	}
	if bytes.Equal(b, make([]byte, sniffLen)) {
		return true
	}
	if b[0] == 0 { // a V7 header has a name
		return false
	}
	field := bytes.Trim(b[148:156], " \x00")
	want, err := strconv.ParseUint(string(field), 8, 32)
	if err != nil || len(field) == 0 {
		return false
	}
	var unsigned, signed int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return int64(want) == unsigned || int64(want) == signed
}

// zstdMaxWindow bounds the memory a zstd frame may ask for (that of
// "zstd --long"); frames asking for more are refused.
const zstdMaxWindow = 128 << 20

// decompress returns a reader of the decompressed stream of r and a
// function releasing it. xz is not here: it is read from its region with
// internal/xz, which needs the whole file (its index) to start.
func decompress(k kind, r io.Reader) (io.Reader, func(), error) {
	switch k {
	case kindGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case kindZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case kindBzip2:
		return bzip2.NewReader(r), func() {}, nil
	}
	return nil, nil, fmt.Errorf("%w: %s is not a compression format", ErrFormat, k)
}

// compressed reports whether k is a compression format.
func (k kind) compressed() bool {
	return k == kindGzip || k == kindXz || k == kindZstd || k == kindBzip2
}

// readHead reads up to sniffLen bytes of a region of ra.
func readHead(ra io.ReaderAt, off, size int64) ([]byte, error) {
	n := min(size, sniffLen)
	b := make([]byte, n)
	if _, err := ra.ReadAt(b, off); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// checkTarStream checks that a region of ra is a tar archive, plain or
// compressed, decompressing only its first block; it returns the outer
// format.
func checkTarStream(ra io.ReaderAt, off, size int64) (kind, error) {
	head, err := readHead(ra, off, size)
	if err != nil {
		return kindUnknown, err
	}
	k := sniff(head)
	switch {
	case k == kindTar:
		return k, nil
	case !k.compressed():
		return k, fmt.Errorf("%w: not a tar archive, plain or compressed with gzip, xz, zstd or bzip2", ErrFormat)
	}
	var zr io.Reader
	if k == kindXz {
		// The structure is checked whole; only the start is decoded.
		xr, err := kxz.NewStreamReader(ra, off, size)
		if err != nil {
			return k, err
		}
		defer xr.Close()
		zr = xr
	} else {
		dec, release, err := decompress(k, io.NewSectionReader(ra, off, size))
		if err != nil {
			return k, err
		}
		defer release()
		zr = dec
	}
	inner := make([]byte, sniffLen)
	n, err := io.ReadFull(zr, inner)
	if !isTarHeader(inner[:n]) {
		return k, notTar(k, err)
	}
	return k, nil
}

// notTar is the error for a decompressed stream that does not start with
// a tar header; err is the error met reading that far, if any.
func notTar(k kind, err error) error {
	switch err {
	case nil:
		return fmt.Errorf("%w: the %s stream does not hold a tar archive", ErrFormat, k)
	case io.EOF, io.ErrUnexpectedEOF:
		return fmt.Errorf("%s stream: truncated, or too short for a tar archive: %w", k, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%s stream: %w", k, err)
}
