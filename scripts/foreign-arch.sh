#!/usr/bin/env bash
# foreign-arch.sh ARCH: makes this machine able to run ARCH's programs
# under emulation, which mmdebstrap needs to run a foreign architecture's
# maintainer scripts (kiln itself never runs anything from an image): it
# installs qemu-user-static, binfmt-support and arch-test with apt-get
# when they are missing, mounts binfmt_misc when it is not, enables the
# interpreters, and fails with what is missing when `arch-test ARCH` still
# says no.
set -euo pipefail
arch=$1
if ! command -v arch-test >/dev/null || ! command -v update-binfmts >/dev/null || ! ls /usr/bin/qemu-*-static >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support arch-test >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable >/dev/null 2>&1 || true
if ! arch-test "$arch" >/dev/null; then
  echo "foreign-arch: this machine cannot run $arch programs under emulation (arch-test $arch: $(arch-test "$arch" 2>&1)); mmdebstrap --arch=$arch needs qemu-user-static and binfmt_misc" >&2
  exit 1
fi
