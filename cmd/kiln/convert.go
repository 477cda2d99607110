package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/spec"
)

type convertOptions struct {
	format      string
	compression string
	cluster     string
	subformat   string
	azure       bool
}

func newConvertCmd() *cobra.Command {
	var o convertOptions
	c := &cobra.Command{
		Use:   "convert IN OUT --format raw|qcow2|vmdk|vhd",
		Short: "Convert an image kiln can read (raw, qcow2, VMDK, VHD) to another format",
		Long: `Convert IN to OUT in the given format, deterministically: the same input
gives the same output bytes. Zero ranges are never written; OUT is written
to a temporary file and renamed at the end.`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			if o.format == "" {
				return usageError{fmt.Errorf("--format is required")}
			}
			// The spec's output rules check the options.
			s := &spec.Spec{File: "command line", Output: spec.Output{Format: o.format, Compression: o.compression, ClusterSize: o.cluster, Subformat: o.subformat, Azure: o.azure}}
			if err := s.ValidateOutput(); err != nil {
				return usageError{err}
			}
			return convert(c.Context(), args[0], args[1], s.Output)
		},
	}
	c.Flags().StringVar(&o.format, "format", "", "raw, qcow2, vmdk or vhd")
	c.Flags().StringVar(&o.compression, "compression", "", "qcow2: none, zlib or zstd")
	c.Flags().StringVar(&o.cluster, "cluster-size", "", "qcow2 cluster size (default 64KiB)")
	c.Flags().StringVar(&o.subformat, "subformat", "", "vhd: dynamic (default) or fixed")
	c.Flags().BoolVar(&o.azure, "azure", false, "vhd: fixed with a whole-MiB size, as Azure requires")
	return c
}

// convert reads IN through imgfmt.Open (its format found by content) and
// writes OUT from IN's allocated ranges only. When ctx is done it stops,
// removes the temporary output and leaves OUT as it was.
func convert(ctx context.Context, in, out string, o spec.Output) error {
	src, err := imgfmt.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := imgfmt.Create(out, o.Format, src.Size(), imgfmt.Options{
		Compression: o.Compression, ClusterSize: o.ClusterBytes, Subformat: o.Subformat, Azure: o.Azure,
	})
	if err != nil {
		return err
	}
	defer dst.Abort()
	if err := imgfmt.Copy(ctx, dst, src); err != nil {
		return fmt.Errorf("converting %s to %s: %w", in, out, err)
	}
	return dst.CommitContext(ctx)
}
