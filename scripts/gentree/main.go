// Command gentree writes a deterministic tar of generated files, for
// scaling measurements and benchmarks: the same flags give the same bytes.
//
//	go run ./scripts/gentree -size 4GiB -files 20000 -o big.tar
package main

import (
	"archive/tar"
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/kiln-build/kiln/pkg/spec"
)

func main() {
	size := flag.String("size", "100MiB", "total bytes of file data")
	files := flag.Int("files", 10000, "number of files")
	perDir := flag.Int("per-dir", 500, "files per directory")
	out := flag.String("o", "tree.tar", "output tar")
	flag.Parse()
	total, err := spec.ParseSize(*size)
	if err != nil || *files < 1 || *perDir < 1 {
		fmt.Fprintln(os.Stderr, "gentree: bad -size, -files or -per-dir")
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	rng := rand.NewChaCha8([32]byte{'k', 'i', 'l', 'n'})
	buf := make([]byte, 1<<20)
	mtime := time.Unix(1600000000, 0)
	// Sizes: a few large files carry most of the bytes, the rest are small,
	// as in a real rootfs.
	large := *files / 100
	if large == 0 {
		large = 1
	}
	small := int64(4096)
	bigEach := (total - small*int64(*files-large)) / int64(large)
	if bigEach < small {
		bigEach = total / int64(*files)
		small = bigEach
	}
	for i := 0; i < *files; i++ {
		if i%*perDir == 0 {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%05d/", i / *perDir), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
		}
		n := small
		if i%(*files/large) == 0 {
			n = bigEach
		}
		h := &tar.Header{Name: fmt.Sprintf("d%05d/f%07d", i / *perDir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: n, ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			fmt.Fprintln(os.Stderr, "gentree:", err)
			os.Exit(1)
		}
		for left := n; left > 0; {
			c := min(left, int64(len(buf)))
			rng.Read(buf[:c])
			if _, err := tw.Write(buf[:c]); err != nil {
				fmt.Fprintln(os.Stderr, "gentree:", err)
				os.Exit(1)
			}
			left -= c
		}
	}
	err = tw.Close()
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}
