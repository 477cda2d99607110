package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// Options control how layers are opened.
type Options struct {
	// Epoch is the mtime of every entry of a directory layer.
	Epoch int64
	// DirUID and DirGID own every entry of a directory layer (default
	// 0:0): the uid of whoever runs the build never leaks into the image.
	DirUID, DirGID uint32
	// DirModes is the mode policy of a directory layer: ModesGit (the
	// zero value) or ModesPreserve. See "Directory layers" in the package
	// documentation.
	DirModes DirModes
	// DirChmod sets the mode (permission bits, setuid, setgid, sticky:
	// 07777) of entries of a directory layer, by path as tree.Entry.Path has
	// it ("." for the root), after DirModes. A path the layer does not
	// have is an error of its walk; DirChmod on a layer that is not a
	// directory is an error of Open.
	DirChmod map[string]uint32
	// SHA256 optionally pins the layer file: the hex sha256 of its bytes
	// ("sha256:" prefix allowed). A mismatch is an error naming the layer.
	// For an OCI image layout directory it pins the digest of the image
	// manifest chosen (which pins, through digests, every blob); for any
	// other directory a pin is an error.
	SHA256 string
	// TempDir is where spill files go ("" means os.TempDir()). It is used
	// only when Spill is nil.
	TempDir string
	// Spill keeps what the Contents of the layers refer to; its owner
	// closes it once the image is written. If nil, Open makes one in
	// TempDir for the layers it returns, which is never closed explicitly:
	// its files are closed when the garbage collector finds them
	// unreachable, or when the process exits.
	Spill *Spill
	// KeepRoot passes the root directory of a layer, when the layer has
	// one, as an entry with Path "." (directory layers always have one).
	// By default it is skipped, as containerd does.
	KeepRoot bool
	// MaxBytes bounds the uncompressed size of each tar layer: the bytes
	// of its tar stream once decompressed, plus the whole size of each
	// sparse entry (holes included). 0 means DefaultMaxBytes (64 GiB); a
	// negative value, no limit. Directory layers are not bounded.
	MaxBytes int64
	// Cache, when set, keeps the decompressed tar stream of compressed
	// layers between builds (see Cache); nil means no cache.
	Cache *Cache
	// DiffID makes every walk of a tar layer (plain, compressed, of a
	// .deb or of an image) find the sha256 of its uncompressed tar stream,
	// its diff_id, and report it in Info.DiffID: the layer's content
	// digest, whatever its compression. It costs a sha256 of the stream
	// where the walk would not take one anyway (a plain tar is then read
	// whole instead of seeking over file data).
	DiffID bool
	// MaxRatio bounds, past RatioFloor (1 GiB), the uncompressed size of
	// each tar layer to this many times its size as stored (the file, the
	// blob or the .deb member): a small file that expands to many GiB is
	// a decompression bomb. 0 means DefaultMaxRatio (2000); a negative
	// value, no limit. Going past either limit is an error (ErrTooLarge)
	// naming the layer and the entry being read, raised as soon as an
	// entry's header announces it, before its data is spilled.
	MaxRatio int64
	// Platform is the platform whose image is taken from an OCI image
	// layout or an image archive (see "Images" in the package
	// documentation); the zero value means linux/amd64. An image for
	// another platform is refused (ErrPlatform).
	Platform Platform
}

// DirModes is the mode policy of directory layers.
type DirModes int

const (
	// ModesGit, the default, keeps of a host file's mode only what git
	// keeps: regular files are 0755 if their owner may execute them,
	// else 0644; directories are 0755. The same commit gives the same
	// modes whatever the umask of the checkout (0664/0775 under umask 002,
	// 0555 in Bazel's sandbox). Setuid, setgid and sticky bits are
	// dropped (git drops them too). Symlinks are 0777; fifos and device
	// nodes, which git cannot hold, keep the host's bits.
	ModesGit DirModes = iota
	// ModesPreserve keeps the host's permission bits, setuid, setgid and
	// sticky, as they are.
	ModesPreserve
)

// Layer is one layer, ready to be walked.
type Layer interface {
	// Name is for messages: the path given to Open, plus "@sha256:..." for
	// a layer inside an OCI layout or a docker archive.
	Name() string
	// Walk calls fn for every entry, in the order the layer stores them
	// (directory layers: a sorted walk). An error of fn stops the walk and
	// is returned as is; any other error is an *Error. Walk may be called
	// again; it reads the layer anew.
	Walk(fn func(e *tree.Entry) error) error
}

// Open detects the format of path by its bytes, not by its name, and
// returns the layers it holds: one, or for an OCI image layout or a docker
// archive every layer of the image, in manifest order.
func Open(path string, o Options) ([]Layer, error) {
	fail := func(err error) ([]Layer, error) { return nil, &Error{Layer: path, Err: err} }
	pin, err := parsePin(o.SHA256)
	if err != nil {
		return fail(err)
	}
	spill := o.Spill
	if spill == nil {
		spill = NewSpill(o.TempDir)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	if fi.IsDir() {
		if _, err := os.Lstat(filepath.Join(path, "oci-layout")); err == nil {
			if len(o.DirChmod) > 0 || o.DirModes != ModesGit {
				return fail(errors.New("modes and chmod are for directory layers; an OCI image layout stores its own modes"))
			}
			ls, err := openOCI(path, dirFS{root: path, spill: spill}, spill, o.KeepRoot, pin, o.Platform)
			setLimits(ls, o)
			return ls, err
		}
		if pin != "" {
			return fail(errors.New("a sha256 pin was given for a directory layer, which has no digest"))
		}
		return openDir(path, o)
	}
	if len(o.DirChmod) > 0 || o.DirModes != ModesGit {
		return fail(errors.New("modes and chmod are for directory layers; this layer stores its own modes"))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("not a regular file or a directory (%s)", fi.Mode().Type()))
	}

	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	ls, err := openFile(path, f, spill, o.KeepRoot, pin, o.Platform)
	if err != nil {
		f.Close()
		var le *Error
		if !errors.As(err, &le) {
			err = &Error{Layer: path, Err: err}
		}
		return nil, err
	}
	if err := spill.keep(f); err != nil {
		return fail(err)
	}
	setLimits(ls, o)
	return ls, nil
}

// setLimits gives the tar layers of ls the expansion limits and the
// cache of o.
func setLimits(ls []Layer, o Options) {
	for _, l := range ls {
		if t, ok := l.(*tarLayer); ok {
			t.maxBytes, t.maxRatio, t.cache, t.wantDiffID = o.MaxBytes, o.MaxRatio, o.Cache, o.DiffID
		}
	}
}

// openFile opens the layers of a regular file.
func openFile(path string, f *os.File, spill *Spill, keepRoot bool, pin string, want Platform) ([]Layer, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	whole := region{ra: f, off: 0, size: fi.Size()}
	digest := ""
	if pin != "" {
		h := sha256.New()
		if _, err := io.Copy(h, whole.reader()); err != nil {
			return nil, fmt.Errorf("hashing: %w", err)
		}
		if digest = hex.EncodeToString(h.Sum(nil)); digest != pin {
			return nil, fmt.Errorf("%w: file has sha256:%s, pinned sha256:%s", ErrDigest, digest, pin)
		}
	}
	head, err := readHead(f, 0, whole.size)
	if err != nil {
		return nil, err
	}
	switch k := sniff(head); {
	case k == kindAr:
		data, err := debData(whole)
		if err != nil {
			return nil, err
		}
		return []Layer{&tarLayer{name: path, src: data, spill: spill, keepRoot: keepRoot}}, nil
	case k == kindTar:
		arch, err := scanArchive(whole)
		if err != nil {
			return nil, err
		}
		if arch != nil {
			return openImageArchive(path, arch, spill, keepRoot, want)
		}
	case k.compressed():
		if _, err := checkTarStream(f, 0, whole.size); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: not a tar archive (plain, gzip, xz, zstd or bzip2), a Debian package, a directory, an OCI image layout or a docker archive", ErrFormat)
	}
	return []Layer{&tarLayer{name: path, src: whole, spill: spill, keepRoot: keepRoot, srcDigest: digest, rootfs: true}}, nil
}

// parsePin returns the lower-case hex of a sha256 pin, or "".
func parsePin(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	h := strings.ToLower(strings.TrimPrefix(s, "sha256:"))
	if !isHexDigest(h) {
		return "", fmt.Errorf("bad sha256 pin %q: want 64 hex digits", s)
	}
	return h, nil
}

// isHexDigest reports whether s is 64 lower-case hex digits.
func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
