package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/build"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/tree"
)

// Exit codes, documented in the README.
const (
	exitOK             = 0
	exitFailure        = 1   // anything else
	exitUsage          = 2   // bad usage or invalid spec
	exitBadLayer       = 3   // bad input layer
	exitBoot           = 4   // kiln run: the expected text did not appear
	exitSigningRequest = 5   // kiln build, signer external: signing request written, no image
	exitSignal         = 130 // interrupted by SIGINT or SIGTERM (as shells report it)
)

// usageError marks errors of the command line itself.
type usageError struct{ error }

func main() {
	// A file size limit (ulimit -f) must give a write error (EFBIG) that
	// the build reports and cleans up after, never a killed process that
	// leaves its temporary output behind. Go's runtime already catches
	// SIGXFSZ and carries on; ignoring it makes that explicit, whatever
	// the runtime's default becomes.
	signal.Ignore(syscall.SIGXFSZ)
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
	fmt.Fprintln(stderr, "kiln:", oneLine(err.Error()))
	return exitCode(err)
}

// oneLine escapes, as Go quotes them, the characters of an error message
// that are not printable (and bytes that are not UTF-8), so that a name
// taken from a layer, which a message may quote as it is, can neither
// start a line of its own nor send escape sequences to the terminal.
func oneLine(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); {
		r, n := utf8.DecodeRuneInString(msg[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, msg[i])
		case r == ' ' || strconv.IsPrint(r):
			b.WriteString(msg[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func exitCode(err error) int {
	var se *spec.Error
	var le *layer.Error
	var te *tree.Error
	var ue usageError
	var be bootError
	var sr *build.SigningRequestWritten
	switch {
	case errors.As(err, &sr):
		return exitSigningRequest
	case errors.As(err, &be):
		return exitBoot
	case errors.As(err, &ue), errors.As(err, &se):
		return exitUsage
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		// The host ran out of room, even if it was while spilling a
		// layer: not a bad layer.
		return exitFailure
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
	root.AddCommand(newBuildCmd(), newInspectCmd(), newRunCmd(), newVerifyCmd(), newDiffCmd(), newConvertCmd(), newCacheCmd(), newKeysCmd(), newVersionCmd())
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
