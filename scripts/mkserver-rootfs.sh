#!/usr/bin/env bash
# mkserver-rootfs.sh OUT.tar: the Debian root filesystem of the server
# example (layers/server/kiln.yaml): `mmdebstrap --variant=minbase bookworm`
# plus systemd as init, udev, D-Bus, the kernel, the loaders kiln installs
# (systemd-boot, syslinux) and busybox (whose httpd serves the page). A cache
# made once: reuses OUT.tar when it exists.
#
# The package set is what bookworm's main suite holds on the mirror (the
# first URIs: of /etc/apt/sources.list.d/debian.sources, as
# scripts/mkrootfs-debian.sh), without -updates or -security, which change
# between point releases only: two runs on the same day install the same
# versions. OUT.packages lists them (name=version), for the record.
#
# kiln makes the initramfs (initrd: kiln), so the one Debian's
# initramfs-tools makes for the kernel is removed. Documentation, man pages
# and translations are not installed (dpkg path-exclude; copyright files
# stay), nor the kernel modules a headless server has no use for (sound,
# graphics, video capture, wireless, Bluetooth, InfiniBand, industrial I/O,
# staging; 173 of the 395 MiB of modules; the kernel's postinst runs depmod
# on what is left). Needs Debian's mirrors and mmdebstrap (make deps
# installs it).
#
# mkserver-rootfs.sh OUT.tar arm64: the same for arm64 (the kernel
# linux-image-arm64, no syslinux), made on any machine: mmdebstrap runs
# the packages' maintainer scripts under qemu-user (binfmt_misc, made ready
# by scripts/foreign-arch.sh). Debian's initramfs generator would run for
# most of an hour under emulation and its result is thrown away (kiln makes
# the initramfs), so update-initramfs is diverted to true while the
# packages are installed. kiln's own build of the image runs nothing.
set -euo pipefail
out=$1
arch=${2:-amd64}
[ -f "$out" ] && [ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
manifest=${out%.tar}.packages
# mmdebstrap picks the output format from the name: keep .tar at the end.
tmp="$out.tmp.$$.tar"
trap 'rm -f "$tmp" "$manifest.tmp"' EXIT
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
pkgs=(
  systemd systemd-sysv udev dbus   # init, devices, the system bus (logind and networkctl want it)
  systemd-resolved                 # DNS from DHCP; /etc/resolv.conf points into /run
  "linux-image-$arch" kmod         # the kernel and its modules (modules.dep made by depmod)
  systemd-boot-efi                 # the UEFI loaders kiln installs
  busybox                          # httpd, the web service
  iproute2                         # ip, to look at the network on the console
)
foreign=()
case $arch in
  amd64) pkgs+=(syslinux syslinux-common) ;;   # BIOS (boot.loader: hybrid)
  *)
    "$(dirname "$0")/foreign-arch.sh" "$arch"
    foreign=(--arch="$arch"
      --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && ln -s /bin/true "$1"/usr/sbin/update-initramfs'
      --customize-hook='rm -f "$1"/usr/sbin/update-initramfs && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs')
    ;;
esac
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
  mmdebstrap --variant=minbase --quiet "${foreign[@]}" \
  --include="$(IFS=,; echo "${pkgs[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/sound/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/gpu/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/media/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/infiniband/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/staging/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/iio/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/comedi/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/isdn/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/net/wireless/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/net/mac80211/*' \
  --dpkgopt='path-exclude=/lib/modules/*/kernel/net/bluetooth/*' \
  --customize-hook='rm -f "$1"/boot/initrd.img-* "$1"/initrd.img "$1"/initrd.img.old' \
  --customize-hook='rm -f "$1"/etc/hostname' \
  --customize-hook='rm -f "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/bootstrap.log "$1"/var/log/apt/*.log "$1"/var/cache/ldconfig/aux-cache' \
  --customize-hook='rm -f "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
  --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package}=\${Version}\n' > '$manifest.tmp'" \
  bookworm "$tmp" ${mirror:+"$mirror"}
mv "$manifest.tmp" "$manifest"
mv "$tmp" "$out"
trap - EXIT
