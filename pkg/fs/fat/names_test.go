package fat

import (
	"fmt"
	"testing"
	"unicode/utf16"

	"github.com/kiln-build/kiln/internal/testkit"
)

func TestNameDir(t *testing.T) {
	type want struct {
		short  string
		long   bool
		ntCase uint8
	}
	for _, tc := range []struct {
		names []string
		want  []want
	}{
		{[]string{"BOOTX64.EFI", "EFI", "A1!#$%&'.()-"}, []want{{"BOOTX64.EFI", false, 0}, {"EFI", false, 0}, {"A1!#$%&'.()-", false, 0}}},
		{[]string{"grub.cfg", "README", "Foo.TXT", "x.Cfg", "123.txt"}, []want{
			{"GRUB.CFG", false, caseLowerBase | caseLowerExt},
			{"README", false, 0},
			{"FOO.TXT", true, 0}, // mixed-case base: long name, short name unchanged
			{"X.CFG", true, 0},
			{"123.TXT", false, caseLowerExt},
		}},
		{[]string{"A long file name.txt", "A long file name2.txt", "ALONGF~1.TXT"}, []want{
			{"ALONGF~2.TXT", true, 0}, // ~1 is taken by the literal name
			{"ALONGF~3.TXT", true, 0},
			{"ALONGF~1.TXT", false, 0},
		}},
		{[]string{".bashrc", "a.b.c.d", "x+y=z[1];2,3", "Ünïcødé", "   lead", "archive.tar.gz", "longext.html"}, []want{
			{"BASHRC~1", true, 0},
			{"ABC~1.D", true, 0},
			{"X_Y_Z_~1", true, 0},
			{"_N_C_D~1", true, 0},
			{"LEAD~1", true, 0},
			{"ARCHIV~1.GZ", true, 0},
			{"LONGEX~1.HTM", true, 0}, // a cut extension is lossy too
		}},
		{[]string{"loader.conf", "loader.conF"}, nil}, // case collision, checked below
	} {
		got, err := nameDir("/d", tc.names)
		if tc.want == nil {
			testkit.ErrContains(t, err, "loader.conf", "loader.conF", "differ only in case")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			g := got[i]
			if g.short.String() != w.short || (g.long != nil) != w.long || g.ntCase != w.ntCase {
				t.Errorf("%q: got short %q long=%v case=%#x, want %q long=%v case=%#x",
					tc.names[i], g.short, g.long != nil, g.ntCase, w.short, w.long, w.ntCase)
			}
			if g.long != nil && string(utf16.Decode(g.long)) != tc.names[i] {
				t.Errorf("%q: long name %q", tc.names[i], string(utf16.Decode(g.long)))
			}
		}
	}
}

// TestNameDirMany checks that many similar long names get unique,
// deterministic short names, with longer tails past ~9.
func TestNameDirMany(t *testing.T) {
	var names []string
	for i := range 1500 {
		names = append(names, fmt.Sprintf("similar long name %04d.txt", i))
	}
	got, err := nameDir("/d", names)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[shortName]string{}
	for i, g := range got {
		if other, ok := seen[g.short]; ok {
			t.Fatalf("%q and %q both got %s", other, names[i], g.short)
		}
		seen[g.short] = names[i]
	}
	for _, c := range []struct {
		i    int
		want string
	}{{0, "SIMILA~1.TXT"}, {8, "SIMILA~9.TXT"}, {9, "SIMIL~10.TXT"}, {98, "SIMIL~99.TXT"}, {99, "SIMI~100.TXT"}, {1499, "SIM~1500.TXT"}} {
		if s := got[c.i].short.String(); s != c.want {
			t.Errorf("%q: %s, want %s", names[c.i], s, c.want)
		}
	}
	again, err := nameDir("/d", names)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].short != again[i].short {
			t.Fatalf("%q: %s, then %s", names[i], got[i].short, again[i].short)
		}
	}
}

func TestCheckLongName(t *testing.T) {
	long := ""
	for range 256 {
		long += "x"
	}
	for _, tc := range []struct {
		name string
		want string // "" for valid
	}{
		{"ok name.txt", ""},
		{"ünïcødé ✓ 日本語", ""},
		{long[:255], ""},
		{long, "256 UTF-16 units"},
		{"a:b", `':'`},
		{"a*b", `'*'`},
		{"a\x01b", `'\x01'`},
		{`a\b`, `'\\'`},
		{"trailing.", "ends in"},
		{"trailing ", "ends in"},
		{"bad\xffutf8", "not valid UTF-8"},
		{"..", "reserved"},
	} {
		err := checkLongName(tc.name)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.name, err)
			}
			continue
		}
		testkit.ErrContains(t, err, tc.want)
	}
}

func TestLFNEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		slots int
	}{
		{"a", 1},
		{"exactly13char", 1},
		{"fourteen chars", 2},
		{"twenty-six characters long", 2},
		{"twenty-seven characters lon", 3},
	} {
		u := utf16.Encode([]rune(tc.name))
		b := appendLFN(nil, u, 0x5A)
		if len(b) != tc.slots*dirEntrySize {
			t.Fatalf("%q: %d bytes, want %d slots", tc.name, len(b), tc.slots)
		}
		var units []uint16
		for i := tc.slots - 1; i >= 0; i-- { // stored last piece first
			e := b[i*dirEntrySize : (i+1)*dirEntrySize]
			ord := tc.slots - i
			wantOrd := byte(ord)
			if ord == tc.slots {
				wantOrd |= lfnLast
			}
			if e[0] != wantOrd || e[11] != attrLFN || e[12] != 0 || e[13] != 0x5A || e[26] != 0 || e[27] != 0 {
				t.Fatalf("%q slot %d: header % x", tc.name, ord, e)
			}
			for _, off := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				units = append(units, uint16(e[off])|uint16(e[off+1])<<8)
			}
		}
		n := len(u)
		if string(utf16.Decode(units[:n])) != tc.name {
			t.Errorf("%q: decoded %q", tc.name, string(utf16.Decode(units[:n])))
		}
		if n%lfnChars != 0 {
			if units[n] != 0 {
				t.Errorf("%q: no terminator", tc.name)
			}
			for _, p := range units[n+1:] {
				if p != 0xFFFF {
					t.Errorf("%q: padding %#x", tc.name, p)
				}
			}
		}
	}
}

func TestFATTime(t *testing.T) {
	for _, tc := range []struct {
		sec  int64
		nsec uint32
		date uint16
		tim  uint16
		cs   uint8
	}{
		{0, 0, 1<<5 | 1, 0, 0},                                     // 1970: clamped to 1980-01-01
		{315532800, 0, 1<<5 | 1, 0, 0},                             // 1980-01-01 00:00:00
		{315532799, 0, 1<<5 | 1, 0, 0},                             // one second before
		{testEpoch, 0, 43<<9 | 11<<5 | 14, 22<<11 | 13<<5 | 10, 0}, // 2023-11-14 22:13:20
		{testEpoch + 1, 500_000_000, 43<<9 | 11<<5 | 14, 22<<11 | 13<<5 | 10, 150},
		{4354819199, 0, 127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29, 100}, // 2107-12-31 23:59:59
		{1 << 40, 0, 127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29, 199},    // clamped to the end
	} {
		d, tm, cs := fatTime(tc.sec, tc.nsec)
		if d != tc.date || tm != tc.tim || cs != tc.cs {
			t.Errorf("%d: date %#x time %#x cs %d, want %#x %#x %d", tc.sec, d, tm, cs, tc.date, tc.tim, tc.cs)
		}
	}
}

func TestCheckLabel(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", "NO NAME", ""},
		{"kiln-esp", "KILN-ESP", ""},
		{"ESP 1", "ESP 1", ""},
		{"ABCDEFGHIJK", "ABCDEFGHIJK", ""},
		{"ABCDEFGHIJKL", "", "longer than 11"},
		{"a.b", "", "'.'"},
		{" x", "", "starts with a space"},
		{"é", "", "character"},
	} {
		got, err := checkLabel(tc.in)
		if tc.err != "" {
			testkit.ErrContains(t, err, tc.err)
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
