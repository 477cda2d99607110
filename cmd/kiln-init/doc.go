// Command kiln-init is the init of the initramfs kiln builds (see
// pkg/initramfs). It runs as PID 1 and:
//
//  1. mounts devtmpfs on /dev, proc on /proc and sysfs on /sys, and points
//     its standard input, output and error at /dev/console;
//  2. loads the modules listed in /etc/kiln/modules (one absolute path a
//     line, dependencies first) with finit_module;
//  3. reads the kernel command line: root=PARTUUID=<GPT partition GUID>,
//     root=PARTUUID=<MBR signature>-<partition number> (8 and 2 hex
//     digits, as Linux names them) or root=/dev/<name>; rootfstype=
//     (default ext4); rootflags= (mount data); ro (the default, as with the
//     kernel) or rw; init= (default /sbin/init); kiln.timeout=<seconds>
//     (default 30, 0 waits forever). rootwait is accepted: kiln-init always
//     waits, up to kiln.timeout;
//  4. waits for the root, polling every 100 ms: every whole disk of
//     /sys/class/block has its partition table read with pkg/disk from
//     /dev/<disk> and its partitions' PARTUUIDs compared; on timeout it
//     says what it waited for and which disks and partitions it saw;
//  5. mounts the root on /root, moves /dev, /proc and /sys there, frees
//     the initramfs, makes /root the root (MS_MOVE and chroot) and execs
//     init with the arguments the kernel gave kiln-init.
//
// When something fails it says what and drops to /bin/sh if the
// initramfs has one, else sleeps forever: PID 1 never exits, so the
// kernel never panics without a word.
//
// It is a static program depending on the standard library and pkg/disk
// only: build it with CGO_ENABLED=0. It runs only on Linux, and refuses to
// run unless it is PID 1. The files: cmdline.go parses the command line,
// modules.go loads modules, root.go finds the root device, switch.go
// mounts it and execs init, main.go strings them together.
//
// It imports only pkg/disk (to read partition tables and find the root by
// PARTUUID) and the standard library: it is built static, without cgo, and
// its bytes are image bytes.
package main
