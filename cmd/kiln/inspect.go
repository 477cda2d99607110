package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/all"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/sign"
	"github.com/kiln-build/kiln/pkg/tree"
	"github.com/kiln-build/kiln/pkg/verity"
)

type inspectOptions struct {
	json  bool
	certs []string // --cert: PEM certificates, as db would hold them
}

func newInspectCmd() *cobra.Command {
	var o inspectOptions
	c := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's partition table, the filesystem in each partition and the signatures of the PEs on the ESP",
		Long: `Show an image's partition table, the filesystem in each partition, each
dm-verity pair with its root hash, and for every FAT partition (the ESP)
every PE file on it: whether it carries Authenticode signatures, and for
each its signer and issuer, its certificate chain, and whether it is valid
(the image hash matches and the signature verifies with the signer's
certificate). With --cert FILE (PEM certificates, as db holds them;
repeatable) it also says whether each signature chains to one of them.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			db, err := readCerts(o.certs)
			if err != nil {
				return err
			}
			rep, err := inspectImageWith(args[0], true, db)
			if err != nil {
				return err
			}
			if o.json {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printReport(c.OutOrStdout(), rep)
			return nil
		},
	}
	c.Flags().BoolVar(&o.json, "json", false, "print the report as JSON")
	c.Flags().StringArrayVar(&o.certs, "cert", nil, "PEM certificate(s) to trust, as db holds them: say whether each PE signature chains to one (repeatable)")
	return c
}

// readCerts reads every certificate of the PEM files (or a DER file of
// one certificate); a file with none is a usage error naming it.
func readCerts(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usageError{fmt.Errorf("--cert: %w", err)}
		}
		n := len(out)
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, usageError{fmt.Errorf("--cert %s: %w", f, err)}
			}
			out = append(out, c)
		}
		if len(out) == n {
			c, err := x509.ParseCertificate(b)
			if err != nil {
				return nil, usageError{fmt.Errorf("--cert %s: no PEM CERTIFICATE block, and not a DER certificate", f)}
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// report is what inspect prints; its JSON form is a stable interface.
type report struct {
	Image      string       `json:"image"`
	Format     string       `json:"format"`
	Size       int64        `json:"size"`
	Table      string       `json:"table"`
	DiskGUID   string       `json:"disk_guid,omitempty"`
	Signature  string       `json:"disk_signature,omitempty"`
	Problems   []string     `json:"problems,omitempty"`
	Partitions []partReport `json:"partitions"`
	// Verity are the dm-verity pairs: each hash partition (a DPS
	// root-verity or usr-verity type), the root hash its tree claims, and
	// the data partition it names (whose UUID is the root hash's first
	// 128 bits).
	Verity []verityReport `json:"verity,omitempty"`
}

type partReport struct {
	Number     int       `json:"number"`
	Name       string    `json:"name,omitempty"`
	Type       string    `json:"type"`
	TypeGUID   string    `json:"type_guid,omitempty"`
	MBRType    string    `json:"mbr_type,omitempty"`
	GUID       string    `json:"guid,omitempty"`
	PartUUID   string    `json:"partuuid"`
	FirstLBA   int64     `json:"first_lba"`
	LastLBA    int64     `json:"last_lba"`
	Size       int64     `json:"size"`
	Bootable   bool      `json:"bootable,omitempty"`
	Attributes uint64    `json:"attributes,omitempty"`
	FS         *fsReport `json:"filesystem,omitempty"`
	// PEs are the PE files on a FAT filesystem (the ESP), by path, with
	// their Authenticode signatures.
	PEs []peReport `json:"pe_files,omitempty"`
}

// peReport is one PE file on a FAT partition and its signatures.
type peReport struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Signed bool   `json:"signed"`
	// Problem says why the PE or its certificate table could not be read
	// (the signatures read before it are listed).
	Problem    string      `json:"problem,omitempty"`
	Signatures []sigReport `json:"signatures,omitempty"`
}

// sigReport is one Authenticode signature (pkg/sign.SignatureInfo).
type sigReport struct {
	Entry           int      `json:"entry"`            // WIN_CERTIFICATE entry, from 0
	Nested          int      `json:"nested,omitempty"` // 0: the entry's own; n: nested n deep
	DigestAlgorithm string   `json:"digest_algorithm,omitempty"`
	Signer          string   `json:"signer,omitempty"`         // the signer certificate's CN (or whole subject without one)
	SignerSubject   string   `json:"signer_subject,omitempty"` // its whole subject
	Issuer          string   `json:"issuer,omitempty"`         // the signer certificate's issuer's CN (or whole name)
	IssuerName      string   `json:"issuer_name,omitempty"`    // its whole issuer name
	Chain           []string `json:"chain,omitempty"`          // the signer, then each issuer the signature carries, by CN
	Valid           bool     `json:"valid"`
	Reason          string   `json:"reason,omitempty"` // why not valid
	// Trusted, with --cert: the signature is valid and its chain reaches
	// one of the certificates given.
	Trusted *bool `json:"trusted,omitempty"`
}

type verityReport struct {
	HashPartition int    `json:"hash_partition"`           // number
	DataPartition int    `json:"data_partition,omitempty"` // number; 0 when no partition has the root hash's UUID
	RootHash      string `json:"root_hash"`                // hex, as roothash= takes it
	Algorithm     string `json:"algorithm"`
	Salt          string `json:"salt"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    int64  `json:"data_blocks"`
	// UUIDsMatch: the data and hash partitions' UUIDs are the root hash's
	// first and last 128 bits, as the Discoverable Partitions
	// Specification has it (systemd finds the pair by them).
	UUIDsMatch bool `json:"uuids_match"`
}

type fsReport struct {
	Type   string `json:"type"`
	Label  string `json:"label"`
	UUID   string `json:"uuid"`
	Size   int64  `json:"size"`
	Used   int64  `json:"used"`
	Inodes int64  `json:"inodes,omitempty"` // in use (ext4, erofs)
}

// inspectImage reads the image through imgfmt.Open, as diff and convert
// do: its format is found by content, and the partition table and
// filesystems are read from the virtual disk, not from the file.
func inspectImage(path string) (*report, error) { return inspectImageWith(path, false, nil) }

// inspectImageWith is inspectImage that, with pes, also reads the PE
// files on every FAT partition and their signatures, trusted against db.
func inspectImageWith(path string, pes bool, db []*x509.Certificate) (*report, error) {
	img, err := imgfmt.Open(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	l, err := disk.Read(img, img.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rep := &report{Image: path, Format: img.Format(), Size: img.Size(), Table: l.Table.String(), Problems: l.Problems}
	if l.Table == disk.GPT {
		rep.DiskGUID = l.DiskGUID.String()
	} else {
		rep.Signature = fmt.Sprintf("%08x", l.DiskSignature)
	}
	for _, p := range l.Partitions {
		t := p.Type()
		pr := partReport{
			Number: p.Number, Name: p.Name, Type: typeName(t),
			PartUUID: l.PartUUID(p), FirstLBA: p.FirstLBA(), LastLBA: p.LastLBA(), Size: p.Size,
			Bootable: p.Bootable, Attributes: p.Attributes,
		}
		if l.Table == disk.GPT {
			pr.TypeGUID = p.TypeGUID.String()
			pr.GUID = p.GUID.String()
		} else {
			pr.MBRType = fmt.Sprintf("0x%02x", p.MBRType)
		}
		part := io.NewSectionReader(img, p.Start, p.Size)
		pr.FS = probeFS(part, p.Size)
		if pes && pr.FS != nil && pr.FS.Type == "vfat" {
			var problems []string
			pr.PEs, problems = pesOnFAT(part, p.Size, db)
			for _, pb := range problems {
				rep.Problems = append(rep.Problems, fmt.Sprintf("partition %d (vfat): %s", p.Number, pb))
			}
		}
		rep.Partitions = append(rep.Partitions, pr)
	}
	rep.Verity, rep.Problems = verityPairs(img, l, rep.Problems)
	return rep, nil
}

// verityPairs reads the hash partitions of a GPT disk (the DPS
// root-verity and usr-verity types): the superblock and the root hash the
// tree's top block claims (pkg/verity.ReadRoot, one block read, not the
// data), and the data partition that root hash names.
func verityPairs(img io.ReaderAt, l *disk.Layout, problems []string) ([]verityReport, []string) {
	var out []verityReport
	if l.Table != disk.GPT {
		return nil, problems
	}
	for _, h := range l.Partitions {
		name := h.Type().Name
		if !strings.HasPrefix(name, "root-verity-") && !strings.HasPrefix(name, "usr-verity-") {
			continue
		}
		hashdev := io.NewSectionReader(img, h.Start, h.Size)
		// The root hash names the data partition; the data is needed
		// only when it is one block, which is its own tree's top: then
		// the data partition is the one whose UUID matches what it gives.
		info, err := verity.ReadRoot(bytes.NewReader(nil), hashdev)
		var dp *disk.Partition
		if _, blocks, serr := verity.ReadSuperblock(hashdev); serr == nil && blocks == 1 {
			for i := range l.Partitions {
				c := &l.Partitions[i]
				if in, cerr := verity.ReadRoot(io.NewSectionReader(img, c.Start, c.Size), hashdev); cerr == nil && partitionWithGUID(l, in.RootHash[:16]) == c {
					info, err, dp = in, nil, c
				}
			}
		} else if err == nil {
			dp = partitionWithGUID(l, info.RootHash[:16])
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("partition %d (%s): %v", h.Number, name, err))
			continue
		}
		v := verityReport{HashPartition: h.Number, RootHash: hex.EncodeToString(info.RootHash), Algorithm: info.Algorithm,
			Salt: hex.EncodeToString(info.Salt), DataBlockSize: info.DataBlockSize, HashBlockSize: info.HashBlockSize, DataBlocks: info.DataBlocks}
		if len(info.RootHash) < 32 {
			problems = append(problems, fmt.Sprintf("partition %d (%s): a %s root hash has fewer than 256 bits: the partition UUIDs cannot be its halves", h.Number, name, info.Algorithm))
			out = append(out, v)
			continue
		}
		var hashGUID repro.UUID
		copy(hashGUID[:], info.RootHash[len(info.RootHash)-16:])
		switch {
		case dp == nil:
			problems = append(problems, fmt.Sprintf("partition %d (%s): its root hash %s names a data partition with UUID %s, and there is none", h.Number, name, v.RootHash, uuidOf(info.RootHash[:16])))
		case info.DataBlocks*int64(info.DataBlockSize) > dp.Size:
			problems = append(problems, fmt.Sprintf("partition %d (%s): its superblock covers %d bytes of data, more than partition %d's %d", h.Number, name, info.DataBlocks*int64(info.DataBlockSize), dp.Number, dp.Size))
			v.DataPartition = dp.Number
		default:
			v.DataPartition = dp.Number
		}
		if h.GUID != hashGUID {
			problems = append(problems, fmt.Sprintf("partition %d (%s): its UUID %s is not the root hash's last 128 bits (%s)", h.Number, name, h.GUID, hashGUID))
		}
		v.UUIDsMatch = dp != nil && h.GUID == hashGUID
		out = append(out, v)
	}
	return out, problems
}

// partitionWithGUID is the partition whose GUID is the 16 bytes id, in the
// order the UUID's string form has them.
func partitionWithGUID(l *disk.Layout, id []byte) *disk.Partition {
	var u repro.UUID
	copy(u[:], id)
	for i := range l.Partitions {
		if l.Partitions[i].GUID == u {
			return &l.Partitions[i]
		}
	}
	return nil
}

func uuidOf(b []byte) string {
	var u repro.UUID
	copy(u[:], b)
	return u.String()
}

// qemuFormat finds an image's format by content with imgfmt.Open, the
// reader of inspect, diff and convert, and gives QEMU's name for it (raw,
// qcow2, vmdk, vpc): kiln run boots what the other commands read, and
// refuses what they refuse. (pkg/qemu's own magic check knew only qcow2
// and gave QEMU everything else, VMDK and VHD included, as raw.)
func qemuFormat(path string) (string, error) {
	img, err := imgfmt.Open(path)
	if err != nil {
		return "", err
	}
	defer img.Close()
	if f := img.Format(); f != "vhd" {
		return f, nil
	}
	return "vpc", nil
}

// maxPEBytes bounds the PE files inspect reads into memory to check
// their signatures: a UKI with a large initrd is some hundred MiB, and
// every image read is held to 256 MiB.
const maxPEBytes = 256 << 20

// pesOnFAT finds the PE files in the FAT filesystem at the start of r (a
// file starting with "MZ" whose e_lfanew points at "PE\0\0") and reads
// their signatures (pkg/sign.Signatures), trusted against db. The volume
// is hostile: fat.ReadTree bounds it; each file's header is read first
// and a file over maxPEBytes is not read whole.
func pesOnFAT(r io.ReaderAt, size int64, db []*x509.Certificate) ([]peReport, []string) {
	t, err := fat.ReadTree(r, size)
	if err != nil {
		return nil, []string{fmt.Sprintf("reading the FAT for PE files: %v", err)}
	}
	var out []peReport
	var problems []string
	t.Walk(func(p string, d tree.Dirent) error {
		n := d.Inode
		if n.Kind != tree.Regular || n.Size < 0x40 || n.Content == nil {
			return nil
		}
		// A file that cannot be read is a problem of its own; the others
		// are still read.
		rc, err := n.Content.Open()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		defer rc.Close()
		var hdr [0x40]byte
		if _, err := io.ReadFull(rc, hdr[:]); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		lfanew := int64(binary.LittleEndian.Uint32(hdr[0x3c:]))
		if hdr[0] != 'M' || hdr[1] != 'Z' || lfanew < 0x40 || lfanew+4 > n.Size {
			return nil
		}
		pr := peReport{Path: p, Size: n.Size}
		if n.Size > maxPEBytes {
			pr.Problem = fmt.Sprintf("%d bytes, over the %d inspect reads to check signatures", n.Size, maxPEBytes)
			out = append(out, pr)
			return nil
		}
		b := make([]byte, n.Size)
		copy(b, hdr[:])
		if _, err := io.ReadFull(rc, b[len(hdr):]); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		if string(b[lfanew:lfanew+4]) != "PE\x00\x00" {
			return nil
		}
		sigs, err := sign.Signatures(b)
		if err != nil {
			pr.Problem = err.Error()
		}
		pr.Signed = len(sigs) > 0
		for i := range sigs {
			pr.Signatures = append(pr.Signatures, sigReportOf(&sigs[i], db))
		}
		out = append(out, pr)
		return nil
	})
	return out, problems
}

func sigReportOf(s *sign.SignatureInfo, db []*x509.Certificate) sigReport {
	r := sigReport{Entry: s.Entry, Nested: s.Nested, DigestAlgorithm: s.DigestAlgorithm, Valid: s.Valid, Reason: s.Reason}
	if s.Signer != nil {
		r.Signer, r.SignerSubject = cn(s.Signer.Subject), s.Signer.Subject.String()
		r.Issuer, r.IssuerName = cn(s.Signer.Issuer), s.Signer.Issuer.String()
	}
	for _, c := range s.Chain {
		r.Chain = append(r.Chain, cn(c.Subject))
	}
	if len(db) > 0 {
		t := s.Trusted(db...)
		r.Trusted = &t
	}
	return r
}

// cn is a name's CN, or the whole name without one.
func cn(n pkix.Name) string {
	if n.CommonName != "" {
		return n.CommonName
	}
	return n.String()
}

func typeName(t disk.Type) string {
	if t.Name != "" {
		return t.Name
	}
	return t.Description
}

// probeFS recognises the filesystem at the start of a partition, with
// the filesystems kiln knows (pkg/fs/all).
func probeFS(r io.ReaderAt, size int64) *fsReport {
	_, i, err := all.Probe(r, size)
	if err != nil {
		return nil
	}
	return &fsReport{Type: i.Type, Label: i.Label, UUID: i.UUID, Size: i.Size, Used: i.Used, Inodes: i.Inodes}
}

func printReport(w io.Writer, r *report) {
	fmt.Fprintf(w, "image %s: %s, %s\n", r.Image, r.Format, human(r.Size))
	if r.Table == "gpt" {
		fmt.Fprintf(w, "table gpt, disk GUID %s\n", r.DiskGUID)
	} else {
		fmt.Fprintf(w, "table %s, disk signature %s\n", r.Table, r.Signature)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNAME\tTYPE\tFIRST LBA\tLAST LBA\tSIZE\tPARTUUID\tFILESYSTEM")
	for _, p := range r.Partitions {
		fsd := "-"
		if p.FS != nil {
			fsd = fmt.Sprintf("%s label=%q uuid=%s size=%s used=%s", p.FS.Type, p.FS.Label, p.FS.UUID, human(p.FS.Size), human(p.FS.Used))
			if p.FS.Inodes > 0 {
				fsd += fmt.Sprintf(" inodes=%d", p.FS.Inodes)
			}
		}
		typ := p.Type
		if p.TypeGUID != "" {
			typ += " (" + p.TypeGUID + ")"
		} else if p.MBRType != "" {
			typ += " (" + p.MBRType + ")"
		}
		if p.Bootable {
			typ += " [boot]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Number, p.Name, typ, p.FirstLBA, p.LastLBA, human(p.Size), p.PartUUID, fsd)
	}
	tw.Flush()
	for _, v := range r.Verity {
		data := "no partition"
		if v.DataPartition > 0 {
			data = fmt.Sprintf("partition %d", v.DataPartition)
		}
		match := "the partition UUIDs are its halves"
		if !v.UUIDsMatch {
			match = "the partition UUIDs do NOT match it (see the problems)"
		}
		fmt.Fprintf(w, "verity: partition %d seals %s: root hash %s (%s, %d data blocks of %d bytes, salt %s); %s\n",
			v.HashPartition, data, v.RootHash, v.Algorithm, v.DataBlocks, v.DataBlockSize, v.Salt, match)
	}
	for _, p := range r.Partitions {
		if len(p.PEs) > 0 {
			fmt.Fprintf(w, "PE files on partition %d:\n", p.Number)
		}
		for _, pe := range p.PEs {
			state := "unsigned"
			if pe.Signed {
				state = fmt.Sprintf("signed (%d signature", len(pe.Signatures))
				if len(pe.Signatures) != 1 {
					state += "s"
				}
				state += ")"
			}
			fmt.Fprintf(w, "  %s: %s\n", pe.Path, state)
			if pe.Problem != "" {
				fmt.Fprintf(w, "    problem: %s\n", pe.Problem)
			}
			for _, s := range pe.Signatures {
				fmt.Fprintf(w, "    %s\n", s.line())
			}
		}
	}
}

// line is one signature as inspect prints it.
func (s sigReport) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "signature %d", s.Entry+1)
	if s.Nested > 0 {
		fmt.Fprintf(&b, " (nested, depth %d)", s.Nested)
	}
	if s.Valid {
		b.WriteString(": valid")
	} else {
		fmt.Fprintf(&b, ": INVALID (%s)", s.Reason)
	}
	if s.DigestAlgorithm != "" {
		b.WriteString(", " + s.DigestAlgorithm)
	}
	if s.Signer != "" {
		fmt.Fprintf(&b, ", signer %q issued by %q", s.Signer, s.Issuer)
	}
	if len(s.Chain) > 1 {
		fmt.Fprintf(&b, ", chain %s", strings.Join(quoteAll(s.Chain), " <- "))
	}
	if s.Trusted != nil {
		if *s.Trusted {
			b.WriteString("; chains to a --cert")
		} else {
			b.WriteString("; does NOT chain to any --cert")
		}
	}
	return b.String()
}

func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strconv.Quote(s)
	}
	return out
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
