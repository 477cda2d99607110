package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/diff"
	"github.com/kiln-build/kiln/pkg/imgfmt"
)

type diffOptions struct {
	json bool
}

// imagesDiffer makes kiln diff exit 1, as diff(1) does.
type imagesDiffer struct{ error }

func newDiffCmd() *cobra.Command {
	var o diffOptions
	c := &cobra.Command{
		Use:   "diff A B",
		Short: "Explain how two images differ: partition table, filesystem fields, files, bytes",
		Long: `Compare two images (raw, qcow2, VMDK or VHD): the partition tables field by
field, then per partition the superblock or boot-sector fields by name and
the file trees (added, removed, changed: type, mode, owner, size, content
hash, xattrs, link target, times), and last any byte ranges that differ but
none of these explain. Exit 0 when identical, 1 when they differ.`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			same, err := printDiff(c.Context(), c.OutOrStdout(), args[0], args[1], o.json)
			if err != nil {
				return err
			}
			if !same {
				return imagesDiffer{fmt.Errorf("%s and %s differ", args[0], args[1])}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&o.json, "json", false, "print the report as JSON")
	return c
}

// printDiff compares two images and prints the report; it says whether
// they are identical. When ctx is done it stops with an error wrapping
// ctx.Err() (kiln exits 130).
func printDiff(ctx context.Context, w io.Writer, a, b string, asJSON bool) (bool, error) {
	ia, err := imgfmt.Open(a)
	if err != nil {
		return false, err
	}
	defer ia.Close()
	ib, err := imgfmt.Open(b)
	if err != nil {
		return false, err
	}
	defer ib.Close()
	rep, err := diff.Images(ctx, ia, ib)
	if err != nil {
		return false, err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return rep.Identical, enc.Encode(rep)
	}
	diff.Print(w, rep)
	return rep.Identical, nil
}
