package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options describe one run.
type Options struct {
	Image  string
	Format string // raw | qcow2; "" = detect from the file's magic
	// Arch is the guest's architecture: "x86-64" (or "amd64", "x86_64";
	// "" is x86-64) runs qemu-system-x86_64 on q35; "arm64" (or
	// "aarch64") runs qemu-system-aarch64 on the virt machine (a
	// Cortex-A72, 2 CPUs) with AAVMF, UEFI only and without Secure Boot.
	Arch     string
	Firmware string // uefi | bios; "" = uefi
	MemoryMB int    // 0 = 1024
	Accel    string // auto | tcg | kvm; "" = auto (KVM only where it really works)
	// Expect, when set, ends the run with success as soon as it appears on
	// the serial console.
	Expect string
	// FailOn ends the run with ErrFailOn as soon as one of these appears
	// on the serial console (a panic, an init giving up), instead of
	// waiting for the timeout.
	FailOn  []string
	Timeout time.Duration // 0 = none
	// Write boots the image itself, not a snapshot: what the guest
	// writes stays in the image (for tests of persistence across boots).
	Write bool
	// Forward gives the guest a virtio NIC on QEMU's user-mode network
	// and forwards each "HOSTPORT:GUESTPORT" (TCP, host side on
	// 127.0.0.1 only) to it. Net gives the NIC without forwards.
	Forward []string
	Net     bool
	// Serial receives everything the guest writes to its serial console.
	Serial io.Writer
	// Interactive connects the console to this process's terminal
	// (stdin/stdout) instead of a log, for a person at a terminal.
	Interactive bool
	// OVMFCode and OVMFVars override the firmware files for UEFI (for
	// arm64, AAVMF's: ArmVirtQemu, the OVMF of the virt machine).
	OVMFCode, OVMFVars string
	// SecureBoot runs UEFI with OVMF's Secure Boot build (SMM, secure
	// flash) and a blank variable store, so the firmware starts in setup
	// mode: systemd-boot enrols the image's keys (loader/keys/auto) and
	// resets, and from then on Secure Boot is enforced. The run allows
	// that reset (no -no-reboot).
	SecureBoot bool
	// MicrosoftKeys (with SecureBoot) starts from OVMF's variable store
	// with Microsoft's UEFI CAs enrolled and Secure Boot on
	// (OVMF_VARS_4M.ms.fd), as stock PCs and clouds ship: what a shim
	// image boots on.
	MicrosoftKeys bool
	// VarsStore, when set, is the UEFI variable store itself, kept after
	// the run: created from the blank (or, with MicrosoftKeys, the
	// Microsoft) store when the file does not exist, and used as it is
	// when it does, so that keys enrolled on one boot are there for the
	// next. "" gives the run a private copy that is thrown away.
	VarsStore string
	// Kernel, Initrd and Append boot a Linux kernel directly (QEMU's
	// -kernel, -initrd and -append), the firmware loading it instead of
	// the image's boot code; the image is still attached. Initrd and
	// Append need Kernel.
	Kernel, Initrd, Append string
	// QEMU is the binary ("" = qemu-system-x86_64, or
	// qemu-system-aarch64 for arm64).
	QEMU string
}

// Result says how a run ended.
type Result struct {
	Found   bool          // Expect appeared
	Elapsed time.Duration // from QEMU's start to the marker (or the end)
	Exited  bool          // QEMU exited by itself
}

// ErrTimeout is returned when Expect did not appear in time.
var ErrTimeout = errors.New("timed out")

// ErrFailOn is returned when a FailOn text appeared.
var ErrFailOn = errors.New("a failure text appeared on the serial console")

// ErrExited is returned when QEMU exited before Expect appeared.
var ErrExited = errors.New("qemu exited before the expected text appeared")

// Firmware file candidates (Debian's ovmf package first).
var (
	ovmfCodePaths = []string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/qemu/OVMF_CODE.fd"}
	// ovmfSecureCodePaths are OVMF builds with Secure Boot (SMM); their
	// blank variable store is ovmfVarsPaths' (setup mode).
	ovmfSecureCodePaths = []string{"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd"}
	ovmfVarsPaths       = []string{"/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd", "/usr/share/qemu/OVMF_VARS.fd"}
	// ovmfMSVarsPaths are variable stores for the Secure Boot builds with
	// Microsoft's keys enrolled and Secure Boot on.
	ovmfMSVarsPaths = []string{"/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS.ms.fd", "/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd"}
	// aavmfCodePaths and aavmfVarsPaths are the arm64 virt machine's UEFI
	// (Debian's qemu-efi-aarch64 first).
	aavmfCodePaths = []string{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"}
	aavmfVarsPaths = []string{"/usr/share/AAVMF/AAVMF_VARS.fd", "/usr/share/edk2/aarch64/vars-template-pflash.raw"}
)

// Architectures Args runs, in NormalizeArch's spelling.
const (
	ArchX86_64 = "x86-64"
	ArchARM64  = "arm64"
)

// NormalizeArch returns ArchX86_64 or ArchARM64 for the usual spellings
// of the two ("" is x86-64), and an error naming the others.
func NormalizeArch(arch string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(arch)) {
	case "", "x86-64", "x86_64", "amd64":
		return ArchX86_64, nil
	case "arm64", "aarch64":
		return ArchARM64, nil
	}
	return "", fmt.Errorf("architecture %q: kiln run boots x86-64 (amd64) and arm64 (aarch64) images", arch)
}

// Binary returns the QEMU system emulator for arch and the Debian package
// that has it.
func Binary(arch string) (bin, pkg string, err error) {
	a, err := NormalizeArch(arch)
	if err != nil {
		return "", "", err
	}
	if a == ArchARM64 {
		return "qemu-system-aarch64", "qemu-system-arm", nil
	}
	return "qemu-system-x86_64", "qemu-system-x86", nil
}

// AAVMF returns the arm64 UEFI firmware's code and variables files that an
// arm64 run without OVMFCode and OVMFVars uses, "" for either that none
// of the usual paths has.
func AAVMF() (code, vars string) {
	return firstExisting(aavmfCodePaths), firstExisting(aavmfVarsPaths)
}

// OVMF returns the UEFI firmware's code and variables files that a run
// without OVMFCode and OVMFVars uses: the first that exist of the usual
// paths (Debian's ovmf package first), "" for either that none does.
func OVMF() (code, vars string) {
	return firstExisting(ovmfCodePaths), firstExisting(ovmfVarsPaths)
}

// varsFile returns the variable store the firmware writes to: store
// itself when it exists (its size checked against the template's, as the
// flash device has that size), else a new store made from template at
// store, or at dir/private when store is "".
func varsFile(store, template, dir, private string) (string, error) {
	tb, err := os.ReadFile(template)
	if err != nil {
		return "", err
	}
	if store != "" {
		fi, err := os.Stat(store)
		switch {
		case err == nil && !fi.Mode().IsRegular():
			return "", fmt.Errorf("variable store %s is not a regular file", store)
		case err == nil && fi.Size() != int64(len(tb)):
			return "", fmt.Errorf("variable store %s has %d bytes, and this firmware's stores have %d (%s): is it for another firmware?", store, fi.Size(), len(tb), template)
		case err == nil:
			return filepath.Abs(store)
		case !errors.Is(err, os.ErrNotExist):
			return "", err
		}
	} else {
		store = filepath.Join(dir, private)
	}
	// Written whole or not at all: a new store appears only complete.
	tmp := store + ".tmp"
	if err := os.WriteFile(tmp, tb, 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, store); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return filepath.Abs(store)
}

func firstExisting(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// DetectFormat reads the image's magic: qcow2 or raw.
func DetectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var m [4]byte
	if _, err := io.ReadFull(f, m[:]); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if string(m[:]) == "QFI\xfb" {
		return "qcow2", nil
	}
	return "raw", nil
}

// KVMUsable reports whether KVM can really run guests: /dev/kvm opens and
// the CPU has vmx or svm (on some machines /dev/kvm exists but a KVM
// guest never starts).
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "flags") && (strings.Contains(l, " vmx") || strings.Contains(l, " svm")) {
			return true
		}
	}
	return false
}

// Args returns QEMU's command line for o; dir is a private folder for the
// UEFI variables copy and the serial log.
func Args(o Options, dir, serialLog string) ([]string, error) {
	format := o.Format
	if format == "" {
		var err error
		if format, err = DetectFormat(o.Image); err != nil {
			return nil, err
		}
	}
	arch, err := NormalizeArch(o.Arch)
	if err != nil {
		return nil, err
	}
	mem := o.MemoryMB
	if mem == 0 {
		mem = 1024
	}
	// KVM runs a guest of the host's own architecture only.
	native := arch == ArchX86_64 && runtime.GOARCH == "amd64" || arch == ArchARM64 && runtime.GOARCH == "arm64"
	accel := o.Accel
	switch accel {
	case "", "auto":
		accel = "tcg"
		if native && KVMUsable() {
			accel = "kvm"
		}
	case "tcg":
	case "kvm":
		if !native {
			return nil, fmt.Errorf("accel kvm: KVM cannot run an %s guest on this %s machine; use --accel tcg", arch, runtime.GOARCH)
		}
	default:
		return nil, fmt.Errorf("accel %q: want auto, tcg or kvm", o.Accel)
	}
	if arch == ArchARM64 {
		return armArgs(o, dir, serialLog, format, accel, mem)
	}
	args := []string{"-accel", accel, "-m", fmt.Sprint(mem), "-nodefaults", "-display", "none"}
	if !o.SecureBoot {
		args = append(args, "-no-reboot")
	}
	if o.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-serial", "file:"+serialLog)
	}
	switch o.Firmware {
	case "", "uefi":
		code, vars := o.OVMFCode, o.OVMFVars
		if code == "" && o.SecureBoot {
			if code = firstExisting(ovmfSecureCodePaths); code == "" {
				return nil, fmt.Errorf("no Secure Boot OVMF firmware found (looked for %s): install Debian's ovmf package", ovmfSecureCodePaths[0])
			}
		}
		if code == "" {
			code = firstExisting(ovmfCodePaths)
		}
		if o.MicrosoftKeys && !o.SecureBoot {
			return nil, errors.New("microsoft keys are a Secure Boot variable store: they need secure boot")
		}
		if vars == "" && o.MicrosoftKeys {
			if vars = firstExisting(ovmfMSVarsPaths); vars == "" {
				return nil, fmt.Errorf("no OVMF variable store with Microsoft's keys found (looked for %s): install Debian's ovmf package", ovmfMSVarsPaths[0])
			}
		}
		if vars == "" {
			vars = firstExisting(ovmfVarsPaths)
		}
		if code == "" || vars == "" {
			return nil, fmt.Errorf("no OVMF firmware found (looked for %s): install Debian's ovmf package", ovmfCodePaths[0])
		}
		varsCopy, err := varsFile(o.VarsStore, vars, dir, "OVMF_VARS.fd")
		if err != nil {
			return nil, err
		}
		machine := "q35"
		if o.SecureBoot {
			machine = "q35,smm=on"
			args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		args = append(args, "-machine", machine,
			"-drive", "if=pflash,format=raw,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,file="+varsCopy)
	case "bios":
		if o.SecureBoot {
			return nil, errors.New("secure boot needs UEFI firmware, not bios")
		}
		if o.VarsStore != "" {
			return nil, errors.New("a UEFI variable store needs UEFI firmware, not bios")
		}
		// SeaBIOS prints to VGA only; this mirrors its messages (and the
		// MBR's "Missing operating system") to the serial console.
		port := filepath.Join(dir, "sercon-port.bin")
		if err := os.WriteFile(port, []byte{0xf8, 0x03}, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-fw_cfg", "name=etc/sercon-port,file="+port)
	default:
		return nil, fmt.Errorf("firmware %q: want uefi or bios", o.Firmware)
	}
	args, err = kernelArgs(args, o)
	if err != nil {
		return nil, err
	}
	args = append(args, "-drive", fmt.Sprintf("file=%s,format=%s,if=virtio%s", o.Image, format, snapshot(o)))
	return netArgs(args, o)
}

// armArgs is Args for an arm64 guest: the virt machine with a Cortex-A72
// (the host's CPU under KVM), AAVMF as pflash with a private copy of its
// variables (or VarsStore, as for OVMF), the disk on virtio-blk-pci and
// the PL011 UART (the guest's ttyAMA0) as the serial console.
func armArgs(o Options, dir, serialLog, format, accel string, mem int) ([]string, error) {
	switch {
	case o.Firmware == "bios":
		return nil, errors.New("firmware bios: arm64 has no BIOS; arm64 images boot with UEFI (AAVMF) only")
	case o.Firmware != "" && o.Firmware != "uefi":
		return nil, fmt.Errorf("firmware %q: want uefi (arm64 has no bios)", o.Firmware)
	case o.MicrosoftKeys:
		return nil, errors.New("microsoft keys: kiln run has no Secure Boot for arm64 (AAVMF's Secure Boot stores are not supported); boot without --microsoft-keys")
	case o.SecureBoot:
		return nil, errors.New("secure boot: kiln run has no Secure Boot for arm64 (AAVMF's Secure Boot stores are not supported); boot without --secure-boot")
	}
	cpu := "cortex-a72"
	if accel == "kvm" {
		cpu = "host"
	}
	args := []string{"-accel", accel, "-machine", "virt", "-cpu", cpu, "-smp", "2", "-m", fmt.Sprint(mem), "-nodefaults", "-display", "none", "-no-reboot"}
	if o.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-serial", "file:"+serialLog)
	}
	code, vars := o.OVMFCode, o.OVMFVars
	if code == "" {
		code = firstExisting(aavmfCodePaths)
	}
	if vars == "" {
		vars = firstExisting(aavmfVarsPaths)
	}
	if code == "" || vars == "" {
		return nil, fmt.Errorf("no arm64 UEFI firmware found (looked for %s and %s): install Debian's qemu-efi-aarch64 package", aavmfCodePaths[0], aavmfVarsPaths[0])
	}
	varsCopy, err := varsFile(o.VarsStore, vars, dir, "AAVMF_VARS.fd")
	if err != nil {
		return nil, err
	}
	args = append(args,
		"-drive", "if=pflash,format=raw,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,file="+varsCopy)
	args, err = kernelArgs(args, o)
	if err != nil {
		return nil, err
	}
	args = append(args,
		"-drive", fmt.Sprintf("file=%s,format=%s,if=none,id=disk0%s", o.Image, format, snapshot(o)),
		"-device", "virtio-blk-pci,drive=disk0")
	return netArgs(args, o)
}

// snapshot is the -drive option that keeps the guest's writes out of the
// image, unless Write.
func snapshot(o Options) string {
	if o.Write {
		return ""
	}
	return ",snapshot=on"
}

// kernelArgs appends -kernel, -initrd and -append.
func kernelArgs(args []string, o Options) ([]string, error) {
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		if o.Append != "" {
			args = append(args, "-append", o.Append)
		}
	} else if o.Initrd != "" || o.Append != "" {
		return nil, errors.New("an initrd or a kernel command line needs a kernel")
	}
	return args, nil
}

// netArgs appends the NIC and its forwards.
func netArgs(args []string, o Options) ([]string, error) {
	if o.Net || len(o.Forward) > 0 {
		netdev := "user,id=net0"
		for _, f := range o.Forward {
			h, g, ok := strings.Cut(f, ":")
			hp, herr := strconv.ParseUint(h, 10, 16)
			gp, gerr := strconv.ParseUint(g, 10, 16)
			if !ok || herr != nil || gerr != nil || hp == 0 || gp == 0 {
				return nil, fmt.Errorf("forward %q: want HOSTPORT:GUESTPORT (TCP ports, 1-65535)", f)
			}
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hp, gp)
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0")
	}
	return args, nil
}

// Run boots the image and returns when Expect appears, QEMU exits, the
// timeout passes or ctx is cancelled. QEMU is stopped with SIGTERM.
func Run(ctx context.Context, o Options) (_ Result, runErr error) {
	dir, err := os.MkdirTemp("", "kiln-run-") // repro-ok: scratch for a QEMU run, never in an image
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	logPath := filepath.Join(dir, "serial.log")
	args, err := Args(o, dir, logPath)
	if err != nil {
		return Result{}, err
	}
	bin, pkg, err := Binary(o.Arch)
	if err != nil {
		return Result{}, err
	}
	if o.QEMU != "" {
		bin = o.QEMU
	}
	if _, err := exec.LookPath(bin); err != nil {
		return Result{}, fmt.Errorf("%s not found: install Debian's %s package", bin, pkg)
	}
	cmd := exec.Command(bin, args...)
	if o.Interactive {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	} else {
		// QEMU's own messages matter when a run fails; a clean run's
		// (such as the note that it was terminated) are noise.
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		defer func() {
			if runErr != nil && stderr.Len() > 0 && o.Serial != nil {
				fmt.Fprintf(o.Serial, "\n[qemu] %s", stderr.String())
			}
		}()
	}
	start := time.Now() // repro-ok: measures a boot, not in any image
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	var deadline <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	if o.Interactive {
		select {
		case err := <-exited:
			return Result{Exited: true, Elapsed: time.Since(start)}, err
		case <-ctx.Done():
			stop()
			return Result{}, ctx.Err()
		case <-deadline:
			stop()
			return Result{}, ErrTimeout
		}
	}

	var seen []byte
	var off int64
	var failed string // the FailOn text seen
	keep := len(o.Expect) + 1
	for _, f := range o.FailOn {
		keep = max(keep, len(f)+1)
	}
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	// read copies what the guest wrote since the last poll.
	read := func() bool {
		f, err := os.Open(logPath)
		if err != nil {
			return false
		}
		defer f.Close()
		b, _ := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
		off += int64(len(b))
		if len(b) > 0 && o.Serial != nil {
			o.Serial.Write(b)
		}
		seen = append(seen, b...)
		if o.Expect != "" && bytes.Contains(seen, []byte(o.Expect)) {
			return true
		}
		for _, f := range o.FailOn {
			if f != "" && bytes.Contains(seen, []byte(f)) {
				failed = f
			}
		}
		// Keep enough of the tail for a marker split across reads.
		if len(seen) > 1<<20 {
			seen = seen[len(seen)-keep:]
		}
		return false
	}
	for {
		select {
		case <-poll.C:
			if read() {
				el := time.Since(start)
				stop()
				return Result{Found: true, Elapsed: el}, nil
			}
			if failed != "" {
				el := time.Since(start)
				stop()
				return Result{Elapsed: el}, fmt.Errorf("%w: %q", ErrFailOn, failed)
			}
		case err := <-exited:
			found := read()
			res := Result{Found: found, Exited: true, Elapsed: time.Since(start)}
			if found || o.Expect == "" {
				return res, nil
			}
			if failed != "" {
				return res, fmt.Errorf("%w: %q", ErrFailOn, failed)
			}
			if err != nil {
				return res, fmt.Errorf("%w (%v)", ErrExited, err)
			}
			return res, ErrExited
		case <-deadline:
			read()
			stop()
			return Result{Elapsed: time.Since(start)}, ErrTimeout
		case <-ctx.Done():
			stop()
			return Result{}, ctx.Err()
		}
	}
}
