package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2" // repro-ok: varies the second build's environment, never image bytes
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kiln-build/kiln/pkg/spec"
)

// Options of a verification.
type Options struct {
	Kiln    string    // the kiln executable to run for each build
	Args    []string  // extra build arguments (e.g. --init PATH, --format qcow2)
	Log     io.Writer // progress (nil = silent)
	KeepDir string    // if set, the two images are kept here, in a/ and b/
}

// Result of a verification.
type Result struct {
	A, B         string // paths of the two images (valid until Cleanup)
	SumA, SumB   string // their sha256
	Reproducible bool
	Variations   []string // what differed between the two builds' environments
	dirs         []string
}

// Cleanup removes the temporary folders (and the images unless kept).
func (r *Result) Cleanup() {
	for _, d := range r.dirs {
		os.RemoveAll(d)
	}
}

// Run builds spec twice and compares.
func Run(specPath string, o Options) (*Result, error) {
	s, err := spec.Load(specPath)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	mk := func(name string) (string, error) {
		d, err := os.MkdirTemp("", "kiln-verify-"+name+"-") // repro-ok: scratch folders of a check
		if err == nil {
			res.dirs = append(res.dirs, d)
		}
		return d, err
	}
	dirA, err := mk("a")
	if err != nil {
		return nil, err
	}
	dirB, err := mk("b")
	if err != nil {
		res.Cleanup()
		return nil, err
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	absSpec, _ := filepath.Abs(specPath)
	// Both images get the same file name: some formats (VMDK's
	// descriptor) record it.
	name := "image.img"
	if s.Output.Path != "" {
		name = filepath.Base(s.Output.Path)
	}
	outA, outB := dirA, dirB
	if o.KeepDir != "" {
		outA, outB = filepath.Join(o.KeepDir, "a"), filepath.Join(o.KeepDir, "b")
	}
	for _, d := range []string{outA, outB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			res.Cleanup()
			return nil, err
		}
	}
	res.A, res.B = filepath.Join(outA, name), filepath.Join(outB, name)

	// Build A: as the user would, from the spec's own folder.
	logf("build 1 of 2: as given")
	if err := build(o, absSpec, res.A, filepath.Dir(absSpec), nil, -1); err != nil {
		res.Cleanup()
		return nil, fmt.Errorf("first build: %w", err)
	}

	// Build B: copies of directory layers, a rewritten spec, another world.
	rng := newRand()
	specB, copied, err := variedSpec(s, absSpec, dirB, rng)
	if err != nil {
		res.Cleanup()
		return nil, err
	}
	tz := []string{"Pacific/Kiritimati", "America/St_Johns", "Asia/Kathmandu"}[rng.IntN(3)]
	locale := []string{"tr_TR.UTF-8", "de_DE.UTF-8", "ja_JP.EUC-JP"}[rng.IntN(3)]
	procs := "1"
	if os.Getenv("GOMAXPROCS") == "1" {
		procs = "2"
	}
	tmp, err := mk("tmp")
	if err != nil {
		res.Cleanup()
		return nil, err
	}
	cwd, err := mk("cwd")
	if err != nil {
		res.Cleanup()
		return nil, err
	}
	// The second build never uses the layer cache: whatever the first
	// read from it (or stored in it), this one decompresses every layer.
	env := []string{"TZ=" + tz, "LANG=" + locale, "LC_ALL=" + locale, "GOMAXPROCS=" + procs, "TMPDIR=" + tmp, "KILN_CACHE=off"}
	res.Variations = append(res.Variations,
		"TZ="+tz, "LANG=LC_ALL="+locale, "GOMAXPROCS="+procs, "umask 0077", "working directory "+cwd, "TMPDIR "+tmp,
		"no layer cache")
	for _, c := range copied {
		res.Variations = append(res.Variations, "directory layer "+c)
	}
	logf("build 2 of 2: %s", strings.Join(res.Variations, "; "))
	if err := build(o, specB, res.B, cwd, env, 0o077); err != nil {
		res.Cleanup()
		return nil, fmt.Errorf("second build: %w", err)
	}
	if res.SumA, err = sum(res.A); err != nil {
		res.Cleanup()
		return nil, err
	}
	if res.SumB, err = sum(res.B); err != nil {
		res.Cleanup()
		return nil, err
	}
	res.Reproducible = res.SumA == res.SumB
	return res, nil
}

// build runs `kiln build -q -o out spec` in dir with extra env and umask
// (-1: unchanged). The umask is the process's, inherited by the child.
func build(o Options, specPath, out, dir string, env []string, umask int) error {
	args := append([]string{"build", "-q", "-o", out}, o.Args...)
	args = append(args, specPath)
	cmd := exec.Command(o.Kiln, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if umask >= 0 {
		old := syscall.Umask(umask)
		defer syscall.Umask(old)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func sum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// variedSpec writes a copy of the spec into dir whose directory layers
// point at shuffled copies. Derived identifiers do not depend on where
// layers are, only on what they hold (spec.IDSeed), so the second build
// derives its own, from the copies: a digest that took in the host's
// modes or mtimes would show. It returns the new spec's path and the
// layers it copied.
func variedSpec(s *spec.Spec, specPath, dir string, rng *rand.Rand) (string, []string, error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return "", nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) == 0 {
		return "", nil, fmt.Errorf("re-reading %s: %v", specPath, err)
	}
	top := doc.Content[0]
	var layersNode *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "layers" {
			layersNode = top.Content[i+1]
		}
	}
	var copied []string
	for i, l := range s.Layers {
		src := s.Resolve(l.Path)
		abs, _ := filepath.Abs(src)
		dst := abs
		if st, err := os.Stat(src); err == nil && st.IsDir() {
			dst = filepath.Join(dir, fmt.Sprintf("layer%d", i))
			// Under the git mode policy the host's modes are not content:
			// the copy has those of a checkout made with umask 002.
			umask002 := l.Modes != "preserve"
			if err := shuffledCopy(abs, dst, rng, umask002); err != nil {
				return "", nil, fmt.Errorf("copying directory layer %s: %w", l.Path, err)
			}
			how := "copied in shuffled order with new mtimes"
			if umask002 {
				how += " and the modes of a umask 002 checkout (0664/0775)"
			}
			copied = append(copied, l.Path+" "+how)
		}
		// Point the layer's path at dst (absolute either way).
		if layersNode != nil && i < len(layersNode.Content) {
			ln := layersNode.Content[i]
			for j := 0; j+1 < len(ln.Content); j += 2 {
				if ln.Content[j].Value == "path" {
					ln.Content[j+1].Value = dst
				}
			}
		}
	}
	// boot.secureboot's files are relative to the spec's folder, which
	// the copy is not in.
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "boot" {
			continue
		}
		boot := top.Content[i+1]
		for j := 0; j+1 < len(boot.Content); j += 2 {
			if boot.Content[j].Value != "secureboot" {
				continue
			}
			sb := boot.Content[j+1]
			for k := 0; k+1 < len(sb.Content); k += 2 {
				switch v := sb.Content[k+1]; sb.Content[k].Value {
				case "key", "cert", "enroll":
					if v.Value != "" {
						v.Value, _ = filepath.Abs(s.Resolve(v.Value))
					}
				}
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return "", nil, err
	}
	p := filepath.Join(dir, "kiln.yaml")
	return p, copied, os.WriteFile(p, out, 0o644)
}

// shuffledCopy copies a directory tree, creating its entries in a random
// order (parents first) and giving each a new, random mtime in the future.
// Hardlinks stay hardlinks; device nodes are made only where mknod works.
// With umask002, directories and regular files get the modes a git
// checkout made with umask 002 gives them (0775, and 0775 or 0664 by the
// owner's execute bit) instead of the source's.
func shuffledCopy(src, dst string, rng *rand.Rand, umask002 bool) error {
	checkoutMode := func(m fs.FileMode) fs.FileMode {
		if m.IsDir() || m&0o100 != 0 {
			return 0o775
		}
		return 0o664
	}
	type ent struct {
		rel string
		d   fs.DirEntry
	}
	var ents []ent
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		ents = append(ents, ent{rel, d})
		return nil
	})
	if err != nil {
		return err
	}
	rng.Shuffle(len(ents), func(i, j int) { ents[i], ents[j] = ents[j], ents[i] })
	// Directories first (shallowest first, else in shuffled order), then the rest shuffled.
	sort.SliceStable(ents, func(i, j int) bool {
		di, dj := ents[i].d.IsDir(), ents[j].d.IsDir()
		if di != dj {
			return di
		}
		if di {
			return strings.Count(ents[i].rel, string(filepath.Separator)) < strings.Count(ents[j].rel, string(filepath.Separator))
		}
		return false
	})
	links := map[[2]uint64]string{}
	var dirs []string
	for _, e := range ents {
		from, to := filepath.Join(src, e.rel), filepath.Join(dst, e.rel)
		st, err := os.Lstat(from)
		if err != nil {
			return err
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		switch {
		case st.IsDir():
			if err := os.MkdirAll(to, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, to)
			mode := st.Mode().Perm() | st.Mode()&(fs.ModeSetgid|fs.ModeSticky|fs.ModeSetuid)
			if umask002 {
				mode = checkoutMode(st.Mode())
			}
			if err := os.Chmod(to, mode); err != nil {
				return err
			}
		case st.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(from)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, to); err != nil {
				return err
			}
			continue
		case st.Mode().IsRegular():
			if sys != nil && sys.Nlink > 1 {
				key := [2]uint64{uint64(sys.Dev), sys.Ino}
				if first, ok := links[key]; ok {
					if err := os.Link(first, to); err != nil {
						return err
					}
					continue
				}
				links[key] = to
			}
			mode := st.Mode()
			if umask002 {
				mode = checkoutMode(mode)
			}
			if err := copyFile(from, to, mode); err != nil {
				return err
			}
		case st.Mode()&fs.ModeNamedPipe != 0:
			if err := syscall.Mkfifo(to, uint32(st.Mode().Perm())); err != nil {
				return err
			}
		case st.Mode()&fs.ModeDevice != 0 && sys != nil:
			mode := uint32(st.Mode().Perm())
			if st.Mode()&fs.ModeCharDevice != 0 {
				mode |= syscall.S_IFCHR
			} else {
				mode |= syscall.S_IFBLK
			}
			if err := syscall.Mknod(to, mode, int(sys.Rdev)); err != nil {
				return fmt.Errorf("%s: a device node cannot be copied here (%w)", e.rel, err)
			}
		default:
			continue // sockets: directory layers skip them too
		}
		future := time.Now().Add(time.Duration(1+rng.IntN(1000)) * time.Hour) // repro-ok: the variation
		os.Chtimes(to, future, future)
	}
	for _, d := range dirs {
		future := time.Now().Add(time.Duration(1+rng.IntN(1000)) * time.Hour) // repro-ok: the variation
		os.Chtimes(d, future, future)
	}
	return nil
}

func copyFile(from, to string, mode fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// newRand is the source of the variation itself: random on purpose.
func newRand() *rand.Rand {
	return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)) // repro-ok: varies a check, never image bytes
}
