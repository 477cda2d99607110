package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// logOut is where logf writes: the console, once setupEarly has pointed
// standard output at it.
var logOut io.Writer = os.Stdout

func logf(format string, a ...any) {
	fmt.Fprintf(logOut, "kiln-init: "+format+"\n", a...)
}

// wanted is a device to wait for.
type wanted struct {
	label string // what the log calls it when found: "root=PARTUUID=...", "the verity hash partition PARTUUID=..."
	raw   string // what the error calls it when not found; label if empty
	spec  rootSpec
}

// waitFor polls for every wanted device until all are there or timeout
// (0: forever) has passed, and returns their nodes in order. On timeout it
// logs what the scanner saw and names every device still missing.
func waitFor(s *scanner, timeout time.Duration, want []wanted) ([]string, error) {
	start := time.Now() // repro-ok: runs inside the booted machine, for the device-wait timeout
	note := 5 * time.Second
	devs := make([]string, len(want))
	var tried []string // the scanner's notes on the devices still missing
	for {
		var missing []string
		tried = tried[:0]
		for i, w := range want {
			if devs[i] != "" {
				continue
			}
			dev, ok := s.find(w.spec)
			if !ok {
				missing = append(missing, w.raw)
				if w.raw == "" {
					missing[len(missing)-1] = w.label
				}
				tried = append(tried, s.tried...)
				continue
			}
			devs[i] = dev
			logf("found %s: %s, after %.1f s", w.label, dev, time.Since(start).Seconds())
		}
		if len(missing) == 0 {
			return devs, nil
		}
		waited := time.Since(start)
		if timeout > 0 && waited >= timeout {
			logf("timed out after %v waiting for %s; what kiln-init saw:", timeout, strings.Join(missing, " and "))
			s.tried = append(s.tried[:0], tried...)
			for _, line := range s.report() {
				logf("  %s", line)
			}
			return nil, fmt.Errorf("no device matched %s", strings.Join(missing, " and no device matched "))
		}
		if waited >= note {
			logf("still waiting for %s (%d s)", strings.Join(missing, " and "), int(waited.Seconds()))
			note += 5 * time.Second
		}
		time.Sleep(100 * time.Millisecond)
	}
}
