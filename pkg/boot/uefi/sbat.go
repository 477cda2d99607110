package uefi

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// SBAT (Secure Boot Advanced Targeting, shim's SBAT.md) is a CSV text in a
// PE's .sbat section: one entry a line, "component_name,
// component_generation,vendor_name,vendor_package_name,vendor_version,
// vendor_url", the first entry the format's own ("sbat,1,SBAT Version,...").
// shim refuses to start an image whose generation of a component is below
// the revocation level it holds.
//
// The UKI's .sbat is made as systemd's ukify makes it (merge_sbat, with its
// default for UKIs): the header line once, then the entries of the stub's
// .sbat, then those of the kernel's (if it has one), then ukify's entry for
// the UKI itself, each line ending in "\n", and one NUL byte after the
// last (ukify writes "\n\x00"; Debian's systemd 252 stub ends its own .sbat
// the same way).
const (
	secSBAT     = ".sbat"
	sbatHeader  = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md"
	sbatUKI     = "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/"
	sbatColumns = 6        // fields of an entry
	maxSBATSize = 16 << 10 // bytes of a stub's or kernel's .sbat at most (systemd's and shim's are < 1 KiB)
)

// mergeSBAT returns the UKI's .sbat: the header, the stub's entries, the
// kernel's, and the UKI's own.
func mergeSBAT(stub, kernel []string) []byte {
	lines := []string{sbatHeader}
	lines = append(lines, stub...)
	lines = append(lines, kernel...)
	lines = append(lines, sbatUKI)
	return []byte(strings.Join(lines, "\n") + "\n\x00")
}

// findSBAT returns the index of the .sbat section of the PE whose headers
// are h, or -1. Two are an error: shim refuses such an image, and which
// one holds the revocation data could not be told.
func findSBAT(what string, h *peHeaders) (int, error) {
	at := -1
	for i := range h.sections {
		if h.sections[i].name() == secSBAT {
			if at >= 0 {
				return 0, fmt.Errorf("%s: two .sbat sections (%d and %d); shim refuses such an image", what, at, i)
			}
			at = i
		}
	}
	return at, nil
}

// sbatSpan returns where the data of the .sbat section s is in the file:
// its VirtualSize bytes (what the loader maps and shim reads), no more than
// the file holds (SizeOfRawData; memory past it is zeros), bounded by
// maxSBATSize before anything is read.
func sbatSpan(what string, s *sectionHeader) (off, n int64, err error) {
	n = int64(s.VirtualSize)
	if n == 0 || n > int64(s.SizeOfRawData) {
		n = int64(s.SizeOfRawData)
	}
	if n > maxSBATSize {
		return 0, 0, fmt.Errorf("%s: .sbat section of %d bytes, more than the %d allowed", what, n, maxSBATSize)
	}
	return int64(s.PointerToRawData), n, nil
}

// parseSBAT checks the .sbat data of a stub or kernel (what names it) and
// returns its entries without the header line, which the UKI's .sbat has
// once. ukify decodes the data as UTF-8 after stripping trailing NULs and
// splits it into lines (Python's splitlines); where ukify would crash (no
// text, not UTF-8) or skip the section with a warning (no "sbat," header),
// kiln refuses it, as it refuses any other text that is not SBAT: dropping
// a component's entries would silently weaken revocation. Control
// characters other than the line feed, and the Unicode line separators,
// are refused too, so that splitting on "\n" is splitlines.
func parseSBAT(what string, data []byte) ([]string, error) {
	text := string(bytes.TrimRight(data, "\x00"))
	if text == "" {
		return nil, fmt.Errorf("%s: .sbat: empty", what)
	}
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("%s: .sbat: not UTF-8 text", what)
	}
	for i, r := range text {
		if (r < 0x20 && r != '\n') || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return nil, fmt.Errorf("%s: .sbat: control character %U at byte %d", what, r, i)
		}
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, line := range lines {
		f := strings.Split(line, ",")
		if len(f) < sbatColumns || f[0] == "" || !isDecimal(f[1]) {
			return nil, fmt.Errorf("%s: .sbat line %d %q: not an SBAT entry (%d comma-separated fields: a component name, its generation as a number, ...)", what, i+1, line, sbatColumns)
		}
		switch {
		case i == 0 && (f[0] != "sbat" || f[1] != "1"):
			return nil, fmt.Errorf("%s: .sbat line 1 %q: not the header of SBAT format 1 (\"sbat,1,...\")", what, line)
		case i > 0 && f[0] == "sbat":
			return nil, fmt.Errorf("%s: .sbat line %d %q: a second sbat header", what, i+1, line)
		}
	}
	return lines[1:], nil
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// stubSBAT returns the entries of the stub's .sbat (whose headers are h),
// and the index of that section, or -1 and no entries.
func stubSBAT(stub []byte, h *peHeaders) ([]string, int, error) {
	at, err := findSBAT("uki: stub", h)
	if err != nil || at < 0 {
		return nil, at, err
	}
	off, n, err := sbatSpan("uki: stub", &h.sections[at])
	if err != nil {
		return nil, 0, err
	}
	if off+n > int64(len(stub)) {
		return nil, 0, fmt.Errorf("BUG: uki: stub: .sbat 0x%x+0x%x outside the stub", off, n)
	}
	lines, err := parseSBAT("uki: stub", stub[off:off+n])
	return lines, at, err
}

// kernelSBAT returns the entries of the kernel's .sbat, or none if it has
// no .sbat section. Only the headers and that section are read.
func kernelSBAT(f *File) ([]string, error) {
	b, err := f.readPrefix("uki: kernel", kernelPrefix)
	if err != nil {
		return nil, err
	}
	h, err := parseHeaders(b, f.Size)
	if err != nil {
		return nil, fmt.Errorf("uki: kernel: %w", err)
	}
	at, err := findSBAT("uki: kernel", h)
	if err != nil || at < 0 {
		return nil, err
	}
	off, n, err := sbatSpan("uki: kernel", &h.sections[at])
	if err != nil {
		return nil, err
	}
	rc, err := f.open("uki: kernel")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return nil, fmt.Errorf("uki: kernel: reading up to .sbat at 0x%x: %w", off, err)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("uki: kernel: reading .sbat at 0x%x: %w", off, err)
	}
	return parseSBAT("uki: kernel", data)
}
