// Command bench is the helper of scripts/bench.sh (make bench):
//
//	bench split [-nodev] -o DIR ROOTFS.tar   write DIR/{base,kernel,top}.tar (and DIR/all.tar with -nodev)
//	bench stat TAR                            entries, file bytes, bytes rounded to 4 KiB blocks
//	bench setfile -name N -text T IN OUT      copy IN with the content of regular file N replaced
//	bench time -o RES -label L [-size F] -- CMD...
//	                                          run CMD once, append its wall, CPU, peak RSS and F's size to RES
//	bench row -i RES -title T -a L[+L] -b L[+L] [-bytes N]
//	                                          one Markdown row of medians: A against B
//	bench get -i RES L[+L]                    its medians: wall s, CPU s, RSS KiB, allocated and apparent bytes, runs
//
// split and setfile copy tar headers block for block (PAX, GNU long names and
// all), so every owner, mode, time, xattr and link survives byte for byte.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: bench split|stat|setfile|time|row [args]"))
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "split":
		err = cmdSplit(args)
	case "stat":
		err = cmdStat(args)
	case "setfile":
		err = cmdSetfile(args)
	case "time":
		err = cmdTime(args)
	case "row":
		err = cmdRow(args)
	case "get":
		err = cmdGet(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// ---- raw tar reading ----

// entry is one tar member as it is on disk: the extended headers before it
// (PAX 'x', GNU 'L'/'K'), its header and its data, padded.
type entry struct {
	raw      []byte // every block of the member, extended headers included
	hdrOff   int    // offset of the member's own header in raw
	typ      byte
	name     string // as resolved (PAX path, GNU long name, ustar prefix+name)
	linkname string
	size     int64 // data bytes (0 for header-only types)
	global   bool  // a PAX global header ('g'), which applies to every later member
}

type tarReader struct {
	r *bufio.Reader
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseNum(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 { // GNU base-256
		var n int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			n = n<<8 | int64(c)
		}
		return n, nil
	}
	s := strings.Trim(cstr(b), " \x00")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

func headerOnly(t byte) bool {
	switch t {
	case '1', '2', '3', '4', '5', '6':
		return true
	}
	return false
}

func (t *tarReader) block() ([]byte, error) {
	b := make([]byte, 512)
	if _, err := io.ReadFull(t.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func pad(n int64) int64 { return (n + 511) &^ 511 }

// next returns the next member, or io.EOF at the end blocks (or at a clean
// end of file).
func (t *tarReader) next() (*entry, error) {
	e := &entry{}
	var paxPath, paxLink, longName, longLink string
	var havePaxPath, havePaxLink bool
	for {
		h, err := t.block()
		if err == io.EOF && len(e.raw) == 0 {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("truncated tar: %w", err)
		}
		if bytes.Count(h, []byte{0}) == 512 {
			if len(e.raw) != 0 {
				return nil, errors.New("end block after an extended header")
			}
			return nil, io.EOF
		}
		size, err := parseNum(h[124:136])
		if err != nil {
			return nil, fmt.Errorf("bad size field: %w", err)
		}
		typ := h[156]
		off := len(e.raw)
		e.raw = append(e.raw, h...)
		dataLen := size
		if headerOnly(typ) {
			dataLen = 0
		}
		if typ == 'S' && h[482] != 0 { // GNU sparse extension blocks
			for {
				x, err := t.block()
				if err != nil {
					return nil, fmt.Errorf("truncated tar: %w", err)
				}
				e.raw = append(e.raw, x...)
				if x[504] == 0 {
					break
				}
			}
		}
		data := make([]byte, pad(dataLen))
		if _, err := io.ReadFull(t.r, data); err != nil {
			return nil, fmt.Errorf("truncated tar: %w", err)
		}
		e.raw = append(e.raw, data...)
		data = data[:dataLen]
		switch typ {
		case 'x', 'g':
			recs, err := parsePax(data)
			if err != nil {
				return nil, err
			}
			if typ == 'g' {
				if off != 0 {
					return nil, errors.New("global header after an extended header")
				}
				e.typ, e.global, e.hdrOff = 'g', true, off
				return e, nil
			}
			if v, ok := recs["path"]; ok {
				paxPath, havePaxPath = v, true
			}
			if v, ok := recs["linkpath"]; ok {
				paxLink, havePaxLink = v, true
			}
			continue
		case 'L':
			longName = cstr(data)
			continue
		case 'K':
			longLink = cstr(data)
			continue
		}
		e.hdrOff, e.typ, e.size = off, typ, dataLen
		e.name = cstr(h[0:100])
		if string(h[257:263]) == "ustar\x00" {
			if p := cstr(h[345:500]); p != "" {
				e.name = p + "/" + e.name
			}
		}
		e.linkname = cstr(h[157:257])
		if longName != "" {
			e.name = longName
		}
		if longLink != "" {
			e.linkname = longLink
		}
		if havePaxPath {
			e.name = paxPath
		}
		if havePaxLink {
			e.linkname = paxLink
		}
		return e, nil
	}
}

func parsePax(b []byte) (map[string]string, error) {
	m := map[string]string{}
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			return nil, errors.New("bad PAX record")
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp || n > len(b) || b[n-1] != '\n' {
			return nil, errors.New("bad PAX record length")
		}
		kv := string(b[sp+1 : n-1])
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, errors.New("bad PAX record")
		}
		m[k] = v
		b = b[n:]
	}
	return m, nil
}

// clean gives the name as a path relative to the root: "./usr/" -> "usr".
func clean(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

func openTar(name string) (*tarReader, *os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return &tarReader{r: bufio.NewReaderSize(f, 1<<20)}, f, nil
}

// ---- split ----

const (
	base = iota
	kernel
	top
)

var layerNames = []string{"base", "kernel", "top"}

// kernelFiles reads the dpkg file lists of linux-image-* packages from the
// tar: the kernel package's files outside /boot and the modules.
func kernelFiles(in string) (map[string]bool, error) {
	tr, f, err := openTar(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string]bool{}
	for {
		e, err := tr.next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		n := clean(e.name)
		if !strings.HasPrefix(n, "var/lib/dpkg/info/linux-image-") || !strings.HasSuffix(n, ".list") || e.typ != '0' && e.typ != 0 {
			continue
		}
		data := e.raw[e.hdrOff+512 : e.hdrOff+512+int(e.size)]
		for l := range strings.SplitSeq(string(data), "\n") {
			if l = clean(l); l != "" {
				files[l] = true
			}
		}
	}
}

func classify(n string, typ byte, kfiles map[string]bool) int {
	under := func(p string) bool { return n == p || strings.HasPrefix(n, p+"/") }
	switch {
	case under("etc"):
		return top
	case under("boot"), under("usr/lib/modules"):
		return kernel
	case !strings.Contains(n, "/") && (strings.HasPrefix(n, "vmlinuz") || strings.HasPrefix(n, "initrd.img")):
		return kernel // the symlinks the kernel's postinst (linux-base) makes
	case kfiles[n] && (typ == '0' || typ == 0 || typ == '1' || strings.Contains(n, "linux-image")):
		// The package's own files; of its directories and symlinks only
		// its own (usr/share/doc/linux-image-*), not /usr, nor /lib, which
		// its list names (/lib/modules/...) and which is base-files'
		// symlink to usr/lib.
		return kernel
	}
	return base
}

func cmdSplit(args []string) error {
	fs := flag.NewFlagSet("split", flag.ExitOnError)
	out := fs.String("o", ".", "output folder")
	nodev := fs.Bool("nodev", false, "leave out character and block devices (and write all.tar without them)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("split: one input tar")
	}
	in := fs.Arg(0)
	kfiles, err := kernelFiles(in)
	if err != nil {
		return err
	}
	names := slices.Clone(layerNames)
	if *nodev {
		names = append(names, "all")
	}
	var files []*os.File
	var ws []*bufio.Writer
	for _, n := range names {
		f, err := os.Create(path.Join(*out, n+".tar"))
		if err != nil {
			return err
		}
		files = append(files, f)
		ws = append(ws, bufio.NewWriterSize(f, 1<<20))
	}
	tr, f, err := openTar(in)
	if err != nil {
		return err
	}
	defer f.Close()
	layerOf := map[string]int{}
	count := make([]int, len(names))
	bytesIn := make([]int64, len(names))
	moved, dropped := 0, 0
	for {
		e, err := tr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if e.global { // applies to everything after it: every layer gets it
			for _, w := range ws {
				w.Write(e.raw)
			}
			continue
		}
		if *nodev && (e.typ == '3' || e.typ == '4') {
			dropped++
			continue
		}
		n := clean(e.name)
		l := classify(n, e.typ, kfiles)
		if e.typ == '1' {
			// A hardlink needs its target in its own layer or a lower one.
			t, ok := layerOf[clean(e.linkname)]
			if !ok {
				return fmt.Errorf("%s: hardlink %s to %s, which comes later or not at all", in, e.name, e.linkname)
			}
			if t > l {
				l = t
				moved++
			}
		}
		layerOf[n] = l
		if _, err := ws[l].Write(e.raw); err != nil {
			return err
		}
		count[l]++
		bytesIn[l] += e.size
		if *nodev {
			ws[3].Write(e.raw)
			count[3]++
			bytesIn[3] += e.size
		}
	}
	for i, w := range ws {
		w.Write(make([]byte, 1024))
		if err := w.Flush(); err != nil {
			return err
		}
		if err := files[i].Close(); err != nil {
			return err
		}
		fmt.Printf("%s: %d entries, %d file bytes\n", names[i], count[i], bytesIn[i])
	}
	fmt.Printf("hardlinks moved up to their target's layer: %d\n", moved)
	if *nodev {
		fmt.Printf("devices left out: %d\n", dropped)
	}
	return nil
}

// ---- stat ----

func cmdStat(args []string) error {
	fs := flag.NewFlagSet("stat", flag.ExitOnError)
	exclude := fs.String("exclude", "", "leave out this subtree (e.g. boot)")
	only := fs.String("only", "", "count only this subtree (e.g. boot)")
	fs.Parse(args)
	var entries, bytesN, blocks int64
	for _, in := range fs.Args() {
		tr, f, err := openTar(in)
		if err != nil {
			return err
		}
		for {
			e, err := tr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", in, err)
			}
			if e.global {
				continue
			}
			n := clean(e.name)
			under := func(p string) bool { return n == p || strings.HasPrefix(n, p+"/") }
			if *exclude != "" && under(*exclude) || *only != "" && !under(*only) {
				continue
			}
			entries++
			bytesN += e.size
			switch e.typ {
			case '0', 0, '7', 'S', '5':
				blocks += (e.size + 4095) / 4096
				if e.typ == '5' {
					blocks++
				}
			}
		}
		f.Close()
	}
	fmt.Println(entries, bytesN, blocks*4096)
	return nil
}

// ---- setfile ----

func cmdSetfile(args []string) error {
	fs := flag.NewFlagSet("setfile", flag.ExitOnError)
	name := fs.String("name", "", "the regular file to change")
	text := fs.String("text", "", "its new content")
	fs.Parse(args)
	if fs.NArg() != 2 || *name == "" {
		return errors.New("setfile: -name N -text T IN OUT")
	}
	tr, f, err := openTar(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	o, err := os.Create(fs.Arg(1))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(o, 1<<20)
	found := false
	for {
		e, err := tr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if !e.global && clean(e.name) == clean(*name) && (e.typ == '0' || e.typ == 0) {
			h := slices.Clone(e.raw[e.hdrOff : e.hdrOff+512])
			if bytes.Contains(e.raw[:e.hdrOff], []byte(" size=")) {
				return errors.New("setfile: the entry has a PAX size")
			}
			copy(h[124:136], fmt.Sprintf("%011o\x00", len(*text)))
			copy(h[148:156], "        ")
			sum := 0
			for _, c := range h {
				sum += int(c)
			}
			copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
			data := make([]byte, pad(int64(len(*text))))
			copy(data, *text)
			e.raw = append(append(e.raw[:e.hdrOff:e.hdrOff], h...), data...)
			found = true
		}
		w.Write(e.raw)
	}
	w.Write(make([]byte, 1024))
	if err := w.Flush(); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("setfile: no regular file %s", *name)
	}
	return o.Close()
}

// ---- time ----

func cmdTime(args []string) error {
	fs := flag.NewFlagSet("time", flag.ExitOnError)
	res := fs.String("o", "", "results file (appended)")
	label := fs.String("label", "", "case label")
	sizeOf := fs.String("size", "", "the output file whose size to record")
	fs.Parse(args)
	if fs.NArg() == 0 || *res == "" || *label == "" {
		return errors.New("usage: time -o RES -label L [-size F] -- CMD [args]")
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	err := cmd.Wait()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %v", *label, err)
	}
	// wait4's rusage covers the child and every descendant it waited for:
	// CPU is their sum, ru_maxrss the largest of them (KiB).
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var alloc, apparent int64 = -1, -1
	if *sizeOf != "" {
		var st syscall.Stat_t
		if err := syscall.Stat(*sizeOf, &st); err != nil {
			return fmt.Errorf("%s: %v", *label, err)
		}
		alloc, apparent = st.Blocks*512, st.Size
	}
	o, err := os.OpenFile(*res, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(o, "%s\t%.4f\t%.4f\t%d\t%d\t%d\n", *label, wall.Seconds(), cpu.Seconds(), ru.Maxrss, alloc, apparent)
	fmt.Printf("  %-28s wall %7.2f s  cpu %7.2f s  rss %7.1f MiB\n", *label, wall.Seconds(), cpu.Seconds(), float64(ru.Maxrss)/1024)
	return o.Close()
}

// ---- row ----

type sample struct{ wall, cpu, rss, alloc, apparent float64 }

type stats struct {
	n                               int
	wall, cpu, rss, alloc, apparent float64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func readResults(name string) (map[string][]sample, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	m := map[string][]sample{}
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 6 {
			continue
		}
		var s sample
		for i, p := range []*float64{&s.wall, &s.cpu, &s.rss, &s.alloc, &s.apparent} {
			if *p, err = strconv.ParseFloat(f[i+1], 64); err != nil {
				return nil, err
			}
		}
		m[f[0]] = append(m[f[0]], s)
	}
	return m, nil
}

// combine gives the medians of a case made of one or more timed steps run
// one after the other ("a+b"): walls and CPU add, peak RSS is the largest,
// the size is the last step's.
func combine(res map[string][]sample, labels string) (stats, error) {
	var st stats
	for i, l := range strings.Split(labels, "+") {
		ss := res[l]
		if len(ss) == 0 {
			return st, fmt.Errorf("no results for %q", l)
		}
		col := func(f func(sample) float64) float64 {
			v := make([]float64, len(ss))
			for j, s := range ss {
				v[j] = f(s)
			}
			return median(v)
		}
		st.wall += col(func(s sample) float64 { return s.wall })
		st.cpu += col(func(s sample) float64 { return s.cpu })
		st.rss = max(st.rss, col(func(s sample) float64 { return s.rss }))
		st.alloc = col(func(s sample) float64 { return s.alloc })
		st.apparent = col(func(s sample) float64 { return s.apparent })
		if i == 0 || len(ss) < st.n {
			st.n = len(ss)
		}
	}
	return st, nil
}

func mib(b float64) string {
	if b < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", b/(1<<20))
}

func cmdRow(args []string) error {
	fs := flag.NewFlagSet("row", flag.ExitOnError)
	res := fs.String("i", "", "results file")
	title := fs.String("title", "", "first column")
	a := fs.String("a", "", "kiln's step labels, joined by +")
	b := fs.String("b", "", "the pipeline's step labels, joined by +")
	nbytes := fs.Float64("bytes", 0, "tree bytes: add MiB/s columns")
	fs.Parse(args)
	r, err := readResults(*res)
	if err != nil {
		return err
	}
	sa, err := combine(r, *a)
	if err != nil {
		return err
	}
	sb, err := combine(r, *b)
	if err != nil {
		return err
	}
	cells := []string{*title}
	for _, s := range []stats{sa, sb} {
		cells = append(cells,
			fmt.Sprintf("%.2f s", s.wall),
			fmt.Sprintf("%.2f s", s.cpu),
			fmt.Sprintf("%.0f MiB", s.rss/1024))
		if *nbytes > 0 {
			cells = append(cells, fmt.Sprintf("%.0f MiB/s", *nbytes/(1<<20)/s.wall))
		} else {
			cells = append(cells, fmt.Sprintf("%s / %s MiB", mib(s.alloc), mib(s.apparent)))
		}
	}
	cells = append(cells, fmt.Sprintf("%.2f", sa.wall/sb.wall), strconv.Itoa(min(sa.n, sb.n)))
	fmt.Println("| " + strings.Join(cells, " | ") + " |")
	return nil
}

func cmdGet(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	res := fs.String("i", "", "results file")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("get: -i RES LABELS")
	}
	r, err := readResults(*res)
	if err != nil {
		return err
	}
	s, err := combine(r, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Printf("%.4f %.4f %.0f %.0f %.0f %d\n", s.wall, s.cpu, s.rss, s.alloc, s.apparent, s.n)
	return nil
}
