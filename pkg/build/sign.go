package build

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/boot/uefi"
	"github.com/kiln-build/kiln/pkg/sign"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Bounds on the files Secure Boot signing reads.
const (
	maxPEMFile        = 1 << 20  // a key or certificate file
	maxSignaturesFile = 16 << 20 // the external signer's signatures
	maxSignedPE       = 1 << 30  // a PE on the ESP, read whole to be signed
)

// SigningRequestSuffix is appended to the output path to name the signing
// request that a build with boot.secureboot.signer external writes.
const SigningRequestSuffix = ".signing-request.json"

// SigningRequestWritten is the outcome of a build with signer external and
// no signatures: the digests to sign were written to Path, and no image.
// The command line exits with its own code for it.
type SigningRequestWritten struct {
	Path  string
	Files int
}

func (e *SigningRequestWritten) Error() string {
	return fmt.Sprintf("signing request for %d PE files written to %s and no image: sign each digest with the key of boot.secureboot.cert, then run kiln build --signatures FILE", e.Files, e.Path)
}

// SigningRequest is the JSON a build with signer external writes: for each
// PE on the ESP (sorted by path), the sha256 digest of its PKCS#7 signed
// attributes, which the signer signs with RSASSA-PKCS1-v1_5 (exactly what
// `openssl pkeyutl -sign -pkeyopt digest:sha256` does with the digest's
// 32 bytes as input).
type SigningRequest struct {
	Version           int           `json:"version"`            // 1
	Algorithm         string        `json:"algorithm"`          // sha256
	Signature         string        `json:"signature"`          // RSASSA-PKCS1-v1_5
	CertificateSHA256 string        `json:"certificate_sha256"` // hex sha256 of the certificate's DER
	Files             []RequestFile `json:"files"`
}

// RequestFile is one PE to sign.
type RequestFile struct {
	Path   string `json:"path"`   // on the ESP
	Digest string `json:"digest"` // hex
}

// Signatures is the file given to kiln build --signatures: for each path
// of the signing request, its digest and the signature of it, in base64.
type Signatures struct {
	Version    int             `json:"version"` // 1
	Signatures []FileSignature `json:"signatures"`
}

// FileSignature is the signature of one PE's digest.
type FileSignature struct {
	Path      string `json:"path"`
	Digest    string `json:"digest"`    // hex, as in the request
	Signature string `json:"signature"` // base64
}

// signer is boot.secureboot read from its files: the certificate, and the
// key (inline) or the external signer's signatures (when given).
type signer struct {
	certFile string
	cert     *x509.Certificate
	keyFile  string
	key      crypto.Signer // nil with signer external
	sigFile  string
	sigs     map[string]FileSignature // by path; nil: write the request
}

// loadSigner reads boot.secureboot's files before any layer is merged, so
// a wrong key costs nothing. sigFile is --signatures ("" for none). It
// returns nil when the spec signs nothing.
func loadSigner(s *spec.Spec, sigFile string) (*signer, error) {
	var sb *spec.SecureBoot
	if s.Boot != nil && s.Boot.Loader != "none" {
		sb = s.Boot.SecureBoot
	}
	if sb == nil {
		if sigFile != "" {
			return nil, &spec.Error{File: s.File, Msg: "--signatures " + sigFile + ": the spec has no boot.secureboot to sign with"}
		}
		return nil, nil
	}
	sg := &signer{certFile: s.Resolve(sb.Cert)}
	var err error
	if sg.cert, err = readCert(sg.certFile); err != nil {
		return nil, err
	}
	switch sb.Signer {
	case "inline":
		if sigFile != "" {
			line := sbLine(s.Boot.KeyLines, "secureboot.signer", s.Boot.Line)
			return nil, &spec.Error{File: s.File, Line: line, Msg: "--signatures " + sigFile + ": boot.secureboot.signer is inline, which signs with the key itself (signer: external takes signatures)"}
		}
		sg.keyFile = s.Resolve(sb.Key)
		if sg.key, err = readKey(sg.keyFile); err != nil {
			return nil, err
		}
		pub, ok := sg.cert.PublicKey.(*rsa.PublicKey)
		if !ok || !pub.Equal(sg.key.Public()) {
			return nil, fmt.Errorf("secure boot: key %s is not the key of certificate %s (%s)", sg.keyFile, sg.certFile, sg.cert.Subject)
		}
	case "external":
		if sigFile != "" {
			sg.sigFile = sigFile
			if sg.sigs, err = readSignatures(sigFile); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("BUG: boot.secureboot.signer %q passed validation", sb.Signer)
	}
	return sg, nil
}

func sbLine(lines map[string]int, key string, def int) int {
	if l, ok := lines[key]; ok {
		return l
	}
	return def
}

// readBounded reads a small file whole, refusing one larger than max.
func readBounded(file, what string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("secure boot: %s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("secure boot: %s %s: %w", what, file, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("secure boot: %s %s: larger than %d bytes", what, file, max)
	}
	return b, nil
}

// readCert reads the first certificate of a PEM file.
func readCert(file string) (*x509.Certificate, error) {
	b, err := readBounded(file, "certificate", maxPEMFile)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("secure boot: certificate %s: no PEM CERTIFICATE block", file)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secure boot: certificate %s: %w", file, err)
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("secure boot: certificate %s: its key is %T; Secure Boot signing takes RSA 2048 to 4096", file, cert.PublicKey)
		}
		if n := pub.N.BitLen(); n < 2048 || n > 4096 {
			return nil, fmt.Errorf("secure boot: certificate %s: an RSA key of %d bits; Secure Boot signing takes 2048 to 4096", file, n)
		}
		return cert, nil
	}
}

// readKey reads an RSA private key from a PEM file: PKCS#1 (RSA PRIVATE
// KEY) or PKCS#8 (PRIVATE KEY), unencrypted. Nothing of it is kept but
// the parsed key, and no error quotes its bytes.
func readKey(file string) (crypto.Signer, error) {
	b, err := readBounded(file, "key", maxPEMFile)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("secure boot: key %s: no PEM RSA PRIVATE KEY or PRIVATE KEY block (an encrypted key must be decrypted first, or signed with signer: external)", file)
		}
		var key any
		switch blk.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			err = errors.New("the key is encrypted: decrypt it first, or sign with signer: external")
		default:
			continue
		}
		clear(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secure boot: key %s: %w", file, err)
		}
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("secure boot: key %s: a %T key; Secure Boot signing takes RSA 2048 to 4096", file, key)
		}
		if n := k.N.BitLen(); n < 2048 || n > 4096 {
			return nil, fmt.Errorf("secure boot: key %s: an RSA key of %d bits; Secure Boot signing takes 2048 to 4096", file, n)
		}
		return k, nil
	}
}

// readSignatures reads and checks the --signatures file.
func readSignatures(file string) (map[string]FileSignature, error) {
	b, err := readBounded(file, "signatures", maxSignaturesFile)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var sf Signatures
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("secure boot: signatures %s: %w", file, err)
	}
	if sf.Version != 1 {
		return nil, fmt.Errorf("secure boot: signatures %s: version %d, want 1", file, sf.Version)
	}
	out := map[string]FileSignature{}
	for i, fs := range sf.Signatures {
		if fs.Path == "" {
			return nil, fmt.Errorf("secure boot: signatures %s: signatures[%d]: no path", file, i)
		}
		if _, dup := out[fs.Path]; dup {
			return nil, fmt.Errorf("secure boot: signatures %s: %s is given twice", file, fs.Path)
		}
		out[fs.Path] = fs
	}
	return out, nil
}

// pe is one PE on the ESP to sign: the paths holding the same bytes (both
// copies of the UKI, of systemd-boot) and their inodes.
type pe struct {
	paths  []string
	inodes []*tree.Inode
}

// espPEs finds on the ESP's tree the PEs firmware or a signed loader
// loads, as installBoot put them there: the UKI, systemd-boot, and the
// kernel of systemd-boot's entry. Names are matched as FAT does, without
// regard to case.
func espPEs(esp *tree.Tree, post *bootPost) ([]pe, error) {
	var out []pe
	for _, group := range post.pes {
		var g pe
		for _, p := range group {
			n, err := espLookup(esp, p)
			if err != nil {
				return nil, err
			}
			g.paths, g.inodes = append(g.paths, p), append(g.inodes, n)
		}
		out = append(out, g)
	}
	if post.uki != "" {
		n, err := espLookup(esp, post.uki)
		if err != nil {
			return nil, err
		}
		g := pe{paths: []string{post.uki}, inodes: []*tree.Inode{n}}
		// The removable-media copy: BOOT<arch>.EFI with the same content.
		dir, err := espLookup(esp, "/EFI/BOOT")
		if err != nil {
			return nil, err
		}
		for _, c := range dir.Children() {
			name := strings.ToUpper(c.Name)
			if c.Inode.Kind == tree.Regular && strings.HasPrefix(name, "BOOT") && strings.HasSuffix(name, ".EFI") && sameContent(c.Inode.Content, n.Content) {
				g.paths, g.inodes = append(g.paths, "/EFI/BOOT/"+name), append(g.inodes, c.Inode)
			}
		}
		if len(g.paths) != 2 {
			return nil, fmt.Errorf("BUG: secure boot: %d copies of the UKI on the ESP, want 2", len(g.paths))
		}
		out = append(out, g)
	}
	return out, nil
}

// sameContent reports whether a and b are the same content object.
func sameContent(a, b tree.Content) bool {
	if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() {
		return false
	}
	return a == b
}

// espLookup finds p in the ESP's tree, comparing names as FAT does.
func espLookup(esp *tree.Tree, p string) (*tree.Inode, error) {
	n := esp.Root
	for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		var found *tree.Inode
		for _, c := range n.Children() {
			if strings.EqualFold(c.Name, el) {
				if found != nil {
					return nil, fmt.Errorf("BUG: secure boot: %s: two names differ only in case on the ESP", p)
				}
				found = c.Inode
			}
		}
		if found == nil {
			return nil, fmt.Errorf("BUG: secure boot: %s is not on the ESP", p)
		}
		n = found
	}
	return n, nil
}

// readPE reads a PE on the ESP whole.
func readPE(path string, n *tree.Inode) ([]byte, error) {
	if n.Kind != tree.Regular || n.Content == nil {
		return nil, fmt.Errorf("BUG: secure boot: %s is not a regular file with content", path)
	}
	if n.Size <= 0 || n.Size > maxSignedPE {
		return nil, fmt.Errorf("secure boot: %s: %d bytes, not 1 to %d", path, n.Size, maxSignedPE)
	}
	r, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("secure boot: reading %s: %w", path, err)
	}
	defer r.Close()
	b := make([]byte, n.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("secure boot: reading %s: %w", path, err)
	}
	if k, _ := r.Read(make([]byte, 1)); k != 0 {
		return nil, fmt.Errorf("secure boot: reading %s: longer than its size %d", path, n.Size)
	}
	return b, nil
}

// signOptions are the signatures' options: no signing time, so the
// signature depends on the image, the key and the certificate alone
// (the epoch would do as well, but adds nothing firmware checks).
var signOptions = sign.Options{}

// signESP signs every PE the boot stage put on the ESP, in place: inline
// with the key, or with the external signer's signatures. Without them it
// writes the signing request next to the output and returns
// *SigningRequestWritten.
func (sg *signer) signESP(esp *tree.Tree, post *bootPost, outPath string) error {
	pes, err := espPEs(esp, post)
	if err != nil {
		return err
	}
	if len(pes) == 0 {
		return errors.New("BUG: secure boot: the boot stage put no PE on the ESP")
	}
	type prepared struct {
		pe
		req *sign.Request
	}
	var all []prepared
	for _, p := range pes {
		b, err := readPE(p.paths[0], p.inodes[0])
		if err != nil {
			return err
		}
		req, err := sign.Prepare(b, sg.cert, signOptions)
		if err != nil {
			return fmt.Errorf("secure boot: %s: %w", p.paths[0], err)
		}
		all = append(all, prepared{p, req})
	}
	if sg.key == nil && sg.sigs == nil {
		certSum := sha256.Sum256(sg.cert.Raw)
		r := SigningRequest{Version: 1, Algorithm: "sha256", Signature: "RSASSA-PKCS1-v1_5", CertificateSHA256: hex.EncodeToString(certSum[:])}
		for _, p := range all {
			for _, path := range p.paths {
				r.Files = append(r.Files, RequestFile{Path: path, Digest: hex.EncodeToString(p.req.Digest)})
			}
		}
		sort.Slice(r.Files, func(i, j int) bool { return r.Files[i].Path < r.Files[j].Path })
		path := outPath + SigningRequestSuffix
		if err := writeRequest(path, &r); err != nil {
			return err
		}
		return &SigningRequestWritten{Path: path, Files: len(r.Files)}
	}
	used := map[string]bool{}
	for _, p := range all {
		var signed []byte
		if sg.key != nil {
			sig, err := sg.key.Sign(nil, p.req.Digest, crypto.SHA256)
			if err != nil {
				return fmt.Errorf("secure boot: signing %s with key %s: %w", p.paths[0], sg.keyFile, err)
			}
			if signed, err = sign.Complete(p.req, sig); err != nil {
				return fmt.Errorf("secure boot: %s with key %s: %w", p.paths[0], sg.keyFile, err)
			}
		} else {
			// Each copy's signature is checked; they are of the same digest.
			for _, path := range p.paths {
				s, err := sg.external(path, p.req)
				if err != nil {
					return err
				}
				used[path] = true
				if signed == nil {
					signed = s
				}
			}
		}
		f := uefi.Bytes(signed)
		for _, n := range p.inodes {
			n.Content, n.Size = f.Content, f.Size
		}
	}
	if sg.sigs != nil {
		var extra []string
		for path := range sg.sigs {
			if !used[path] {
				extra = append(extra, path)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return fmt.Errorf("secure boot: signatures %s: %s is not a PE this build signs (a signing request of another spec?)", sg.sigFile, strings.Join(extra, ", "))
		}
	}
	return nil
}

// external completes req with the external signer's signature for path.
func (sg *signer) external(path string, req *sign.Request) ([]byte, error) {
	fs, ok := sg.sigs[path]
	if !ok {
		return nil, fmt.Errorf("secure boot: signatures %s: no signature for %s", sg.sigFile, path)
	}
	want := hex.EncodeToString(req.Digest)
	if !strings.EqualFold(fs.Digest, want) {
		return nil, fmt.Errorf("secure boot: signatures %s: %s: the signature is of digest %s, stale: this build's digest is %s (the image changed since the signing request; make and sign a new one)", sg.sigFile, path, fs.Digest, want)
	}
	sig, err := base64.StdEncoding.DecodeString(fs.Signature)
	if err != nil {
		return nil, fmt.Errorf("secure boot: signatures %s: %s: signature: %w", sg.sigFile, path, err)
	}
	signed, err := sign.Complete(req, sig)
	if err != nil {
		return nil, fmt.Errorf("secure boot: signatures %s: %s: %w", sg.sigFile, path, err)
	}
	return signed, nil
}

// writeRequest writes the signing request atomically: a temporary file
// beside it, renamed into place.
func writeRequest(path string, r *SigningRequest) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("BUG: signing request: %w", err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing signing request: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing signing request: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing signing request %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing signing request %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing signing request %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing signing request %s: %w", path, err)
	}
	return nil
}
