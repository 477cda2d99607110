#!/usr/bin/env bash
# fetch-debs.sh LIST DIR: downloads the Debian packages named in LIST (one
# per line, "name" or "name=version"; # comments) with `apt-get download`
# into DIR, and links each as DIR/NAME.deb so specs can name it stably.
# "dep:NAME" stands for the package NAME depends on first (for a
# metapackage such as linux-image-amd64, the real kernel package), linked
# as DIR/NAME.deb. Nothing is installed on the host: the .debs are layers.
#
# A line "arch: ARCH" in LIST (or ARCH=... in the environment, which wins)
# fetches every package for that Debian architecture, e.g. arm64; for a
# foreign one it runs `dpkg --add-architecture ARCH` and `apt-get update`
# once, the first time it is needed.
set -euo pipefail
list=$1 dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
listarch=$(sed -n -e 's/#.*//' -e 's/^[[:space:]]*arch:[[:space:]]*\([a-z0-9]*\)[[:space:]]*$/\1/p' "$list" | tail -n 1)
arch=${ARCH:-${listarch:-}}
pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*arch:/d' -e '/^[[:space:]]*$/d' "$list")
suffix=
if [ -n "$arch" ]; then
  suffix=:$arch
fi
need=()
for p in $pkgs; do
  name=${p#dep:}; name=${name%%=*}
  [ -e "$dir/$name.deb" ] || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
updated=
if [ -n "$arch" ] && [ "$arch" != "$(dpkg --print-architecture)" ] &&
   ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  echo "fetch-debs: dpkg --add-architecture $arch (for package lists only; nothing is installed)"
  dpkg --add-architecture "$arch"
  apt-get update -qq
  updated=1
fi
# apt-get download needs package lists; fetch them once if there are none.
first=${need[0]#dep:}
if [ -z "$updated" ] && ! apt-cache show "${first%%=*}$suffix" >/dev/null 2>&1; then
  apt-get update -qq
fi
cd "$dir"
# Resolve dep:NAME to the package NAME depends on.
declare -A alias=()
for i in "${!need[@]}"; do
  p=${need[$i]}
  case $p in dep:*)
    meta=${p#dep:}
    real=$(apt-cache depends --important "$meta$suffix" | awk '/Depends:/ {print $2; exit}')
    real=${real%%:*}
    [ -n "$real" ] || { echo "fetch-debs: $meta$suffix has no dependency to fetch" >&2; exit 1; }
    alias[$real]=$meta
    need[$i]=$real
  esac
done
# name=version becomes name:arch=version.
want=()
for p in "${need[@]}"; do
  case $p in
    *=*) want+=("${p%%=*}$suffix=${p#*=}") ;;
    *) want+=("$p$suffix") ;;
  esac
done
# Run as _apt-free download: as root apt warns that it cannot drop
# privileges for a folder _apt cannot write; that is harmless.
apt-get download -qq "${want[@]}" 2>&1 | grep -v 'W: Download is performed unsandboxed' || true
for p in "${need[@]}"; do
  name=${p%%=*}
  if [ -n "$arch" ]; then
    f=$(ls -1 "${name}"_*_"$arch".deb "${name}"_*_all.deb 2>/dev/null | sort | tail -n 1 || true)
  else
    f=$(ls -1 "${name}"_*.deb 2>/dev/null | sort | tail -n 1 || true)
  fi
  [ -n "$f" ] || { echo "fetch-debs: $name$suffix was not downloaded" >&2; exit 1; }
  ln -sf "$f" "${alias[$name]:-$name}.deb"
done
