package uefi

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestParseHeaders(t *testing.T) {
	good := func() []byte { return testStub(t) }
	tests := []struct {
		name string
		img  func() []byte
		want string // error substring; "" for success
	}{
		{"good", good, ""},
		{"real-shaped kernel", func() []byte { return testKernel(t) }, ""},
		{"empty", func() []byte { return nil }, "no MZ header"},
		{"not MZ", func() []byte { b := good(); b[0] = 'X'; return b }, "no MZ header"},
		{"lfanew beyond file", func() []byte {
			b := good()
			binary.LittleEndian.PutUint32(b[dosLfanewAt:], 0xfffffff0)
			return b
		}, "PE header offset 0xfffffff0"},
		{"lfanew into DOS header", func() []byte {
			b := good()
			binary.LittleEndian.PutUint32(b[dosLfanewAt:], 4)
			return b
		}, "PE header offset 0x4"},
		{"no PE signature", func() []byte { b := good(); b[0x41] = 'X'; return b }, "no PE signature"},
		{"PE32", func() []byte { return makePE(t, peSpec{magic: pe32Magic}) }, "PE32 (32-bit) images are not supported"},
		{"bad magic", func() []byte { return makePE(t, peSpec{magic: 0x107}) }, "optional header magic 0x107"},
		{"not EFI", func() []byte { return makePE(t, peSpec{subsystem: 3}) }, "not an EFI application: PE subsystem 3"},
		{"file alignment 256", func() []byte { return makePE(t, peSpec{fileAlign: 256, sectAlign: 4096}) }, "FileAlignment 0x100"},
		{"section alignment below file alignment", func() []byte { return makePE(t, peSpec{fileAlign: 0x1000, sectAlign: 0x200, sizeOfHeaders: 0x1000}) }, "SectionAlignment 0x200"},
		{"too many sections", func() []byte {
			b := good()
			binary.LittleEndian.PutUint16(b[0x46:], 200)
			return b
		}, "200 sections"},
		{"section table beyond SizeOfHeaders", func() []byte {
			return makePE(t, peSpec{sizeOfHeaders: 0x200, sections: []peSec{{name: ".a", data: []byte{1}}, {name: ".b", data: []byte{1}}, {name: ".c", data: []byte{1}}, {name: ".d", data: []byte{1}}, {name: ".e", data: []byte{1}}, {name: ".f", data: []byte{1}}, {name: ".g", data: []byte{1}}}})
		}, "does not cover the section table"},
		{"section data beyond file", func() []byte {
			b := good()
			return b[:len(b)-0x100] // cuts the symbol table and the end of .sdmagic
		}, `(".sdmagic"): data`},
		{"overlapping sections", func() []byte {
			b := good()
			h, err := parseHeaders(b, int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			// .reloc starts inside .text
			binary.LittleEndian.PutUint32(b[h.secAt+sectionLen+12:], h.sections[0].VirtualAddress+4)
			return b
		}, `(".reloc"): address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.img()
			h, err := parseHeaders(b, int64(len(b)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if h.file.Machine != 0x8664 || len(h.sections) == 0 {
					t.Fatalf("parsed machine 0x%x, %d sections", h.file.Machine, len(h.sections))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseHeadersStub(t *testing.T) {
	b := testStub(t)
	h, err := parseHeaders(b, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range h.sections {
		names = append(names, h.sections[i].name())
	}
	if got, want := strings.Join(names, " "), ".text .reloc .data .sdmagic"; got != want {
		t.Errorf("sections %q, want %q", got, want)
	}
	if h.file.PointerToSymbolTable == 0 || h.file.NumberOfSymbols != 3 {
		t.Errorf("symbol table at 0x%x with %d symbols, want 3 at the end", h.file.PointerToSymbolTable, h.file.NumberOfSymbols)
	}
	if arch, err := h.machineName(); err != nil || arch != "X64" {
		t.Errorf("machine name %q, %v; want X64", arch, err)
	}
	if !bytes.Equal(b[h.sections[3].PointerToRawData:][:6], []byte("#### L")) {
		t.Errorf(".sdmagic data not where its header says")
	}
}

func TestBzImageVersion(t *testing.T) {
	tests := []struct {
		version string
		want    string
	}{
		{"6.1.0-99-amd64 (kiln@example.org) (gcc) #1 SMP", "6.1.0-99-amd64"},
		{"6.8.0+", "6.8.0+"},
		{"6.1 evil/../x (x)", "6.1"},
		{"../../etc (x)", ""},
		{"a\nb (x)", ""},
		{strings.Repeat("9", 65) + " (x)", ""},
	}
	for _, tc := range tests {
		b := makePE(t, peSpec{setupVersion: tc.version})
		if got := bzImageVersion(b); got != tc.want {
			t.Errorf("bzImageVersion(%q) = %q, want %q", tc.version, got, tc.want)
		}
	}
	if got := bzImageVersion(makePE(t, peSpec{})); got != "" {
		t.Errorf("no setup header: version %q, want none", got)
	}
}
