#!/usr/bin/env bash
# measure-rss.sh [SIZES...]: builds generated trees of each size (default
# 100MiB 1GiB 4GiB) into an ext4 image with kiln and with mke2fs -d, and
# prints wall time and peak RSS of each. Memory must stay flat with size.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -eq 0 ] && sizes=(100MiB 1GiB 4GiB)
work=${WORK:-$(mktemp -d /var/tmp/kiln-rss.XXXXXX)}
trap 'rm -rf "$work"' EXIT
make -s build
go build -o "$work/gentree" ./scripts/gentree
measure() { # measure LABEL CMD...: prints "LABEL wall_s peak_rss_MiB"
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
label, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
wall = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{label:<28} {wall:8.2f} s  {rss:8.1f} MiB")
PY
}
printf '%-28s %10s  %12s\n' "what" "wall" "peak RSS"
for s in "${sizes[@]}"; do
  "$work/gentree" -size "$s" -files 20000 -o "$work/tree.tar"
  cat > "$work/kiln.yaml" <<YAML
epoch: 1700000000
layers: [{path: tree.tar}]
disk:
  size: auto
  free: 64MiB
  partitions: [{name: root, type: root, filesystem: ext4, size: rest, mount: /}]
output: {path: root.img}
YAML
  measure "kiln build $s" bin/kiln build -q "$work/kiln.yaml"
  rm -f "$work/root.img"
  mkdir -p "$work/x" && tar -xf "$work/tree.tar" -C "$work/x"
  bytes=$(du -sb "$work/x" | cut -f1)
  measure "mke2fs -d $s" env E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -d "$work/x" "$work/mk.img" $(( (bytes * 12 / 10 + (64 << 20)) / 1024 ))k
  rm -rf "$work/x" "$work/mk.img" "$work/tree.tar"
done
