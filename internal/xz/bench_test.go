package xz

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/ulikunitz/xz"
)

var (
	benchOnce sync.Once
	benchData []byte // ~64 MiB of text and random runs
	benchXZ   []byte // it, made by xz -T2 -6: three blocks
)

func benchFile(b *testing.B) ([]byte, []byte) {
	benchOnce.Do(func() {
		benchData = textBytes(64<<20, 99)
		benchXZ = xzBytes(b, benchData, "-T2", "-6")
	})
	return benchData, benchXZ
}

// BenchmarkDecode decodes a 64 MiB multi-block file with this package
// (1 and 2 workers), with ulikunitz/xz and with xz -dc; the MB/s are of
// uncompressed bytes.
func BenchmarkDecode(b *testing.B) {
	data, comp := benchFile(b)
	run := func(b *testing.B, open func() io.Reader) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			n, err := io.Copy(io.Discard, open())
			if err != nil || n != int64(len(data)) {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
	}
	for _, w := range []struct {
		name    string
		workers int
	}{{"kiln-1", 1}, {"kiln-2", 2}} {
		b.Run(w.name, func(b *testing.B) {
			run(b, func() io.Reader {
				r, err := NewReader(bytes.NewReader(comp), 0, int64(len(comp)), w.workers)
				if err != nil {
					b.Fatal(err)
				}
				return r
			})
		})
	}
	b.Run("ulikunitz", func(b *testing.B) {
		run(b, func() io.Reader {
			r, err := xz.NewReader(bytes.NewReader(comp))
			if err != nil {
				b.Fatal(err)
			}
			return r
		})
	})
	b.Run("xz-dc", func(b *testing.B) {
		testkit.NeedTools(b, "xz")
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			cmd := exec.Command("xz", "-dc")
			cmd.Stdin = bytes.NewReader(comp)
			cmd.Stdout = io.Discard
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBlock decodes one block whole, on one goroutine, with this
// package's LZMA2 decoder and with ulikunitz's: the first block of
// XZ_BENCH_FILE if set, else of BenchmarkDecode's file.
func BenchmarkBlock(b *testing.B) {
	var comp []byte
	if name := os.Getenv("XZ_BENCH_FILE"); name != "" {
		var err error
		if comp, err = os.ReadFile(name); err != nil {
			b.Fatal(err)
		}
	} else {
		_, comp = benchFile(b)
	}
	f := &file{ra: bytes.NewReader(comp), size: int64(len(comp))}
	ss, err := f.streams()
	if err != nil {
		b.Fatal(err)
	}
	it, err := f.blockIter(ss[0])
	if err != nil {
		b.Fatal(err)
	}
	blk, _, err := it.next()
	if err != nil {
		b.Fatal(err)
	}
	in := comp[blk.pos+blk.headerSize : blk.pos+blk.headerSize+blk.dataSize]
	out := make([]byte, blk.uncompressed)
	var stop atomic.Bool
	for _, dec := range []struct {
		name string
		f    func(out, in []byte, dict int64, stop *atomic.Bool) error
	}{{"kiln", decodeLZMA2}, {"ulikunitz", decodeLZMA2Ulikunitz}} {
		b.Run(dec.name, func(b *testing.B) {
			b.SetBytes(blk.uncompressed)
			for b.Loop() {
				if err := dec.f(out, in, blk.dict, &stop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFile decodes the file XZ_BENCH_FILE names, if set: with this
// package (1 worker, 2, and GOMAXPROCS) and with ulikunitz/xz.
func BenchmarkFile(b *testing.B) {
	f, size := benchEnvFile(b)
	for _, w := range []struct {
		name    string
		workers int
	}{{"kiln-1", 1}, {"kiln-2", 2}, {"kiln-gomaxprocs", 0}, {"ulikunitz", -1}} {
		b.Run(w.name, func(b *testing.B) {
			for b.Loop() {
				var r io.Reader
				if w.workers < 0 {
					zr, err := xz.NewReader(bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20))
					if err != nil {
						b.Fatal(err)
					}
					r = zr
				} else {
					kr, err := NewReader(f, 0, size, w.workers)
					if err != nil {
						b.Fatal(err)
					}
					defer kr.Close()
					r = kr
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(n)
			}
		})
	}
}

// TestFile checks that XZ_BENCH_FILE, if set, decodes to XZ_BENCH_RAW.
func TestFile(t *testing.T) {
	f, size := benchEnvFile(t)
	raw, err := os.Open(os.Getenv("XZ_BENCH_RAW"))
	if err != nil {
		t.Skip("XZ_BENCH_RAW is not set") // skip-ok: an opt-in check of a file the bench names
	}
	defer raw.Close()
	r, err := NewReader(f, 0, size, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h1, h2 := sha256.New(), sha256.New()
	if _, err := io.Copy(h1, r); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(h2, raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h1.Sum(nil), h2.Sum(nil)) {
		t.Fatal("the file does not decode to XZ_BENCH_RAW")
	}
}

func benchEnvFile(tb testing.TB) (*os.File, int64) {
	name := os.Getenv("XZ_BENCH_FILE")
	if name == "" {
		tb.Skip("XZ_BENCH_FILE is not set")
	}
	f, err := os.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	return f, st.Size()
}
