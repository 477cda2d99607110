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
//  5. with roothash=, sets up the sealed root first (below) and mounts
//     /dev/mapper/root; without it, mounts the root device; either way on
//     /root;
//  6. mounts the filesystems of /etc/kiln/mounts below /root (below);
//  7. moves /dev, /proc and /sys to /root, frees the initramfs, makes
//     /root the root (MS_MOVE and chroot) and execs init with the
//     arguments the kernel gave kiln-init.
//
// # Sealed roots: roothash=
//
// roothash=<hex> (64 digits for sha256, as kiln builds; 40 and 128 are
// accepted for sha1 and sha512 when the hash partition's superblock names
// that algorithm) asks for a root under dm-verity. The two partitions are
// found, as the Discoverable Partitions Specification and systemd have
// it, by PARTUUID: the data partition's is the first 32 hex digits of the
// root hash written as a UUID (8-4-4-4-12, in order), the hash partition's
// the last 32. systemd.verity_root_data= and systemd.verity_root_hash=
// (PARTUUID=... or /dev/...) name them instead. With roothash=, root= must
// be absent or root=/dev/mapper/root; any other root= is refused (it
// would name a device to mount unverified). rw is overridden: the root is
// mounted read-only. systemd.verity= and systemd.verity_root_options= are
// not read: kiln-init never turns verification off.
//
// kiln-init waits for both partitions (kiln.timeout, as for root=),
// reads the hash partition's superblock (veritysetup's format, version 1,
// with pkg/verity), checks that the data partition holds the blocks it
// covers and the hash partition the whole tree, and recomputes the root
// hash from the tree's top block and the salt: a disk that does not match
// roothash= is refused before any device exists, with both hashes in the
// message. It then creates the device "root" with the device-mapper
// ioctls on /dev/mapper/control (made from /proc/misc if devtmpfs did not
// make it): DM_DEV_CREATE (with veritysetup's UUID,
// CRYPT-VERITY-<hash device UUID>-root, so that veritysetup and udev know
// it), DM_TABLE_LOAD of one read-only verity target
//
//	1 <data major:minor> <hash major:minor> <data block size> <hash block size> <data blocks> 1 <algorithm> <root hash> <salt hex or ->
//
// and a resume, makes the node /dev/mapper/root from the device number
// the kernel returned, and mounts it read-only as rootfstype (erofs, as
// kiln builds). The target has no optional arguments: a block whose hash
// does not match reads as an I/O error (EIO) and the kernel logs
// "device-mapper: verity: ...: data block N is corrupted"; the machine
// neither restarts nor ignores it. The pre-check proves the hash tree's
// top; every other block, data and hash, is checked by the kernel when it
// is read.
//
// There is no fallback: a partition missing after the timeout, a bad
// superblock, a root hash mismatch, a device-mapper error or a failed
// mount prints a message starting "kiln-init: verity:" and stops the boot
// (a shell or sleep, below); the data partition is never mounted
// directly. The kernel must have dm_mod, dm_verity (and dm_bufio) and
// erofs, built in or listed in /etc/kiln/modules.
//
// # Other mounts: /etc/kiln/mounts
//
// The file (absent: no other mounts) lists one mount a line, four fields
// separated by white space; blank lines and lines starting with # are
// skipped:
//
//	SOURCE TARGET FSTYPE OPTIONS
//	PARTUUID=4d21b016-b534-45c2-a9fb-5c16e091fd2d /var ext4 rw
//
// SOURCE is PARTUUID=<GPT partition GUID>, PARTUUID=<MBR signature>-<nn>
// or /dev/<name>, waited for as the root is; TARGET a clean absolute path
// other than /, resolved inside the new root (its symbolic links followed
// as if /root were /, never out of it); FSTYPE a filesystem name; OPTIONS
// comma-separated, where rw, ro, nosuid, nodev and noexec are mount flags
// (rw is the default; the last of rw and ro wins) and every other option
// goes to the filesystem as mount data. Lines are mounted in order, so
// parents come first: a line whose target is below a later one's, or a
// target given twice, is refused. A missing mount point is made (mode
// 0755) only when the filesystem it would be made on is writable; on a
// read-only one, a sealed root, the image must have it, else the boot
// stops with a message saying so. Each mount is logged as "mounted
// <device> on <target> (<fstype>, <options>)"; any failure stops the boot
// with the file, line and reason: a declared writable partition that is
// not mounted would leave its writes on the root, or fail them.
//
// When something fails it says what and drops to /bin/sh if the
// initramfs has one, else sleeps forever: PID 1 never exits, so the
// kernel never panics without a word.
//
// It is a static program depending on the standard library, pkg/disk (to
// read partition tables and find partitions by PARTUUID) and pkg/verity
// (the verity superblock) only: build it with CGO_ENABLED=0; its bytes are
// image bytes. It runs only on Linux, and refuses to run unless it is PID
// 1. The files: cmdline.go parses the command line, modules.go loads
// modules, root.go finds devices and wait.go waits for them, verity.go
// checks the verity pair and writes its table, dm.go encodes the
// device-mapper ioctls and dm_linux.go sends them, verity_linux.go sets
// the sealed root up, mounts.go and mounts_linux.go read and mount
// /etc/kiln/mounts, switch.go mounts the root and execs init, main.go
// strings them together.
package main
