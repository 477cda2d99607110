package layer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kiln-build/kiln/pkg/tree"
)

// maxJSON bounds the size of the JSON documents of an image (index,
// manifest, config) read into memory.
const maxJSON = 16 << 20

// imageFS is where the files of an image live: a directory (an OCI image
// layout) or the members of a tar (a docker archive, an OCI archive).
// Names are slash-separated and relative to the image root.
type imageFS interface {
	// open returns the named file as a region of an open file.
	open(name string) (region, error)
	// readFile returns the content of a small named file.
	readFile(name string, limit int64) ([]byte, error)
}

// dirFS is an OCI image layout directory. Blob files it opens are kept
// open by the spill store, for contents to be read in place.
type dirFS struct {
	root  string
	spill *Spill
}

func (d dirFS) open(name string) (region, error) {
	f, err := os.Open(filepath.Join(d.root, filepath.FromSlash(name)))
	if err != nil {
		return region{}, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err == nil {
		err = d.spill.keep(f)
	} else {
		f.Close()
	}
	if err != nil {
		return region{}, err
	}
	return region{ra: f, size: fi.Size()}, nil
}

func (d dirFS) readFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(d.root, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, name, limit)
}

func readLimited(r io.Reader, name string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// member is a file of a tar archive, found by scanArchive.
type member struct {
	typ  byte
	link string // cleaned target of a symlink (relative to its directory) or hardlink
	data region
}

// tarFS is a tar archive holding an image.
type tarFS struct {
	members map[string]member
}

func (t tarFS) open(name string) (region, error) {
	p, err := cleanPath(name)
	if err != nil {
		return region{}, fmt.Errorf("member %q: %w", name, err)
	}
	for hops := 0; hops < 16; hops++ {
		m, ok := t.members[p]
		if !ok {
			return region{}, fmt.Errorf("the archive has no member %s", p)
		}
		switch m.typ {
		case tar.TypeReg, typeRegA, tar.TypeCont:
			return m.data, nil
		case tar.TypeLink:
			p = m.link
		case tar.TypeSymlink:
			if path.IsAbs(m.link) {
				p, err = cleanPath(m.link)
			} else {
				p, err = cleanPath(path.Join(path.Dir(p), m.link))
			}
			if err != nil {
				return region{}, fmt.Errorf("member %s: symlink target: %w", name, err)
			}
		default:
			return region{}, fmt.Errorf("member %s is not a regular file", p)
		}
	}
	return region{}, fmt.Errorf("member %s: too many links", name)
}

func (t tarFS) readFile(name string, limit int64) ([]byte, error) {
	r, err := t.open(name)
	if err != nil {
		return nil, err
	}
	if r.size > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return readLimited(r.reader(), name, limit)
}

// scanArchive lists the members of a tar file if it is an image archive
// (a docker save archive of any writer, or an OCI image layout packed in
// a tar), and returns nil for a root filesystem tarball.
//
// An image archive holds, at its top, regular files whatever their names
// (manifest.json, index.json, oci-layout, repositories, configs, and the
// layers skopeo and podman name HEX.tar), and directories named blobs or
// by a hex id (docker's legacy HEX/layer.tar); the scan stops at the first
// member that cannot be part of one ("etc/", "usr/bin/..."), so a root
// filesystem usually costs one header. Whatever the members are called,
// manifest.json's Layers say which are the layers.
//
// A tar marked as an image (a top-level manifest.json or oci-layout, or
// index.json with blobs/) is an image archive: if it cannot be read as
// one, that is an error, never a root filesystem. A marker the scan does
// not reach is caught by the walk (see imageMarker).
func scanArchive(whole region) (*tarFS, error) {
	raw := whole.reader()
	cnt := &counter{r: raw, s: raw}
	tr := tar.NewReader(seekingCounter{cnt})
	fs := &tarFS{members: map[string]member{}}
	blobs := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && h != nil {
			err = nil
		}
		if err != nil {
			if imageMarked(fs.members, blobs) {
				return nil, fmt.Errorf("%w: reading a tar header of what looks like an image archive: %v", ErrFormat, err)
			}
			return nil, nil // not an image archive; Walk reports it
		}
		p, err := cleanPath(h.Name)
		if err != nil {
			return nil, nil // not an image archive; Walk reports the entry
		}
		if p == "" {
			continue
		}
		if !imageArchiveMember(p, h.Typeflag) {
			return nil, nil
		}
		if p == "blobs" || strings.HasPrefix(p, "blobs/") {
			blobs = true
		}
		m := member{typ: h.Typeflag}
		switch h.Typeflag {
		case tar.TypeReg, typeRegA, tar.TypeCont:
			if isSparse(h) {
				m.typ = tar.TypeGNUSparse // not readable in place
				break
			}
			if cnt.n+h.Size > whole.size {
				return nil, fmt.Errorf("truncated archive: member %s runs past the end", p)
			}
			m.data = region{ra: whole.ra, off: whole.off + cnt.n, size: h.Size}
		case tar.TypeLink:
			if m.link, err = cleanPath(h.Linkname); err != nil {
				return nil, nil // not an image archive; Walk reports the entry
			}
		case tar.TypeSymlink:
			m.link = h.Linkname
		}
		fs.members[p] = m
	}
	if !imageMarked(fs.members, blobs) {
		return nil, nil
	}
	return fs, nil
}

// imageMarked reports whether the top-level members of a tar mark it as
// an image archive: manifest.json (docker save, skopeo and podman
// docker-archive), oci-layout (an OCI archive), or index.json next to
// blobs/ (an OCI layout that lost its marker).
func imageMarked(members map[string]member, blobs bool) bool {
	_, manifest := members["manifest.json"]
	_, layout := members["oci-layout"]
	_, index := members["index.json"]
	return manifest || layout || index && blobs
}

// imageArchiveMember reports whether p, a cleaned member name of type
// flag typ, can be part of a docker or OCI image archive.
func imageArchiveMember(p string, typ byte) bool {
	top, _, nested := strings.Cut(p, "/")
	switch {
	case top == "blobs", isHexDigest(top):
		return true
	case nested:
		return false
	}
	switch typ {
	case tar.TypeReg, typeRegA, tar.TypeCont, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink:
		return true
	}
	return false
}

// imageMarker tells a walk of a tar opened as a root filesystem that an
// entry marks it as an image archive kiln could not read as one (a
// compressed "docker save | gzip", or a marker past the members scanArchive
// reads): it returns the error refusing the layer, or nil. index.json and
// blobs/ mark it together; *index and *blobs keep what was seen.
func imageMarker(e *tree.Entry, index, blobs *bool) error {
	switch {
	case e.Path == "manifest.json" && e.Type == tree.TypeReg:
		return fmt.Errorf("%w: a top-level manifest.json marks a docker image archive (docker save, skopeo or podman docker-archive), which kiln cannot read as one (it is compressed, or holds files no image archive has); refusing to merge it as a root filesystem", ErrFormat)
	case e.Path == "oci-layout" && e.Type == tree.TypeReg:
		return fmt.Errorf("%w: a top-level oci-layout marks an OCI image archive, which kiln cannot read as one (it is compressed, or holds files no image archive has); refusing to merge it as a root filesystem", ErrFormat)
	case e.Path == "index.json" && e.Type == tree.TypeReg:
		*index = true
	case e.Path == "blobs" || strings.HasPrefix(e.Path, "blobs/"):
		*blobs = true
	}
	if *index && *blobs {
		return fmt.Errorf("%w: a top-level index.json and blobs/ mark an OCI image layout, which kiln cannot read as one (it is compressed, or has no oci-layout); refusing to merge it as a root filesystem", ErrFormat)
	}
	return nil
}

// openImageArchive returns the layers of a docker or OCI image archive.
// A docker manifest.json, which newer docker writes next to its OCI
// layout, is preferred: it lists exactly the image saved, whereas the
// index may name platforms whose blobs were left out.
func openImageArchive(name string, fs *tarFS, spill *Spill, keepRoot bool, want Platform) ([]Layer, error) {
	var (
		ls  []Layer
		err error
	)
	if _, ok := fs.members["manifest.json"]; ok {
		ls, err = openDocker(name, fs, spill, keepRoot, want)
		if err != nil && !errors.Is(err, ErrPlatform) {
			err = fmt.Errorf("a top-level manifest.json marks a docker image archive, which cannot be read: %w", err)
		}
	} else {
		ls, err = openOCI(name, fs, spill, keepRoot, "", want)
	}
	return ls, err
}

// dockerManifest is the manifest.json of a docker save archive.
type dockerManifest []struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// imageConfig is what kiln reads of an image configuration.
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func openDocker(name string, fs *tarFS, spill *Spill, keepRoot bool, want Platform) ([]Layer, error) {
	b, err := fs.readFile("manifest.json", maxJSON)
	if err != nil {
		return nil, err
	}
	var dm dockerManifest
	if err := json.Unmarshal(b, &dm); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(dm) != 1 {
		return nil, fmt.Errorf("manifest.json lists %d images; a layer archive must hold exactly one", len(dm))
	}
	img := dm[0]
	if img.Config == "" {
		return nil, errors.New("manifest.json: the image has no Config")
	}
	cb, err := fs.readFile(img.Config, maxJSON)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if want := digestInName(img.Config); want != "" {
		if got := sha256Hex(cb); got != want {
			return nil, fmt.Errorf("%w: config %s has sha256:%s", ErrDigest, img.Config, got)
		}
	}
	c, diffIDs, err := parseConfig(cb, len(img.Layers))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", img.Config, err)
	}
	// A docker archive has no index: the config alone says the platform.
	if err := checkConfigPlatform(c, "the image (config "+quoteName(img.Config)+")", nil, want); err != nil {
		return nil, err
	}
	ls := make([]Layer, 0, len(img.Layers))
	for i, ln := range img.Layers {
		src, err := fs.open(ln)
		if err != nil {
			return nil, fmt.Errorf("image layer %d: %w", i+1, err)
		}
		if _, err := checkTarStream(src.ra, src.off, src.size); err != nil {
			return nil, fmt.Errorf("image layer %s: %w", ln, err)
		}
		l := &tarLayer{src: src, spill: spill, keepRoot: keepRoot, blobDigest: digestInName(ln)}
		if diffIDs != nil {
			l.diffID = diffIDs[i]
		}
		switch {
		case l.diffID != "":
			l.name = name + "@sha256:" + l.diffID
		case l.blobDigest != "":
			l.name = name + "@sha256:" + l.blobDigest
		default:
			l.name = name + "@" + ln
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// digestInName returns the sha256 (hex) a member name states its content
// has: "blobs/sha256/HEX" or a legacy config "HEX.json"; else "".
func digestInName(name string) string {
	p, err := cleanPath(name)
	if err != nil {
		return ""
	}
	if h, ok := strings.CutPrefix(p, "blobs/sha256/"); ok && isHexDigest(h) {
		return h
	}
	if h, ok := strings.CutSuffix(p, ".json"); ok && isHexDigest(h) {
		return h
	}
	return ""
}

// parseConfig parses a config and returns it with its hex diff_ids (nil
// if it has none).
func parseConfig(config []byte, layers int) (imageConfig, []string, error) {
	var c imageConfig
	if err := json.Unmarshal(config, &c); err != nil {
		return c, nil, err
	}
	if len(c.RootFS.DiffIDs) == 0 {
		return c, nil, nil
	}
	if len(c.RootFS.DiffIDs) != layers {
		return c, nil, fmt.Errorf("%d diff_ids for %d layers", len(c.RootFS.DiffIDs), layers)
	}
	out := make([]string, len(c.RootFS.DiffIDs))
	for i, d := range c.RootFS.DiffIDs {
		h, err := parseDigest(d)
		if err != nil {
			return c, nil, fmt.Errorf("diff_id %d: %w", i+1, err)
		}
		out[i] = h
	}
	return c, out, nil
}

// parseDigest returns the hex of a "sha256:HEX" digest. Other algorithms
// are refused, and so is anything but 64 lower-case hex digits, which
// also keeps a digest from naming a path outside blobs/sha256.
func parseDigest(d string) (string, error) {
	alg, h, ok := strings.Cut(d, ":")
	if !ok {
		return "", fmt.Errorf("bad digest %q", d)
	}
	if alg != "sha256" {
		return "", fmt.Errorf("digest %q: unsupported algorithm %q", d, alg)
	}
	if !isHexDigest(h) {
		return "", fmt.Errorf("bad digest %q: want sha256 and 64 lower-case hex digits", d)
	}
	return h, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Media types of OCI and docker images.
const (
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

// layerMediaTypes are the layer media types kiln accepts. The media type
// only gates acceptance; the compression is told by the blob's magic.
var layerMediaTypes = map[string]bool{
	"application/vnd.oci.image.layer.v1.tar":                       true,
	"application/vnd.oci.image.layer.v1.tar+gzip":                  true,
	"application/vnd.oci.image.layer.v1.tar+zstd":                  true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	"application/vnd.docker.image.rootfs.diff.tar":                 true,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar":         true,
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociIndex struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// readBlob reads a small blob and checks its size and digest.
func readBlob(fs imageFS, d descriptor) ([]byte, error) {
	h, err := parseDigest(d.Digest)
	if err != nil {
		return nil, err
	}
	if d.Size < 0 || d.Size > maxJSON {
		return nil, fmt.Errorf("blob %s: size %d out of range", d.Digest, d.Size)
	}
	b, err := fs.readFile("blobs/sha256/"+h, maxJSON)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, its descriptor says %d", d.Digest, len(b), d.Size)
	}
	if got := sha256Hex(b); got != h {
		return nil, fmt.Errorf("%w: blob %s has sha256:%s", ErrDigest, d.Digest, got)
	}
	return b, nil
}

// openOCI returns the layers of the image for platform want of an OCI
// image layout. pin, if set, is the digest the chosen manifest must have.
func openOCI(name string, fs imageFS, spill *Spill, keepRoot bool, pin string, want Platform) ([]Layer, error) {
	ls, err := openOCILayers(name, fs, spill, keepRoot, pin, want)
	if err != nil {
		var le *Error
		if !errors.As(err, &le) {
			err = &Error{Layer: name, Err: err}
		}
		return nil, err
	}
	return ls, nil
}

func openOCILayers(name string, fs imageFS, spill *Spill, keepRoot bool, pin string, want Platform) ([]Layer, error) {
	b, err := fs.readFile("oci-layout", 1<<16)
	if err != nil {
		return nil, fmt.Errorf("%w: not an OCI image layout: %v", ErrFormat, err)
	}
	var lay struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &lay); err != nil || lay.Version == "" {
		return nil, fmt.Errorf("%w: oci-layout is not an OCI image layout marker", ErrFormat)
	}
	if !strings.HasPrefix(lay.Version, "1.") {
		return nil, fmt.Errorf("unsupported OCI image layout version %q", lay.Version)
	}
	b, err = fs.readFile("index.json", maxJSON)
	if err != nil {
		return nil, err
	}
	var idx ociIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	md, err := chooseManifest(fs, idx, want)
	if err != nil {
		return nil, err
	}
	if pin != "" && md.Digest != "sha256:"+pin {
		return nil, fmt.Errorf("%w: image manifest is %s, pinned sha256:%s", ErrDigest, md.Digest, pin)
	}
	mb, err := readBlob(fs, md)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m ociManifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", md.Digest, err)
	}
	if m.MediaType != "" && m.MediaType != mtOCIManifest && m.MediaType != mtDockerManifest {
		return nil, fmt.Errorf("manifest %s: media type %q is not an image manifest", md.Digest, m.MediaType)
	}
	cb, err := readBlob(fs, m.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, diffIDs, err := parseConfig(cb, len(m.Layers))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if err := checkConfigPlatform(c, "the image of manifest "+md.Digest+" (config "+m.Config.Digest+")", md.Platform, want); err != nil {
		return nil, err
	}
	ls := make([]Layer, 0, len(m.Layers))
	for i, d := range m.Layers {
		if !layerMediaTypes[d.MediaType] {
			return nil, fmt.Errorf("image layer %s: unsupported media type %q", d.Digest, d.MediaType)
		}
		h, err := parseDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image layer %d: %w", i+1, err)
		}
		src, err := fs.open("blobs/sha256/" + h)
		if err != nil {
			return nil, fmt.Errorf("image layer %s: %w", d.Digest, err)
		}
		if src.size != d.Size {
			return nil, fmt.Errorf("image layer %s: blob of %d bytes, its descriptor says %d", d.Digest, src.size, d.Size)
		}
		l := &tarLayer{name: name + "@" + d.Digest, src: src, spill: spill, keepRoot: keepRoot, blobDigest: h}
		if diffIDs != nil {
			l.diffID = diffIDs[i]
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// chooseManifest picks the image manifest of an index for platform want:
// nested indexes are followed, attestation manifests (docker buildx's,
// platform unknown/unknown) are ignored; then the manifest listed for want
// (platforms compared as containerd normalises them: arm64 is arm64/v8),
// preferring one listed with want's variant written out over one listed
// without it (arm64/v8 over arm64); else, if the index has a single
// manifest and lists no platform for it, that one (its config must then
// say it is for want). Anything else is an error: no manifest, none for
// want (ErrPlatform, naming the platforms the index has), or several
// different ones for it.
func chooseManifest(fs imageFS, idx ociIndex, want Platform) (descriptor, error) {
	var all []descriptor
	if err := collectManifests(fs, idx, 0, map[string]bool{}, &all); err != nil {
		return descriptor{}, err
	}
	if len(all) == 0 {
		return descriptor{}, errors.New("index.json lists no image manifest")
	}
	w := want.normal()
	var match, exact []descriptor
	add := func(list []descriptor, d descriptor) []descriptor {
		if !slices.ContainsFunc(list, func(a descriptor) bool { return a.Digest == d.Digest }) {
			list = append(list, d)
		}
		return list
	}
	for _, d := range all {
		if d.Platform == nil || d.Platform.normal() != w {
			continue
		}
		match = add(match, d)
		if strings.EqualFold(d.Platform.Variant, w.Variant) {
			exact = add(exact, d)
		}
	}
	if len(exact) > 0 {
		match = exact
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) > 1:
		return descriptor{}, fmt.Errorf("%w: index.json lists %d different image manifests for %s", ErrPlatform, len(match), w)
	case len(all) == 1 && all[0].Platform == nil:
		return all[0], nil
	}
	return descriptor{}, fmt.Errorf("%w: index.json has no image for %s; it has %s", ErrPlatform, w, listPlatforms(all))
}

// collectManifests appends the manifests of idx and of the indexes it
// nests to out. A nested index is read once, however many times it is
// listed (seen holds the digests read): read along every path, 40 copies
// at each of 4 levels would take millions of reads.
func collectManifests(fs imageFS, idx ociIndex, depth int, seen map[string]bool, out *[]descriptor) error {
	for _, d := range idx.Manifests {
		switch d.MediaType {
		case mtOCIManifest, mtDockerManifest:
			if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
				d.Platform != nil && d.Platform.OS == "unknown" {
				continue
			}
			*out = append(*out, d)
		case mtOCIIndex, mtDockerList:
			if depth >= 4 {
				return errors.New("image indexes nested too deep")
			}
			if seen[d.Digest] {
				continue
			}
			seen[d.Digest] = true
			b, err := readBlob(fs, d)
			if err != nil {
				return fmt.Errorf("index: %w", err)
			}
			var sub ociIndex
			if err := json.Unmarshal(b, &sub); err != nil {
				return fmt.Errorf("index %s: %w", d.Digest, err)
			}
			if err := collectManifests(fs, sub, depth+1, seen, out); err != nil {
				return err
			}
		}
	}
	return nil
}
