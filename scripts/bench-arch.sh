#!/usr/bin/env bash
# bench-arch.sh (make bench, after bench-sealed.sh; BENCH_ARCH=0 skips it):
# the same spec built for amd64 and for arm64 on this machine, side by
# side, runs interleaved. kiln runs nothing from the image, so building for
# a foreign architecture must cost what building for the native one does:
# the table gives each case's median wall time and CPU time and the ratio
# arm64/amd64 (the goal: within 10%). Two cases:
#
#   demo     the demo's Debian packages (kernel, busybox, systemd-boot) and
#            rootfs, ext4 root, systemd-boot, kiln's initramfs
#   server   the server example's Debian rootfs (mmdebstrap, made by
#            scripts/mkserver-rootfs.sh for each architecture; arm64 under
#            qemu-user, minutes the first time) on a sealed EROFS root
#            under dm-verity with systemd-boot; skipped with BENCH_SERVER=0
#
# The specs differ only in disk.arch, the layers' folder and the serial
# console's name. Each case is also built twice more and must give the same
# bytes (a failure, not a figure). Prints a Markdown table and writes it to
# .cache/bench/arch.md. Timings are reported, never asserted.
#
#   BENCH_RUNS=3          runs of each case and architecture
#   BENCH_TMPDIR=/var/tmp where the work folder goes (removed at exit)
set -Eeuo pipefail
trap 'echo "bench-arch: line $LINENO: $BASH_COMMAND failed" >&2' ERR
cd "$(dirname "$0")/.."
export LC_ALL=C
runs=${BENCH_RUNS:-3}
repo=$PWD
cache=$repo/.cache/bench
mkdir -p "$cache"
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/kiln-bench-arch.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-arch: %s\n' "$*" >&2; exit 1; }

[ -x bin/kiln ] || die "bin/kiln is missing: run make build"
mkdir "$work/bin"
cp bin/kiln "$work/bin/kiln"
kiln=$work/bin/kiln

scripts/fetch-debs.sh layers/demo/debs.txt .cache/debs
scripts/fetch-debs.sh layers/demo-arm64/debs.txt .cache/debs-arm64
cases=(demo)
if [ "${BENCH_SERVER:-1}" != 0 ]; then
  scripts/mkserver-rootfs.sh .cache/server/rootfs.tar
  scripts/mkserver-rootfs.sh .cache/server-arm64/rootfs.tar arm64
  cases+=(server)
fi

# spec CASE ARCH: writes the case's spec for ARCH and prints its path.
spec() {
  local c=$1 a=$2 debs=$repo/.cache/debs console=ttyS0 rootfs=$repo/.cache/server/rootfs.tar
  if [ "$a" = arm64 ]; then
    debs=$repo/.cache/debs-arm64 console=ttyAMA0 rootfs=$repo/.cache/server-arm64/rootfs.tar
  fi
  local f=$work/$c-$a.yaml
  case $c in
    demo) cat > "$f" <<EOF
epoch: 1700000000
layers:
  - path: $debs/linux-image-$a.deb
  - path: $debs/busybox-static.deb
  - path: $debs/systemd-boot-efi.deb
  - path: $repo/layers/demo/rootfs
disk:
  arch: $a
  table: gpt
  size: auto
  free: 16MiB
  partitions:
    - {name: esp, type: esp, size: 160MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, size: rest, filesystem: ext4, mount: /}
boot:
  loader: systemd-boot
  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=$console rw
output:
  path: $work/out-$c-$a.img
EOF
    ;;
    server) cat > "$f" <<EOF
epoch: 1700000000
layers:
  - path: $rootfs
  - path: $repo/layers/server/overlay/
disk:
  arch: $a
  table: gpt
  partitions:
    - {name: esp, type: esp, size: 160MiB, filesystem: vfat, mount: /boot/efi}
    - {name: root, type: root, filesystem: erofs, verity: true, size: auto, mount: /}
    - {name: var, type: var, filesystem: ext4, size: 256MiB, mount: /var}
boot:
  loader: systemd-boot
  kernel: /boot/vmlinuz-*
  initrd: kiln
  cmdline: console=$console ro
output:
  path: $work/out-$c-$a.img
EOF
    ;;
  esac
  echo "$f"
}

# timed FILE SPEC: one build; appends "wall cpu" (seconds) to FILE.
timed() {
  python3 - "$1" "$kiln" build -q --no-cache "$2" <<'PY'
import resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t = time.monotonic()
subprocess.run(cmd, check=True)
wall = time.monotonic() - t
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
with open(out, "a") as f:
    f.write(f"{wall:.3f} {cpu:.3f}\n")
PY
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

table=$cache/arch.md
{
  echo "| case | amd64 wall | arm64 wall | arm64/amd64 wall | amd64 CPU | arm64 CPU | arm64/amd64 CPU | image amd64 / arm64 |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$table.tmp"
for c in "${cases[@]}"; do
  for a in amd64 arm64; do
    s=$(spec "$c" "$a")
    # Reproducible: two builds, one sha256 (and the judges of make test
    # check the images themselves).
    "$kiln" build -q --no-cache -o "$work/r1.img" "$s"
    "$kiln" build -q --no-cache -o "$work/r2.img" "$s"
    cmp -s "$work/r1.img" "$work/r2.img" || die "$c for $a: two builds differ"
    sha256sum "$work/r1.img" | cut -c1-16 > "$work/$c-$a.sha"
    rm -f "$work/r1.img" "$work/r2.img"
  done
  say "$c: $runs runs per architecture, interleaved"
  for ((i = 0; i < runs; i++)); do
    for a in amd64 arm64; do
      timed "$work/$c-$a.t" "$work/$c-$a.yaml"
      rm -f "$work/out-$c-$a.img"
    done
  done
  aw=$(cut -d' ' -f1 "$work/$c-amd64.t" | median); rw=$(cut -d' ' -f1 "$work/$c-arm64.t" | median)
  ac=$(cut -d' ' -f2 "$work/$c-amd64.t" | median); rc=$(cut -d' ' -f2 "$work/$c-arm64.t" | median)
  printf '| %s | %.2f s | %.2f s | **%.2f** | %.2f s | %.2f s | %.2f | %s / %s |\n' "$c" "$aw" "$rw" \
    "$(awk -v a="$rw" -v b="$aw" 'BEGIN {print a / b}')" "$ac" "$rc" "$(awk -v a="$rc" -v b="$ac" 'BEGIN {print a / b}')" \
    "$(cat "$work/$c-amd64.sha")" "$(cat "$work/$c-arm64.sha")" >> "$table.tmp"
done
{
  echo "kiln $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores, medians of $runs runs (--no-cache), $(date -u +%Y-%m-%d)"
  echo
  cat "$table.tmp"
  echo
  echo "Each case built twice more per architecture: the same bytes (sha256 prefix shown)."
} > "$table"
rm -f "$table.tmp"
cat "$table"
