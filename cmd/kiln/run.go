package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/fat"
	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/qemu"
	"github.com/kiln-build/kiln/pkg/tree"
)

type runOptions struct {
	firmware string
	expect   string
	timeout  time.Duration
	memory   int
	accel    string
	quiet    bool
	failOn   []string
	write    bool
	forward  []string
	net      bool
	secure   bool
	msKeys   bool
	vars     string
	arch     string
}

// bootError marks a boot check that failed (exit code 4).
type bootError struct{ error }

func newRunCmd() *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:   "run IMAGE",
		Short: "Boot an image under QEMU (UEFI via OVMF, or BIOS); with --expect, wait for a marker",
		Long: `Boot an image under qemu-system-x86_64 with a virtio disk (snapshot: the
image is never modified) and its serial console on this terminal.

An arm64 image boots under qemu-system-aarch64 instead: the virt machine
with a Cortex-A72 and 2 CPUs, AAVMF (Debian's qemu-efi-aarch64) with a
private copy of its variables, the disk on virtio-blk-pci and the serial
console on the guest's ttyAMA0; UEFI only, without Secure Boot. The
architecture is read from the image: its partition types (root-arm64,
usr-x86-64, ...), else the removable-media loader on its ESP
(/EFI/BOOT/BOOTAA64.EFI or BOOTX64.EFI); an image that says neither is run
as x86-64, one that says two architectures is refused. --arch chooses.

With --expect TEXT, kiln run exits 0 as soon as TEXT appears on the serial
console and 4 if it does not appear before --timeout or QEMU exits first,
or as soon as a --fail-on text appears: the command for CI pipelines that
boot the images they build. KVM is used only where it really works (else
TCG).

--write boots the image itself instead of a snapshot, so that what the
guest writes (a writable /var) is there at the next boot. --forward
HOSTPORT:GUESTPORT gives the guest a virtio NIC on QEMU's user-mode network
(10.0.2.15 by DHCP) and forwards 127.0.0.1:HOSTPORT to it; --net gives the
NIC alone.

--secure-boot boots with OVMF's Secure Boot firmware (OVMF_CODE_4M.secboot.fd,
q35 with SMM) and a blank variable store: the firmware is in setup mode,
systemd-boot enrols the keys the image carries (boot.secureboot.enroll:
/loader/keys/auto/) and resets, and the image then boots with Secure Boot
enforced, every PE checked against the enrolled db. --microsoft-keys
starts instead from OVMF's store with Microsoft's UEFI CAs enrolled and
Secure Boot on (OVMF_VARS_4M.ms.fd), as stock PCs and clouds ship: what a
loader: shim image boots on (implies --secure-boot).

--efi-vars FILE keeps the UEFI variable store in FILE: made from the blank
(or Microsoft) store when FILE does not exist, used as it is when it does.
Keys systemd-boot enrolled on one boot are then enrolled for the next,
which is how an image without an enroller (loader: uki) boots under
Secure Boot: enrol once with a systemd-boot image, then boot it with the
same FILE.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return usageError{err}
			}
			format, err := qemuFormat(args[0])
			if err != nil {
				return err
			}
			arch := o.arch
			if arch == "" {
				if arch, err = imageArch(args[0]); err != nil {
					return err
				}
			} else if _, err := qemu.NormalizeArch(arch); err != nil {
				return usageError{err}
			}
			qo := qemu.Options{
				Image: args[0], Format: format, Arch: arch, Firmware: o.firmware, MemoryMB: o.memory, Accel: o.accel,
				Expect: o.expect, Timeout: o.timeout, FailOn: o.failOn, Write: o.write, Forward: o.forward, Net: o.net,
				SecureBoot: o.secure || o.msKeys, MicrosoftKeys: o.msKeys, VarsStore: o.vars,
			}
			if !o.quiet {
				qo.Serial = c.OutOrStdout()
			}
			if o.expect == "" && term.IsTerminal(int(os.Stdin.Fd())) {
				qo.Interactive = true
			}
			res, err := qemu.Run(c.Context(), qo)
			switch {
			case errors.Is(err, qemu.ErrFailOn):
				return bootError{err}
			case errors.Is(err, qemu.ErrTimeout):
				return bootError{fmt.Errorf("%q did not appear on the serial console within %s", o.expect, o.timeout)}
			case errors.Is(err, qemu.ErrExited):
				return bootError{fmt.Errorf("QEMU exited after %.1fs before %q appeared on the serial console", res.Elapsed.Seconds(), o.expect)}
			case err != nil:
				return err
			}
			if res.Found {
				fmt.Fprintf(c.ErrOrStderr(), "\nkiln run: %q seen %.1fs after QEMU started\n", o.expect, res.Elapsed.Seconds())
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.firmware, "firmware", "uefi", "uefi (OVMF) or bios (SeaBIOS)")
	c.Flags().StringVar(&o.expect, "expect", "", "exit 0 when this text appears on the serial console")
	c.Flags().DurationVar(&o.timeout, "timeout", 120*time.Second, "give up after this long (0: never)")
	c.Flags().IntVar(&o.memory, "memory", 1024, "guest memory in MiB")
	c.Flags().StringVar(&o.accel, "accel", "auto", "auto, tcg or kvm (auto uses KVM only where it works)")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "do not copy the serial console to stdout")
	c.Flags().StringArrayVar(&o.failOn, "fail-on", nil, "exit 4 as soon as this text appears on the serial console (repeatable)")
	c.Flags().BoolVar(&o.write, "write", false, "boot the image itself, not a snapshot: what the guest writes stays")
	c.Flags().StringArrayVar(&o.forward, "forward", nil, "HOSTPORT:GUESTPORT: forward 127.0.0.1:HOSTPORT to the guest over user-mode networking (repeatable)")
	c.Flags().BoolVar(&o.net, "net", false, "give the guest a NIC on QEMU's user-mode network")
	c.Flags().BoolVar(&o.secure, "secure-boot", false, "UEFI with OVMF's Secure Boot build, starting in setup mode: systemd-boot enrols the image's keys (boot.secureboot.enroll), resets, and Secure Boot is enforced from then on")
	c.Flags().BoolVar(&o.msKeys, "microsoft-keys", false, "with Secure Boot: start from OVMF's store with Microsoft's keys enrolled and Secure Boot on (stock firmware; for loader: shim); implies --secure-boot")
	c.Flags().StringVar(&o.arch, "arch", "", "the guest's architecture, x86-64 (amd64) or arm64 (aarch64); default: read from the image")
	c.Flags().StringVar(&o.vars, "efi-vars", "", "keep the UEFI variable store in this file (made from the blank or Microsoft store when missing), so enrolled keys stay for the next boot")
	return c
}

// archProbeArches are the architectures whose DPS partition types
// imageArch recognises.
var archProbeArches = []string{"x86-64", "x86", "arm64", "arm", "riscv64"}

// archTypeBases are the partition types that exist per architecture.
var archTypeBases = []string{"root", "usr", "root-verity", "usr-verity"}

// removableLoaders are the UEFI removable-media loaders of /EFI/BOOT and
// the architecture each one is for.
var removableLoaders = map[string]string{
	"BOOTX64.EFI":     "x86-64",
	"BOOTIA32.EFI":    "x86",
	"BOOTAA64.EFI":    "arm64",
	"BOOTARM.EFI":     "arm",
	"BOOTRISCV64.EFI": "riscv64",
}

// imageArch reads which architecture an image is for: from its GPT
// partition types (root-arm64, usr-x86-64, ...), else from the
// removable-media loaders on its FAT partitions (/EFI/BOOT/BOOTAA64.EFI,
// BOOTX64.EFI, names compared as FAT does, without case). An image that
// says neither (a BIOS image with an MBR, or no partition table kiln
// reads) is x86-64, as kiln run always ran; one that names two
// architectures at the same level is refused, naming them.
func imageArch(path string) (string, error) {
	img, err := imgfmt.Open(path)
	if err != nil {
		return "", err
	}
	defer img.Close()
	return readArch(path, img, img.Size())
}

func readArch(path string, r io.ReaderAt, size int64) (string, error) {
	l, err := disk.Read(r, size)
	if err != nil {
		return qemu.ArchX86_64, nil
	}
	byType := map[string][]string{} // arch -> evidence
	for _, p := range l.Partitions {
		if a := typeArch(p.Type()); a != "" {
			byType[a] = append(byType[a], fmt.Sprintf("partition %d is %s", p.Number, p.Type().Name))
		}
	}
	if len(byType) > 0 {
		return oneArch(path, byType)
	}
	byLoader := map[string][]string{}
	for _, p := range l.Partitions {
		part := io.NewSectionReader(r, p.Start, p.Size)
		if _, err := fat.Probe(part, p.Size); err != nil {
			continue
		}
		t, err := fat.ReadTree(part, p.Size)
		if err != nil {
			return "", fmt.Errorf("%s: partition %d: reading its FAT for the UEFI loaders: %w", path, p.Number, err)
		}
		for _, name := range removableLoaderNames(t) {
			a := removableLoaders[strings.ToUpper(name)]
			byLoader[a] = append(byLoader[a], fmt.Sprintf("partition %d has /EFI/BOOT/%s", p.Number, name))
		}
	}
	if len(byLoader) > 0 {
		return oneArch(path, byLoader)
	}
	return qemu.ArchX86_64, nil
}

// typeArch returns the architecture of an architecture-dependent
// partition type (root-arm64: arm64), "" for the others.
func typeArch(t disk.Type) string {
	if t.GUID.IsZero() {
		return ""
	}
	for _, a := range archProbeArches {
		for _, b := range archTypeBases {
			if at, err := disk.LookupType(b, a); err == nil && at.GUID == t.GUID {
				return a
			}
		}
	}
	return ""
}

// removableLoaderNames lists the removable-media loaders in /EFI/BOOT of a
// FAT tree, with their names as stored; FAT names match without case.
func removableLoaderNames(t *tree.Tree) []string {
	n := t.Root
	for _, el := range []string{"EFI", "BOOT"} {
		var next *tree.Inode
		for _, d := range n.Children() {
			if strings.EqualFold(d.Name, el) && d.Inode.Kind == tree.Dir {
				next = d.Inode
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	var out []string
	for _, d := range n.Children() {
		if d.Inode.Kind == tree.Regular && removableLoaders[strings.ToUpper(d.Name)] != "" {
			out = append(out, d.Name)
		}
	}
	return out
}

// oneArch returns the one architecture of evidence, or an error naming
// them all when there are several.
func oneArch(path string, evidence map[string][]string) (string, error) {
	if len(evidence) == 1 {
		for a := range evidence {
			return a, nil
		}
	}
	arches := make([]string, 0, len(evidence))
	for a := range evidence {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	var says []string
	for _, a := range arches {
		says = append(says, fmt.Sprintf("%s (%s)", a, strings.Join(evidence[a], ", ")))
	}
	return "", usageError{fmt.Errorf("%s is for more than one architecture: %s; choose one with --arch", path, strings.Join(says, "; "))}
}
