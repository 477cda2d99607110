package layer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/tree"
)

// cacheFiles lists the entries and the temporary files of a cache.
func cacheFiles(t *testing.T, c *Cache) (entries, tmps []string) {
	t.Helper()
	for _, d := range []struct {
		dir string
		out *[]string
	}{{c.entryDir(), &entries}, {c.tmpDir(), &tmps}} {
		des, err := os.ReadDir(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			*d.out = append(*d.out, de.Name())
		}
	}
	return entries, tmps
}

// walkCached opens path with the cache and walks it; it returns the
// entries and what the walk says of the cache.
func walkCached(t *testing.T, path string, c *Cache, o Options) ([]got, Info) {
	t.Helper()
	sp := NewSpill(t.TempDir())
	t.Cleanup(func() { sp.Close() })
	o.Spill, o.Cache = sp, c
	l := openOne(t, path, o)
	gs := walkAll(t, l)
	return gs, Describe(l)
}

// TestCacheRoundTrip: every compressed format is stored on the first walk
// and served on the next, with the same entries and contents (sparse
// files, hardlinks, xattrs and devices included), and no copy of the data
// outside the entry.
func TestCacheRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		make         func(testing.TB, []byte) []byte
	}{
		{"gzip", "", gz},
		{"xz", "", xzc},
		{"zstd", "", zstdc},
		{"bzip2", "", bz2c},
		{"deb-xz", "./", func(t testing.TB, b []byte) []byte { return buildDeb(t, "data.tar.xz", xzc(t, b)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ents, ws := fixture(tc.prefix)
			data := tc.make(t, buildTar(t, ents...))
			if data == nil {
				testkit.Missing(t, "the compressor for %s", tc.name)
			}
			path := writeFile(t, t.TempDir(), "layer", data)
			c, err := OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}

			gs, info := walkCached(t, path, c, Options{})
			compare(t, gs, ws)
			if info.Cache != "stored" || info.Note != "" || !strings.HasPrefix(info.DiffID, "sha256:") || !strings.HasPrefix(info.Digest, "sha256:") {
				t.Fatalf("first walk: %+v, want stored with digests", info)
			}
			if info.Entries != int64(len(ws)) {
				t.Errorf("first walk: %d entries counted, want %d", info.Entries, len(ws))
			}
			es, tmps := cacheFiles(t, c)
			if len(es) != 1 || len(tmps) != 0 {
				t.Fatalf("cache holds %v, tmp %v; want one entry", es, tmps)
			}
			// Contents of the stored walk (but sparse files) are regions
			// of the entry, not spill copies.
			for _, g := range gs {
				if g.Type == tree.TypeReg && g.Size > 0 && !strings.HasPrefix(g.Path, "sparse-") {
					sc, ok := g.Content.(sectionContent)
					if !ok {
						t.Fatalf("%s: content is a %T", g.Path, g.Content)
					}
					if _, ok := sc.ra.(*cacheWriter); !ok {
						t.Errorf("%s: content read from a %T, not the cache entry", g.Path, sc.ra)
					}
				}
			}

			gs2, info2 := walkCached(t, path, c, Options{})
			compare(t, gs2, ws)
			if info2.Cache != "hit" || info2.DiffID != info.DiffID || info2.Digest != info.Digest || info2.Bytes != info.Bytes || info2.Entries != info.Entries {
				t.Fatalf("second walk: %+v, want a hit like %+v", info2, info)
			}
		})
	}
}

// TestCacheCorruptEntry: an entry cut short, with a flipped byte, or with
// a broken trailer is detected, removed and stored anew, and the walk
// gives the right entries all the same.
func TestCacheCorruptEntry(t *testing.T) {
	ents, ws := fixture("")
	path := writeFile(t, t.TempDir(), "layer.tar.zst", zstdc(t, buildTar(t, ents...)))
	for _, tc := range []struct {
		name   string
		damage func(p string) error
		why    string
	}{
		{"truncated", func(p string) error {
			fi, _ := os.Stat(p)
			return os.Truncate(p, fi.Size()-700)
		}, "no trailer"},
		{"cut inside the trailer", func(p string) error {
			fi, _ := os.Stat(p)
			return os.Truncate(p, fi.Size()-1)
		}, "no trailer"},
		{"flipped byte in the data", func(p string) error { return flipByte(p, 1000) }, "CRC32C"},
		{"flipped byte in the trailer", func(p string) error {
			fi, _ := os.Stat(p)
			return flipByte(p, fi.Size()-cacheTrailer+9)
		}, "CRC"},
		{"empty", func(p string) error { return os.Truncate(p, 0) }, "shorter than its trailer"},
		{"another layer's entry", func(p string) error {
			other := writeFile(t, t.TempDir(), "other.tar.gz", gz(t, buildTar(t, fileE("x", "y", 0o644))))
			c2, err := OpenCache(t.TempDir())
			if err != nil {
				return err
			}
			walkCached(t, other, c2, Options{})
			es, _ := cacheFiles(t, c2)
			b, err := os.ReadFile(filepath.Join(c2.entryDir(), es[0]))
			if err != nil {
				return err
			}
			return os.WriteFile(p, b, 0o644)
		}, "holds the layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			_, info := walkCached(t, path, c, Options{})
			es, _ := cacheFiles(t, c)
			entry := filepath.Join(c.entryDir(), es[0])
			if err := tc.damage(entry); err != nil {
				t.Fatal(err)
			}
			gs, info2 := walkCached(t, path, c, Options{})
			compare(t, gs, ws)
			if info2.Cache != "stored" || !strings.Contains(info2.Note, tc.why) || !strings.Contains(info2.Note, "decompressed again") {
				t.Errorf("walk over a damaged entry: %+v, want stored again with a note saying %q", info2, tc.why)
			}
			if info2.DiffID != info.DiffID {
				t.Errorf("diff_id %s, first walk %s", info2.DiffID, info.DiffID)
			}
			// The new entry is whole: the next walk is a hit.
			if _, info3 := walkCached(t, path, c, Options{}); info3.Cache != "hit" {
				t.Errorf("third walk: %+v, want a hit", info3)
			}
		})
	}
}

func flipByte(p string, off int64) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0x40
	_, err = f.WriteAt(b, off)
	return err
}

// TestCacheNothingStoredOnFailure: a layer that fails its checks, or a
// walk its callback stops, leaves neither an entry nor a temporary file.
func TestCacheNothingStoredOnFailure(t *testing.T) {
	ents, _ := fixture("")
	good := xzc(t, buildTar(t, ents...))
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// The gzip trailer's CRC is checked only at the end of the stream.
	gzData := gz(t, buildTar(t, ents...))
	gzData[len(gzData)-6] ^= 1
	badCRC := writeFile(t, dir, "crc.tar.gz", gzData)
	sp := NewSpill(t.TempDir())
	defer sp.Close()
	if err := openWalk(badCRC, Options{Spill: sp, Cache: c}); err == nil {
		t.Fatal("a gzip stream failing its CRC walked cleanly")
	}

	cut := writeFile(t, dir, "cut.tar.xz", good[:len(good)-100])
	if err := openWalk(cut, Options{Spill: sp, Cache: c}); err == nil {
		t.Fatal("a truncated xz walked cleanly")
	}

	whole := writeFile(t, dir, "good.tar.xz", good)
	stop := errors.New("stop")
	l := openOne(t, whole, Options{Spill: sp, Cache: c})
	if err := l.Walk(func(*tree.Entry) error { return stop }); err != stop {
		t.Fatalf("walk stopped by its callback returned %v", err)
	}

	if es, tmps := cacheFiles(t, c); len(es) != 0 || len(tmps) != 0 {
		t.Fatalf("after failed walks the cache holds %v, tmp %v", es, tmps)
	}
}

// TestCacheLimits: the expansion limits hold for a layer served from the
// cache too, measured against the layer's size as stored.
func TestCacheLimits(t *testing.T) {
	big := strings.Repeat("a", 4<<20)
	data := zstdc(t, buildTar(t, fileE("big", big, 0o644)))
	path := writeFile(t, t.TempDir(), "big.tar.zst", data)
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, info := walkCached(t, path, c, Options{}); info.Cache != "stored" {
		t.Fatalf("first walk: %+v", info)
	}
	sp := NewSpill(t.TempDir())
	defer sp.Close()
	err = openWalk(path, Options{Spill: sp, Cache: c, MaxBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a cached 4 MiB layer under a 1 MiB limit: %v", err)
	}
	if _, info := walkCached(t, path, c, Options{}); info.Cache != "hit" {
		t.Fatalf("the entry is gone after a limit error: %+v", info)
	}
}

// TestCacheConcurrent: builds walking the same layers at the same time,
// each with its own spill store, all get the right entries, and the cache
// ends with one whole entry per layer and no temporary files.
func TestCacheConcurrent(t *testing.T) {
	ents, ws := fixture("")
	dir := t.TempDir()
	paths := []string{
		writeFile(t, dir, "a.tar.xz", xzc(t, buildTar(t, ents...))),
		writeFile(t, dir, "b.tar.gz", gz(t, buildTar(t, ents...))),
	}
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp := NewSpill(t.TempDir())
			defer sp.Close()
			l, err := Open(paths[i%2], Options{Spill: sp, Cache: c})
			if err != nil {
				errs <- err
				return
			}
			var gs []got
			err = l[0].Walk(func(e *tree.Entry) error {
				g := got{Entry: *e}
				if e.Type == tree.TypeReg {
					rc, err := e.Content.Open()
					if err != nil {
						return err
					}
					b := new(strings.Builder)
					_, err = fmt.Fprint(b, readAllString(rc))
					rc.Close()
					if err != nil {
						return err
					}
					g.data = b.String()
				}
				gs = append(gs, g)
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
			if len(gs) != len(ws) {
				errs <- fmt.Errorf("%d entries, want %d", len(gs), len(ws))
				return
			}
			for j := range gs {
				if gs[j].Path != ws[j].path || gs[j].data != ws[j].data {
					errs <- fmt.Errorf("entry %d: %s %q, want %s %q", j, gs[j].Path, trunc(gs[j].data), ws[j].path, trunc(ws[j].data))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	es, tmps := cacheFiles(t, c)
	if len(es) != 2 || len(tmps) != 0 {
		t.Fatalf("cache holds %v, tmp %v; want two entries", es, tmps)
	}
	for _, p := range paths {
		if _, info := walkCached(t, p, c, Options{}); info.Cache != "hit" {
			t.Errorf("%s: %+v, want a hit", p, info)
		}
	}
}

func readAllString(rc interface{ Read([]byte) (int, error) }) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestCachePrune: by age, by total size (least recently used first), all;
// temporary files of dead builds go once a day old; a hit refreshes an
// entry's last use.
func TestCachePrune(t *testing.T) {
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var keys []string
	for i := range 4 {
		p := writeFile(t, dir, fmt.Sprintf("l%d.tar.gz", i), gz(t, buildTar(t, fileE("f", strings.Repeat("x", 1000*(i+1)), 0o644))))
		_, info := walkCached(t, p, c, Options{})
		key := strings.TrimPrefix(info.Digest, "sha256:")
		keys = append(keys, key)
		// Entry i was last used i days ago.
		age := now.Add(-time.Duration(i) * 24 * time.Hour)
		if err := os.Chtimes(c.entryPath(key), age, age); err != nil {
			t.Fatal(err)
		}
	}
	oldTmp := filepath.Join(c.tmpDir(), "dead.part")
	newTmp := filepath.Join(c.tmpDir(), "running.part")
	for _, p := range []string{oldTmp, newTmp} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(oldTmp, now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(newTmp, now.Add(-time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	list, err := c.List()
	if err != nil || len(list) != 4 || list[0].Key != keys[0] || list[3].Key != keys[3] {
		t.Fatalf("list: %v %v, want the 4 entries, most recent first", list, err)
	}

	// Older than 36 hours: entries 2 and 3, and the dead build's file.
	r, err := c.Prune(PruneOptions{OlderThan: 36 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if r.Removed != 3 || r.Kept != 2 {
		t.Errorf("prune by age: %+v, want 3 removed (2 entries, 1 temp), 2 kept", r)
	}
	es, tmps := cacheFiles(t, c)
	if len(es) != 2 || len(tmps) != 1 || tmps[0] != "running.part" {
		t.Errorf("after prune by age: %v, tmp %v", es, tmps)
	}

	// Size: only the most recent entry fits.
	list, _ = c.List()
	r, err = c.Prune(PruneOptions{MaxBytes: list[0].Size, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if r.Removed != 1 || r.Kept != 1 || r.KeptBytes != list[0].Size {
		t.Errorf("prune by size: %+v", r)
	}
	if _, err := os.Stat(c.entryPath(keys[0])); err != nil {
		t.Errorf("the most recently used entry was removed: %v", err)
	}

	r, err = c.Prune(PruneOptions{All: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if es, _ := cacheFiles(t, c); len(es) != 0 || r.Kept != 0 {
		t.Errorf("prune all left %v (%+v)", es, r)
	}

	// A layer whose entry was pruned is decompressed and stored again.
	p := filepath.Join(dir, "l0.tar.gz")
	if _, info := walkCached(t, p, c, Options{}); info.Cache != "stored" {
		t.Errorf("after prune: %+v", info)
	}
	// A hit marks the entry used now (not at the test's fixed time).
	old := now.Add(-100 * 24 * time.Hour)
	os.Chtimes(c.entryPath(keys[0]), old, old)
	walkCached(t, p, c, Options{})
	if fi, _ := os.Stat(c.entryPath(keys[0])); time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("a hit left the entry's last use at %v", fi.ModTime())
	}
}

// TestCachePlainTarNotStored: a plain tar is read in place already; the
// cache does not copy it.
func TestCachePlainTarNotStored(t *testing.T) {
	ents, ws := fixture("")
	path := writeFile(t, t.TempDir(), "layer.tar", buildTar(t, ents...))
	c, err := OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gs, info := walkCached(t, path, c, Options{})
	compare(t, gs, ws)
	if info.Cache != "" || info.Format != "tar" {
		t.Errorf("plain tar: %+v", info)
	}
	if es, _ := cacheFiles(t, c); len(es) != 0 {
		t.Errorf("cache holds %v", es)
	}
}
