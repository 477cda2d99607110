package xz

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/testkit"
)

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// textBytes returns n bytes of compressible text (words, numbers, lines,
// now and then a run of random bytes), the same for the same seed.
func textBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	words := []string{"kiln", "layer", "ext4", "inode", "the", "of", "a", "block", "usr/lib/x86_64-linux-gnu", "debian", "\n", "\t", "== ", "0x", "root", "etc/passwd"}
	var b bytes.Buffer
	b.Grow(n + 64)
	for b.Len() < n {
		switch k := r.IntN(40); {
		case k == 0:
			b.Write(randomBytes(r.IntN(300), r.Uint64()))
		case k < 8:
			fmt.Fprintf(&b, "%d ", r.IntN(100000))
		default:
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// x86Bytes returns n bytes of x86 machine code: a prefix of this test's
// own binary, repeated as needed.
func x86Bytes(t testing.TB, n int) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}

// xzBytes compresses data with the real xz and args.
func xzBytes(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	testkit.NeedTools(t, "xz")
	cmd := exec.Command("xz", append([]string{"-c", "--no-warn"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v: %v: %s", args, err, stderr.Bytes())
	}
	return out
}

// unxz decodes with the real xz; ok is false if it fails.
func unxz(t testing.TB, data []byte) ([]byte, bool) {
	t.Helper()
	testkit.NeedTools(t, "xz")
	cmd := exec.Command("xz", "-dc", "--no-warn")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	return out, err == nil
}

// decode decodes data with NewReader, reading in pieces of odd sizes.
func decode(data []byte, workers int) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(data), 0, int64(len(data)), workers)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out bytes.Buffer
	buf := make([]byte, 70001)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:1+i*7919%len(buf)])
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

// fixtures caches compressed test files: xz is slow at -9e.
var fixtures sync.Map

type fixtureKey struct {
	data string
	args string
}

func cachedXZ(t testing.TB, name string, data []byte, args ...string) []byte {
	t.Helper()
	k := fixtureKey{name, fmt.Sprint(args)}
	if v, ok := fixtures.Load(k); ok {
		return v.([]byte)
	}
	out := xzBytes(t, data, args...)
	fixtures.Store(k, out)
	return out
}

// xzFile is a parsed xz file, for tests that alter one part of it and
// mend the checks around it.
type xzFile struct {
	data []byte
	s    stream
}

func parse(t testing.TB, data []byte) xzFile {
	t.Helper()
	f := &file{ra: bytes.NewReader(data), off: 0, size: int64(len(data))}
	ss, err := f.streams()
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 {
		t.Fatalf("want one stream, have %d", len(ss))
	}
	return xzFile{data: bytes.Clone(data), s: ss[0]}
}

func (x xzFile) blocks(t testing.TB) []block {
	t.Helper()
	f := &file{ra: bytes.NewReader(x.data), size: int64(len(x.data))}
	it, err := f.blockIter(x.s)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	for {
		b, ok, err := it.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, b)
	}
}

type record struct{ unpadded, uncompressed uint64 }

func (x xzFile) records(t testing.TB) []record {
	t.Helper()
	var out []record
	for _, b := range x.blocks(t) {
		out = append(out, record{uint64(b.headerSize + b.dataSize + checkSize(b.check)), uint64(b.uncompressed)})
	}
	return out
}

// withIndex returns the file with its index replaced by one listing recs,
// with a good CRC32 and a footer to match.
func (x xzFile) withIndex(recs []record) []byte {
	idx := []byte{0}
	idx = binary.AppendUvarint(idx, uint64(len(recs)))
	for _, r := range recs {
		idx = binary.AppendUvarint(idx, r.unpadded)
		idx = binary.AppendUvarint(idx, r.uncompressed)
	}
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))
	out := append(bytes.Clone(x.data[:x.s.index]), idx...)
	foot := bytes.Clone(x.data[len(x.data)-12:])
	binary.LittleEndian.PutUint32(foot[4:8], uint32(len(idx)/4-1))
	binary.LittleEndian.PutUint32(foot[0:4], crc32.ChecksumIEEE(foot[4:10]))
	return append(out, foot...)
}

// withHeader returns the file with the header of block b replaced by h
// (same size, its CRC32 recomputed).
func (x xzFile) withHeader(b block, edit func(h []byte)) []byte {
	out := bytes.Clone(x.data)
	h := out[b.pos : b.pos+b.headerSize]
	edit(h)
	binary.LittleEndian.PutUint32(h[len(h)-4:], crc32.ChecksumIEEE(h[:len(h)-4]))
	return out
}
