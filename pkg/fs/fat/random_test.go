package fat

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/pkg/tree"
)

// randomName returns a name FAT can store, mixing 8.3 names in either case,
// long names, dots, spaces and non-ASCII letters.
func randomName(r *rand.Rand) string {
	const ascii = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .-_+~,;=[]()!#$%&'@^`{}"
	others := []rune("éüßÆ日本語✓Ωж") // mtools reads no surrogate pairs: see TestLongNameEntries
	switch r.IntN(4) {
	case 0: // an 8.3 name, upper or lower case
		n := fmt.Sprintf("%s.%s", randomFrom(r, "ABCDEFGHXYZ0189_", 1+r.IntN(8)), randomFrom(r, "ABCXYZ", 1+r.IntN(3)))
		if r.IntN(2) == 0 {
			n = strings.ToLower(n)
		}
		return n
	case 1: // a short name without extension
		return randomFrom(r, "abcdefghXYZ0189", 1+r.IntN(8))
	}
	var b strings.Builder
	for n := 1 + r.IntN(40); n > 0; n-- {
		if r.IntN(8) == 0 {
			b.WriteRune(others[r.IntN(len(others))])
		} else {
			b.WriteByte(ascii[r.IntN(len(ascii))])
		}
	}
	return strings.TrimRight(b.String(), ". ") + "x"
}

func randomFrom(r *rand.Rand, chars string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

func randomSize(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return int64([]int{1, 511, 512, 513, 2047, 2048, 2049, 4095, 4096, 4097}[r.IntN(10)])
	case 2:
		return int64(r.IntN(100000))
	}
	return int64(r.IntN(700))
}

// randomTree fills dir with random entries down to depth levels, at most
// *budget of them in all.
func randomTree(r *rand.Rand, dir *tree.Inode, depth int, budget *int, files *[]*tree.Inode) {
	n := r.IntN(12)
	if r.IntN(10) == 0 {
		n = 150 + r.IntN(150) // a big directory now and then
	}
	n = min(n, *budget)
	*budget -= n
	seen := map[string]bool{}
	for _, c := range dir.Children() {
		seen[foldKey(c.Name)] = true
	}
	for range n {
		name := randomName(r)
		if seen[foldKey(name)] {
			continue
		}
		seen[foldKey(name)] = true
		switch {
		case depth > 0 && r.IntN(5) == 0:
			d := tree.NewDir(0o755, 0, 0, testEpoch-int64(r.IntN(1<<30)))
			dir.SetChild(name, d)
			randomTree(r, d, depth-1, budget, files)
		case len(*files) > 0 && r.IntN(15) == 0: // a hardlink
			dir.SetChild(name, (*files)[r.IntN(len(*files))])
		default:
			f := genFile(r.Uint64(), randomSize(r))
			f.Mtime = r.Int64N(5_000_000_000)
			f.Nsec = uint32(r.IntN(1e9))
			if r.IntN(6) == 0 {
				f.Mode = 0o444
			}
			dir.SetChild(name, f)
			*files = append(*files, f)
		}
	}
}

// TestRandomTrees writes random trees from a fixed seed, with fsck.vfat
// and mtools as oracles.
func TestRandomTrees(t *testing.T) {
	judge.Need(t, "fsck.vfat", "mcopy")
	r := rand.New(rand.NewPCG(2024, 11))
	for i := range 16 {
		tr := tree.New(testEpoch)
		var files []*tree.Inode
		budget := 400
		for budget > 250 {
			randomTree(r, tr.Root, 6, &budget, &files)
		}
		typ := []int{0, 0, 16, 12}[r.IntN(4)]
		o := Options{Label: randomFrom(r, "ABCXYZ09 -_", 1+r.IntN(11)), VolumeID: r.Uint32(), Epoch: testEpoch, FATType: typ}
		o.Label = strings.TrimLeft(o.Label, " ")
		slack := int64(r.IntN(3)) * mib
		t.Run(fmt.Sprintf("%d-FAT%d", i, typ), func(t *testing.T) {
			size, err := MinSize(tr, o)
			if err != nil {
				t.Fatalf("MinSize: %v", err)
			}
			size += slack
			img := mustWriteImage(t, size, tr, o)
			fsckClean(t, img)
			compareExtracted(t, tr, extract(t, img))
			if in := probeFile(t, img); in.Label != strings.ToUpper(strings.TrimRight(o.Label, " ")) || in.VolumeID != o.VolumeID {
				t.Errorf("Probe: label %q, ID %#x", in.Label, in.VolumeID)
			}
		})
	}
}
