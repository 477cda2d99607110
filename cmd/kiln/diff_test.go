package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

type diffReport struct {
	Identical  bool `json:"identical"`
	Table      []struct{ Name, A, B string }
	Partitions []struct {
		Number     int
		Name       string
		Filesystem string
		Fields     []struct{ Name, A, B string }
		Files      []struct {
			Path, Change string
			Fields       []struct{ Name, A, B string }
		}
		Problems    []string
		Unexplained []struct{ Start, End int64 }
	}
	Outside []struct{ Start, End int64 }
}

func runDiff(t *testing.T, a, b string) diffReport {
	t.Helper()
	out, se, code := kiln(t, "", nil, "diff", "--json", a, b)
	if code != 0 && code != 1 {
		t.Fatalf("kiln diff: exit %d: %s", code, se)
	}
	var r diffReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if (code == 0) != r.Identical {
		t.Fatalf("exit %d but identical=%v", code, r.Identical)
	}
	return r
}

// TestDiffOneByte changes one byte of one file in one layer: kiln diff must
// name exactly that file, and nothing else. The spec sets seed:, so that
// the IDs stay: without it, they follow the layers' content (a changed
// layer gives new GUIDs and UUIDs; see spec.IDSeed).
func TestDiffOneByte(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte("seed: one-byte\n"+mergeFixture(t, dir, "gpt")))
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", a); code != 0 {
		t.Fatal(se)
	}
	if r := runDiff(t, a, a); !r.Identical {
		t.Fatalf("an image differs from itself: %+v", r)
	}
	writeFile(t, filepath.Join(dir, "layers/host/etc/motd"), []byte("hellp\n")) // was "hello\n"
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", b); code != 0 {
		t.Fatal(se)
	}
	r := runDiff(t, a, b)
	if r.Identical || len(r.Table) != 0 || len(r.Outside) != 0 || len(r.Partitions) != 1 {
		t.Fatalf("want one partition's difference only: %+v", r)
	}
	p := r.Partitions[0]
	if p.Name != "root" || p.Filesystem != "ext4" || len(p.Fields) != 0 || len(p.Unexplained) != 0 || len(p.Problems) != 0 {
		t.Fatalf("root partition: %+v", p)
	}
	if len(p.Files) != 1 || p.Files[0].Path != "/etc/motd" || p.Files[0].Change != "changed" ||
		len(p.Files[0].Fields) != 1 || p.Files[0].Fields[0].Name != "content sha256" {
		t.Fatalf("want exactly /etc/motd's content: %+v", p.Files)
	}
	// The text form says the same.
	out, _, code := kiln(t, "", nil, "diff", a, b)
	if code != 1 || !strings.Contains(out, "changed /etc/motd") || strings.Count(out, "changed ") != 1 {
		t.Errorf("text diff (exit %d):\n%s", code, out)
	}
}

// TestDiffEpoch changes the epoch: kiln diff names the times that changed
// and nothing but times.
func TestDiffEpoch(t *testing.T) {
	dir := t.TempDir()
	spec := mergeFixture(t, dir, "gpt")
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(spec))
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", a); code != 0 {
		t.Fatal(se)
	}
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte(strings.Replace(spec, "epoch: 1700000000", "epoch: 1700000100", 1)))
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", b); code != 0 {
		t.Fatal(se)
	}
	r := runDiff(t, a, b)
	if r.Identical || len(r.Table) != 0 {
		t.Fatalf("the partition table must not change with the epoch: %+v", r.Table)
	}
	timeField := func(n string) bool {
		return n == "mtime" || strings.Contains(n, "time") || n == "s_lastcheck" || n == "s_checksum" || n == "boot code"
	}
	files := map[string]bool{}
	for _, p := range r.Partitions {
		if len(p.Unexplained) != 0 || len(p.Problems) != 0 {
			t.Errorf("partition %s: unexplained %v problems %v", p.Name, p.Unexplained, p.Problems)
		}
		for _, f := range p.Fields {
			if !timeField(f.Name) {
				t.Errorf("partition %s: field %s changed with the epoch: %s -> %s", p.Name, f.Name, f.A, f.B)
			}
		}
		for _, f := range p.Files {
			files[p.Name+":"+f.Path] = true
			if f.Change != "changed" {
				t.Errorf("%s %s with the epoch", f.Change, f.Path)
			}
			for _, x := range f.Fields {
				if x.Name != "mtime" {
					t.Errorf("%s: %s changed with the epoch", f.Path, x.Name)
				}
			}
		}
	}
	for _, want := range []string{"root:/etc/future", "root:/etc/hostname", "root:/usr/share", "root:/boot/efi", "esp:/EFI"} {
		if !files[want] {
			t.Errorf("%s's mtime (at the epoch) not named: %v", want, files)
		}
	}
	for _, not := range []string{"root:/etc/passwd", "esp:/EFI/BOOT/BOOTX64.EFI"} {
		if files[not] {
			t.Errorf("%s has its own older mtime but was named", not)
		}
	}
}

// TestDiffSealed: one byte of one file on a sealed EROFS root. kiln diff
// reads both EROFS trees and names exactly that file; the rest of what
// differs is what the root hash names: the two partition GUIDs and the
// hash partition's tree.
func TestDiffSealed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kiln.yaml"), []byte("seed: one-byte\n"+sealedFixture(t, dir)))
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", a); code != 0 {
		t.Fatal(se)
	}
	writeFile(t, filepath.Join(dir, "layers/host/etc/motd"), []byte("hellp\n")) // was "hello\n"
	if _, se, code := kiln(t, dir, nil, "build", "-q", "-o", b); code != 0 {
		t.Fatal(se)
	}
	r := runDiff(t, a, b)
	if r.Identical || len(r.Outside) != 0 {
		t.Fatalf("want differences inside partitions only: %+v", r)
	}
	var names []string
	for _, f := range r.Table {
		names = append(names, f.Name)
	}
	if len(r.Table) != 2 || !strings.Contains(strings.Join(names, " "), "2") || !strings.Contains(strings.Join(names, " "), "3") {
		t.Errorf("table: want the GUIDs of partitions 2 and 3 (named by the root hash) only: %+v", r.Table)
	}
	var root, hash bool
	for _, p := range r.Partitions {
		switch p.Name {
		case "root":
			root = true
			if p.Filesystem != "erofs" || len(p.Unexplained) != 0 || len(p.Problems) != 0 {
				t.Errorf("root partition: %+v", p)
			}
			if len(p.Files) != 1 || p.Files[0].Path != "/etc/motd" || p.Files[0].Change != "changed" ||
				len(p.Files[0].Fields) != 1 || p.Files[0].Fields[0].Name != "content sha256" {
				t.Errorf("want exactly /etc/motd's content: %+v", p.Files)
			}
		case "root-verity":
			hash = true
		default:
			t.Errorf("partition %s differs: %+v", p.Name, p)
		}
	}
	if !root || !hash {
		t.Errorf("want the root and its hash partition to differ: %+v", r.Partitions)
	}
}
