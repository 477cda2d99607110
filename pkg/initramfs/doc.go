// Package initramfs owns the initial RAM filesystem kiln builds for a
// kernel: which kernel modules go in (KernelVersion, ResolveModules) and
// the compressed cpio archive itself (Build).
//
// # Modules
//
// Modules are looked for under /lib/modules/KVER and /usr/lib/modules/KVER
// of the merged tree; symlinks (a merged-/usr /lib -> usr/lib) are followed
// inside the tree, never on the host. Dependencies are found as depmod
// would find them:
//
//   - hard dependencies from modules.dep when the tree has one, else from
//     the depends= field of each module's .modinfo ELF section;
//   - soft dependencies from modules.softdep when present, else from the
//     softdep= fields ("pre: a b post: c"); pre-dependencies are loaded
//     before the module, post-dependencies after it;
//   - a softdep target that is not a module name is an alias: it is looked
//     up in modules.alias when present, else in the alias= fields of the
//     modules. Among several providers the *_generic one wins (a crypto
//     driver that works on every CPU, such as crc32c_generic for ext4's
//     "crypto-crc32c"), then the smallest name. A softdep that nothing
//     provides is skipped, as modprobe skips it;
//   - names compare with '-' and '_' the same (nvme-core is nvme_core);
//   - modules built into the kernel (modules.builtin, and the aliases in
//     modules.builtin.modinfo) need no file and are left out.
//
// A wanted name that is missing is an error naming it, unless the name
// ends in "?": then it is optional and silently left out when the kernel
// has neither a module nor a built-in of that name. DefaultModules marks
// the drivers of hardware that a given machine may lack (nvme, virtio_scsi,
// ahci) optional, so that a kernel configured without them still gets an
// initramfs. A missing hard dependency of a module that was found is
// always an error: the module could not be loaded.
//
// The default modules follow the architecture (DefaultModulesFor): an
// arm64 kernel also gets virtio_mmio, the virt machine's other virtio
// transport. The architecture is Options.Machine, the image's ELF
// machine, or else that of the kernel's modules; a module for another
// machine is refused, naming it and both machines.
//
// The load order is a depth-first post-order over the wanted names in the
// order given, each module's dependencies visited in sorted order: every
// module comes after what it needs, and the same inputs give the same
// order. Module files ending in .ko.xz, .ko.zst or .ko.gz are decompressed
// into the archive, so the kernel needs no module decompression support.
//
// # The archive
//
// Build writes a cpio "newc" archive (Documentation/driver-api/
// early-userspace/buffer-format.rst) with its own small writer: the
// libraries at hand cannot write device numbers, which /dev/console needs.
// Entries are sorted by path (parents first), inode numbers count up from
// 1 in that order, every mtime is the build epoch, every owner is 0:0, and
// device numbers appear only on device nodes, so the same inputs give the
// same bytes on any machine. It holds /init (kiln-init), the list of
// modules to load in /etc/kiln/modules (one absolute path a line, in load
// order), the partitions kiln-init mounts below the root before switching
// to it in /etc/kiln/mounts when there are any (Options.Mounts: one
// "SOURCE TARGET FSTYPE OPTIONS" a line, parents first), the modules under
// /lib/modules/KVER/, the directories dev, proc,
// sys and root, and the device nodes /dev/console, /dev/null, /dev/kmsg
// and /dev/tty, declared in the archive so that no privilege is needed and
// the kernel can open the console for init before anything is mounted.
//
// The archive is compressed with xz (the default; with a CRC32 check, the
// only one the kernel's decompressor accepts besides none), gzip (no name,
// mtime 0), zstd, or not at all.
//
// It imports pkg/tree and internal/xz; it must not import pkg/layer,
// pkg/spec or pkg/build.
package initramfs
