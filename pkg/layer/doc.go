// Package layer opens the root-filesystem layers kiln merges and yields
// their entries (tree.Entry), one at a time, as the layer stores them. It
// only opens and walks layers: the types of the entries it yields are
// pkg/tree's, which does not import this package.
//
// Open detects a layer's format by its bytes, never by its name:
//
//   - a tar archive (ustar, GNU, PAX or V7), plain or compressed with gzip,
//     xz, zstd or bzip2;
//   - a Debian package (an ar archive): its data.tar member, plain or
//     compressed, is the layer;
//   - a directory on the host, walked in sorted order;
//   - an OCI image layout directory (a directory holding "oci-layout"):
//     the layers of its image manifest, in order;
//   - an image archive: a "docker save" archive (a tar holding
//     "manifest.json"), legacy or OCI-based, as docker, skopeo and podman
//     write it (docker-archive), or an OCI image layout packed in a tar
//     (oci-archive): its layers, in order, wherever manifest.json or the
//     index says they are.
//
// A tar marked as an image archive (a top-level manifest.json or
// oci-layout, or index.json next to blobs/) that cannot be read as one
// (compressed, holding files no image archive has, or broken) is refused
// (ErrFormat, or the error met reading it), never merged as a root
// filesystem: a root filesystem that holds /manifest.json cannot be told
// from a broken image, and kiln does not guess. Layers of an image are
// not checked for these names: they are root filesystems by definition.
//
// # Layers are hostile input
//
// Nothing read from a layer is written to the host as a file of its own.
// Every name is checked and normalised (see tree.Entry.Path): a name that would
// climb above the layer root, a NUL byte, a component longer than 255 bytes
// or a path longer than 4096 bytes is an error. Absolute names ("/etc/x")
// are taken relative to the layer root, as GNU tar does when it extracts.
// Hardlink targets are normalised and checked the same way; symlink
// targets are kept verbatim and never resolved here. Digests are verified
// whenever the format carries them (OCI descriptors, docker diff_ids,
// blob names) and every stream is read to its end so that they are. A
// truncated or corrupt archive is an error naming the layer and, when it
// is known, the entry: a header or file data cut short, a stream that
// ends inside a 512-byte block, a compressed stream that is cut or fails
// its checks. A tar that ends cleanly at an entry boundary without its
// end-of-archive blocks is accepted, as GNU tar, libarchive and
// archive/tar accept it; only a digest or a pin can tell that one was
// cut. All errors of Open and Walk are *Error, except the ones the
// callback of Walk returns, which Walk returns unchanged.
//
// Expansion is bounded, against decompression bombs: uncompressed, a tar
// layer (the bytes of its tar stream, plus the whole size of each sparse
// entry) may hold at most Options.MaxBytes (default 64 GiB) and, past
// RatioFloor (1 GiB), at most Options.MaxRatio (default 2000) times its
// size as stored. An entry whose header announces more is refused before
// its data is spilled (ErrTooLarge). Decoders' memory is bounded too: a
// zstd frame may ask for a window of at most 128 MiB, an xz block for a
// dictionary of at most 128 MiB (checked from the file's index and block
// headers before decoding, so an xz file must be whole).
//
// # Images
//
// For an OCI image layout, index.json may list several manifests, or
// nested indexes: attestation manifests (platform unknown/unknown) are
// ignored, then the image is the one listed for Options.Platform (by
// default linux/amd64; pkg/build asks for the platform of disk.arch).
// Platforms are compared as containerd normalises them: aarch64 is arm64,
// arm64 without a variant is arm64/v8, arm without one arm/v7, amd64/v1 is
// amd64 (but amd64/v3 is not amd64); of two images for a platform, the one
// listed with the variant written out wins (arm64/v8 over arm64). If the
// index has a single manifest and lists no platform for it, that one is
// the image. No image for the platform, or two different ones, is an
// error (ErrPlatform) that names the platform wanted and, up to 16, the
// ones the index has. The config of the image chosen must then say it is
// for that platform too (its os, architecture and variant): an image for
// another platform is refused, whether the index lied, listed no
// platform, or there is no index (a docker archive). A config that states
// no platform is taken on the word of the index that lists one, and
// refused where nothing says: kiln does not guess. Manifests, configs and
// layer blobs are checked against the sha256 and size of their
// descriptors, and uncompressed layers against the config's diff_ids.
// Layer media types must be tar layers (OCI tar, tar+gzip, tar+zstd,
// docker's rootfs.diff.tar.gzip); the compression is told by magic.
// A docker archive must hold one image; its manifest.json is preferred
// to its index.json (newer docker writes both), member names of the form
// blobs/sha256/HEX and HEX.json are checked against their digest, and
// layers against the config's diff_ids. Layers of images are named
// PATH@sha256:DIGEST (the blob digest, or for docker archives the
// diff_id).
//
// # Entry rules
//
//   - The root directory of a layer ("./", "/") is skipped unless
//     Options.KeepRoot is set; then it is passed as Path ".". A root entry
//     that is not a directory is an error.
//   - Regular files are tar's '0', the old '\x00', contiguous '7' and
//     GNU sparse files (whose holes read as zeros). GNU dump directories
//     ('D') are directories. PAX global headers ('g') and GNU volume labels
//     ('V') carry no file and are skipped. Any other type flag (multi-volume
//     continuations, vendor extensions) is an error rather than a silently
//     lost file. Sockets, which tar cannot store, are skipped in directory
//     layers, as tar does.
//   - Mode keeps the permission bits and setuid, setgid and sticky (07777).
//   - Extended attributes come from the PAX records SCHILY.xattr.NAME (raw
//     value) and LIBARCHIVE.xattr.NAME (URL-escaped name, base64 value); if
//     both name the same attribute, the SCHILY record wins. PAX global
//     records do not apply to later entries.
//   - Whiteouts (".wh.NAME", ".wh..wh..opq") are passed through as regular
//     entries; pkg/tree interprets them.
//
// # Content
//
// tree.Entry.Content stays valid after Walk returns, until the Spill
// that holds it is closed, and no file data is kept in memory. A plain
// tar file, a docker archive's uncompressed layer and an uncompressed OCI
// blob are referenced in place (file and offset). Data of compressed streams, and
// of sparse entries, is copied once into a spill file: a temporary file in
// Options.TempDir that is unlinked as soon as it is created, so nothing
// stays on disk even after a crash. Files of directory layers are
// referenced by host path; opening such a Content checks that the file is
// still a regular file of the size seen by Walk.
//
// # Cache
//
// With Options.Cache, the tar stream of a compressed layer is kept on disk
// between builds, under the sha256 of the layer's bytes as stored (see
// Cache): the first walk decompresses it once into a new entry, whose
// regions are then the contents (no spill copy), and later walks read the
// entry in place as a plain tar, without decompressing. Entries are
// checked (length, sha256) before use; a damaged one is decompressed
// again. Describe tells what a walk did (stored, hit) and the digests.
//
// # Directory layers
//
// A directory layer is walked depth-first, parents before children, each
// directory's names in byte order, whatever order the host lists them in.
// Every entry gets Options.Epoch as mtime and Options.DirUID:DirGID as
// owner, so that neither the builder's clock nor its uid leaks into the
// image. Nor does the umask of the checkout: with the default mode policy
// (ModesGit) a directory layer keeps of each mode only what git keeps,
// regular files 0755 if their owner may execute them, else 0644, and
// directories 0755 (setuid, setgid and sticky dropped; symlinks 0777;
// fifos and devices, which git cannot hold, as on the host); with
// ModesPreserve the host's bits are kept. Options.DirChmod then sets the
// modes of named entries (an /etc/shadow of 0640, a /tmp of 1777). Symlinks are read with Readlink,
// fifos and devices are kept (with the host's major and minor numbers), and
// files sharing a device and inode number are emitted as hardlinks to the
// first of their names in walk order. Host extended attributes are not
// copied: they belong to the build machine (security.selinux labels, for
// instance) and would make the image depend on where it was built; state
// the attributes an image needs in a tar layer instead.
package layer
