package disk

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/repro"
)

var update = flag.Bool("update", false, "rewrite the golden hashes in testdata/")

// mustUUID parses a canonical UUID in a test literal.
func mustUUID(s string) repro.UUID {
	u, err := repro.ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// run runs a tool (judge.Need: a missing one skips the test, or fails it
// under CI) with stdin, in the C locale, and returns its combined output,
// and an error if it exits non-zero.
func run(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	judge.Need(t, name)
	out, code := judge.RunInput(t, stdin, []string{"LC_ALL=C"}, name, args...)
	if code != 0 {
		return out, fmt.Errorf("exit status %d", code)
	}
	return out, nil
}

// mustRun runs a tool and fails the test if it fails.
func mustRun(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// emptyImage creates a sparse file of size bytes in a temporary directory.
func emptyImage(t *testing.T, size int64) string {
	t.Helper()
	f := testkit.SparseFile(t, "disk.img", size)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// writeImage writes l's table to a new sparse image and returns its path.
func writeImage(t *testing.T, l *Layout) string {
	t.Helper()
	f := testkit.SparseFile(t, "disk.img", l.Size)
	if err := Write(f, l); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// readImage runs Read on an image file.
func readImage(t *testing.T, path string) *Layout {
	t.Helper()
	f, size := testkit.Open(t, path)
	l, err := Read(f, size)
	if err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return l
}

// sfdiskDump is the part of `sfdisk --json` the tests compare.
type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Unit       string `json:"unit"`
		FirstLBA   int64  `json:"firstlba"`
		LastLBA    int64  `json:"lastlba"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdiskJSON(t *testing.T, path string) sfdiskDump {
	t.Helper()
	judge.Need(t, "sfdisk")
	cmd := exec.Command("sfdisk", "--json", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, stderr.String())
	}
	var d sfdiskDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	return d
}

// sfdiskAttrs is how libfdisk prints GPT attribute bits (gpt.c,
// gpt_entry_attrs_to_string), built independently of the code under test.
func sfdiskAttrs(a uint64) string {
	var words []string
	for bit, name := range []string{"RequiredPartition", "NoBlockIOProtocol", "LegacyBIOSBootable"} {
		if a&(1<<bit) != 0 {
			words = append(words, name)
		}
	}
	var guid []string
	for bit := 48; bit < 64; bit++ {
		if a&(1<<bit) != 0 {
			guid = append(guid, fmt.Sprint(bit))
		}
	}
	if len(guid) > 0 {
		words = append(words, "GUID:"+strings.Join(guid, ","))
	}
	return strings.Join(words, " ")
}

// readSectors returns sectors [from, to) of a file.
func readSectors(t *testing.T, path string, from, to int64) []byte {
	t.Helper()
	return testkit.ReadAt(t, path, from*SectorSize, int((to-from)*SectorSize))
}

// diffLayouts compares the fields Read can recover, naming the first
// difference; "" means equal.
func diffLayouts(got, want *Layout) string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if got.Table != want.Table {
		add("table %v, want %v", got.Table, want.Table)
	}
	if got.DiskGUID != want.DiskGUID {
		add("disk GUID %s, want %s", got.DiskGUID, want.DiskGUID)
	}
	if got.DiskSignature != want.DiskSignature {
		add("disk signature %08x, want %08x", got.DiskSignature, want.DiskSignature)
	}
	if got.Size != want.Size {
		add("size %d, want %d", got.Size, want.Size)
	}
	if got.FirstUsableLBA != want.FirstUsableLBA || got.LastUsableLBA != want.LastUsableLBA {
		add("usable %d-%d, want %d-%d", got.FirstUsableLBA, got.LastUsableLBA, want.FirstUsableLBA, want.LastUsableLBA)
	}
	if len(got.Partitions) != len(want.Partitions) {
		add("%d partitions, want %d", len(got.Partitions), len(want.Partitions))
		return strings.Join(d, "; ")
	}
	for i := range got.Partitions {
		if g, w := got.Partitions[i], want.Partitions[i]; g != w {
			add("partition %d: got %+v, want %+v", i, g, w)
		}
	}
	return strings.Join(d, "; ")
}
