package sign

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sort"
)

// Bounds on the header fields a hostile PE may set; each is checked before
// anything is allocated from it.
const (
	maxSections   = 96 // the PE/COFF specification's loader limit
	maxDataDirs   = 16 // IMAGE_NUMBEROF_DIRECTORY_ENTRIES
	dosHeaderLen  = 0x40
	fileHeaderLen = 20
	sectionLen    = 40
	dirCertTable  = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY
	winCertHdrLen = 8 // WIN_CERTIFICATE: dwLength, wRevision, wCertificateType
)

// span is a half-open byte range [off, end) of the file.
type span struct{ off, end int }

// image is what the Authenticode hash needs from a PE's headers, every
// offset checked against the file.
type image struct {
	pe32Plus    bool
	checksumAt  int    // offset of the optional header's CheckSum
	certDirAt   int    // offset of the Certificate Table data directory entry, or -1 without one
	certOff     int    // the certificate table's file offset (VirtualAddress), 0 when absent
	certSize    int    // and its size
	sizeHeaders int    // SizeOfHeaders
	sections    []span // raw data of the sections with SizeOfRawData > 0, in file-offset order
	hashEnd     int    // the file's end, or the certificate table's start
}

func u16(b []byte, off int) int { return int(binary.LittleEndian.Uint16(b[off:])) }
func u32(b []byte, off int) int64 {
	return int64(binary.LittleEndian.Uint32(b[off:]))
}

// parse reads and bounds the headers of pe.
func parse(pe []byte) (*image, error) {
	n := len(pe)
	if n < dosHeaderLen {
		return nil, fmt.Errorf("pe: file of %d bytes is shorter than a DOS header", n)
	}
	if pe[0] != 'M' || pe[1] != 'Z' {
		return nil, fmt.Errorf("pe: no MZ signature")
	}
	lfanew := u32(pe, 0x3c)
	if lfanew < dosHeaderLen || lfanew+4+fileHeaderLen > int64(n) {
		return nil, fmt.Errorf("pe: e_lfanew %#x outside the file of %d bytes", lfanew, n)
	}
	peAt := int(lfanew)
	if string(pe[peAt:peAt+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("pe: no PE signature at e_lfanew %#x", peAt)
	}
	fh := peAt + 4
	nsec := u16(pe, fh+2)
	if nsec > maxSections {
		return nil, fmt.Errorf("pe: NumberOfSections %d over the limit of %d", nsec, maxSections)
	}
	optSize := u16(pe, fh+16)
	opt := fh + fileHeaderLen
	if opt+2 > n {
		return nil, fmt.Errorf("pe: optional header at %#x outside the file", opt)
	}
	im := &image{certDirAt: -1}
	var fixed int // the optional header's size before the data directories
	switch magic := u16(pe, opt); magic {
	case 0x10b:
		fixed = 96
	case 0x20b:
		fixed, im.pe32Plus = 112, true
	default:
		return nil, fmt.Errorf("pe: optional header Magic %#x is neither PE32 nor PE32+", magic)
	}
	if optSize < fixed {
		return nil, fmt.Errorf("pe: SizeOfOptionalHeader %d shorter than the fixed %d bytes", optSize, fixed)
	}
	if opt+optSize > n {
		return nil, fmt.Errorf("pe: SizeOfOptionalHeader %d runs past the file's end", optSize)
	}
	ndirs := u32(pe, opt+fixed-4)
	if ndirs > maxDataDirs {
		return nil, fmt.Errorf("pe: NumberOfRvaAndSizes %d over the limit of %d", ndirs, maxDataDirs)
	}
	if int64(fixed)+8*ndirs > int64(optSize) {
		return nil, fmt.Errorf("pe: NumberOfRvaAndSizes %d does not fit SizeOfOptionalHeader %d", ndirs, optSize)
	}
	im.checksumAt = opt + 64
	secAt := opt + optSize
	secEnd := secAt + nsec*sectionLen
	if secEnd > n {
		return nil, fmt.Errorf("pe: section table of %d entries runs past the file's end", nsec)
	}
	sh := u32(pe, opt+60)
	if sh < int64(secEnd) || sh > int64(n) {
		return nil, fmt.Errorf("pe: SizeOfHeaders %#x is not between the section table's end %#x and the file's size %#x", sh, secEnd, n)
	}
	im.sizeHeaders = int(sh)
	im.hashEnd = n
	if ndirs > dirCertTable {
		im.certDirAt = opt + fixed + dirCertTable*8
		va, size := u32(pe, im.certDirAt), u32(pe, im.certDirAt+4)
		if size != 0 || va != 0 {
			// The table is not mapped: VirtualAddress is a file offset, and
			// the table must be the file's tail for the hash to end there.
			if va < sh || va+size != int64(n) || size < winCertHdrLen {
				return nil, fmt.Errorf("pe: Certificate Table entry (offset %#x, size %#x) is not the tail of the file of %#x bytes", va, size, n)
			}
			im.certOff, im.certSize, im.hashEnd = int(va), int(size), int(va)
		}
	}
	for i := 0; i < nsec; i++ {
		s := secAt + i*sectionLen
		raw, ptr := u32(pe, s+16), u32(pe, s+20)
		if raw == 0 {
			continue
		}
		if ptr < sh {
			// Section data inside the headers would put the CheckSum or
			// the Certificate Table entry into the hash, and signing
			// changes both.
			name := string(trimNul(pe[s : s+8]))
			return nil, fmt.Errorf("pe: section %d (%q) PointerToRawData %#x lies inside the headers (SizeOfHeaders %#x)", i, name, ptr, sh)
		}
		if ptr+raw > int64(im.hashEnd) {
			name := string(trimNul(pe[s : s+8]))
			return nil, fmt.Errorf("pe: section %d (%q) PointerToRawData %#x + SizeOfRawData %#x runs past %#x", i, name, ptr, raw, im.hashEnd)
		}
		im.sections = append(im.sections, span{int(ptr), int(ptr + raw)})
	}
	sort.SliceStable(im.sections, func(i, j int) bool { return im.sections[i].off < im.sections[j].off })
	return im, nil
}

// contiguous checks that the headers and the sections' raw data follow
// each other in the file with no gap and no overlap. Only then do the
// Authenticode implementations agree on the image hash: the
// specification (and EDK2's firmware, which follows it) hashes the data
// after the sections from SizeOfHeaders plus the sum of SizeOfRawData,
// which is not where the last section ends when there is a gap, while
// sbsigntool and osslsigncode each do otherwise. Firmware would refuse a
// signature that the signing tool's hash made.
func (im *image) contiguous() error {
	at := im.sizeHeaders
	for _, s := range im.sections {
		if s.off != at {
			what := "a gap"
			if s.off < at {
				what = "an overlap"
			}
			return fmt.Errorf("pe: %s between the section data at %#x and the section data or headers before it (ending at %#x): Authenticode implementations (EDK2 firmware, sbsigntool, osslsigncode) hash such an image differently, so a signature could be refused; refusing to sign it", what, s.off, at)
		}
		at = s.end
	}
	return nil
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// AuthenticodeDigest returns the sha256 Authenticode image hash of pe as
// the PE/COFF specification defines it: the headers up to SizeOfHeaders
// without the optional header's CheckSum and the Certificate Table data
// directory entry, then the raw data of every section in file-offset
// order, then the data after the last section up to the certificate table
// (or the file's end). It hashes the file as given: Sign first pads an
// unsigned file to 8 bytes, as sbsign and osslsigncode do, so a signed
// file's hash covers that padding.
func AuthenticodeDigest(pe []byte) ([]byte, error) {
	im, err := parse(pe)
	if err != nil {
		return nil, err
	}
	return im.digest(pe), nil
}

func (im *image) digest(pe []byte) []byte { return im.hash(pe, sha256.New()) }

// hash writes the Authenticode hashed ranges of pe into h and returns the
// sum.
func (im *image) hash(pe []byte, h hash.Hash) []byte {
	h.Write(pe[:im.checksumAt])
	if im.certDirAt >= 0 {
		h.Write(pe[im.checksumAt+4 : im.certDirAt])
		h.Write(pe[im.certDirAt+8 : im.sizeHeaders])
	} else {
		h.Write(pe[im.checksumAt+4 : im.sizeHeaders])
	}
	end := im.sizeHeaders
	for _, s := range im.sections {
		h.Write(pe[s.off:s.end])
		end = max(end, s.end)
	}
	if end < im.hashEnd {
		h.Write(pe[end:im.hashEnd])
	}
	return h.Sum(nil)
}

// checksum is the PE image checksum (the algorithm of imagehlp's
// CheckSumMappedFile): the 16-bit sum of the file with carries folded
// back, plus the file's length. The caller zeroes the CheckSum field
// first.
func checksum(pe []byte) uint32 {
	var sum uint64
	n := len(pe)
	for i := 0; i+1 < n; i += 2 {
		sum += uint64(binary.LittleEndian.Uint16(pe[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if n%2 == 1 {
		sum += uint64(pe[n-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(n)
}
