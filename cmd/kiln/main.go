// Command kiln assembles bootable, byte-reproducible disk images from
// root-filesystem layers, offline and without root.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Exit codes, documented in the README.
const (
	exitOK       = 0
	exitFailure  = 1   // anything else
	exitUsage    = 2   // bad usage or invalid spec
	exitBadLayer = 3   // bad input layer
	exitBoot     = 4   // kiln run: the expected text did not appear
	exitSignal   = 130 // interrupted by SIGINT or SIGTERM (as shells report it)
)

// usageError marks errors of the command line itself.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "kiln: interrupted; nothing was written")
		return exitSignal
	}
	fmt.Fprintln(stderr, "kiln:", err)
	return exitCode(err)
}

func exitCode(err error) int {
	var se *spec.Error
	var le *layer.Error
	var te *tree.Error
	var ue usageError
	var be bootError
	switch {
	case errors.As(err, &be):
		return exitBoot
	case errors.As(err, &ue), errors.As(err, &se):
		return exitUsage
	case errors.As(err, &le), errors.As(err, &te):
		return exitBadLayer
	}
	return exitFailure
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Assemble byte-reproducible disk images from root-filesystem layers, offline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newBuildCmd(), newInspectCmd(), newRunCmd(), newVerifyCmd(), newVersionCmd())
	return root
}

// argsUsage wraps a cobra.PositionalArgs so that its errors are usage errors.
func argsUsage(f cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := f(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
