package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/build"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/spec"
)

type buildOptions struct {
	output  string
	tempDir string
	init    string
	quiet   bool
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
	c.Flags().StringVar(&o.tempDir, "tmpdir", "", "folder for spill files of compressed layers (default: $TMPDIR)")
	c.Flags().StringVar(&o.init, "init", "", "the kiln-init binary for generated initramfs images (default: $KILN_INIT, else kiln-init beside kiln)")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	return c
}

func runBuild(c *cobra.Command, file string, o buildOptions, stdout, stderr io.Writer) error {
	s, err := spec.Load(file)
	if err != nil {
		return err
	}
	env, ok, err := repro.EpochFromEnv()
	if err != nil {
		return usageError{err}
	}
	bo := build.Options{Output: o.output, TempDir: o.tempDir, InitPath: initPath(o.init)}
	if ok {
		bo.EnvEpoch = &env
	}
	if !o.quiet {
		bo.Log = stderr
	}
	res, err := build.Build(c.Context(), s, bo)
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
