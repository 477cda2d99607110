package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time" // repro-ok: progress display and ETA, never image bytes

	"golang.org/x/term"

	"github.com/kiln-build/kiln/pkg/build"
)

// wantProgress decides whether `kiln build` shows a progress line: with
// "auto", only on a terminal; never with --quiet.
func wantProgress(mode string, quiet bool, w io.Writer) (bool, error) {
	switch mode {
	case "never":
		return false, nil
	case "always":
		return !quiet, nil
	case "auto", "":
		f, ok := w.(*os.File)
		return !quiet && ok && term.IsTerminal(int(f.Fd())), nil
	}
	return false, usageError{fmt.Errorf("--progress: %q is not auto, always or never", mode)}
}

// progressLine redraws one status line on a terminal a few times a
// second: layers merged, bytes written, an ETA. Log lines written through
// it are printed above the line.
type progressLine struct {
	w    io.Writer
	p    *build.Progress
	done chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	shown      bool
	stopped    bool
	start      time.Time
	phase      build.Phase
	phaseStart time.Time
}

func startProgress(w io.Writer, p *build.Progress) *progressLine {
	now := time.Now() // repro-ok: progress display
	pl := &progressLine{w: w, p: p, done: make(chan struct{}), start: now, phaseStart: now}
	pl.wg.Add(1)
	go func() {
		defer pl.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pl.done:
				return
			case <-t.C:
				pl.mu.Lock()
				pl.draw()
				pl.mu.Unlock()
			}
		}
	}()
	return pl
}

// Write prints log lines above the progress line.
func (pl *progressLine) Write(b []byte) (int, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.clear()
	n, err := pl.w.Write(b)
	if !pl.stopped {
		pl.draw()
	}
	return n, err
}

// stop ends the display and clears the line. It may be called on a nil
// line and more than once.
func (pl *progressLine) stop() {
	if pl == nil {
		return
	}
	pl.mu.Lock()
	if pl.stopped {
		pl.mu.Unlock()
		return
	}
	pl.stopped = true
	close(pl.done)
	pl.clear()
	pl.mu.Unlock()
	pl.wg.Wait()
}

func (pl *progressLine) clear() {
	if pl.shown {
		io.WriteString(pl.w, "\r\x1b[K")
		pl.shown = false
	}
}

func (pl *progressLine) draw() {
	if pl.stopped {
		return
	}
	now := time.Now() // repro-ok: progress display
	if ph := pl.p.Phase(); ph != pl.phase {
		pl.phase, pl.phaseStart = ph, now
	}
	line := progressText(pl.p, pl.phase, now.Sub(pl.phaseStart), now.Sub(pl.start))
	io.WriteString(pl.w, "\r\x1b[K"+line)
	pl.shown = true
}

// progressText is the status line for a phase that has run for inPhase.
func progressText(p *build.Progress, ph build.Phase, inPhase, total time.Duration) string {
	el := fmtDuration(total)
	switch ph {
	case build.PhaseLayers:
		return fmt.Sprintf("kiln: layers %d/%d merged · %d entries, %s of files · %s",
			p.LayersDone.Load(), p.LayersTotal.Load(), p.Entries.Load(), human(p.EntryBytes.Load()), el)
	case build.PhaseWrite:
		done, all := p.Written.Load(), p.WriteTotal.Load()
		if all <= 0 {
			return fmt.Sprintf("kiln: writing · %s written · %s", human(done), el)
		}
		f := min(float64(done)/float64(all), 0.99)
		eta := "…"
		if f > 0.02 && inPhase > time.Second {
			eta = fmtDuration(time.Duration(float64(inPhase) * (1 - f) / f))
		}
		return fmt.Sprintf("kiln: writing %s of %s (%d%%) · ETA %s · %s", human(done), human(all), int(f*100), eta, el)
	case build.PhaseCommit:
		return fmt.Sprintf("kiln: finishing the image (boot patches, compression) · %s", el)
	case build.PhaseDone:
		return fmt.Sprintf("kiln: done · %s", el)
	}
	return fmt.Sprintf("kiln: %s · %s", ph, el)
}

func fmtDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
