package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// version and revision are set by the Makefile (-ldflags "-X
// main.version=... -X main.revision=..."): git describe and the commit.
// The revision falls back to what Go stamps (vcs.revision), which a
// build with -buildvcs=false lacks.
var (
	version  = "dev"
	revision = ""
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(c.OutOrStdout(), "kiln %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
