package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time" // repro-ok: ages of cache entries, never image bytes

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/spec"
)

type cacheOptions struct {
	dir       string
	all       bool
	olderThan string
	maxSize   string
}

func newCacheCmd() *cobra.Command {
	var o cacheOptions
	c := &cobra.Command{
		Use:   "cache",
		Short: "List or prune the cache of decompressed layers",
		Args:  argsUsage(cobra.NoArgs),
	}
	c.PersistentFlags().StringVar(&o.dir, "cache", "", "the cache folder (default: $KILN_CACHE, else kiln under the user cache folder)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the cached layers, most recently used first",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return runCacheList(o, c.OutOrStdout())
		},
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached layers: unused for a while (default 7 days), beyond a total size, or all",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return runCachePrune(o, c.OutOrStdout())
		},
	}
	prune.Flags().BoolVar(&o.all, "all", false, "remove every entry")
	prune.Flags().StringVar(&o.olderThan, "older-than", "7d", "remove entries not used for this long (e.g. 12h, 30d; 0: no age limit)")
	prune.Flags().StringVar(&o.maxSize, "max-size", "", "then remove the least recently used entries until the rest fit in this size (e.g. 20GiB)")
	c.AddCommand(ls, prune)
	return c
}

// openCacheDir opens the cache the flag or the environment names; the CI
// switch of `kiln build` does not apply: asking for the cache is explicit.
func openCacheDir(flag string) (*layer.Cache, error) {
	dir := flag
	if dir == "" {
		if env := os.Getenv("KILN_CACHE"); env != "" && env != "off" && env != "0" && env != "none" {
			dir = env
		}
	}
	if dir == "" {
		d, err := layer.DefaultCacheDir()
		if err != nil {
			return nil, usageError{fmt.Errorf("no cache folder: %w (pass --cache)", err)}
		}
		dir = d
	}
	return layer.OpenCache(dir)
}

func runCacheList(o cacheOptions, w io.Writer) error {
	c, err := openCacheDir(o.dir)
	if err != nil {
		return err
	}
	es, err := c.List()
	if err != nil {
		return err
	}
	var total int64
	for _, e := range es {
		fmt.Fprintf(w, "sha256:%s  %10s  last used %s\n", e.Key, human(e.Size), e.LastUsed.UTC().Format(time.RFC3339))
		total += e.Size
	}
	fmt.Fprintf(w, "%d entries, %s, in %s\n", len(es), human(total), c.Dir())
	return nil
}

func runCachePrune(o cacheOptions, w io.Writer) error {
	age, err := parseAge(o.olderThan)
	if err != nil {
		return usageError{fmt.Errorf("--older-than: %w", err)}
	}
	var maxBytes int64
	if o.maxSize != "" {
		if maxBytes, err = spec.ParseSize(o.maxSize); err != nil {
			return usageError{fmt.Errorf("--max-size: %w", err)}
		}
	}
	c, err := openCacheDir(o.dir)
	if err != nil {
		return err
	}
	r, err := c.Prune(layer.PruneOptions{All: o.all, OlderThan: age, MaxBytes: maxBytes})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "removed %d files, %s; kept %d entries, %s, in %s\n", r.Removed, human(r.RemovedBytes), r.Kept, human(r.KeptBytes), c.Dir())
	return nil
}

// parseAge reads a duration, with "d" for days as well as Go's units.
func parseAge(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration such as 12h or 30d", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 12h or 30d", s)
	}
	return v, nil
}
