package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// printDiff explains how two images differ. For now: the byte ranges.
func printDiff(w io.Writer, a, b string, asJSON bool) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	const chunk = 1 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	var off int64
	shown := 0
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb {
			fmt.Fprintf(w, "sizes differ near byte %d\n", off+int64(min(na, nb)))
			return nil
		}
		if !bytes.Equal(ba[:na], bb[:nb]) {
			for i := 0; i < na && shown < 20; i++ {
				if ba[i] != bb[i] {
					j := i
					for j < na && ba[j] != bb[j] {
						j++
					}
					fmt.Fprintf(w, "bytes %d-%d differ\n", off+int64(i), off+int64(j)-1)
					shown++
					i = j
				}
			}
		}
		off += int64(na)
		if ea != nil || eb != nil {
			return nil
		}
	}
}
