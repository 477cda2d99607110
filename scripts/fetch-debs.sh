#!/usr/bin/env bash
# fetch-debs.sh LIST DIR: downloads the Debian packages named in LIST (one
# per line, "name" or "name=version"; # comments) with `apt-get download`
# into DIR, and links each as DIR/NAME.deb so specs can name it stably.
# "dep:NAME" stands for the package NAME depends on first (for a
# metapackage such as linux-image-amd64, the real kernel package), linked
# as DIR/NAME.deb. Nothing is installed on the host: the .debs are layers.
set -euo pipefail
list=$1 dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list")
need=()
for p in $pkgs; do
  name=${p#dep:}; name=${name%%=*}
  [ -e "$dir/$name.deb" ] || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
# apt-get download needs package lists; fetch them once if there are none.
first=${need[0]#dep:}
if ! apt-cache show "${first%%=*}" >/dev/null 2>&1; then
  apt-get update -qq
fi
cd "$dir"
# Resolve dep:NAME to the package NAME depends on.
declare -A alias=()
for i in "${!need[@]}"; do
  p=${need[$i]}
  case $p in dep:*)
    meta=${p#dep:}
    real=$(apt-cache depends --important "$meta" | awk '/Depends:/ {print $2; exit}')
    [ -n "$real" ] || { echo "fetch-debs: $meta has no dependency to fetch" >&2; exit 1; }
    alias[$real]=$meta
    need[$i]=$real
  esac
done
# Run as _apt-free download: as root apt warns that it cannot drop
# privileges for a folder _apt cannot write; that is harmless.
apt-get download -qq "${need[@]}" 2>&1 | grep -v 'W: Download is performed unsandboxed' || true
for p in "${need[@]}"; do
  name=${p%%=*}
  f=$(ls -1 "${name}"_*.deb 2>/dev/null | sort | tail -n 1)
  [ -n "$f" ] || { echo "fetch-debs: $name was not downloaded" >&2; exit 1; }
  ln -sf "$f" "${alias[$name]:-$name}.deb"
done
