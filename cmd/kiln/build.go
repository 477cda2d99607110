package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/build"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
)

type buildOptions struct {
	format        string
	compression   string
	output        string
	tempDir       string
	init          string
	quiet         bool
	maxLayerBytes string
	maxLayerRatio int64
}

func newBuildCmd() *cobra.Command {
	var o buildOptions
	c := &cobra.Command{
		Use:   "build [SPEC]",
		Short: "Build the disk image a spec describes (SPEC defaults to kiln.yaml)",
		Args:  argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			file := "kiln.yaml"
			if len(args) == 1 {
				file = args[0]
			}
			return runBuild(c, file, o, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	c.Flags().StringVarP(&o.output, "output", "o", "", "write the image here instead of the spec's output.path")
	c.Flags().StringVar(&o.format, "format", "", "image format: raw, qcow2, vmdk or vhd (overrides output.format)")
	c.Flags().StringVar(&o.compression, "compression", "", "qcow2 compression: none, zlib or zstd (overrides output.compression)")
	c.Flags().StringVar(&o.tempDir, "tmpdir", "", "folder for spill files of compressed layers (default: $TMPDIR)")
	c.Flags().StringVar(&o.init, "init", "", "the kiln-init binary for generated initramfs images (default: $KILN_INIT, else kiln-init beside kiln)")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	c.Flags().StringVar(&o.maxLayerBytes, "max-layer-bytes", "64GiB", "the most a layer may hold uncompressed (0: no limit)")
	c.Flags().Int64Var(&o.maxLayerRatio, "max-layer-ratio", layer.DefaultMaxRatio, "past 1 GiB, the most times its own size a layer may expand to (0: no limit)")
	return c
}

// layerLimits turns the flags into build.Options' limits (0 there means
// the default, a negative value no limit).
func layerLimits(o buildOptions) (maxBytes, ratio int64, err error) {
	maxBytes, err = spec.ParseSize(o.maxLayerBytes)
	if err != nil {
		return 0, 0, usageError{fmt.Errorf("--max-layer-bytes: %w", err)}
	}
	if o.maxLayerRatio < 0 {
		return 0, 0, usageError{fmt.Errorf("--max-layer-ratio: %d is negative", o.maxLayerRatio)}
	}
	if maxBytes == 0 {
		maxBytes = -1
	}
	ratio = o.maxLayerRatio
	if ratio == 0 {
		ratio = -1
	}
	return maxBytes, ratio, nil
}

func runBuild(c *cobra.Command, file string, o buildOptions, stdout, stderr io.Writer) error {
	maxBytes, maxRatio, err := layerLimits(o)
	if err != nil {
		return err
	}
	s, err := spec.Load(file)
	if err != nil {
		return err
	}
	if o.format != "" || o.compression != "" {
		if o.format != "" {
			if o.format != s.Output.Format {
				s.Output.Compression, s.Output.ClusterSize, s.Output.Subformat, s.Output.Azure = "", "", "", false
			}
			s.Output.Format = o.format
		}
		if o.compression != "" {
			s.Output.Compression = o.compression
		}
		if err := s.ValidateOutput(); err != nil {
			return err
		}
	}
	env, ok, err := repro.EpochFromEnv()
	if err != nil {
		return usageError{err}
	}
	bo := build.Options{Output: o.output, TempDir: o.tempDir, InitPath: initPath(o.init),
		MaxLayerBytes: maxBytes, MaxLayerRatio: maxRatio}
	if ok {
		bo.EnvEpoch = &env
	}
	if !o.quiet {
		bo.Log = stderr
	}
	res, err := build.Build(c.Context(), s, bo)
	if errors.Is(err, layer.ErrTooLarge) {
		return fmt.Errorf("%w (if the layer is genuine, raise --max-layer-bytes or --max-layer-ratio)", err)
	}
	if err != nil {
		return err
	}
	if !o.quiet {
		c.Printf("%s\n", res.Output)
	}
	return nil
}

// initPath finds kiln-init: the flag, $KILN_INIT, or beside this binary.
func initPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("KILN_INIT"); p != "" {
		return p
	}
	exe, err := os.Executable()
	if err != nil {
		return "kiln-init"
	}
	return filepath.Join(filepath.Dir(exe), "kiln-init")
}
