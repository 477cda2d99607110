#!/usr/bin/env bash
# mkrootfs-debian.sh OUT.tar: a real Debian rootfs for tests and benchmarks,
# `mmdebstrap --variant=minbase bookworm` to a tar (about 8,700 entries,
# 160 MiB). Reuses OUT.tar when it exists. Needs Debian's mirrors (the
# sources configured for apt) and mmdebstrap (make deps installs it).
set -euo pipefail
out=$1
[ -f "$out" ] && [ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
# mmdebstrap picks the output format from the name: keep .tar at the end.
tmp="$out.tmp.$$.tar"
trap 'rm -f "$tmp"' EXIT
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
  mmdebstrap --variant=minbase --quiet bookworm "$tmp" ${mirror:+"$mirror"}
mv "$tmp" "$out"
trap - EXIT
