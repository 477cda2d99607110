package layer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/pkg/tree"
)

// dirLayer is a directory of the host.
type dirLayer struct {
	name string // as given to Open, for messages
	root string // absolute
	o    Options
}

func openDir(path string, o Options) ([]Layer, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{Layer: path, Err: err}
	}
	return []Layer{&dirLayer{name: path, root: abs, o: o}}, nil
}

func (d *dirLayer) Name() string { return d.name }

func (d *dirLayer) describe() Info { return Info{Format: "dir"} }

type devIno struct{ dev, ino uint64 }

// Walk emits the tree depth-first, parents first, names in byte order.
func (d *dirLayer) Walk(fn func(e *tree.Entry) error) error {
	fi, err := os.Stat(d.root)
	if err != nil {
		return &Error{Layer: d.name, Err: err}
	}
	if !fi.IsDir() {
		return &Error{Layer: d.name, Err: fmt.Errorf("no longer a directory")}
	}
	w := dirWalk{d: d, fn: fn, links: map[devIno]string{}, chmodded: map[string]bool{}}
	if d.o.KeepRoot {
		e := d.entry(".", fi)
		e.Type = tree.TypeDir
		w.setMode(e)
		if err := fn(e); err != nil {
			return err
		}
	} else if _, ok := d.o.DirChmod["."]; ok {
		w.chmodded["."] = true // the root is not an entry; nothing to set
	}
	if err := w.dir("", d.root); err != nil {
		return err
	}
	if missing := w.unusedChmod(); missing != "" {
		return &Error{Layer: d.name, Err: fmt.Errorf("chmod names /%s, which the layer does not have", strings.TrimPrefix(missing, "."))}
	}
	return nil
}

// unusedChmod returns the first (in byte order) path of DirChmod that the
// walk did not meet, or "".
func (w *dirWalk) unusedChmod() string {
	var missing []string
	for p := range w.d.o.DirChmod {
		if !w.chmodded[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	sort.Strings(missing)
	return missing[0]
}

type dirWalk struct {
	d        *dirLayer
	fn       func(*tree.Entry) error
	links    map[devIno]string // first path of each multiply-linked inode
	chmodded map[string]bool   // paths of DirChmod met
}

// setMode applies the mode policy and DirChmod to e, whose Mode is the
// host's.
func (w *dirWalk) setMode(e *tree.Entry) {
	if w.d.o.DirModes == ModesGit {
		switch e.Type {
		case tree.TypeDir:
			e.Mode = 0o755
		case tree.TypeReg, tree.TypeHardlink:
			if e.Mode&0o100 != 0 {
				e.Mode = 0o755
			} else {
				e.Mode = 0o644
			}
		case tree.TypeSymlink:
			e.Mode = 0o777
		}
	}
	if m, ok := w.d.o.DirChmod[e.Path]; ok {
		e.Mode = m & 0o7777
		w.chmodded[e.Path] = true
	}
}

func (w *dirWalk) dir(rel, abs string) error {
	f, err := os.Open(abs)
	if err != nil {
		return w.errorf(rel, "%w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return w.errorf(rel, "listing: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		if _, err := cleanPath(p); err != nil {
			return w.errorf(p, "%w", err)
		}
		hp := filepath.Join(abs, name)
		fi, err := os.Lstat(hp)
		if err != nil {
			return w.errorf(p, "%w", err)
		}
		e, err := w.entry(p, hp, fi)
		if err != nil {
			return w.errorf(p, "%w", err)
		}
		if e == nil {
			continue
		}
		w.setMode(e)
		if err := w.fn(e); err != nil {
			return err
		}
		if e.Type == tree.TypeDir {
			if err := w.dir(p, hp); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *dirWalk) errorf(entry, format string, a ...any) error {
	return &Error{Layer: w.d.name, Entry: entry, Err: fmt.Errorf(format, a...)}
}

// entry describes one host file, or returns nil for a socket.
func (w *dirWalk) entry(p, hp string, fi os.FileInfo) (*tree.Entry, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("no stat data for %s", hp)
	}
	e := w.d.entry(p, fi)
	mode := fi.Mode()
	if !mode.IsDir() && mode.Type() != os.ModeSocket && st.Nlink > 1 {
		key := devIno{uint64(st.Dev), uint64(st.Ino)}
		if first, ok := w.links[key]; ok {
			e.Type = tree.TypeHardlink
			e.Linkname = first
			return e, nil
		}
		w.links[key] = p
	}
	switch mode.Type() {
	case 0:
		e.Type = tree.TypeReg
		e.Size = fi.Size()
		if e.Size == 0 {
			e.Content = emptyContent{}
		} else {
			e.Content = hostContent{layer: w.d.name, entry: p, path: hp, size: e.Size}
		}
	case os.ModeDir:
		e.Type = tree.TypeDir
	case os.ModeSymlink:
		t, err := os.Readlink(hp)
		if err != nil {
			return nil, err
		}
		if err := checkSymlinkTarget(t); err != nil {
			return nil, err
		}
		e.Type = tree.TypeSymlink
		e.Linkname = t
	case os.ModeNamedPipe:
		e.Type = tree.TypeFIFO
	case os.ModeDevice | os.ModeCharDevice:
		e.Type = tree.TypeChar
		e.Major, e.Minor = devMajor(uint64(st.Rdev)), devMinor(uint64(st.Rdev))
	case os.ModeDevice:
		e.Type = tree.TypeBlock
		e.Major, e.Minor = devMajor(uint64(st.Rdev)), devMinor(uint64(st.Rdev))
	case os.ModeSocket:
		return nil, nil // tar cannot store them either
	default:
		return nil, fmt.Errorf("unsupported file type %s", mode.Type())
	}
	return e, nil
}

// entry is the metadata every entry of a directory layer shares: host
// permission bits (which setMode then replaces by the policy's), the owner
// and mtime of the options, no xattrs.
func (d *dirLayer) entry(p string, fi os.FileInfo) *tree.Entry {
	st := fi.Sys().(*syscall.Stat_t)
	return &tree.Entry{
		Path:  p,
		Mode:  uint32(st.Mode) & 0o7777,
		UID:   d.o.DirUID,
		GID:   d.o.DirGID,
		Mtime: d.o.Epoch,
	}
}

// Linux's encoding of device numbers (glibc's gnu_dev_major/minor).
func devMajor(dev uint64) uint32 {
	return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff)
}

func devMinor(dev uint64) uint32 {
	return uint32(dev&0xff | (dev>>12)&^0xff)
}

// hostContent is a regular file of a directory layer, read at Open time.
type hostContent struct {
	layer, entry string
	path         string
	size         int64
}

func (c hostContent) Open() (io.ReadCloser, error) {
	fail := func(err error) (io.ReadCloser, error) {
		return nil, &Error{Layer: c.layer, Entry: c.entry, Err: err}
	}
	// O_NOFOLLOW: a file swapped for a symlink is not followed out of
	// the tree; O_NONBLOCK: nor does one swapped for a fifo hang us.
	f, err := os.OpenFile(c.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("no longer a regular file")
	case fi.Size() != c.size:
		err = fmt.Errorf("changed size from %d to %d bytes since the layer was walked", c.size, fi.Size())
	}
	if err != nil {
		f.Close()
		return fail(err)
	}
	return &hostReader{f: f, c: c, r: io.LimitReader(f, c.size)}, nil
}

// hostReader reads exactly the size Walk saw: a file that shrank since is
// an error rather than a short read.
type hostReader struct {
	f *os.File
	c hostContent
	r io.Reader
	n int64
}

func (h *hostReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	if err == io.EOF && h.n < h.c.size {
		err = &Error{Layer: h.c.layer, Entry: h.c.entry, Err: fmt.Errorf("shrank to %d bytes while being read (%d expected)", h.n, h.c.size)}
	}
	return n, err
}

func (h *hostReader) Close() error { return h.f.Close() }
