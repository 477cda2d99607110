package erofs

import (
	"fmt"
	"testing"
)

// TestMetaAlloc: items placed by metaAlloc never overlap, start 32-byte
// aligned after the superblock, stay within one block (fit) or start
// with their head within one (span), fill started blocks before new ones
// when they fit, and are placed alike every time.
func TestMetaAlloc(t *testing.T) {
	place := func() []string {
		var a metaAlloc
		a.init()
		seed := uint64(12345)
		rnd := func(n int64) int64 {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			return int64(seed % uint64(n))
		}
		type item struct{ pos, size int64 }
		var items []item
		var out []string
		for i := 0; i < 5000; i++ {
			var it item
			switch rnd(20) {
			case 0: // more than a block: a span, head within its block
				it.size = blockSize + rnd(3*blockSize)
				head := 32 + rnd(200)
				it.pos = a.span(it.size, head)
				if it.pos%blockSize+head > blockSize {
					t.Fatalf("span of %d at %d: head of %d crosses a block", it.size, it.pos, head)
				}
			default:
				it.size = 32 + rnd(blockSize-32)
				before := a.end()
				it.pos = a.fit(it.size)
				if it.pos%blockSize+it.size > blockSize {
					t.Fatalf("fit of %d at %d crosses a block", it.size, it.pos)
				}
				// A new block only when no started one had room.
				if it.pos >= (before+blockSize-1)/blockSize*blockSize {
					for blk := range a.used[:it.pos/blockSize] {
						if used := int64(a.used[blk]); blk != int(it.pos/blockSize) && blockSize-used >= (it.size+31)/32*32 && used < blockSize {
							// used may have grown since; a block that
							// still has room now had it then.
							t.Fatalf("fit of %d at %d in a new block, block %d had %d bytes free", it.size, it.pos, blk, blockSize-used)
						}
					}
				}
			}
			if it.pos < metaStart || it.pos%32 != 0 {
				t.Fatalf("item at %d", it.pos)
			}
			items = append(items, it)
			out = append(out, fmt.Sprint(it.pos))
		}
		// No overlap: mark every 32-byte unit.
		taken := map[int64]bool{}
		for _, it := range items {
			for u := it.pos / 32; u < (it.pos+it.size+31)/32; u++ {
				if taken[u] {
					t.Fatalf("item at %d (%d bytes) overlaps another", it.pos, it.size)
				}
				taken[u] = true
			}
		}
		if a.end() < items[len(items)-1].pos {
			t.Fatalf("end %d before the last item", a.end())
		}
		return out
	}
	first, second := place(), place()
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Error("two placements of the same items differ")
	}
}
