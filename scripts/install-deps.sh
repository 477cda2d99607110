#!/usr/bin/env bash
# Installs the tools kiln's tests use as independent judges, and QEMU with
# OVMF (x86) and AAVMF (arm64) for the boot tests and `kiln run`, with
# apt-get, when any is missing. `kiln build` itself needs none of them.
set -euo pipefail
declare -A pkg=(
  [e2fsck]=e2fsprogs [debugfs]=e2fsprogs [mke2fs]=e2fsprogs
  [fsck.vfat]=dosfstools [mkfs.vfat]=dosfstools
  [mdir]=mtools [mcopy]=mtools
  [sgdisk]=gdisk [sfdisk]=fdisk
  [qemu-img]=qemu-utils
  [mmdebstrap]=mmdebstrap
  [xz]=xz-utils [zstd]=zstd [bzip2]=bzip2
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-system-aarch64]=qemu-system-arm
  [objdump]=binutils [cpio]=cpio
  [skopeo]=skopeo [podman]=podman
  [fsck.erofs]=erofs-utils [mkfs.erofs]=erofs-utils [dump.erofs]=erofs-utils
  [veritysetup]=cryptsetup-bin
  [jq]=jq
  [sbverify]=sbsigntool [osslsigncode]=osslsigncode [openssl]=openssl
  [cert-to-efi-sig-list]=efitools [sign-efi-sig-list]=efitools
)
missing=()
for cmd in $(printf '%s\n' "${!pkg[@]}" | sort); do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
# Firmware files, not commands.
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=(ovmf)
[ -e /usr/share/AAVMF/AAVMF_CODE.fd ] || missing+=(qemu-efi-aarch64)
[ ${#missing[@]} -eq 0 ] && exit 0
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
