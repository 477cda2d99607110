package disk

import (
	"bytes"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// FuzzRead feeds arbitrary disks to Read (kiln inspect and diff read
// partition tables of images from anywhere): an error or a layout that
// passes its own checks, never a panic, and at most testkit.ReadBound
// allocated.
func FuzzRead(f *testing.F) {
	for _, c := range goldenCases {
		l := c.plan(f)
		img := make([]byte, l.Size)
		if err := Write(sliceWriter(img), l); err != nil {
			f.Fatal(err)
		}
		// Only the table areas matter; keep the seed small.
		seed := append(bytes.Clone(img[:34*512]), img[len(img)-33*512:]...)
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		testkit.BoundAlloc(t, testkit.ReadBound, func() {
			l, err := Read(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return
			}
			for _, p := range l.Partitions {
				if p.Start < 0 || p.Size < 0 {
					t.Fatalf("partition %d: start %d size %d", p.Number, p.Start, p.Size)
				}
			}
		})
	})
}
