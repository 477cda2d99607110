package fat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	maxLongName = 255 // UTF-16 code units of a long name

	caseLowerBase = 0x08 // NT reserved byte: the base name is lower case
	caseLowerExt  = 0x10 // NT reserved byte: the extension is lower case
)

// shortName is an 8.3 name as a directory entry stores it: 8 bytes of
// base name and 3 of extension, upper case, padded with spaces.
type shortName [11]byte

func (s shortName) String() string {
	base := strings.TrimRight(string(s[:8]), " ")
	ext := strings.TrimRight(string(s[8:]), " ")
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// checksum is the short-name checksum every LFN entry of the name carries.
func (s shortName) checksum() uint8 {
	var sum uint8
	for _, c := range s {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// fatName is how one tree name is stored in a directory.
type fatName struct {
	name   string   // the tree's name
	long   []uint16 // UTF-16 long name; nil when the short entry says it all
	short  shortName
	ntCase uint8 // caseLowerBase, caseLowerExt
}

// slots is the number of 32-byte directory entries the name takes.
func (n *fatName) slots() int { return lfnSlots(len(n.long)) + 1 }

func lfnSlots(units int) int { return (units + lfnChars - 1) / lfnChars }

// isShortChar reports whether an upper-case ASCII byte may appear in a
// short name as kiln writes them: letters, digits and the punctuation
// FAT allows (no space: it is legal but ill-supported).
func isShortChar(c byte) bool {
	switch {
	case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'()-@^_`{}~", c) >= 0
}

// checkLongName reports why a name cannot be stored on FAT, or nil.
func checkLongName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("name %q is reserved", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("name %q has the character %q, which FAT cannot store", name, r)
		}
	}
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		// Windows and Linux strip trailing dots (Windows also spaces)
		// when they look a name up, so such a name could not be found.
		return fmt.Errorf("name %q ends in %q, which FAT drops when looking names up", name, last)
	}
	if n := len(utf16.Encode([]rune(name))); n > maxLongName {
		return fmt.Errorf("name %q is %d UTF-16 units long, FAT allows %d", name, n, maxLongName)
	}
	return nil
}

// split83 returns the base and extension of name if it is already an 8.3
// name but for case: ASCII short-name characters, 1-8 of base, at most one
// dot, then 1-3 of extension.
func split83(name string) (base, ext string, ok bool) {
	base, ext, dot := strings.Cut(name, ".")
	if len(base) < 1 || len(base) > 8 || len(ext) > 3 || (dot && ext == "") || strings.Contains(ext, ".") {
		return "", "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' {
			continue
		}
		if !isShortChar(upperASCII(c)) {
			return "", "", false
		}
	}
	return base, ext, true
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// caseOf reports whether s has lower-case and upper-case ASCII letters.
func caseOf(s string) (lower, upper bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	return lower, upper
}

func makeShort(base, ext string) shortName {
	var s shortName
	for i := range s {
		s[i] = ' '
	}
	for i := 0; i < len(base); i++ {
		s[i] = upperASCII(base[i])
	}
	for i := 0; i < len(ext); i++ {
		s[8+i] = upperASCII(ext[i])
	}
	return s
}

// foldKey maps a name to a key that is equal for names FAT would consider
// the same: each rune replaced by the smallest rune of its case-folding
// orbit.
func foldKey(name string) string {
	var b strings.Builder
	for _, r := range name {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// nameDir assigns the FAT names of one directory's entries, given in the
// tree's (sorted) order. Names that are 8.3 names but for case keep that
// short name; the others get a generated one, NAME~N.EXT, with N counting
// up per basis so the result depends only on the set of names. dir is the
// directory's path, for errors.
func nameDir(dir string, names []string) ([]fatName, error) {
	out := make([]fatName, len(names))
	used := make(map[shortName]bool, len(names))
	folded := make(map[string]string, len(names))
	for i, name := range names {
		if err := checkLongName(name); err != nil {
			return nil, fmt.Errorf("fat: %s: %w", joinPath(dir, name), err)
		}
		k := foldKey(name)
		if other, ok := folded[k]; ok {
			return nil, fmt.Errorf("fat: %s: names %q and %q differ only in case, which FAT cannot tell apart", dir, other, name)
		}
		folded[k] = name

		// First pass: names that are 8.3 already keep their short name,
		// so that no generated name can take it.
		f := &out[i]
		f.name = name
		base, ext, ok := split83(name)
		if !ok {
			continue
		}
		f.short = makeShort(base, ext)
		if used[f.short] {
			return nil, fmt.Errorf("BUG: fat: %s: short name %s given twice", dir, f.short)
		}
		used[f.short] = true
		bl, bu := caseOf(base)
		el, eu := caseOf(ext)
		if (bl && bu) || (el && eu) {
			f.long = utf16.Encode([]rune(name)) // mixed case needs the long name
			continue
		}
		if bl {
			f.ntCase |= caseLowerBase
		}
		if el {
			f.ntCase |= caseLowerExt
		}
	}

	// Second pass: generate short names for the others.
	next := map[string]int{} // basis -> last tail number tried
	for i := range out {
		f := &out[i]
		if f.short != (shortName{}) {
			continue
		}
		f.long = utf16.Encode([]rune(f.name))
		base, ext := basis(f.name)
		key := base + "." + ext
		for n := next[key] + 1; ; n++ {
			tail := "~" + strconv.Itoa(n)
			if len(tail) > 7 {
				return nil, fmt.Errorf("fat: %s: no free short name for %q", dir, f.name)
			}
			s := makeShort(base[:min(len(base), 8-len(tail))]+tail, ext)
			if !used[s] {
				used[s] = true
				f.short = s
				next[key] = n
				break
			}
		}
	}
	return out, nil
}

// basis is the upper-case base (at most 8) and extension (at most 3) from
// which a short name is generated, as Windows derives it: spaces and
// leading dots dropped, the extension after the last dot, other dots
// dropped, and characters a short name cannot hold replaced by '_'.
func basis(name string) (base, ext string) {
	name = strings.TrimLeft(strings.ReplaceAll(name, " ", ""), ".")
	stem := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		stem, ext = name[:i], name[i+1:]
	}
	conv := func(s string, n int) string {
		var b []byte
		for _, r := range s {
			if len(b) == n {
				break
			}
			if r == '.' {
				continue
			}
			c := byte('_')
			if r < utf8.RuneSelf && isShortChar(upperASCII(byte(r))) {
				c = upperASCII(byte(r))
			}
			b = append(b, c)
		}
		return string(b)
	}
	base, ext = conv(stem, 8), conv(ext, 3)
	if base == "" {
		base = "_"
	}
	return base, ext
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
