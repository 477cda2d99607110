package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time" // repro-ok: the summary's total time, never image bytes

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/initbin"
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
	json          bool
	progress      string
	cache         string
	noCache       bool
	maxLayerBytes string
	maxLayerRatio int64
	signatures    string
	arch          string
	platform      string
}

func newBuildCmd() *cobra.Command {
	var o buildOptions
	c := &cobra.Command{
		Use:   "build [SPEC]",
		Short: "Build the disk image a spec describes (SPEC defaults to kiln.yaml)",
		Long: `Build the disk image SPEC (default kiln.yaml) describes.

The target architecture is disk.arch (default x86-64), or --arch, which
overrides it: it chooses the partition types (root, usr, verity), enters
the image's IDs (an arm64 build never shares them with an amd64 one), and
chooses the image taken from multi-platform OCI layers: x86-64 takes
linux/amd64, arm64 linux/arm64/v8 (an arm64 image listed without a variant
counts as v8), arm linux/arm/v7, riscv64 linux/riscv64, x86 linux/386.
--platform OS/ARCH[/VARIANT] takes another platform's image on purpose
(a variant, such as linux/amd64/v3, or another OS/ARCH pair); the
partition types stay those of the architecture. An OCI layer with no
image for the platform, or whose image says another platform, is
refused (exit 3).`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
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
	c.Flags().StringVar(&o.init, "init", "", "the kiln-init binary for generated initramfs images (default: $KILN_INIT, else the one embedded in kiln for the image's architecture, else kiln-init beside kiln)")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	c.Flags().BoolVar(&o.json, "json", false, "print a build summary as JSON on stdout: inputs' digests, partitions, output sha256, timings")
	c.Flags().StringVar(&o.progress, "progress", "auto", "progress line on stderr: auto (on a terminal), always, never")
	c.Flags().StringVar(&o.cache, "cache", "", "keep decompressed layers in this folder between builds (default: $KILN_CACHE, else kiln under the user cache folder; off when $CI is set)")
	c.Flags().BoolVar(&o.noCache, "no-cache", false, "do not read or store decompressed layers in the cache")
	c.Flags().StringVar(&o.maxLayerBytes, "max-layer-bytes", "64GiB", "the most a layer may hold uncompressed (0: no limit)")
	c.Flags().StringVar(&o.signatures, "signatures", "", "with boot.secureboot.signer external: the signatures of the signing request's digests (JSON, see the README); without it such a build writes OUTPUT"+build.SigningRequestSuffix+" and exits "+fmt.Sprint(exitSigningRequest))
	c.Flags().StringVar(&o.arch, "arch", "", "build for this architecture, overriding disk.arch: x86-64 (amd64), arm64 (aarch64), arm, riscv64, x86")
	c.Flags().StringVar(&o.platform, "platform", "", "take this OS/ARCH[/VARIANT] image from multi-platform OCI layers instead of the one of the architecture (linux/arm64/v8 for arm64)")
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
	var plat layer.Platform
	if o.platform != "" {
		if plat, err = layer.ParsePlatform(o.platform); err != nil {
			return usageError{fmt.Errorf("--platform: %w", err)}
		}
	}
	s, err := spec.LoadWith(file, spec.Options{Arch: o.arch})
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
	showProgress, err := wantProgress(o.progress, o.quiet, stderr)
	if err != nil {
		return err
	}
	cacheDir, err := cacheDir(o.cache, o.noCache)
	if err != nil {
		return err
	}
	bo := build.Options{Output: o.output, TempDir: o.tempDir, Init: initSource(o.init),
		MaxLayerBytes: maxBytes, MaxLayerRatio: maxRatio, Signatures: o.signatures, Platform: plat}
	if cacheDir != "" {
		if bo.Cache, err = layer.OpenCache(cacheDir); err != nil {
			return err
		}
	}
	if ok {
		bo.EnvEpoch = &env
	}
	var pl *progressLine
	if showProgress {
		bo.Progress = new(build.Progress)
		pl = startProgress(stderr, bo.Progress)
		defer pl.stop()
		bo.Log = pl
	} else if !o.quiet {
		bo.Log = stderr
	}
	start := time.Now() // repro-ok: the summary's total time
	res, err := build.Build(c.Context(), s, bo)
	pl.stop()
	var req *build.SigningRequestWritten
	if errors.As(err, &req) && !o.quiet && !o.json {
		// The request's path on stdout, as a finished build prints the image's.
		c.Printf("%s\n", req.Path)
	}
	if errors.Is(err, layer.ErrPlatform) {
		return fmt.Errorf("%w (the platform follows --arch, else disk.arch; --platform OS/ARCH[/VARIANT] takes another on purpose)", err)
	}
	if errors.Is(err, layer.ErrTooLarge) {
		return fmt.Errorf("%w (if the layer is genuine, raise --max-layer-bytes or --max-layer-ratio)", err)
	}
	if err != nil {
		return err
	}
	if o.json {
		sum, err := summarize(file, s, res, plat, cacheDir, start)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	if !o.quiet {
		c.Printf("%s\n", res.Output)
		for _, v := range res.Verity {
			c.Printf("partition %s: sealed, root hash %s\n", v.Partition, v.RootHash)
		}
	}
	return nil
}

// cacheDir picks the layer cache: the flags, then $KILN_CACHE (a folder,
// or "off"), then none under CI ($CI set, as CI services do), else the
// user's cache folder. "" means no cache.
func cacheDir(flag string, off bool) (string, error) {
	if off {
		return "", nil
	}
	if flag != "" {
		return flag, nil
	}
	switch env := os.Getenv("KILN_CACHE"); env {
	case "off", "0", "none":
		return "", nil
	case "":
	default:
		return env, nil
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		return "", nil
	}
	d, err := layer.DefaultCacheDir()
	if err != nil {
		return "", nil // no home: build without a cache
	}
	return d, nil
}

// initSource gives the build its kiln-init for the image's architecture:
// the flag's file, else $KILN_INIT's, else the one embedded in this binary
// for that architecture (make build embeds amd64 and arm64), else a
// kiln-init beside this binary; pkg/build checks its ELF machine against
// the image's architecture whichever it is.
func initSource(flag string) build.InitSource {
	return func(goarch string) ([]byte, string, error) {
		if p := explicitInit(flag); p != "" {
			b, err := os.ReadFile(p)
			return b, p, err
		}
		b, embedErr := initbin.Get(goarch)
		if embedErr == nil {
			return b, "embedded " + initbin.Name(goarch), nil
		}
		if exe, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(exe), "kiln-init")
			if b, err := os.ReadFile(p); err == nil {
				return b, p, nil
			}
		}
		return nil, "", embedErr
	}
}

// explicitInit is the kiln-init the user named: the flag, else $KILN_INIT.
func explicitInit(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("KILN_INIT")
}
