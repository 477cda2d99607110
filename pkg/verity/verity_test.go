package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
)

// memWriter is an io.WriterAt over a growing byte slice.
type memWriter struct{ b []byte }

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// fill gives pseudo-random bytes from a fixed seed.
func fill(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'k', 'i', 'l', 'n'})
	r.Read(b)
	return b
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// writeData makes a data file of blocks blocks: pseudo-random, or, when
// sparse, a hole with pseudo-random blocks at the given block numbers.
func writeData(t testing.TB, path string, blocks int, dbs int, sparse []int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if sparse == nil {
		if _, err := f.Write(fill(uint64(blocks), blocks*dbs)); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := f.Truncate(int64(blocks * dbs)); err != nil {
		t.Fatal(err)
	}
	for _, k := range sparse {
		if _, err := f.WriteAt(fill(uint64(k), dbs), int64(k*dbs)); err != nil {
			t.Fatal(err)
		}
	}
}

// kilnFormat writes the hash device of dataPath to hashPath with Format.
func kilnFormat(t *testing.T, dataPath, hashPath string, p Params) Result {
	t.Helper()
	data, err := os.Open(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	st, err := data.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	res, err := Format(out, data, st.Size(), p)
	if err != nil {
		t.Fatalf("Format %s: %v", dataPath, err)
	}
	want, err := HashSize(st.Size(), p)
	if err != nil || want != res.Size {
		t.Fatalf("HashSize = %d, %v; Format wrote %d", want, err, res.Size)
	}
	if st, err := out.Stat(); err != nil || st.Size() != res.Size {
		t.Fatalf("hash device is %d bytes (%v), Format says %d", st.Size(), err, res.Size)
	}
	return res
}

// kilnVerify runs Verify over files.
func kilnVerify(t *testing.T, dataPath, hashPath string, root []byte) error {
	t.Helper()
	data, err := os.Open(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	st, err := data.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h, err := os.Open(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return Verify(data, st.Size(), h, root)
}

// veritysetupFormat runs the reference with the same parameters and
// returns its root hash.
func veritysetupFormat(t *testing.T, dataPath, hashPath string, p Params) string {
	t.Helper()
	p = p.withDefaults()
	salt := hex.EncodeToString(p.Salt)
	if salt == "" {
		salt = "-"
	}
	out, code := judge.Run(t, nil, "veritysetup", "format",
		"--salt="+salt, "--uuid="+uuidString(p.UUID), "--hash="+p.Algorithm,
		fmt.Sprintf("--data-block-size=%d", p.DataBlockSize), fmt.Sprintf("--hash-block-size=%d", p.HashBlockSize),
		dataPath, hashPath)
	if code != 0 {
		t.Fatalf("veritysetup format: exit %d\n%s", code, out)
	}
	root := dumpField(out, "Root hash")
	if root == "" {
		t.Fatalf("veritysetup format printed no root hash:\n%s", out)
	}
	return root
}

// dumpField is the value of "Name:" in veritysetup's output.
func dumpField(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkAgainstVeritysetup is the judge for one data file: veritysetup
// accepts kiln's hash device with kiln's root hash and dumps kiln's
// parameters; veritysetup format with the same salt and UUID writes the
// same bytes and root hash; both refuse the data once one byte changed.
func checkAgainstVeritysetup(t *testing.T, dir, dataPath string, blocks int, p Params, flipAt int64) {
	t.Helper()
	pd := p.withDefaults()
	kilnHash := filepath.Join(dir, "kiln.hash")
	res := kilnFormat(t, dataPath, kilnHash, p)
	root := hex.EncodeToString(res.RootHash)

	if out, code := judge.Run(t, nil, "veritysetup", "verify", dataPath, kilnHash, root); code != 0 {
		t.Fatalf("veritysetup verify of kiln's hash device: exit %d\n%s", code, out)
	}
	dump, code := judge.Run(t, nil, "veritysetup", "dump", kilnHash)
	if code != 0 {
		t.Fatalf("veritysetup dump: exit %d\n%s", code, dump)
	}
	wantSalt := hex.EncodeToString(pd.Salt)
	if wantSalt == "" {
		wantSalt = "-"
	}
	g, err := plan(int64(blocks*pd.DataBlockSize), p)
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"UUID":            uuidString(pd.UUID),
		"Hash type":       "1",
		"Data blocks":     fmt.Sprint(blocks),
		"Data block size": fmt.Sprint(pd.DataBlockSize),
		"Hash block size": fmt.Sprint(pd.HashBlockSize),
		"Hash blocks":     fmt.Sprint((res.Size - g.treeStart) / int64(pd.HashBlockSize)),
		"Hash algorithm":  pd.Algorithm,
		"Salt":            wantSalt,
	} {
		if got := dumpField(dump, field); got != want {
			t.Errorf("veritysetup dump %s = %q, want %q\n%s", field, got, want, dump)
		}
	}

	refHash := filepath.Join(dir, "ref.hash")
	refRoot := veritysetupFormat(t, dataPath, refHash, p)
	if refRoot != root {
		t.Errorf("root hash: kiln %s, veritysetup format %s", root, refRoot)
	}
	kb, err := os.ReadFile(kilnHash)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := os.ReadFile(refHash)
	if err != nil {
		t.Fatal(err)
	}
	if len(kb) != len(rb) {
		t.Errorf("hash device: kiln wrote %d bytes, veritysetup format %d", len(kb), len(rb))
	}
	if i := firstDiff(kb, rb); i >= 0 {
		t.Errorf("hash device differs from veritysetup format's at offset %d: kiln %#x, veritysetup %#x", i, kb[i], rb[i])
	}
	if err := kilnVerify(t, dataPath, refHash, res.RootHash); err != nil {
		t.Errorf("Verify of veritysetup's hash device: %v", err)
	}

	testkit.FlipByte(t, dataPath, flipAt, 0x5a)
	if out, code := judge.Run(t, nil, "veritysetup", "verify", dataPath, kilnHash, root); code == 0 {
		t.Errorf("veritysetup verify accepts the data with byte %d flipped:\n%s", flipAt, out)
	}
	if err := kilnVerify(t, dataPath, kilnHash, res.RootHash); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify with byte %d flipped = %v, want ErrCorrupt", flipAt, err)
	}
}

// firstDiff is the first offset where a and b differ (over the shorter),
// or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

var testUUID = [16]byte{0x6b, 0x69, 0x6c, 0x6e, 0x2d, 0x76, 0x65, 0x72, 0x69, 0x74, 0x79, 0x2d, 0x74, 0x65, 0x73, 0x74}

// TestFormatAgainstVeritysetup: for trees of zero to three levels and a
// mostly-zero 64 MiB file, veritysetup verifies kiln's hash device, dumps
// kiln's parameters, writes byte-identical output with the same salt and
// UUID, and refuses the data once a byte is flipped.
func TestFormatAgainstVeritysetup(t *testing.T) {
	judge.Need(t, "veritysetup")
	const bs = 4096
	for _, tc := range []struct {
		name   string
		blocks int
		levels int
		sparse []int // nil: all pseudo-random
		flip   int64
	}{
		{"1-block", 1, 0, nil, 100},
		{"2-blocks", 2, 1, nil, bs + 7},
		{"128-blocks", 128, 1, nil, 127*bs + 4095},
		{"129-blocks", 129, 2, nil, 128 * bs},
		{"16385-blocks", 128*128 + 1, 3, nil, 9000 * bs},
		{"64MiB-mostly-zero", 16384, 2, []int{0, 1, 777, 8191, 16383}, 5000*bs + 1}, // the flip lands in a hole
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := Params{Salt: fill(uint64(tc.blocks)+1000, 32), UUID: testUUID}
			g, err := plan(int64(tc.blocks*bs), p)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.levelCount) != tc.levels {
				t.Fatalf("%d blocks make %d levels, want %d", tc.blocks, len(g.levelCount), tc.levels)
			}
			data := filepath.Join(dir, "data")
			writeData(t, data, tc.blocks, bs, tc.sparse)
			checkAgainstVeritysetup(t, dir, data, tc.blocks, p, tc.flip)
		})
	}
}

// TestFormatParamsAgainstVeritysetup: other block sizes, algorithms and
// salts (none, the longest) give veritysetup's bytes too.
func TestFormatParamsAgainstVeritysetup(t *testing.T) {
	judge.Need(t, "veritysetup")
	for _, tc := range []struct {
		name   string
		p      Params
		blocks int
	}{
		{"512-512-sha1-nosalt", Params{DataBlockSize: 512, HashBlockSize: 512, Algorithm: "sha1"}, 300},
		{"4096-1024-sha512-salt256", Params{HashBlockSize: 1024, Algorithm: "sha512", Salt: fill(256, 256)}, 1000},
		{"1024-4096-sha256-salt7", Params{DataBlockSize: 1024, Salt: fill(7, 7)}, 5000},
		{"65536-512-sha256", Params{DataBlockSize: 65536, HashBlockSize: 512, Salt: fill(9, 16)}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.p.UUID = testUUID
			dbs := tc.p.withDefaults().DataBlockSize
			data := filepath.Join(dir, "data")
			writeData(t, data, tc.blocks, dbs, nil)
			checkAgainstVeritysetup(t, dir, data, tc.blocks, tc.p, int64(tc.blocks*dbs/2))
		})
	}
}

// mixedData is pseudo-random blocks with runs of zero blocks, over several
// read batches.
func mixedData(blocks int) []byte {
	b := fill(42, blocks*4096)
	for k := 0; k < blocks; k++ {
		if k%7 < 3 || (k > 1000 && k < 2200) {
			clear(b[k*4096 : (k+1)*4096])
		}
	}
	return b
}

// TestFormatDeterministic: two runs, and runs with different numbers of
// hashing goroutines, write identical bytes.
func TestFormatDeterministic(t *testing.T) {
	data := mixedData(3000)
	p := Params{Salt: []byte("seed"), UUID: testUUID}
	run := func(w int) ([]byte, []byte) {
		t.Helper()
		old := workers
		workers = w
		defer func() { workers = old }()
		var m memWriter
		res, err := Format(&m, bytes.NewReader(data), int64(len(data)), p)
		if err != nil {
			t.Fatal(err)
		}
		return m.b, res.RootHash
	}
	b0, r0 := run(workers)
	for _, w := range []int{workers, 1, 3, 8} {
		b, r := run(w)
		if !bytes.Equal(b, b0) || !bytes.Equal(r, r0) {
			t.Errorf("%d workers: hash device or root hash differs from the first run", w)
		}
	}
	if len(b0) < SuperblockSize || !bytes.Equal(b0[:8], signature[:]) {
		t.Fatalf("no superblock in the output")
	}
}

// TestFormatOverwritesTarget: Format writes every byte of the hash device,
// so a target full of garbage ends up as a zeroed one.
func TestFormatOverwritesTarget(t *testing.T) {
	data := mixedData(300)
	p := Params{Salt: []byte{1}, UUID: testUUID}
	var clean memWriter
	res, err := Format(&clean, bytes.NewReader(data), int64(len(data)), p)
	if err != nil {
		t.Fatal(err)
	}
	dirty := memWriter{b: bytes.Repeat([]byte{0xff}, int(res.Size))}
	if _, err := Format(&dirty, bytes.NewReader(data), int64(len(data)), p); err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(clean.b, dirty.b); i >= 0 || len(clean.b) != len(dirty.b) {
		t.Errorf("output over garbage differs at offset %d (lengths %d, %d)", i, len(clean.b), len(dirty.b))
	}
}

// TestFormatErrors: bad sizes and parameters are refused, naming what is
// wrong, by Format and HashSize alike.
func TestFormatErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		p    Params
		want string
	}{
		{"size-not-multiple", 4097, Params{}, "data size 4097 is not a multiple of the data block size 4096"},
		{"size-not-multiple-512", 4096 + 512, Params{DataBlockSize: 1024}, "not a multiple of the data block size 1024"},
		{"size-zero", 0, Params{}, "data size 0"},
		{"size-negative", -4096, Params{}, "data size -4096"},
		{"data-block-not-pow2", 3000 * 4, Params{DataBlockSize: 3000}, "data block size 3000 is not a power of two"},
		{"data-block-small", 4096, Params{DataBlockSize: 256}, "data block size 256"},
		{"data-block-large", 1 << 20, Params{DataBlockSize: 1 << 20}, "data block size 1048576"},
		{"hash-block-not-pow2", 4096, Params{HashBlockSize: 1000}, "hash block size 1000 is not a power of two"},
		{"hash-block-negative", 4096, Params{HashBlockSize: -4096}, "hash block size -4096"},
		{"salt-too-long", 4096, Params{Salt: make([]byte, 257)}, "salt of 257 bytes is longer than 256"},
		{"algorithm", 4096, Params{Algorithm: "md5"}, `hash algorithm "md5"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m memWriter
			_, err := Format(&m, bytes.NewReader(make([]byte, max(tc.size, 0))), tc.size, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Format: %v, want an error containing %q", err, tc.want)
			}
			if len(m.b) != 0 {
				t.Errorf("Format wrote %d bytes before refusing", len(m.b))
			}
			if _, err := HashSize(tc.size, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("HashSize: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Data shorter than the size it claims.
	var m memWriter
	if _, err := Format(&m, bytes.NewReader(make([]byte, 8192)), 3*4096, Params{}); err == nil ||
		!strings.Contains(err.Error(), "reading data at offset 0") {
		t.Errorf("Format of short data: %v, want a read error at offset 0", err)
	}
	// A target that fails once the superblock is written.
	data := mixedData(3000)
	if _, err := Format(&failWriter{left: 1}, bytes.NewReader(data), int64(len(data)), Params{}); err == nil ||
		!strings.Contains(err.Error(), "writing the hash block at offset") {
		t.Errorf("Format to a failing target: %v, want a write error naming the offset", err)
	}
}

// failWriter accepts left writes, then fails.
type failWriter struct{ left int }

func (f *failWriter) WriteAt(p []byte, off int64) (int, error) {
	if f.left == 0 {
		return 0, errors.New("disk full")
	}
	f.left--
	return len(p), nil
}

// TestVerifyTamper: Verify accepts Format's output and refuses a flipped
// byte in the data, in any level of the tree, or in the root hash.
func TestVerifyTamper(t *testing.T) {
	data := mixedData(128*128 + 5) // three levels
	p := Params{Salt: []byte("salt"), UUID: testUUID}
	var m memWriter
	res, err := Format(&m, bytes.NewReader(data), int64(len(data)), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(m.b), res.RootHash); err != nil {
		t.Fatalf("Verify of Format's output: %v", err)
	}
	g, err := plan(int64(len(data)), p)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(b []byte, off int) []byte {
		c := bytes.Clone(b)
		c[off] ^= 1
		return c
	}
	cases := map[string]func() error{
		"data-random-block": func() error {
			return Verify(bytes.NewReader(corrupt(data, 3*4096+5)), int64(len(data)), bytes.NewReader(m.b), res.RootHash)
		},
		"data-zero-block": func() error {
			return Verify(bytes.NewReader(corrupt(data, 1500*4096)), int64(len(data)), bytes.NewReader(m.b), res.RootHash)
		},
		"data-last-byte": func() error {
			return Verify(bytes.NewReader(corrupt(data, len(data)-1)), int64(len(data)), bytes.NewReader(m.b), res.RootHash)
		},
		"root": func() error {
			return Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(m.b), corrupt(res.RootHash, 31))
		},
	}
	for i, start := range g.levelStart {
		cases[fmt.Sprintf("level-%d-first", i)] = func() error {
			return Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(corrupt(m.b, int(start)+1)), res.RootHash)
		}
		end := start + g.levelCount[i]*4096
		cases[fmt.Sprintf("level-%d-padding", i)] = func() error {
			return Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(corrupt(m.b, int(end)-1)), res.RootHash)
		}
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Verify = %v, want ErrCorrupt", name, err)
		}
	}
	if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(m.b[:len(m.b)-4096]), res.RootHash); err == nil ||
		!strings.Contains(err.Error(), "reading the hash block") {
		t.Errorf("Verify of a truncated hash device: %v", err)
	}
	if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(m.b), res.RootHash[:20]); err == nil ||
		!strings.Contains(err.Error(), "root hash of 20 bytes") {
		t.Errorf("Verify with a short root hash: %v", err)
	}
	if err := Verify(bytes.NewReader(data[:len(data)-4096]), int64(len(data)-4096), bytes.NewReader(m.b), res.RootHash); err == nil ||
		!strings.Contains(err.Error(), "does not cover") {
		t.Errorf("Verify of shorter data: %v", err)
	}
}

// TestReadSuperblock: the superblock Format writes reads back as its
// parameters; each broken field is refused by name.
func TestReadSuperblock(t *testing.T) {
	p := Params{DataBlockSize: 1024, HashBlockSize: 2048, Salt: []byte("abc"), UUID: testUUID, Algorithm: "sha512"}
	var m memWriter
	if _, err := Format(&m, bytes.NewReader(make([]byte, 10*1024)), 10*1024, p); err != nil {
		t.Fatal(err)
	}
	got, blocks, err := ReadSuperblock(bytes.NewReader(m.b))
	if err != nil {
		t.Fatal(err)
	}
	if blocks != 10 || fmt.Sprint(got) != fmt.Sprint(p) {
		t.Errorf("ReadSuperblock = %+v, %d blocks; want %+v, 10", got, blocks, p)
	}
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	for _, tc := range []struct {
		name  string
		patch func([]byte)
		want  string
	}{
		{"signature", func(b []byte) { b[0] = 'V' }, "signature"},
		{"version", put32(8, 2), "version 2"},
		{"hash-type", put32(12, 0), "hash type 0"},
		{"algorithm", func(b []byte) { copy(b[32:], "md5\x00\x00\x00") }, `algorithm "md5"`},
		{"algorithm-unterminated", func(b []byte) { copy(b[32:64], bytes.Repeat([]byte{'a'}, 32)) }, "not NUL-terminated"},
		{"data-block-size", put32(64, 1000), "data block size 1000"},
		{"hash-block-size", put32(68, 1<<31), "hash block size 1073741824"},
		{"data-blocks-zero", func(b []byte) { binary.LittleEndian.PutUint64(b[72:], 0) }, "data blocks 0"},
		{"data-blocks-huge", func(b []byte) { binary.LittleEndian.PutUint64(b[72:], 1<<62) }, "data blocks 4611686018427387904"},
		{"salt-size", func(b []byte) { binary.LittleEndian.PutUint16(b[80:], 257) }, "salt size 257"},
		{"short", nil, "reading the superblock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(m.b[:SuperblockSize])
			if tc.patch != nil {
				tc.patch(b)
			} else {
				b = b[:100]
			}
			if _, _, err := ReadSuperblock(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadSuperblock: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkFormat hashes a 1 GiB sparse file with a few data blocks and
// 256 MiB of pseudo-random data (figures for the note; compare with
// `veritysetup format` of the same files by hand).
func BenchmarkFormat(b *testing.B) {
	for _, bc := range []struct {
		name   string
		blocks int
		sparse []int
	}{
		{"sparse-1GiB", 1 << 18, []int{0, 1000, 1 << 17, 1<<18 - 1}},
		{"random-256MiB", 1 << 16, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			data := filepath.Join(dir, "data")
			writeData(b, data, bc.blocks, 4096, bc.sparse)
			f, err := os.Open(data)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(int64(bc.blocks) * 4096)
			for b.Loop() {
				var m memWriter
				if _, err := Format(&m, f, int64(bc.blocks)*4096, Params{Salt: []byte("s"), UUID: testUUID}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadRoot: the root hash ReadRoot reads from a hash device's top
// block is Format's for every tree depth and parameter set (one data
// block: no tree), and a changed top block or salt gives another one.
func TestReadRoot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Params
		blocks int
	}{
		{"1-block", Params{Salt: fill(1, 32)}, 1},
		{"2-blocks", Params{Salt: fill(2, 32)}, 2},
		{"129-blocks", Params{Salt: fill(3, 32)}, 129},
		{"16385-blocks", Params{}, 128*128 + 1},
		{"512-sha1", Params{DataBlockSize: 512, HashBlockSize: 512, Algorithm: "sha1", Salt: fill(4, 256)}, 300},
		{"sha512-1k-hash", Params{HashBlockSize: 1024, Algorithm: "sha512"}, 70},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbs := tc.p.withDefaults().DataBlockSize
			data := mixedData(tc.blocks * dbs / 4096)
			if len(data) != tc.blocks*dbs {
				data = fill(uint64(tc.blocks), tc.blocks*dbs)
			}
			var hash memWriter
			res, err := Format(&hash, bytes.NewReader(data), int64(len(data)), tc.p)
			if err != nil {
				t.Fatal(err)
			}
			info, err := ReadRoot(bytes.NewReader(data), bytes.NewReader(hash.b))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(info.RootHash, res.RootHash) || info.DataBlocks != int64(tc.blocks) {
				t.Fatalf("ReadRoot: %x over %d blocks, Format: %x over %d", info.RootHash, info.DataBlocks, res.RootHash, tc.blocks)
			}
			// Change the top block (the data, with no tree): the claim changes.
			hb, db := bytes.Clone(hash.b), bytes.Clone(data)
			if tc.blocks == 1 {
				db[10] ^= 1
			} else {
				hb[info.HashBlockSize*((SuperblockSize+info.HashBlockSize-1)/info.HashBlockSize)+3] ^= 1
			}
			other, err := ReadRoot(bytes.NewReader(db), bytes.NewReader(hb))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(other.RootHash, res.RootHash) {
				t.Fatal("a changed top block claims the same root hash")
			}
			if _, err := ReadRoot(bytes.NewReader(data), bytes.NewReader(hash.b[:SuperblockSize])); err == nil && tc.blocks > 1 {
				t.Fatal("a hash device cut after its superblock was read")
			}
		})
	}
}
