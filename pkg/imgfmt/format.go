package imgfmt

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
)

// format is one image format: how Open recognises and reads it, and how
// Create checks its options and writes it. Each format's code is its own
// files of this package (raw: output.go and open.go; qcow2: qcow2*.go;
// VMDK: vmdk*.go; VHD: vhd*.go); a new format is its files plus one row
// of formats.
type format struct {
	name string
	// detect says whether a file is of this format, from its first 512
	// bytes (head, shorter for a short file) or, through f, its end. nil
	// for raw, which is what no other format claims.
	detect func(head []byte, f *os.File, fsize int64) bool
	// open reads a file detect claimed.
	open func(f *os.File, fsize int64) (Image, error)
	// options names the Options fields that apply to the format; setting
	// another is an error.
	options []string
	// check checks a virtual size (already a positive multiple of 512,
	// except for raw) and the options, before anything is created.
	check func(o *Options, size int64) error
	// create starts the image; nil for what Open recognises but Create
	// does not write.
	create func(path string, size int64, o Options) (Output, error)
}

// formats are the formats, in the order Open tries their detect: a file
// is the first that claims it, else one of foreign (refused), else raw
// (which has no detect).
var formats = []*format{
	{
		name: "raw",
		open: func(f *os.File, n int64) (Image, error) { return &rawImage{f: f, size: n}, nil },
		check: func(_ *Options, size int64) error {
			if size < 0 {
				return fmt.Errorf("raw: virtual size %d is negative", size)
			}
			return nil
		},
		create: func(path string, size int64, _ Options) (Output, error) { return createRaw(path, size) },
	}, {
		name:    "qcow2",
		detect:  func(head []byte, _ *os.File, _ int64) bool { return bytes.HasPrefix(head, []byte("QFI\xfb")) },
		open:    func(f *os.File, n int64) (Image, error) { return openQcow2(f, n) },
		options: []string{"Compression", "ClusterSize"},
		check:   checkQcow2,
		create: func(path string, size int64, o Options) (Output, error) {
			cs := o.ClusterSize
			if cs == 0 {
				cs = 64 << 10
			}
			comp := o.Compression
			if comp == "" {
				comp = "none"
			}
			return createStaged(path, size, &qcow2Writer{size: size, clusterBits: uint(bits.TrailingZeros64(uint64(cs))), compression: comp})
		},
	},
	{
		name:   "vmdk",
		detect: func(head []byte, _ *os.File, _ int64) bool { return bytes.HasPrefix(head, []byte(vmdkMagic)) },
		open:   func(f *os.File, n int64) (Image, error) { return openVMDK(f, n) },
		check: func(o *Options, size int64) error {
			if o.Compression != "" {
				return fmt.Errorf("vmdk: compression %q: streamOptimized grains are always deflated", o.Compression)
			}
			if size/512 > vmdkMaxSectors {
				return fmt.Errorf("vmdk: virtual size %d is over 2 TiB", size)
			}
			return nil
		},
		create: func(path string, size int64, o Options) (Output, error) {
			if name := filepath.Base(path); strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == '"' || r == 0x7f }) {
				return nil, fmt.Errorf("image %s: vmdk: the file name cannot go in the descriptor's extent line", path)
			}
			return createStaged(path, size, &vmdkWriter{size: size, extentName: filepath.Base(path), id: o.ID})
		},
	},
	{
		// A VMDK descriptor whose extents are other files: refused.
		name: "vmdk descriptor",
		detect: func(head []byte, _ *os.File, _ int64) bool {
			return bytes.HasPrefix(head, []byte("# Disk DescriptorFile"))
		},
		open: func(*os.File, int64) (Image, error) {
			return nil, errors.New("vmdk descriptor files with separate extents are not supported")
		},
	},
	{
		// The footer is the last 512 bytes; a dynamic VHD copies it at the
		// start.
		name: "vhd",
		detect: func(head []byte, f *os.File, fsize int64) bool {
			return bytes.HasPrefix(head, []byte(vhdCookie)) || tailIs(f, fsize, 512, vhdCookie)
		},
		open:    func(f *os.File, n int64) (Image, error) { return openVHD(f, n) },
		options: []string{"Subformat", "Azure"},
		check:   checkVHD,
		create: func(path string, size int64, o Options) (Output, error) {
			p := vhdParams{size: size, epoch: o.Epoch, id: o.ID}
			if o.Subformat == "fixed" || (o.Azure && o.Subformat == "") {
				return createVHDFixed(path, p)
			}
			return createStaged(path, size, &vhdDynamicWriter{p})
		},
	},
}

// Formats are the format names Create accepts.
var Formats = func() []string {
	var names []string
	for _, f := range formats {
		if f.create != nil {
			names = append(names, f.name)
		}
	}
	return names
}()

// lookupFormat is the format Create writes for a name ("" is raw).
func lookupFormat(name string) *format {
	if name == "" {
		name = "raw"
	}
	for _, f := range formats {
		if f.name == name && f.create != nil {
			return f
		}
	}
	return nil
}

// detectFormat is the format of an open file: the first that claims it,
// or an UnsupportedFormatError for one of foreign, or raw.
func detectFormat(head []byte, f *os.File, fsize int64) (*format, error) {
	var raw *format
	for _, ff := range formats {
		if ff.detect == nil {
			raw = ff
			continue
		}
		if ff.detect(head, f, fsize) {
			return ff, nil
		}
	}
	for _, ff := range foreign {
		if ff.match(head, f, fsize) {
			return nil, &UnsupportedFormatError{Format: ff.name}
		}
	}
	return raw, nil
}

// Create starts an image of the given format and virtual size at path:
// "raw" (or ""), "qcow2", "vmdk" (streamOptimized) or "vhd". The disk reads
// as zeros until written; WriteAt and ReadAt may come in any order, and
// the image is produced at Commit. At most one Options may be given.
//
// The same writes give the same image, byte for byte, whatever their
// order, the number of CPUs or the time: see doc.go.
func Create(path, format string, size int64, opts ...Options) (Output, error) {
	if len(opts) > 1 {
		return nil, fmt.Errorf("image %s: %d Options given, want at most one", path, len(opts))
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	f, err := o.check(format, size)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	// create's errors name the path themselves (the temporary file they
	// concern, mostly).
	return f.create(path, size, o)
}

// check finds the format and checks the size and the options for it.
func (o *Options) check(name string, size int64) (*format, error) {
	f := lookupFormat(name)
	if f == nil {
		return nil, fmt.Errorf("image format %q is not supported (use one of %s)", name, strings.Join(Formats, ", "))
	}
	if f.name != "raw" && (size <= 0 || size%512 != 0) {
		return nil, fmt.Errorf("%s: virtual size %d is not a positive multiple of 512 bytes", f.name, size)
	}
	if err := f.check(o, size); err != nil {
		return nil, err
	}
	return f, o.only(f.name, f.options...)
}
