package disk

import (
	"fmt"
	"strings"
	"testing"
)

func TestLookupType(t *testing.T) {
	tests := []struct {
		ref, arch string
		name      string // want Type.Name
		guid      string // want GUID, "" for none
		mbr       byte
		wantErr   string
	}{
		{ref: "esp", name: "esp", guid: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", mbr: 0xEF},
		{ref: "ESP", name: "esp", guid: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", mbr: 0xEF},
		{ref: "bios-boot", name: "bios-boot", guid: "21686148-6449-6e6f-744e-656564454649"},
		{ref: "linux", name: "linux", guid: "0fc63daf-8483-4772-8e79-3d69d8477de4", mbr: 0x83},
		{ref: "swap", name: "swap", guid: "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", mbr: 0x82},
		{ref: "home", name: "home", guid: "933ac7e1-2eb4-4f13-b844-0e14e2aef915", mbr: 0x83},
		{ref: "srv", name: "srv", guid: "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", mbr: 0x83},
		{ref: "var", name: "var", guid: "4d21b016-b534-45c2-a9fb-5c16e091fd2d", mbr: 0x83},
		{ref: "root", name: "root-x86-64", guid: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", mbr: 0x83},
		{ref: "root", arch: "amd64", name: "root-x86-64", guid: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", mbr: 0x83},
		{ref: "root", arch: "x86_64", name: "root-x86-64", guid: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", mbr: 0x83},
		{ref: "root", arch: "arm64", name: "root-arm64", guid: "b921b045-1df0-41c3-af44-4c6f280d3fae", mbr: 0x83},
		{ref: "root", arch: "aarch64", name: "root-arm64", guid: "b921b045-1df0-41c3-af44-4c6f280d3fae", mbr: 0x83},
		{ref: "usr", name: "usr-x86-64", guid: "8484680c-9521-48c6-9c11-b0720656f69e", mbr: 0x83},
		{ref: "usr", arch: "AArch64", name: "usr-arm64", guid: "b0e01050-ee5f-4390-949a-9101b17104e9", mbr: 0x83},
		{ref: "usr", arch: "riscv64", name: "usr-riscv64", guid: "beaec34b-8442-439b-a40b-984381ed097d", mbr: 0x83},
		{ref: "root-verity", arch: "arm64", name: "root-verity-arm64", guid: "df3300ce-d69f-4c92-978c-9bfb0f38d820"},
		{ref: "root-arm64", arch: "x86-64", name: "root-arm64", guid: "b921b045-1df0-41c3-af44-4c6f280d3fae", mbr: 0x83},
		{ref: "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", name: "root-arm64", guid: "b921b045-1df0-41c3-af44-4c6f280d3fae", mbr: 0x83},
		{ref: "01234567-89ab-cdef-0123-456789abcdef", guid: "01234567-89ab-cdef-0123-456789abcdef"},
		{ref: "0x83", name: "linux", guid: "0fc63daf-8483-4772-8e79-3d69d8477de4", mbr: 0x83},
		{ref: "0xEF", name: "esp", guid: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", mbr: 0xEF},
		{ref: "0x0c", name: "fat32-lba", mbr: 0x0C},
		{ref: "0x42", mbr: 0x42},
		{ref: "", wantErr: "empty"},
		{ref: "0x", wantErr: "two hex digits"},
		{ref: "0x100", wantErr: "two hex digits"},
		{ref: "0x00", wantErr: "unused MBR entry"},
		{ref: "00000000-0000-0000-0000-000000000000", wantErr: "unused GPT entry"},
		{ref: "0123456z-89ab-cdef-0123-456789abcdef", wantErr: "invalid UUID"},
		{ref: "root", arch: "sparc", wantErr: `unknown architecture "sparc"`},
		{ref: "rootfs", wantErr: `unknown partition type "rootfs"`},
	}
	for _, tc := range tests {
		t.Run(tc.ref+"/"+tc.arch, func(t *testing.T) {
			got, err := LookupType(tc.ref, tc.arch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LookupType = %+v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantGUID := "00000000-0000-0000-0000-000000000000"
			if tc.guid != "" {
				wantGUID = tc.guid
			}
			if got.Name != tc.name || got.GUID.String() != wantGUID || got.MBR != tc.mbr {
				t.Errorf("LookupType = {%q %s 0x%02x}, want {%q %s 0x%02x}", got.Name, got.GUID, got.MBR, tc.name, wantGUID, tc.mbr)
			}
			if got.Description == "" {
				t.Errorf("no description")
			}
		})
	}
}

// TestRegistry checks the registry's internal consistency: names and GUIDs
// unique, every name resolves to itself, and the reverse lookups agree.
func TestRegistry(t *testing.T) {
	names := map[string]bool{}
	guids := map[string]string{}
	for _, e := range registry {
		if names[e.name] {
			t.Errorf("name %q twice", e.name)
		}
		names[e.name] = true
		if other, dup := guids[e.guid]; dup {
			t.Errorf("GUID %s for both %q and %q", e.guid, other, e.name)
		}
		guids[e.guid] = e.name
		if e.guid != strings.ToLower(e.guid) {
			t.Errorf("%q: GUID %s not in lower case", e.name, e.guid)
		}
		typ, err := LookupType(e.name, "")
		if err != nil {
			t.Errorf("LookupType(%q): %v", e.name, err)
			continue
		}
		if typ.Name != e.name || typ.GUID.String() != e.guid || typ.MBR != e.mbr {
			t.Errorf("LookupType(%q) = %+v", e.name, typ)
		}
		back, ok := TypeByGUID(typ.GUID)
		if !ok || back != typ {
			t.Errorf("TypeByGUID(%s) = %+v, %v; want %+v", typ.GUID, back, ok, typ)
		}
		if e.base != "" {
			viaArch, err := LookupType(e.base, e.arch)
			if err != nil || viaArch != typ {
				t.Errorf("LookupType(%q, %q) = %+v, %v; want %+v", e.base, e.arch, viaArch, err, typ)
			}
		}
		if e.mbr != 0 {
			m, ok := TypeByMBR(e.mbr)
			if !ok || m.MBR != e.mbr {
				t.Errorf("TypeByMBR(0x%02x) = %+v, %v", e.mbr, m, ok)
			}
		}
	}
	for _, a := range arches {
		for _, base := range []string{"root", "usr", "root-verity", "usr-verity"} {
			if _, err := LookupType(base, a); err != nil {
				t.Errorf("no %s type for %s: %v", base, a, err)
			}
		}
	}
	if m, _ := TypeByMBR(0x83); m.Name != "linux" {
		t.Errorf("TypeByMBR(0x83) = %q, want linux", m.Name)
	}
	if _, ok := TypeByMBR(0x42); ok {
		t.Errorf("TypeByMBR(0x42) claims to know SFS")
	}
	if got := TypeNames(); !strings.Contains(strings.Join(got, ","), "esp,xbootldr,bios-boot,linux") || !contains(got, "root") || contains(got, "root-arm64") {
		t.Errorf("TypeNames = %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestRegistryKnownToSfdisk uses util-linux's own type table as the judge:
// every GPT GUID must appear in `sfdisk --label gpt -T` with the same
// description, every MBR byte in `sfdisk --label dos -T`.
func TestRegistryKnownToSfdisk(t *testing.T) {
	gpt := mustRun(t, "", "sfdisk", "--label", "gpt", "-T")
	dos := mustRun(t, "", "sfdisk", "--label", "dos", "-T")
	gptLines := map[string]string{}
	for _, line := range strings.Split(gpt, "\n") {
		if f := strings.SplitN(strings.TrimSpace(line), " ", 2); len(f) == 2 && len(f[0]) == 36 {
			gptLines[strings.ToLower(f[0])] = strings.TrimSpace(f[1])
		}
	}
	if len(gptLines) < 20 {
		t.Fatalf("could not parse sfdisk's GPT type list:\n%s", gpt)
	}
	for _, e := range registry {
		desc, ok := gptLines[e.guid]
		if !ok {
			t.Errorf("%q: GUID %s unknown to sfdisk", e.name, e.guid)
		} else if desc != e.desc {
			t.Errorf("%q: sfdisk calls %s %q, the registry %q", e.name, e.guid, desc, e.desc)
		}
		if e.mbr != 0 && !hasDosType(dos, e.mbr) {
			t.Errorf("%q: MBR type 0x%02x unknown to sfdisk", e.name, e.mbr)
		}
	}
	for _, m := range mbrOnly {
		if !hasDosType(dos, m.mbr) {
			t.Errorf("%q: MBR type 0x%02x unknown to sfdisk", m.name, m.mbr)
		}
	}
}

func hasDosType(list string, b byte) bool {
	want := fmt.Sprintf("%x", b)
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == want {
			return true
		}
	}
	return false
}
