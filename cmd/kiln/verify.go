package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/spec"
	"github.com/kiln-build/kiln/pkg/verify"
)

type verifyOptions struct {
	format      string
	compression string
	keep        string
	init        string
	signatures  string
	quiet       bool
	arch        string
	platform    string
}

// notReproducible makes kiln verify exit 1 after printing the difference.
type notReproducible struct{ error }

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	c := &cobra.Command{
		Use:   "verify [SPEC]",
		Short: "Build a spec twice, the second time in a varied environment, and compare",
		Long: `Build SPEC (default kiln.yaml) twice in separate temporary folders. The
second build runs with another TZ, LANG/LC_ALL, umask, working directory,
TMPDIR and GOMAXPROCS, and from copies of every directory layer made in
shuffled order with new mtimes and, unless the layer has modes: preserve,
the modes a checkout made with umask 002 gives (0664/0775). Prints both
sha256 and "reproducible"
(exit 0), or what differs between the two images (exit 1).

A spec with boot.secureboot.signer external needs --signatures FILE (the
signatures of its signing request, as for kiln build), given to both
builds: without it kiln verify refuses to start (exit 2), as it does
--signatures for any other spec.`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			file := "kiln.yaml"
			if len(args) == 1 {
				file = args[0]
			}
			if err := checkArchFlags(file, o.arch, o.platform); err != nil {
				return err
			}
			sigArgs, err := verifySignatures(file, o.signatures)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			vo := verify.Options{Kiln: exe, KeepDir: o.keep, Args: sigArgs}
			// Only a kiln-init given (--init, $KILN_INIT) is passed on, made
			// absolute: the second build runs in another folder. Else both
			// builds choose as kiln build does (embedded, or beside kiln).
			if p := explicitInit(o.init); p != "" {
				abs, err := filepath.Abs(p)
				if err != nil {
					return err
				}
				vo.Args = append(vo.Args, "--init", abs)
			}
			if o.format != "" {
				vo.Args = append(vo.Args, "--format", o.format)
			}
			if o.compression != "" {
				vo.Args = append(vo.Args, "--compression", o.compression)
			}
			if o.arch != "" {
				vo.Args = append(vo.Args, "--arch", o.arch)
			}
			if o.platform != "" {
				vo.Args = append(vo.Args, "--platform", o.platform)
			}
			if !o.quiet {
				vo.Log = c.ErrOrStderr()
			}
			res, err := verify.Run(file, vo)
			if err != nil {
				return err
			}
			if o.keep == "" {
				defer res.Cleanup()
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "%s  build 1\n%s  build 2\n", res.SumA, res.SumB)
			// A sealed image's root hash, as each build's hash partition
			// claims it: what roothash= pins, so it must be reproducible too.
			for i, img := range []string{res.A, res.B} {
				rep, err := inspectImage(img)
				if err != nil {
					return err
				}
				for _, v := range rep.Verity {
					fmt.Fprintf(w, "%s  root hash of partition %d, build %d\n", v.RootHash, v.DataPartition, i+1)
				}
			}
			if res.Reproducible {
				fmt.Fprintln(w, "reproducible")
				return nil
			}
			fmt.Fprintln(w, "NOT reproducible; what differs:")
			if _, err := printDiff(c.Context(), w, res.A, res.B, false); err != nil {
				return err
			}
			return notReproducible{fmt.Errorf("the two builds differ")}
		},
	}
	c.Flags().StringVar(&o.keep, "keep", "", "keep both images in this folder (a/, b/)")
	c.Flags().StringVar(&o.format, "format", "", "build this format instead of output.format")
	c.Flags().StringVar(&o.compression, "compression", "", "qcow2 compression instead of output.compression")
	c.Flags().StringVar(&o.init, "init", "", "the kiln-init binary (as for kiln build)")
	c.Flags().StringVar(&o.signatures, "signatures", "", "with boot.secureboot.signer external: the signatures of the signing request (as for kiln build), given to both builds")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	c.Flags().StringVar(&o.arch, "arch", "", "build for this architecture instead of disk.arch (as for kiln build)")
	c.Flags().StringVar(&o.platform, "platform", "", "the OS/ARCH[/VARIANT] image of OCI layers (as for kiln build)")
	return c
}

// checkArchFlags refuses a bad --arch or --platform (exit 2) before
// anything is built, as kiln build would.
func checkArchFlags(file, arch, platform string) error {
	if platform != "" {
		if _, err := layer.ParsePlatform(platform); err != nil {
			return usageError{fmt.Errorf("--platform: %w", err)}
		}
	}
	if arch == "" {
		return nil
	}
	_, err := spec.LoadWith(file, spec.Options{Arch: arch})
	return err
}

// verifySignatures checks --signatures against the spec's signer before
// anything is built: a build with signer external and no signatures stops
// with a signing request (exit 5) and there would be no images to
// compare. It returns the build arguments for the signatures, the file
// made absolute (the second build runs in another folder).
func verifySignatures(file, signatures string) ([]string, error) {
	s, err := spec.Load(file)
	if err != nil {
		return nil, err
	}
	external := s.Boot != nil && s.Boot.SecureBoot != nil && s.Boot.SecureBoot.Signer == "external"
	switch {
	case external && signatures == "":
		return nil, usageError{fmt.Errorf("%s: boot.secureboot.signer is external: kiln verify needs the signatures of the signing request, --signatures FILE (kiln build %s writes the request and stops; sign it as the README shows)", file, file)}
	case !external && signatures != "":
		return nil, usageError{fmt.Errorf("%s: --signatures is for boot.secureboot.signer external, and this spec's signer is inline or it signs nothing", file)}
	case signatures == "":
		return nil, nil
	}
	abs, err := filepath.Abs(signatures)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, usageError{fmt.Errorf("--signatures: %w", err)}
	}
	return []string{"--signatures", abs}, nil
}
