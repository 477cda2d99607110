#!/usr/bin/env bash
# bench-sealed.sh (make bench, after bench.sh; BENCH_SEALED=0 skips it):
# kiln's sealed root (EROFS written in Go + a dm-verity hash partition)
# against the C tools a user would run for the same pair, `mkfs.erofs` and
# `veritysetup format`, side by side on one Debian rootfs tar. Uncompressed
# and lz4 (kiln's compression: lz4 against mkfs.erofs -zlz4 and -zlz4hc).
# The C tools need the tree extracted first (tar -xpf as root, owners and
# xattrs kept): that step is timed on its own, and the table gives both
# mkfs.erofs + veritysetup alone and the whole pipeline with the extraction.
# Prints Markdown tables of medians (wall, CPU = user+sys of every process,
# peak RSS of the largest process, sizes) and writes them to
# .cache/bench/sealed.md.
#
#   BENCH_RUNS=3          runs of each case (the tables show medians)
#   BENCH_SEALED_TAR=     the rootfs tar (default: .cache/minbase.tar, made by
#                         scripts/mkrootfs-debian.sh when missing, unless
#                         bench.sh's .cache/bench/rootfs.tar is there)
#   BENCH_TMPDIR=/var/tmp where the work folder goes (removed at exit)
#   BENCH_STAGE=auto      where the C pipeline extracts the tree: disk (the
#                         work folder) or tmpfs (/dev/shm); auto: tmpfs when
#                         it has room (the faster for the C side)
#
# Before the tables are written, kiln's outputs are judged once:
# fsck.erofs --extract on each root partition, veritysetup verify of the
# data and hash partitions with kiln's root hash, the same inode count as
# mkfs.erofs's image, and the timed images byte-identical to the first
# build. Timings are not asserted, only reported: run it on a quiet machine.
set -Eeuo pipefail
trap 'echo "bench-sealed: line $LINENO: $BASH_COMMAND failed" >&2' ERR
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"
export LC_ALL=C
GO=${GO:-go}
runs=${BENCH_RUNS:-3}
stage_pref=${BENCH_STAGE:-auto}
case $stage_pref in auto|disk|tmpfs) ;; *) echo "bench-sealed: BENCH_STAGE is auto, disk or tmpfs" >&2; exit 2 ;; esac
epoch=1700000000
start_time=$SECONDS

cache=$PWD/.cache/bench
mkdir -p "$cache"
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/kiln-bench-sealed.XXXXXX")
shm=''
cleanup() { rm -rf "$work" ${shm:+"$shm"}; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$work

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-sealed: %s\n' "$*" >&2; exit 1; }
notes=()
note() { notes+=("$*"); }

for c in mkfs.erofs fsck.erofs dump.erofs veritysetup tar jq dd sha256sum "$GO"; do
  command -v "$c" >/dev/null || die "$c is missing: run make deps"
done
[ -x bin/kiln ] || die "bin/kiln is missing: run make build"
# A copy, so that a make build during the bench cannot mix two kilns.
mkdir "$work/bin"
cp bin/kiln "$work/bin/kiln"
kiln=$work/bin/kiln
bt=$work/bench # bench.sh's helper: split, time, get
$GO build -o "$bt" ./scripts/bench
res=$work/results.tsv
log=$work/log
: >"$res"

# timed LABEL OUTPUT CMD...: one timed run of CMD, its output file's size
# recorded; the command's own output goes to the log.
timed() {
  local label=$1 out=$2; shift 2
  "$bt" time -o "$res" -label "$label" ${out:+-size "$out"} -- "$@" >&2 2>>"$log" ||
    { tail -n 20 "$log" >&2; die "$label failed"; }
}
get() { "$bt" get -i "$res" "$1"; } # wall cpu rss_kib alloc apparent runs

# ---- the input -----------------------------------------------------------

# The minbase tree the tests use (8,700 entries, 160 MiB): the whole bench
# stays within a few minutes. bench.sh's rootfs.tar (with a kernel, 4 times
# as large) when only it is there, rather than a second mmdebstrap.
rootfs=${BENCH_SEALED_TAR:-}
if [ -z "$rootfs" ]; then
  rootfs=$PWD/.cache/minbase.tar
  if [ ! -s "$rootfs" ] && [ -s "$cache/rootfs.tar" ]; then
    rootfs=$cache/rootfs.tar
  elif [ ! -s "$rootfs" ]; then
    say "making $rootfs: mmdebstrap --variant=minbase bookworm (a few minutes)"
    scripts/mkrootfs-debian.sh "$rootfs"
  fi
fi
[ -s "$rootfs" ] || die "$rootfs: no such tar"
rootfs=$(realpath "$rootfs")
tree=$rootfs
# Can tar -x make device nodes here? If not, both sides get the tar without
# its character and block devices, so that both build the same tree.
if ! mknod "$work/devtest" c 1 3 2>/dev/null; then
  say "this machine cannot mknod: both sides use the tar without its device nodes"
  mkdir "$work/split"
  "$bt" split -nodev -o "$work/split" "$rootfs" >&2
  tree=$work/split/all.tar
  rm -f "$work/split/"{base,kernel,top}.tar
  note "This machine cannot mknod (tar -xpf could not extract /dev/*): both sides use the tar without its character and block devices."
fi
rm -f "$work/devtest"
tar_bytes=$(stat -c %s "$tree")

if [ "$stage_pref" != disk ] && [ -d /dev/shm ] &&
  [ "$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -n1)" -gt $(( tar_bytes * 2 )) ] 2>/dev/null; then
  shm=$(mktemp -d /dev/shm/kiln-bench-sealed.XXXXXX)
  stage=tmpfs x=$shm/x
else
  [ "$stage_pref" = tmpfs ] && die "BENCH_STAGE=tmpfs: /dev/shm has no room for the tree"
  stage=disk x=$work/x
fi
[ "$stage" = tmpfs ] && note "The C pipeline extracts into tmpfs (/dev/shm): the extracted tree is held in RAM, which peak RSS does not show, and mkfs.erofs reads it from there."

# ---- kiln: one build of each spec, untimed --------------------------------
# Its --json summary gives the salt and UUIDs the C tools are given too, the
# root hash, and kiln's own timings; it also brings the tar into the page
# cache, for both sides.

for z in none lz4; do
  cat >"$work/sealed-$z.yaml" <<EOF
epoch: $epoch
layers:
  - path: $tree
disk:
  table: gpt
  size: auto
  partitions:
    - {name: root, type: root, filesystem: erofs$([ $z = none ] || echo ", compression: $z"), verity: true, size: auto, mount: /}
output: {path: out.img, format: raw}
EOF
  say "kiln, $z: first build (--json, untimed)"
  "$kiln" build --no-cache --json -o "$work/k-$z.img" "$work/sealed-$z.yaml" >"$work/k-$z.json" 2>>"$log" ||
    { tail -n 20 "$log" >&2; die "kiln build $work/sealed-$z.yaml failed"; }
done
salt=$(jq -r '.verity[0].salt' "$work/k-none.json")
fs_uuid=$(jq -r '.partitions[] | select(.name == "root") | .fs_uuid' "$work/k-none.json")
hash_uuid=$(jq -r '.verity[0].hash_partition_uuid' "$work/k-none.json")
[[ $salt =~ ^[0-9a-f]{64}$ ]] || die "no verity salt in kiln build --json: $salt"
[[ $fs_uuid =~ ^[0-9a-f-]{36}$ && $hash_uuid =~ ^[0-9a-f-]{36}$ ]] || die "no UUIDs in kiln build --json"

# ---- the timed runs --------------------------------------------------------

zs=(none lz4 lz4hc)
for (( r = 1; r <= runs; r++ )); do
  say "run $r/$runs: kiln"
  for z in none lz4; do
    rm -f "$work/k-$z.img"
    timed "k.$z" "$work/k-$z.img" "$kiln" build --quiet --no-cache -o "$work/k-$z.img" "$work/sealed-$z.yaml"
  done
  say "run $r/$runs: tar -xpf into $stage, mkfs.erofs, veritysetup format"
  rm -rf "$x"
  mkdir "$x"
  timed x "" tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$tree" -C "$x"
  for z in "${zs[@]}"; do
    rm -f "$work/m-$z.img" "$work/m-$z.hash"
    zarg=(); [ $z = none ] || zarg=(-z"$z")
    # SOURCE_DATE_EPOCH, not -T: the build time is the epoch and each file
    # keeps its own mtime (clamped to the epoch), as in kiln's EROFS; -T
    # would set every mtime to the epoch.
    timed "m.$z" "$work/m-$z.img" env SOURCE_DATE_EPOCH=$epoch mkfs.erofs --quiet ${zarg[@]+"${zarg[@]}"} -U "$fs_uuid" "$work/m-$z.img" "$x"
    timed "v.$z" "$work/m-$z.hash" veritysetup format "$work/m-$z.img" "$work/m-$z.hash" --salt="$salt" --uuid="$hash_uuid"
  done
done
rm -rf "$x"

# ---- correctness, once, untimed --------------------------------------------

say "checking the outputs"
inodes() { dump.erofs -s "$1" | sed -n 's/^Filesystem inode count: *//p'; }
m_inodes=$(inodes "$work/m-none.img")
declare -A k_fs k_part k_hash k_hashbytes k_img k_hashsz
for z in none lz4; do
  img=$work/k-$z.img
  want=$(jq -r '.output.sha256' "$work/k-$z.json")
  [ "sha256:$(sha256sum "$img" | cut -d' ' -f1)" = "$want" ] || die "kiln $z: the timed build differs from the first one"
  "$kiln" inspect --json "$img" >"$work/k-$z.inspect.json"
  q() { jq -r "$1" "$work/k-$z.inspect.json"; }
  root_start=$(q '.partitions[] | select(.name == "root") | .first_lba * 512')
  k_part[$z]=$(q '.partitions[] | select(.name == "root") | .size')
  k_fs[$z]=$(q '.partitions[] | select(.name == "root") | .filesystem.size')
  hash_start=$(q '.partitions[] | select(.name == "root-verity") | .first_lba * 512')
  k_hash[$z]=$(q '.partitions[] | select(.name == "root-verity") | .size')
  roothash=$(q '.verity[0].root_hash')
  [ "$(q '.verity[0].uuids_match')" = true ] || die "kiln $z: the partition UUIDs do not match the root hash"
  k_hashbytes[$z]=$(jq -r '.verity[0].hash_bytes' "$work/k-$z.json")
  k_img[$z]=$(stat -c %s "$img")
  dd if="$img" of="$work/root.part" iflag=skip_bytes,count_bytes skip="$root_start" count="${k_part[$z]}" bs=1M status=none
  dd if="$img" of="$work/hash.part" iflag=skip_bytes,count_bytes skip="$hash_start" count="${k_hash[$z]}" bs=1M status=none
  fsck.erofs --extract "$work/root.part" >>"$log" 2>&1 || die "fsck.erofs --extract on kiln's $z root: errors"
  veritysetup verify "$work/root.part" "$work/hash.part" "$roothash" >>"$log" 2>&1 ||
    die "veritysetup verify of kiln's $z root with its root hash $roothash: failed"
  n=$(inodes "$work/root.part")
  [ "$n" = "$m_inodes" ] || die "kiln $z: $n inodes, mkfs.erofs: $m_inodes (not the same tree)"
  rm -f "$work/root.part" "$work/hash.part"
done
for z in "${zs[@]}"; do
  fsck.erofs --extract "$work/m-$z.img" >>"$log" 2>&1 || die "fsck.erofs --extract on mkfs.erofs's $z image: errors"
  [ "$(inodes "$work/m-$z.img")" = "$m_inodes" ] || die "mkfs.erofs $z: another inode count"
done
note "Checked once: fsck.erofs --extract passes on kiln's root partitions (none, lz4) and on mkfs.erofs's images; veritysetup verify accepts kiln's data and hash partitions with kiln's root hash; kiln inspect: partition UUIDs match the root hash; every timed kiln image is byte-identical to the first build; both sides hold $m_inodes inodes."

# ---- the report --------------------------------------------------------------

# ratio A B: A/B to 2 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "–" }'; }
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "–" }'; }
mibf() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
# time_row TITLE KILN_LABEL Z: kiln against mkfs.erofs + veritysetup, and
# against the whole pipeline (tar -xpf + mkfs.erofs + veritysetup).
time_row() {
  local kw kc kr kn cw cc cr cn pw pc pr pn
  read -r kw kc kr _ _ kn < <(get "$2")
  read -r cw cc cr _ _ cn < <(get "m.$3+v.$3")
  read -r pw pc pr _ _ pn < <(get "x+m.$3+v.$3")
  printf '| %s | %.2f s | %.2f s | %.0f MiB | %.2f s | %.2f s | %.0f MiB | **%s** | %s | %.2f s | %.2f s | %.0f MiB | **%s** | %s |\n' \
    "$1" "$kw" "$kc" "$(( kr / 1024 ))" "$cw" "$cc" "$(( cr / 1024 ))" "$(ratio "$kw" "$cw")" "$(ratio "$kc" "$cc")" \
    "$pw" "$pc" "$(( pr / 1024 ))" "$(ratio "$kw" "$pw")" "$(( kn < pn ? kn : pn ))"
}
# size_row TITLE KZ Z
size_row() {
  local mi mh
  mi=$(stat -c %s "$work/m-$3.img") mh=$(stat -c %s "$work/m-$3.hash")
  printf '| %s | %s | %s | %s (%s used) | %s | %s | %s | **%s** | **%s** |\n' \
    "$1" "$(mibf "${k_fs[$2]}")" "$(mibf "${k_part[$2]}")" "$(mibf "${k_hash[$2]}")" "$(mibf "${k_hashbytes[$2]}")" "$(mibf "${k_img[$2]}")" \
    "$(mibf "$mi")" "$(mibf "$mh")" "$(ratio3 "${k_fs[$2]}" "$mi")" "$(ratio3 $(( ${k_part[$2]} + ${k_hash[$2]} )) $(( mi + mh )))"
}
kt() { jq -r ".timings | \"\\(.layers_s * 100 | round / 100) s layers, \\(.plan_s * 100 | round / 100) s plan, \\(.write_s * 100 | round / 100) s write, \\(.commit_s * 100 | round / 100) s commit (build \\(.build_s * 100 | round / 100) s), \\(.hash_s * 100 | round / 100) s output sha256\"" "$work/k-$1.json"; }
read -r xw xc xr _ _ _ < <(get x)

out=$work/sealed.md
{
  echo "# kiln bench: sealed root (EROFS + dm-verity)"
  echo
  echo "- date: $(date -u)"
  echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- kiln: $("$kiln" version)"
  echo "- tools: erofs-utils $(dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null || echo '?') (mkfs.erofs, fsck.erofs, dump.erofs); $(veritysetup --version | sed -n 1p | cut -d' ' -f1-2); $(tar --version | sed -n 1p)"
  echo "- runs: $runs per case; every figure is the median"
  echo "- tree: \`${rootfs/#$PWD\//}\`: $tar_bytes tar bytes, $m_inodes inodes in the EROFS"
  echo "- the C pipeline extracts into $stage: \`tar --numeric-owner --xattrs --xattrs-include='*' -xpf\`, $(printf '%.2f' "$xw") s wall, $(printf '%.2f' "$xc") s CPU (median; in the pipeline columns, not in the mkfs.erofs + veritysetup ones)"
  echo
  echo "## Time"
  echo
  echo "| case | kiln wall | kiln CPU | kiln RSS | mkfs.erofs + veritysetup wall | CPU | RSS | kiln/C wall | kiln/C CPU | tar -xpf + mkfs.erofs + veritysetup wall | CPU | RSS | kiln/pipeline wall | runs |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  time_row "uncompressed" k.none none
  time_row "kiln lz4 vs mkfs.erofs -zlz4" k.lz4 lz4
  time_row "kiln lz4 vs mkfs.erofs -zlz4hc" k.lz4 lz4hc
  echo
  echo "## Size"
  echo
  echo "| case | kiln EROFS | kiln root partition | kiln hash partition (verity superblock + tree) | kiln image | mkfs.erofs image | veritysetup hash file | EROFS kiln/C | root + hash kiln/C |"
  echo "|---|---|---|---|---|---|---|---|---|"
  size_row "uncompressed" none none
  size_row "kiln lz4 vs mkfs.erofs -zlz4" lz4 lz4
  size_row "kiln lz4 vs mkfs.erofs -zlz4hc" lz4 lz4hc
  echo
  echo "kiln EROFS is the filesystem's size (\`kiln inspect --json\`: filesystem size); kiln rounds the root partition up to 1 MiB and hashes all of it, and the hash partition holds the verity superblock and tree, rounded up to 1 MiB as well. The image is the whole GPT disk (root, hash partition, GPT). The C side's sizes are mkfs.erofs's image and veritysetup's hash file, unpadded."
  echo
  echo "Where kiln's time goes (\`kiln build --json\` timings of the first build; for a sealed root, plan sizes the EROFS, writes it to a spill file and hashes it, write copies both into the image): uncompressed: $(kt none); lz4: $(kt lz4)."
  echo
  echo "## Commands"
  echo
  echo "- CPU is user+sys of the command and every process it waited for; peak RSS is wait4's ru_maxrss, the largest of them (not their sum)."
  echo "- kiln: \`bin/kiln build --quiet --no-cache -o OUT sealed-none.yaml\` (sealed-lz4.yaml adds \`compression: lz4\`):"
  echo
  echo '```yaml'
  sed "s|$PWD/||" "$work/sealed-none.yaml"
  echo '```'
  echo
  echo "- C: \`tar --numeric-owner --xattrs --xattrs-include='*' -xpf TREE.tar -C DIR\`, then for each of none, lz4, lz4hc: \`SOURCE_DATE_EPOCH=$epoch mkfs.erofs --quiet [-zlz4|-zlz4hc] -U $fs_uuid root.img DIR\` and \`veritysetup format root.img hash.img --salt=$salt --uuid=$hash_uuid\` (kiln's salt and UUIDs). SOURCE_DATE_EPOCH rather than -T: the build time is the epoch and each file keeps its mtime, clamped to the epoch, as in kiln's EROFS (-T would give every file the epoch, all compact inodes)."
  if [ ${#notes[@]} -gt 0 ]; then
    echo
    echo "## Notes"
    echo
    printf -- '- %s\n' "${notes[@]}"
  fi
  echo
  echo "Bench time: $(( SECONDS - start_time )) s."
} >"$out"
cp "$out" "$cache/sealed.md"
cat "$out"
