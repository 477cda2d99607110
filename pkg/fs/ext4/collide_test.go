package ext4

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
)

// findCollision returns two names with the same dx hash under seed and
// a hash in the upper half (so that many names hash below it).
func findCollision(t *testing.T, seed [4]uint32) (a, b string, h uint32) {
	t.Helper()
	seen := map[uint32]string{}
	for i := 0; i < 2_000_000; i++ {
		n := fmt.Sprintf("c%d", i)
		hh, _ := dirHash(n, seed)
		if o, ok := seen[hh]; ok && hh > 1<<31 && hh < 0xf0000000 {
			return o, n, hh
		}
		seen[hh] = n
	}
	t.Fatal("no hash collision found")
	return
}

// A collision split across two leaves: the second leaf's index entry
// carries the continuation bit, so the kernel's lookup of the first name
// stays in the first leaf and of the second goes on to the next.
func TestHtreeCollisionAcrossLeaves(t *testing.T) {
	judge.Need(t, "e2fsck", "debugfs")
	o := testOptions()
	seed := o.hashSeed()
	a, b, h := findCollision(t, seed)
	pair := []dentry{{name: a}, {name: b}}
	hashSort(pair, seed)
	first := pair[0].name

	// Fillers hashing below h fill the first leaf exactly up to and
	// including first; fillers above h come after the pair.
	space := leafSpace - recLen(len(first))
	var below, above []string
	n12, n16 := 0, 0
	for k := 0; k*16 <= space; k++ {
		if (space-16*k)%12 == 0 {
			n16, n12 = k, (space-16*k)/12
			break
		}
	}
	for i := 0; len(below) < n12+n16 || len(above) < 50; i++ {
		long := len(below) >= n12 // 12-byte records first (4-char names), then 16-byte ones
		name := fmt.Sprintf("%04x", i)
		if long {
			name = fmt.Sprintf("y%06x", i)
		}
		hh, _ := dirHash(name, seed)
		switch {
		case hh < h && len(below) < n12+n16 && recLen(len(name)) == map[bool]int{false: 12, true: 16}[long]:
			below = append(below, name)
		case hh > h && len(above) < 50 && long:
			above = append(above, name)
		}
	}

	tr := tree.New(t0)
	d := tree.NewDir(0o755, 0, 0, t0)
	tr.Root.SetChild("dir", d)
	for _, n := range append(append(below, above...), a, b) {
		d.SetChild(n, file(0o644, []byte(n)))
	}
	img := writeImage(t, tr, 0, o)
	fsck(t, img)
	out := debugfs(t, img, "htree /dir")
	want := fmt.Sprintf("Entry #1: Hash 0x%08x, block 2", h|1)
	if !strings.Contains(out, want) {
		t.Fatalf("htree /dir: no %q (collision %q/%q at %#x)\n%s", want, a, b, h, out)
	}
}
