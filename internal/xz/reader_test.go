package xz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/size"
)

func TestRoundTrip(t *testing.T) {
	text := textBytes(1536<<10, 1)
	random := randomBytes(1<<20, 2)
	mixed := append(textBytes(512<<10, 3), randomBytes(256<<10, 4)...)
	mixed = append(mixed, textBytes(512<<10, 5)...)
	code := x86Bytes(t, 1<<20)
	tests := []struct {
		name string
		data []byte
		args []string
	}{
		{"empty", nil, []string{"-6"}},
		{"one byte", []byte{'k'}, []string{"-6"}},
		{"text -0", text, []string{"-0"}},
		{"text -6", text, []string{"-6"}},
		{"text -9e", text[:256<<10], []string{"-9e"}},
		{"random -6", random, []string{"-6"}},
		{"text T2", text, []string{"-T2", "--block-size=256KiB"}},
		{"random T2", random, []string{"-T2", "--block-size=256KiB"}},
		{"mixed T2 odd blocks", mixed, []string{"-T2", "-3", "--block-size=177777"}},
		{"mixed blocks -0", mixed, []string{"-0", "--block-list=1000,300KiB,1,1MiB"}},
		{"check none", text, []string{"-T2", "-1", "--block-size=512KiB", "--check=none"}},
		{"check crc32", text, []string{"-T2", "-1", "--block-size=512KiB", "--check=crc32"}},
		{"check crc64", text, []string{"-T2", "-1", "--block-size=512KiB", "--check=crc64"}},
		{"check sha256", text, []string{"-T2", "-1", "--block-size=512KiB", "--check=sha256"}},
		{"single check sha256", text[:512<<10], []string{"--check=sha256"}},
		{"x86", code, []string{"--x86", "--lzma2"}},
		{"x86 blocks", code, []string{"--x86", "--lzma2", "--block-size=300000", "-T2"}},
		{"x86 start offset", code[:512<<10], []string{"--x86=start=1234567", "--lzma2"}},
		{"delta", text[:512<<10], []string{"--delta=dist=4", "--lzma2=preset=1"}},
		{"delta x86 blocks", code, []string{"--delta=dist=200", "--x86", "--lzma2=preset=0", "--block-size=200000"}},
		{"small dict", text, []string{"--lzma2=dict=4KiB,preset=1", "--block-size=1MiB"}},
		{"lc4 lp0 pb4", text[:512<<10], []string{"--lzma2=preset=1,lc=4,lp=0,pb=4"}},
		{"lc0 lp4 pb0", text[:512<<10], []string{"--lzma2=preset=1,lc=0,lp=4,pb=0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			comp := cachedXZ(t, tc.name, tc.data, tc.args...)
			for _, workers := range []int{1, 2, 4} {
				got, err := decode(comp, workers)
				if err != nil {
					t.Fatalf("workers %d: %v", workers, err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("workers %d: decoded %d bytes, want the %d bytes compressed", workers, len(got), len(tc.data))
				}
			}
		})
	}
}

// TestStreaming decodes multi-block files with blocks too large to be
// decoded whole, alone or mixed with small ones.
func TestStreaming(t *testing.T) {
	text := textBytes(2<<20, 6)
	comp := cachedXZ(t, "streaming", text, "-1", "--block-list=1MiB,100KiB,1KiB,200KiB,1MiB")
	defer func(v int64) { maxBuffered = v }(maxBuffered)
	for _, limit := range []int64{0, 150 << 10, 2 << 20} {
		maxBuffered = limit
		for _, workers := range []int{1, 2} {
			got, err := decode(comp, workers)
			if err != nil || !bytes.Equal(got, text) {
				t.Fatalf("limit %d, workers %d: %d bytes, %v", limit, workers, len(got), err)
			}
		}
	}
}

// TestStreamingMemory checks that a single-block file is decoded without a
// buffer for its whole output.
func TestStreamingMemory(t *testing.T) {
	text := textBytes(12<<20, 7)
	comp := cachedXZ(t, "memory", text, "-0") // a 256 KiB dictionary
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(comp), 0, int64(len(comp)), 2)
	if err != nil {
		t.Fatal(err)
	}
	cw := &compareWriter{want: text}
	n, err := io.CopyBuffer(cw, r, make([]byte, 32<<10))
	if err != nil || n != int64(len(text)) || cw.bad {
		t.Fatalf("%d bytes, %v, wrong bytes: %v", n, err, cw.bad)
	}
	r.Close()
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Errorf("decoding a 12 MiB single block allocated %s", size.String(int64(alloc)))
	}
}

// TestStreamReader: NewStreamReader gives the same bytes as NewReader on
// a multi-block file, and its first bytes cost no whole block.
func TestStreamReader(t *testing.T) {
	text := textBytes(6<<20, 11)
	comp := cachedXZ(t, "stream reader", text, "-0", "-T2", "--block-size=3MiB") // 256 KiB dictionary
	r, err := NewStreamReader(bytes.NewReader(comp), 0, int64(len(comp)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("%d bytes, %v; equal: %v", len(got), err, bytes.Equal(got, text))
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err = NewStreamReader(bytes.NewReader(comp), 0, int64(len(comp)))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 512)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head, text[:512]) {
		t.Fatalf("head: %v", err)
	}
	r.Close()
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc >= 1<<20 {
		t.Errorf("reading 512 bytes of a file of 3 MiB blocks allocated %s", size.String(int64(alloc)))
	}
}

func TestConcatenated(t *testing.T) {
	a, b := textBytes(1<<20, 8), randomBytes(100<<10, 9)
	za := cachedXZ(t, "cat a", a, "-T2", "--block-size=300KiB", "--check=crc32")
	zb := cachedXZ(t, "cat b", b, "-6", "--check=sha256")
	ze := cachedXZ(t, "cat empty", nil, "--check=none")
	zeros := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name  string
		parts [][]byte
		want  []byte
	}{
		{"two", [][]byte{za, zb}, append(bytes.Clone(a), b...)},
		{"padding between and after", [][]byte{za, zeros(8), zb, zeros(4)}, append(bytes.Clone(a), b...)},
		{"long padding", [][]byte{zb, zeros(8192), za}, append(bytes.Clone(b), a...)},
		{"empty streams", [][]byte{ze, za, ze, ze, zeros(4), zb, ze}, append(bytes.Clone(a), b...)},
		{"only empty", [][]byte{ze, ze}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			comp := bytes.Join(tc.parts, nil)
			if want, ok := unxz(t, comp); !ok || !bytes.Equal(want, tc.want) {
				t.Fatal("xz itself does not decode the test file to the input")
			}
			got, err := decode(comp, 2)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("%d bytes, %v", len(got), err)
			}
		})
	}
}

func TestRegion(t *testing.T) {
	text := textBytes(1<<20, 10)
	comp := cachedXZ(t, "region", text, "-T2", "--block-size=200KiB")
	file := append(append([]byte("some bytes before"), comp...), "and after"...)
	r, err := NewReader(bytes.NewReader(file), 17, int64(len(comp)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

// mustFail decodes data and fails the test if that succeeds with output
// other than want; it returns the error.
func mustFail(t *testing.T, what string, data, want []byte) error {
	t.Helper()
	for _, workers := range []int{1, 2} {
		got, err := decode(data, workers)
		if err == nil {
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: decoded %d wrong bytes without an error", what, len(got))
			}
			t.Fatalf("%s: no error", what)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrDictTooLarge) {
			t.Fatalf("%s: error %q is none of the package's", what, err)
		}
		if workers == 2 {
			return err
		}
	}
	return nil
}

func TestTruncated(t *testing.T) {
	text := textBytes(300<<10, 11)
	for _, args := range [][]string{{"-6"}, {"-T2", "--block-size=64KiB"}, {"--check=sha256", "--block-size=100KiB"}} {
		comp := cachedXZ(t, "truncated", text, args...)
		step := max(1, len(comp)/300)
		for n := 0; n < len(comp); n += step {
			mustFail(t, fmt.Sprintf("%v cut to %d of %d bytes", args, n, len(comp)), comp[:n], text)
		}
		for n := len(comp) - 64; n < len(comp); n++ {
			mustFail(t, fmt.Sprintf("%v cut to %d of %d bytes", args, n, len(comp)), comp[:n], text)
		}
		// Cut at the front: the structure walk finds no stream header.
		mustFail(t, fmt.Sprintf("%v without its first 4 bytes", args), comp[4:], text)
	}
}

func TestBitFlips(t *testing.T) {
	text := textBytes(64<<10, 12)
	for _, args := range [][]string{
		{"-6"},
		{"-T2", "--block-size=20KiB", "--check=crc32"},
		{"--check=none", "--block-size=30KiB"},
		{"--x86", "--lzma2", "--check=sha256"},
	} {
		comp := cachedXZ(t, "flips", text, args...)
		step := max(1, len(comp)/250)
		for i := 0; i < len(comp); i += step {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(comp)
				bad[i] ^= bit
				got, err := decode(bad, 2)
				if err == nil && !bytes.Equal(got, text) {
					t.Fatalf("%v, byte %d ^ 0x%02x: decoded wrong bytes without an error", args, i, bit)
				}
				if err == nil && !slices0(args, "--check=none") {
					// With a check, every byte counts (an LZMA2 flip
					// that decodes the same is possible but rare).
					if _, ok := unxz(t, bad); !ok {
						t.Errorf("%v, byte %d ^ 0x%02x: no error, but xz fails", args, i, bit)
					}
				}
			}
		}
	}
}

func slices0(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestLies alters one thing a file says about itself, mends the CRC32
// that covers it, and expects an error.
func TestLies(t *testing.T) {
	text := textBytes(350<<10, 13)
	comp := cachedXZ(t, "lies", text, "-T2", "--block-size=100KiB")
	x := parse(t, comp)
	recs := x.records(t)
	if len(recs) != 4 {
		t.Fatalf("%d blocks, want 4", len(recs))
	}
	blocks := x.blocks(t)
	edit := func(f func(r []record)) []byte {
		r := append([]record(nil), recs...)
		f(r)
		return x.withIndex(r)
	}
	// varint finds the uncompressed size field of a block header (xz -T2
	// writes both sizes) and adds d to it.
	sizeField := func(b block, which int, d int) []byte {
		return x.withHeader(b, func(h []byte) {
			p := 2
			for range which {
				for h[p]&0x80 != 0 {
					p++
				}
				p++
			}
			h[p] = byte(int(h[p]) + d)
		})
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"index uncompressed +1", edit(func(r []record) { r[1].uncompressed++ })},
		{"index uncompressed -1", edit(func(r []record) { r[2].uncompressed-- })},
		{"index last uncompressed +1", edit(func(r []record) { r[3].uncompressed++ })},
		{"index sizes swapped", edit(func(r []record) { r[0].uncompressed, r[1].uncompressed = r[1].uncompressed+1, r[0].uncompressed-1 })},
		{"index unpadded moved", edit(func(r []record) { r[0].unpadded += 4; r[1].unpadded -= 4 })},
		{"index unpadded +1", edit(func(r []record) { r[0].unpadded++ })},
		{"index records swapped", edit(func(r []record) { r[2], r[3] = r[3], r[2] })},
		{"index one record less", edit(func(r []record) { r[2].unpadded += (r[3].unpadded + 3) &^ 3; r[2].uncompressed += r[3].uncompressed })},
		{"check altered", func() []byte {
			c := bytes.Clone(comp)
			c[blocks[1].checkOffset()+2] ^= 0x40
			return c
		}()},
		{"header compressed +1", sizeField(blocks[1], 0, 1)},
		{"header uncompressed -1", sizeField(blocks[2], 1, -1)},
		{"header reserved flag", x.withHeader(blocks[0], func(h []byte) { h[1] |= 0x08 })},
		{"header nonzero padding", x.withHeader(blocks[0], func(h []byte) { h[len(h)-5] = 1 })},
		{"header filter props", x.withHeader(blocks[0], func(h []byte) { h[bytes.Index(h[2:], []byte{0x21, 0x01})+4] |= 0x40 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := unxz(t, tc.data); ok {
				t.Fatal("xz itself decodes the altered file")
			}
			mustFail(t, tc.name, tc.data, text)
		})
	}
}

func TestRefused(t *testing.T) {
	text := textBytes(100<<10, 14)
	comp := cachedXZ(t, "refused", text, "-6")
	x := parse(t, comp)
	b := x.blocks(t)[0]
	dict := func(d byte) []byte {
		return x.withHeader(b, func(h []byte) {
			i := bytes.Index(h[2:], []byte{0x21, 0x01}) + 2
			h[i+2] = d
		})
	}
	tests := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"dict 4 GiB", dict(40), ErrDictTooLarge, "GiB"},
		{"dict 256 MiB", dict(32), ErrDictTooLarge, "256 MiB"},
		{"dict 41", dict(41), ErrCorrupt, "LZMA2 properties"},
		{"arm filter", cachedXZ(t, "arm", text, "--arm", "--lzma2"), ErrUnsupported, "filter 0x07"},
		{"not xz", []byte("hello, world, this is not an xz file at all!!!!"), ErrCorrupt, ""},
		{"zeros", make([]byte, 64), ErrCorrupt, "no stream"},
		{"empty file", nil, ErrCorrupt, "no stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.data), 0, int64(len(tc.data)), 2)
			if err == nil {
				r.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	// 128 MiB is allowed: the block is small, so is the dictionary used.
	got, err := decode(dict(30), 1)
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("128 MiB dictionary: %d bytes, %v", len(got), err)
	}
}

// TestClose closes readers at every stage and checks that no goroutine
// outlives them.
func TestClose(t *testing.T) {
	text := textBytes(4<<20, 15)
	comp := cachedXZ(t, "close", text, "-T2", "-0", "--block-size=256KiB")
	base := runtime.NumGoroutine()
	for _, n := range []int{0, 1, 300 << 10, 3 << 20, 4 << 20} {
		for _, workers := range []int{1, 2, 8} {
			r, err := NewReader(bytes.NewReader(comp), 0, int64(len(comp)), workers)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Read(make([]byte, 10)); !errors.Is(err, ErrClosed) {
				t.Fatalf("read after close: %v", err)
			}
		}
	}
	// A reader that fails stops its workers too.
	bad := bytes.Clone(comp)
	bad[len(bad)/3] ^= 0x10
	r, err := NewReader(bytes.NewReader(bad), 0, int64(len(bad)), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err == nil {
		t.Fatal("no error")
	}
	r.Close()
	waitGoroutines(t, base)
}

// waitGoroutines waits until no more than base goroutines run.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadError: an error of the io.ReaderAt is passed on, not called
// corrupt data.
func TestReadError(t *testing.T) {
	text := textBytes(1<<20, 16)
	comp := cachedXZ(t, "read error", text, "-T2", "--block-size=256KiB")
	for _, single := range []bool{false, true} {
		c := comp
		if single {
			c = cachedXZ(t, "read error single", text, "-6")
		}
		ra := &failingReaderAt{r: bytes.NewReader(c), after: int64(len(c) / 2)}
		r, err := NewReader(ra, 0, int64(len(c)), 2)
		if err != nil {
			t.Fatal(err)
		}
		ra.armed = true
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if !errors.Is(err, errDisk) {
			t.Fatalf("single %v: error %v, want the disk's", single, err)
		}
	}
}

var errDisk = errors.New("disk on fire")

type failingReaderAt struct {
	r     io.ReaderAt
	after int64
	armed bool
}

func (f *failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if f.armed && off+int64(len(p)) > f.after {
		return 0, errDisk
	}
	return f.r.ReadAt(p, off)
}

// compareWriter compares what is written to it with want.
type compareWriter struct {
	want []byte
	bad  bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if len(p) > len(c.want) || !bytes.Equal(p, c.want[:len(p)]) {
		c.bad = true
	}
	c.want = c.want[min(len(p), len(c.want)):]
	return len(p), nil
}
