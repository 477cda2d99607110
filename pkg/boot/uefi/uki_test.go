package uefi

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/internal/testkit/trees"
	"github.com/kiln-build/kiln/pkg/tree"
)

const (
	testOSRelease = "ID=kiln\nPRETTY_NAME=\"Kiln Test\"\n"                                      // 32 bytes
	testCmdline   = "root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef console=ttyS0 panic=-1" // 73 bytes
)

func testInitrd() []byte { return bytes.Repeat([]byte("initrd!"), 837/7+1)[:837] }

func testUKI(t testing.TB, stub []byte) UKI {
	return UKI{
		Stub:      fileInode(stub),
		Kernel:    fileInode(testKernel(t)),
		Initrd:    Bytes(testInitrd()),
		Cmdline:   testCmdline,
		OSRelease: []byte(testOSRelease),
		Epoch:     testEpoch,
	}
}

func buildUKI(t testing.TB, u UKI) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := BuildUKI(&buf, u); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantSection is a section of a built UKI as the tests expect it.
type wantSection struct {
	name     string
	vsize    uint32
	va       uint32
	raw, ptr uint32
	data     []byte
}

// TestBuildUKILayout checks every field BuildUKI writes, for a stub shaped
// like systemd 252's, against numbers worked out by hand from the rules
// (see the package documentation).
func TestBuildUKILayout(t *testing.T) {
	stub := testStub(t)
	u := testUKI(t, stub)
	out := buildUKI(t, u)
	kernel := testKernel(t)

	// The stub: .sdmagic ends at 0x2226 in memory; the file at 0x1800,
	// where the symbol table (cut off) was.
	want := []wantSection{
		{".osrel", 0x20, 0x2400, 0x200, 0x1800, []byte(testOSRelease)},
		{".cmdline", 0x49, 0x2600, 0x200, 0x1a00, []byte(testCmdline)},
		{".uname", 0x0e, 0x2800, 0x200, 0x1c00, []byte("6.1.0-99-amd64")},
		{".initrd", 0x345, 0x2a00, 0x400, 0x1e00, testInitrd()},
		{".sbat", 0x9f, 0x2e00, 0x200, 0x2200, []byte(testUKISBAT)},
		{".linux", 0x1e00, 0x3000, 0x1e00, 0x2400, kernel},
	}
	if len(out) != 0x4200 {
		t.Fatalf("UKI of 0x%x bytes, want 0x4200", len(out))
	}
	sh, err := parseHeaders(stub, int64(len(stub)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeaders(out, int64(len(out)))
	if err != nil {
		t.Fatalf("the UKI's own headers: %v", err)
	}
	if !bytes.Equal(out[0x400:0x1800], stub[0x400:0x1800]) {
		t.Errorf("the stub's section data changed")
	}
	if len(h.sections) != 4+len(want) || h.file.NumberOfSections != uint16(len(h.sections)) {
		t.Fatalf("%d sections, want %d", len(h.sections), 4+len(want))
	}
	for i := range sh.sections {
		if h.sections[i] != sh.sections[i] {
			t.Errorf("stub section %d changed: %+v, was %+v", i, h.sections[i], sh.sections[i])
		}
	}
	var added uint32
	for i, w := range want {
		s := h.sections[4+i]
		wantFlags := uint32(scnMemRead | scnCntInitializedData)
		if w.name == ".linux" {
			wantFlags = scnMemRead | scnCntCode
		}
		got := wantSection{s.name(), s.VirtualSize, s.VirtualAddress, s.SizeOfRawData, s.PointerToRawData, nil}
		w2 := w
		w2.data = nil
		if got.name != w2.name || got.vsize != w2.vsize || got.va != w2.va || got.raw != w2.raw || got.ptr != w2.ptr {
			t.Errorf("section %d: %+v, want %+v", 4+i, got, w2)
		}
		if s.Characteristics != wantFlags {
			t.Errorf("%s: characteristics 0x%x, want 0x%x", w.name, s.Characteristics, wantFlags)
		}
		if s.PointerToRelocations != 0 || s.NumberOfRelocations != 0 || s.PointerToLinenumbers != 0 || s.NumberOfLinenumbers != 0 {
			t.Errorf("%s: relocations or line numbers set: %+v", w.name, s)
		}
		if d := out[s.PointerToRawData:][:s.VirtualSize]; !bytes.Equal(d, w.data) {
			t.Errorf("%s: data differs from the input", w.name)
		}
		if pad := out[s.PointerToRawData+s.VirtualSize : s.PointerToRawData+s.SizeOfRawData]; !allZero(pad) {
			t.Errorf("%s: padding is not zero", w.name)
		}
		added += w.vsize
	}
	if h.opt.SizeOfImage != 0x4e00 {
		t.Errorf("SizeOfImage 0x%x, want 0x4e00", h.opt.SizeOfImage)
	}
	if h.opt.SizeOfInitializedData != sh.opt.SizeOfInitializedData+added {
		t.Errorf("SizeOfInitializedData 0x%x, want 0x%x", h.opt.SizeOfInitializedData, sh.opt.SizeOfInitializedData+added)
	}
	if h.opt.CheckSum != 0 || h.file.TimeDateStamp != 0x5eadbeef {
		t.Errorf("CheckSum 0x%x, TimeDateStamp 0x%x; want 0 and the stub's 0x5eadbeef", h.opt.CheckSum, h.file.TimeDateStamp)
	}
	if h.file.PointerToSymbolTable != 0 || h.file.NumberOfSymbols != 0 || h.file.Characteristics != sh.file.Characteristics|fileLocalSymsStripped {
		t.Errorf("symbol table not stripped: %+v", h.file)
	}
	// Nothing else in the headers changed.
	a, b := bytes.Clone(stub[:0x400]), bytes.Clone(out[:0x400])
	for _, r := range [][2]int{
		{h.fileAt(), h.fileAt() + fileHeaderLen},
		{h.optAt() + 8, h.optAt() + 12},  // SizeOfInitializedData
		{h.optAt() + 56, h.optAt() + 60}, // SizeOfImage
		{h.optAt() + 64, h.optAt() + 68}, // CheckSum
		{h.secAt + 4*sectionLen, h.secAt + 10*sectionLen},
	} {
		clear(a[r[0]:r[1]])
		clear(b[r[0]:r[1]])
	}
	if !bytes.Equal(a, b) {
		t.Errorf("header bytes other than the updated fields changed")
	}

	t.Run("objdump", func(t *testing.T) {
		checkObjdump(t, out, wantObjdump(h))
	})
}

// TestBuildUKIAlignment builds UKIs from stubs of other alignments and
// checks the placement rules: file offsets at FileAlignment, one after the
// other; addresses at SectionAlignment after the previous section's end.
func TestBuildUKIAlignment(t *testing.T) {
	tests := []struct {
		name     string
		fa, sa   uint32
		headers  uint32
		symbols  int
		wantVA0  uint32 // address of .osrel
		wantPtr0 uint32 // file offset of .osrel
	}{
		// The stub's .sbat leaves the section table, its place in memory
		// and its bytes in the file: .osrel goes right after .data.
		{"4k sections", 0x200, 0x1000, 0x400, 0, 0x5000, 0xe00},
		{"4k file and sections", 0x1000, 0x1000, 0x1000, 0, 0x5000, 0x3000},
		{"64k sections, symbols", 0x200, 0x10000, 0x400, 2, 0x30000, 0xe00},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stub := makePE(t, peSpec{fileAlign: tc.fa, sectAlign: tc.sa, sizeOfHeaders: tc.headers, symbols: tc.symbols, sections: []peSec{
				{name: ".text", data: bytes.Repeat([]byte{0xCC}, 0x700), flags: 0x60000020},
				{name: ".data", data: []byte("data"), vsize: 0x2100, flags: 0xc0000040},
				{name: ".sbat", data: []byte(testStubSBAT), flags: 0x40000040},
			}})
			out := buildUKI(t, testUKI(t, stub))
			h, err := parseHeaders(out, int64(len(out)))
			if err != nil {
				t.Fatal(err)
			}
			fa, sa := int64(tc.fa), int64(tc.sa)
			prev := h.sections[1]
			fileEnd := int64(tc.wantPtr0)
			for i, s := range h.sections[2:] {
				if i == 0 && (s.VirtualAddress != tc.wantVA0 || s.PointerToRawData != tc.wantPtr0) {
					t.Errorf("%s at 0x%x, file 0x%x; want 0x%x, 0x%x", s.name(), s.VirtualAddress, s.PointerToRawData, tc.wantVA0, tc.wantPtr0)
				}
				if int64(s.VirtualAddress) != roundUp(prev.memEnd(), sa) {
					t.Errorf("%s at 0x%x, want 0x%x", s.name(), s.VirtualAddress, roundUp(prev.memEnd(), sa))
				}
				if int64(s.PointerToRawData) != fileEnd || int64(s.SizeOfRawData) != roundUp(int64(s.VirtualSize), fa) {
					t.Errorf("%s: file 0x%x+0x%x, want 0x%x+0x%x", s.name(), s.PointerToRawData, s.SizeOfRawData, fileEnd, roundUp(int64(s.VirtualSize), fa))
				}
				fileEnd += int64(s.SizeOfRawData)
				prev = s
			}
			if int64(len(out)) != fileEnd {
				t.Errorf("file of 0x%x bytes, sections end at 0x%x", len(out), fileEnd)
			}
			if int64(h.opt.SizeOfImage) != roundUp(prev.memEnd(), sa) {
				t.Errorf("SizeOfImage 0x%x, want 0x%x", h.opt.SizeOfImage, roundUp(prev.memEnd(), sa))
			}
			checkObjdump(t, out, wantObjdump(h))
		})
	}
}

func TestBuildUKIOptionalSections(t *testing.T) {
	u := testUKI(t, testStub(t))
	u.Initrd, u.Cmdline, u.OSRelease, u.Uname = nil, "", nil, "6.1.0-7-arm64x"
	out := buildUKI(t, u)
	h, err := parseHeaders(out, int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range h.sections[4:] {
		names = append(names, h.sections[4+i].name())
	}
	if got := strings.Join(names, " "); got != ".uname .sbat .linux" {
		t.Fatalf("added sections %q, want .uname .sbat .linux", got)
	}
	s := h.sections[4]
	if got := string(out[s.PointerToRawData:][:s.VirtualSize]); got != "6.1.0-7-arm64x" {
		t.Errorf(".uname %q, want the given one", got)
	}
}

func TestBuildUKIDeterministic(t *testing.T) {
	u := testUKI(t, testStub(t))
	a, b := buildUKI(t, u), buildUKI(t, u)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds differ")
	}
	// The streamed Content gives the same bytes, each time it is opened.
	f, err := NewUKI(u)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(a)) {
		t.Fatalf("NewUKI size %d, BuildUKI wrote %d", f.Size, len(a))
	}
	for i := 0; i < 2; i++ {
		if got := testkit.ReadAll(t, f.Content); !bytes.Equal(got, a) {
			t.Fatalf("open %d of the streamed UKI differs from BuildUKI's", i)
		}
	}
	// Read in odd-sized pieces, across part boundaries.
	rc, _ := f.Content.Open()
	defer rc.Close()
	var got []byte
	buf := make([]byte, 333)
	for {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, a) {
		t.Fatal("read in pieces, the UKI differs")
	}
}

func TestBuildUKIErrors(t *testing.T) {
	kernel := testKernel(t)
	crowded := make([]peSec, 17) // the section table ends at 0x3f0 of 0x400
	for i := range crowded {
		crowded[i] = peSec{name: ".s" + strconv.Itoa(i), data: []byte{1}, flags: 0x40000040}
	}
	tests := []struct {
		name string
		edit func(u *UKI)
		want string
	}{
		{"no stub", func(u *UKI) { u.Stub = nil }, "uki: stub: missing"},
		{"stub is a symlink", func(u *UKI) { u.Stub = &tree.Inode{Kind: tree.Symlink, Target: "x"} }, "uki: stub: is a symlink"},
		{"stub not PE", func(u *UKI) { u.Stub = fileInode([]byte("#!/bin/sh\necho not a stub\n")) }, "uki: stub: not a PE image"},
		{"signed stub", func(u *UKI) {
			u.Stub = fileInode(makePE(t, peSpec{signed: true, sections: []peSec{{name: ".text", data: []byte{1}}}}))
		}, "signed"},
		{"no room for headers", func(u *UKI) { u.Stub = fileInode(makePE(t, peSpec{sections: crowded})) }, "no room for 4 more section headers"},
		{"header bytes in use", func(u *UKI) {
			u.Stub = fileInode(makePE(t, peSpec{headerJunk: true, sections: []peSec{{name: ".text", data: []byte{1}}}}))
		}, "are not free"},
		{"unknown machine", func(u *UKI) { u.Stub = fileInode(makePE(t, peSpec{machine: 0x1234})) }, "unknown PE machine type 0x1234"},
		{"kernel for another machine", func(u *UKI) {
			u.Kernel = fileInode(makePE(t, peSpec{machine: 0xaa64, sections: []peSec{{name: ".text", data: []byte{1}}}}))
		}, "the kernel is for PE machine 0xaa64, the stub for 0x8664"},
		{"kernel not EFI stub", func(u *UKI) { u.Kernel = fileInode(append([]byte("\x7fELF"), make([]byte, 100)...)) }, "EFI-stub kernels only"},
		{"empty kernel", func(u *UKI) { u.Kernel = fileInode(nil) }, "uki: kernel: is empty"},
		{"cmdline newline", func(u *UKI) { u.Cmdline = "root=/dev/vda\ninit=/bin/sh" }, "only printable ASCII"},
		{"cmdline UTF-8", func(u *UKI) { u.Cmdline = "quiet café" }, "only printable ASCII"},
		{"bad uname", func(u *UKI) { u.Uname = "6.1/../../x" }, "uki: uname"},
		{"initrd without content", func(u *UKI) { u.Initrd = &File{Size: 5} }, "uki: initrd: 5 bytes without content"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := UKI{Stub: fileInode(testStub(t)), Kernel: fileInode(kernel), Cmdline: "quiet", Epoch: testEpoch}
			tc.edit(&u)
			err := BuildUKI(io.Discard, u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestUKIContentSizeChecked: Contents that give fewer or more bytes than
// their size are errors when the UKI is written, not short or long files.
func TestUKIContentSizeChecked(t *testing.T) {
	tests := []struct {
		name string
		n    int // bytes the initrd Content really gives; it claims 100
		want string
	}{
		{"short", 60, "content ended after 60 of its 100 bytes"},
		{"long", 101, "content is longer than its size, 100 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := testUKI(t, testStub(t))
			u.Initrd = &File{Content: testkit.Zeros(tc.n), Size: 100}
			err := BuildUKI(io.Discard, u)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ".initrd") {
				t.Fatalf("error %v, want one about .initrd containing %q", err, tc.want)
			}
			if tc.n < 100 && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v does not wrap io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestInstallUKI(t *testing.T) {
	u := testUKI(t, testStub(t))
	want := buildUKI(t, u)
	esp := tree.New(testEpoch)
	if err := InstallUKI(esp, u, "kiln-6.1.0-99-amd64"); err != nil {
		t.Fatal(err)
	}
	got := listTree(t, esp)
	sum := judge.SHA256(want)
	wantList := []string{
		"/ dir 0755 0:0 1700000000",
		"/EFI dir 0755 0:0 1700000000",
		"/EFI/BOOT dir 0755 0:0 1700000000",
		"/EFI/BOOT/BOOTX64.EFI file 0644 0:0 1700000000 16896 " + sum,
		"/EFI/Linux dir 0755 0:0 1700000000",
		"/EFI/Linux/kiln-6.1.0-99-amd64.efi file 0644 0:0 1700000000 16896 " + sum,
	}
	if strings.Join(got, "\n") != strings.Join(wantList, "\n") {
		t.Fatalf("ESP tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantList, "\n"))
	}
	for _, name := range []string{"", "../x", "a/b", ".hidden", "x y"} {
		if err := InstallUKI(tree.New(testEpoch), u, name); err == nil {
			t.Errorf("InstallUKI with name %q: no error", name)
		}
	}
}

// TestBuildUKIRealStub builds a UKI from systemd 252's own stub (Debian's
// systemd-boot-efi) and a small test kernel, and has binutils judge it:
// the section order objdump lists, and the .sbat objcopy dumps, byte for
// byte: the stub's two entries between ukify's header and UKI entry.
func TestBuildUKIRealStub(t *testing.T) {
	stub := debFile(t, testkit.DebSystemdBoot, stubPath)
	u := testUKI(t, nil)
	u.Stub = stub
	out := buildUKI(t, u)
	h, err := parseHeaders(out, int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	names, _ := sectionsOf(t, out, "")
	if want := ".text .reloc .data .dynamic .rela .dynsym .sdmagic .osrel .cmdline .uname .initrd .sbat .linux"; names != want {
		t.Errorf("sections %q, want %q", names, want)
	}
	// systemd 252's stub: .sdmagic at 0x19100 (0x34 bytes), the symbol
	// table at 0x11400; its .sbat, 0x11000+0x200 in the file, is cut out
	// (.sdmagic moves there); so .osrel goes to 0x19200 and file offset
	// 0x11200.
	s := h.sections[len(h.sections)-6]
	if s.name() != ".osrel" || s.VirtualAddress != 0x19200 || s.PointerToRawData != 0x11200 {
		t.Errorf("first added section %q at 0x%x, file 0x%x; want .osrel at 0x19200, file 0x11200", s.name(), s.VirtualAddress, s.PointerToRawData)
	}
	if s := h.sections[6]; s.name() != ".sdmagic" || s.VirtualAddress != 0x19100 || s.PointerToRawData != 0x11000 {
		t.Errorf("section 6 %q at 0x%x, file 0x%x; want .sdmagic at 0x19100, file 0x11000", s.name(), s.VirtualAddress, s.PointerToRawData)
	}
	checkNoFileGaps(t, out)
	objdump := wantObjdump(h)
	checkObjdump(t, out, objdump)
	for _, o := range objdump {
		if o.name == ".sbat" && o.vma <= 0x19000 {
			t.Errorf(".sbat at 0x%x, want it appended after the stub's sections", o.vma)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "uki.efi")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	const debianSBAT = testSBATHeader +
		"systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n" +
		"systemd.debian,1,Debian GNU/Linux,systemd,252.39-1~deb12u2,https://bugs.debian.org/\n" +
		testSBATUKI + "\x00"
	for name, want := range map[string][]byte{".cmdline": []byte(testCmdline), ".linux": testKernel(t), ".osrel": []byte(testOSRelease), ".sbat": []byte(debianSBAT)} {
		if got := objcopyDump(t, p, name); !bytes.Equal(got, want) {
			t.Errorf("objcopy --dump-section %s: %q, not the expected %q", name, trunc(got), trunc(want))
		}
	}
	// sbverify (sbsigntool) reads the unsigned UKI without a warning about
	// gaps between sections, which would make Authenticode hashes differ
	// between tools.
	judge.Need(t, "sbverify")
	if out, _ := judge.Run(t, nil, "sbverify", "--list", p); !strings.Contains(out, "No signature table present") || strings.Contains(out, "gap") || strings.Contains(out, "warning") {
		t.Errorf("sbverify --list:\n%s", out)
	}
}

// checkNoFileGaps checks that img's sections, in file order, follow each
// other from the end of the headers to the end of the file.
func checkNoFileGaps(t *testing.T, img []byte) {
	t.Helper()
	h := mustHeaders(t, img)
	secs := slices.Clone(h.sections)
	slices.SortFunc(secs, func(a, b sectionHeader) int { return int(a.PointerToRawData) - int(b.PointerToRawData) })
	at := h.opt.SizeOfHeaders
	for _, s := range secs {
		if s.SizeOfRawData == 0 {
			continue
		}
		if s.PointerToRawData != at {
			t.Errorf("section %q at file offset 0x%x, want 0x%x (right after the one before it)", s.name(), s.PointerToRawData, at)
		}
		at = s.PointerToRawData + s.SizeOfRawData
	}
	if int(at) != len(img) {
		t.Errorf("the sections end at 0x%x, the file at 0x%x", at, len(img))
	}
}

// trunc shortens b for an error message.
func trunc(b []byte) []byte {
	if len(b) > 400 {
		return b[:400]
	}
	return b
}

// objSection is a line of `objdump -h`.
type objSection struct {
	name      string
	size, vma uint64
	off       uint64
}

// wantObjdump is what objdump -h should list for the image h describes:
// BFD gives a section's size as the smaller of VirtualSize and
// SizeOfRawData (the bytes the file holds).
func wantObjdump(h *peHeaders) []objSection {
	var out []objSection
	for _, s := range h.sections {
		size := min(s.VirtualSize, s.SizeOfRawData)
		out = append(out, objSection{s.name(), uint64(size), h.opt.ImageBase + uint64(s.VirtualAddress), uint64(s.PointerToRawData)})
	}
	return out
}

// checkObjdump has objdump (binutils) list the sections of img and
// compares them with want.
func checkObjdump(t *testing.T, img []byte, want []objSection) {
	t.Helper()
	judge.Need(t, "objdump")
	p := filepath.Join(t.TempDir(), "img.efi")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := judge.Run(t, nil, "objdump", "-h", p)
	if code != 0 || !strings.Contains(out, "file format pei-x86-64") {
		t.Fatalf("objdump -h: exit %d:\n%s", code, out)
	}
	var got []objSection
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			continue
		}
		num := func(s string) uint64 {
			v, err := strconv.ParseUint(s, 16, 64)
			if err != nil {
				t.Fatalf("objdump line %q: %v", line, err)
			}
			return v
		}
		got = append(got, objSection{f[1], num(f[2]), num(f[3]), num(f[5])})
	}
	if len(got) != len(want) {
		t.Fatalf("objdump lists %d sections, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("objdump section %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// objcopyDump returns a section's contents as objcopy --dump-section gives
// them.
func objcopyDump(t *testing.T, img, name string) []byte {
	t.Helper()
	judge.Need(t, "objcopy")
	dir := t.TempDir()
	dump := filepath.Join(dir, "section")
	out, code := judge.Run(t, nil, "objcopy", "--dump-section", name+"="+dump, img, filepath.Join(dir, "copy.efi"))
	if code != 0 {
		t.Fatalf("objcopy --dump-section %s: exit %d:\n%s", name, code, out)
	}
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listTree lists a tree: path, kind, mode, owner, mtime and, for files,
// size and sha256.
func listTree(t *testing.T, tr *tree.Tree) []string {
	t.Helper()
	var out []string
	err := tr.Walk(func(p string, d tree.Dirent) error {
		n := d.Inode
		s := p + " " + n.Kind.String() + " " + "0" + strconv.FormatUint(uint64(n.Mode), 8) + " " +
			strconv.Itoa(int(n.UID)) + ":" + strconv.Itoa(int(n.GID)) + " " + strconv.FormatInt(n.Mtime, 10)
		if n.Kind == tree.Regular {
			s += " " + strconv.FormatInt(n.Size, 10) + " " + judge.SHA256(trees.Read(t, n))
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SBAT texts of the tests: a stub's (systemd's shape, with the NUL
// systemd's build leaves after it), a kernel's (Fedora's shape, no NUL),
// and the UKI's .sbat when neither has one: ukify's header and UKI entry.
const (
	testSBATHeader = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
	testSBATUKI    = "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n"
	testStubSBAT   = testSBATHeader +
		"systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n" +
		"systemd.kiln,1,Kiln Test,systemd,252.99-1,https://example.org/\n\x00"
	testKernelSBAT = testSBATHeader +
		"linux,1,Red Hat,linux,6.1.0-99,mailto:secalert@redhat.com\n" +
		"kernel.kiln,1,Kiln Test,kernel-core,6.1.0-99,mailto:kernel@example.org\n"
	testUKISBAT = testSBATHeader + testSBATUKI + "\x00" // 0x9f bytes
)

// stubWithSBAT is testStub with a .sbat section holding data (of
// VirtualSize vsize, or its length) between .data and .sdmagic, as in
// systemd 252's stub.
func stubWithSBAT(t testing.TB, data []byte, vsize uint32) []byte {
	return makePE(t, peSpec{
		timestamp: 0x5eadbeef,
		sections: []peSec{
			{name: ".text", data: bytes.Repeat([]byte{0xCC}, 0x900), flags: 0x60000020},
			{name: ".reloc", data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, flags: 0x42000040},
			{name: ".data", data: bytes.Repeat([]byte{0x11}, 0x500), vsize: 0x4b8, flags: 0xc0000040},
			{name: ".sbat", data: data, vsize: vsize, flags: 0x40000040},
			{name: ".sdmagic", data: []byte("#### LoaderInfo: systemd-stub 252 ####"), flags: 0x40000040},
		},
		symbols: 3,
	})
}

// kernelWithSBAT is testKernel with a .sbat section after .text.
func kernelWithSBAT(t testing.TB, data []byte) []byte {
	return makePE(t, peSpec{
		sections: []peSec{
			{name: ".setup", data: bytes.Repeat([]byte{0x22}, 0x600), flags: 0x40000040},
			{name: ".text", data: bytes.Repeat([]byte{0x33}, 0x1234), flags: 0x60000020},
			{name: ".sbat", data: data, flags: 0x40000040},
		},
		setupVersion: "6.1.0-99-amd64 (kiln@example.org) (gcc) #1 SMP Debian",
	})
}

// sectionsOf returns the names of img's sections, in the table's order,
// and the data (VirtualSize bytes) of the one named name.
func sectionsOf(t testing.TB, img []byte, name string) (string, []byte) {
	t.Helper()
	h, err := parseHeaders(img, int64(len(img)))
	if err != nil {
		t.Fatalf("the UKI's headers: %v", err)
	}
	var names []string
	var data []byte
	for _, s := range h.sections {
		names = append(names, s.name())
		if s.name() == name {
			data = img[s.PointerToRawData:][:s.VirtualSize]
		}
	}
	return strings.Join(names, " "), data
}

// TestUKISBAT checks the UKI's .sbat byte for byte, as ukify's merge_sbat
// makes it: the header once, the stub's entries, the kernel's, the UKI's,
// a line feed after each and one NUL at the end; and that the UKI has
// exactly one .sbat, appended before .linux, the stub's own taken out of
// the section table and its bytes zeroed.
func TestUKISBAT(t *testing.T) {
	stubEntries := "systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n" +
		"systemd.kiln,1,Kiln Test,systemd,252.99-1,https://example.org/\n"
	kernelEntries := "linux,1,Red Hat,linux,6.1.0-99,mailto:secalert@redhat.com\n" +
		"kernel.kiln,1,Kiln Test,kernel-core,6.1.0-99,mailto:kernel@example.org\n"
	withStub := ".text .reloc .data .sdmagic .osrel .cmdline .uname .initrd .sbat .linux"
	noStub := ".text .reloc .data .sdmagic .osrel .cmdline .uname .initrd .sbat .linux"
	tests := []struct {
		name         string
		stub, kernel []byte
		sections     string
		want         string
	}{
		{"neither has one", testStub(t), nil, noStub, testUKISBAT},
		{"stub's", stubWithSBAT(t, []byte(testStubSBAT), 0), nil, withStub,
			testSBATHeader + stubEntries + testSBATUKI + "\x00"},
		{"kernel's", testStub(t), kernelWithSBAT(t, []byte(testKernelSBAT)), noStub,
			testSBATHeader + kernelEntries + testSBATUKI + "\x00"},
		{"stub's and kernel's", stubWithSBAT(t, []byte(testStubSBAT), 0), kernelWithSBAT(t, []byte(testKernelSBAT)), withStub,
			testSBATHeader + stubEntries + kernelEntries + testSBATUKI + "\x00"},
		// No line feed after the last line, NULs after it, or bytes past
		// VirtualSize: the same entries.
		{"no final line feed", stubWithSBAT(t, []byte(strings.TrimSuffix(testStubSBAT, "\n\x00")), 0), nil, withStub,
			testSBATHeader + stubEntries + testSBATUKI + "\x00"},
		{"NUL padding", stubWithSBAT(t, []byte(testStubSBAT+"\x00\x00\x00\x00"), 0), nil, withStub,
			testSBATHeader + stubEntries + testSBATUKI + "\x00"},
		{"bytes past VirtualSize", stubWithSBAT(t, []byte(testStubSBAT+"junk,\xff\x01"), uint32(len(testStubSBAT))), nil, withStub,
			testSBATHeader + stubEntries + testSBATUKI + "\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := testUKI(t, tc.stub)
			if tc.kernel != nil {
				u.Kernel = fileInode(tc.kernel)
			}
			out := buildUKI(t, u)
			names, got := sectionsOf(t, out, ".sbat")
			if names != tc.sections {
				t.Errorf("sections %q, want %q", names, tc.sections)
			}
			if string(got) != tc.want {
				t.Errorf(".sbat:\n%q\nwant:\n%q", got, tc.want)
			}
			if n := strings.Count(names, ".sbat"); n != 1 {
				t.Errorf("%d .sbat sections, want 1", n)
			}
			// The stub's .sbat text is gone from the file; the merged one
			// holds its entries. (The kernel, in .linux, keeps its own.)
			h := mustHeaders(t, out)
			linux := h.sections[len(h.sections)-1]
			if n := bytes.Count(out[:linux.PointerToRawData], []byte("sbat,1,SBAT Version")); n != 1 {
				t.Errorf("the SBAT header is %d times in the UKI's bytes before .linux, want once", n)
			}
			checkObjdump(t, out, wantObjdump(mustHeaders(t, out)))
			checkNoFileGaps(t, out)
		})
	}
}

func mustHeaders(t testing.TB, img []byte) *peHeaders {
	t.Helper()
	h, err := parseHeaders(img, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestUKISBATLayout checks where the stub's .sbat went: its header out of
// the table (the ones after it moved up, unchanged but for the file offset
// of those after it in the file), its bytes cut out of the file (no gap
// between sections), everything else of the stub as it was.
func TestUKISBATLayout(t *testing.T) {
	stub := stubWithSBAT(t, []byte(testStubSBAT), 0)
	sh := mustHeaders(t, stub)
	out := buildUKI(t, testUKI(t, stub))
	h := mustHeaders(t, out)
	if h.file.NumberOfSections != 4+6 || len(h.sections) != 10 {
		t.Fatalf("%d sections, want 10", h.file.NumberOfSections)
	}
	for i, j := range []int{0, 1, 2, 4} { // .text .reloc .data .sdmagic
		want := sh.sections[j]
		if j == 4 {
			want.PointerToRawData -= 0x200
		}
		if h.sections[i] != want {
			t.Errorf("stub section %d: %+v, want %+v", i, h.sections[i], want)
		}
	}
	old := sh.sections[3] // the stub's .sbat: 0x1600+0x200 in the file
	if old.name() != ".sbat" || old.PointerToRawData != 0x1600 || old.SizeOfRawData != 0x200 {
		t.Fatalf("BUG: test stub's section 3 is %q at 0x%x+0x%x", old.name(), old.PointerToRawData, old.SizeOfRawData)
	}
	if !bytes.Equal(out[0x400:0x1600], stub[0x400:0x1600]) || !bytes.Equal(out[0x1600:0x1800], stub[0x1800:0x1a00]) {
		t.Errorf("the stub's other section data changed")
	}
	// .osrel follows .sdmagic (0x2400+0x26) in memory, and the stub's data
	// (up to 0x1800 without .sbat) in the file.
	if s := h.sections[4]; s.name() != ".osrel" || s.VirtualAddress != 0x2600 || s.PointerToRawData != 0x1800 {
		t.Errorf("first added section %q at 0x%x, file 0x%x; want .osrel at 0x2600, file 0x1800", s.name(), s.VirtualAddress, s.PointerToRawData)
	}
	checkNoFileGaps(t, out)
	// The table's slots after the last section are zero.
	if !allZero(out[h.secTableEnd():h.opt.SizeOfHeaders]) {
		t.Errorf("bytes after the section table are not zero")
	}
}

// TestUKISBATHostile: a .sbat that is not SBAT text is refused, naming the
// file, rather than merged or skipped (ukify crashes on some and skips
// others with a warning, which would drop a component's revocation
// entries); a huge one is refused before it is read.
func TestUKISBATHostile(t *testing.T) {
	big := []byte(testSBATHeader + strings.Repeat("systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n", 300))
	tests := []struct {
		name   string
		stub   []byte // the stub's .sbat, or nil
		kernel []byte // the kernel's .sbat, or nil
		want   string
	}{
		{"huge stub .sbat", big, nil, "uki: stub: .sbat section of 19576 bytes, more than the 16384 allowed"},
		{"huge kernel .sbat", nil, big, "uki: kernel: .sbat section of 19576 bytes, more than the 16384 allowed"},
		{"empty", []byte("\x00\x00\x00\x00"), nil, "uki: stub: .sbat: empty"},
		{"not UTF-8", []byte(testSBATHeader + "systemd,1,Caf\xe9,systemd,252,https://systemd.io/\n"), nil, "uki: stub: .sbat: not UTF-8"},
		{"binary", []byte("\x7fELF\x02\x01\x01"), nil, "uki: stub: .sbat: control character"},
		{"NUL inside", []byte(testSBATHeader + "systemd,1,x,systemd,252,u\x00\nlinux,1,x,linux,1,u\n"), nil, "uki: stub: .sbat: control character U+0000"},
		{"CRLF", []byte(strings.ReplaceAll(testStubSBAT, "\n", "\r\n")), nil, "uki: stub: .sbat: control character U+000D"},
		{"line separator", []byte(testSBATHeader + "systemd,1,a\u2028b,systemd,252,u\n"), nil, "control character U+2028"},
		{"no header", []byte("systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n"), nil, `uki: stub: .sbat line 1 "systemd,1,`},
		{"other format version", []byte("sbat,2,SBAT Version,sbat,2,https://example.org/\n"), nil, "not the header of SBAT format 1"},
		{"second header", []byte(testSBATHeader + testSBATHeader), nil, "uki: stub: .sbat line 2 \"sbat,1,SBAT Version"},
		{"short entry", []byte(testSBATHeader + "systemd,1\n"), nil, `.sbat line 2 "systemd,1": not an SBAT entry`},
		{"generation not a number", []byte(testSBATHeader + "systemd,one,a,b,c,d\n"), nil, "not an SBAT entry"},
		{"empty line", []byte(testSBATHeader + "\nsystemd,1,a,b,c,d\n"), nil, `.sbat line 2 "": not an SBAT entry`},
		{"kernel garbage", nil, []byte("MZ\x00\x01"), "uki: kernel: .sbat: control character U+0000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := testUKI(t, testStub(t))
			if tc.stub != nil {
				u.Stub = fileInode(stubWithSBAT(t, tc.stub, 0))
			}
			if tc.kernel != nil {
				u.Kernel = fileInode(kernelWithSBAT(t, tc.kernel))
			}
			err := BuildUKI(io.Discard, u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	t.Run("two .sbat sections", func(t *testing.T) {
		stub := makePE(t, peSpec{sections: []peSec{
			{name: ".text", data: []byte{1}, flags: 0x60000020},
			{name: ".sbat", data: []byte(testStubSBAT), flags: 0x40000040},
			{name: ".sbat", data: []byte(testStubSBAT), flags: 0x40000040},
		}})
		u := testUKI(t, stub)
		if err := BuildUKI(io.Discard, u); err == nil || !strings.Contains(err.Error(), "uki: stub: two .sbat sections (1 and 2)") {
			t.Fatalf("error %v, want one about two .sbat sections", err)
		}
	})

	// The kernel's .sbat is read only up to its bound: a kernel whose
	// .sbat (here past the headers kiln reads, at 0x21a00) is too large is
	// refused from its headers, its content read no further than them.
	t.Run("huge kernel .sbat not read", func(t *testing.T) {
		k := makePE(t, peSpec{
			sections: []peSec{
				{name: ".setup", data: bytes.Repeat([]byte{0x22}, 0x600), flags: 0x40000040},
				{name: ".text", data: bytes.Repeat([]byte{0x33}, 0x21000), flags: 0x60000020},
				{name: ".sbat", data: big, flags: 0x40000040},
			},
			setupVersion: "6.1.0-99-amd64 (kiln@example.org) (gcc) #1 SMP Debian",
		})
		if sbat := mustHeaders(t, k).sections[2]; sbat.PointerToRawData <= kernelPrefix {
			t.Fatalf("BUG: the test kernel's .sbat at 0x%x, not past the headers' 0x%x", sbat.PointerToRawData, kernelPrefix)
		}
		c := &countingContent{b: k}
		u := testUKI(t, testStub(t))
		u.Kernel = &tree.Inode{Kind: tree.Regular, Mode: 0o644, Size: int64(len(k)), Content: c}
		if err := BuildUKI(io.Discard, u); err == nil || !strings.Contains(err.Error(), "more than the 16384 allowed") {
			t.Fatalf("error %v, want the bound", err)
		}
		if c.max > kernelPrefix {
			t.Errorf("read %d bytes of the kernel, more than its headers' %d", c.max, kernelPrefix)
		}
	})
}

// countingContent is content in memory that records the most bytes one
// reader of it has read.
type countingContent struct {
	b   []byte
	max int
}

func (c *countingContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(&countingReader{c: c, r: bytes.NewReader(c.b)}), nil
}

type countingReader struct {
	c *countingContent
	r *bytes.Reader
	n int
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += n
	r.c.max = max(r.c.max, r.n)
	return n, err
}

// TestBuildUKIArm64Stub: Debian's arm64 stub (systemd 252, gnu-efi's
// hand-made PE header) fills the header after its section table with
// AArch64 NOPs up to .text; the new section headers go over them, as
// ukify writes them, with the real arm64 kernel. Any other non-zero byte
// there is still refused, and so are NOPs in an x86 stub.
func TestBuildUKIArm64Stub(t *testing.T) {
	stub := trees.Read(t, debFile(t, testkit.DebSystemdBootArm64, "/usr/lib/systemd/boot/efi/linuxaa64.efi.stub"))
	h, err := parseHeaders(stub, int64(len(stub)))
	if err != nil {
		t.Fatal(err)
	}
	end := h.secTableEnd()
	if !bytes.Equal(stub[end:end+4], aarch64NOP) {
		t.Fatalf("the arm64 stub's header after its section table: % x, want the NOP fill", stub[end:end+8])
	}
	kernel := trees.Kernel(t, trees.Debs(t, testEpoch, testkit.DebKernelArm64))
	u := UKI{Stub: fileInode(stub), Kernel: kernel, Initrd: Bytes(testInitrd()), Cmdline: "console=ttyAMA0", OSRelease: []byte(testOSRelease), Uname: "6.1.0-99-arm64", Epoch: testEpoch}
	out := buildUKI(t, u)
	names, cmdline := sectionsOf(t, out, ".cmdline")
	if !strings.HasSuffix(names, ".osrel .cmdline .uname .initrd .sbat .linux") || string(cmdline) != "console=ttyAMA0" {
		t.Errorf("sections %q, .cmdline %q", names, cmdline)
	}
	oh, err := parseHeaders(out, int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := oh.machineName(); n != "AA64" {
		t.Errorf("machine %s", n)
	}
	checkNoFileGaps(t, out)

	bad := append([]byte(nil), stub...)
	bad[end+4*3] = 0x90 // one word that is not a NOP
	u.Stub = fileInode(bad)
	if _, err := NewUKI(u); err == nil || !strings.Contains(err.Error(), "are not free") {
		t.Errorf("a non-NOP word after the section table: %v", err)
	}
	x86 := append([]byte(nil), testStub(t)...)
	xh, err := parseHeaders(x86, int64(len(x86)))
	if err != nil {
		t.Fatal(err)
	}
	copy(x86[xh.secTableEnd():], bytes.Repeat(aarch64NOP, 8))
	if headerFree(x86, int64(xh.secTableEnd()), int64(xh.secTableEnd())+32, xh.file.Machine) {
		t.Error("AArch64 NOPs in an x86-64 stub's header taken as free")
	}
}
