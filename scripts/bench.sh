#!/usr/bin/env bash
# bench.sh (make bench): kiln against the shell pipeline a user would script
# for the same image, side by side, on a real Debian rootfs (mmdebstrap
# minbase + linux-image-amd64) as one xz layer and as three (base, kernel,
# top = etc/), and a scaling run on generated trees. Prints a Markdown table
# of medians (wall, CPU = user+sys of every process, peak RSS of the largest
# process, output size) and writes it to .cache/bench/results.md.
#
#   BENCH_RUNS=3          runs of each case (the table shows medians)
#   BENCH_RUNS_LARGE=1    runs of each scaling tree over 1 GiB
#   BENCH_ROOTFS=1        0: skip the rootfs part
#   BENCH_SCALE=1         0: skip the scaling part
#   BENCH_SCALE_SIZES="1GiB 4GiB"
#   BENCH_TMPDIR=/var/tmp where the work folder goes (removed at exit)
#   BENCH_STAGE=auto      where the pipeline extracts layers: disk (the work
#                         folder), tmpfs (/dev/shm) or auto (the faster)
#
# Inputs are kept in .cache/bench/ and made only when missing: rootfs.tar
# (needs Debian's mirror), layers/*.tar.xz, tree-SIZE.tar. Timings are not
# asserted, only reported: run it on a quiet machine.
set -Eeuo pipefail
trap 'echo "bench: line $LINENO: $BASH_COMMAND failed" >&2' ERR
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"
export LC_ALL=C
GO=${GO:-go}
runs=${BENCH_RUNS:-3}
runs_large=${BENCH_RUNS_LARGE:-1}
do_rootfs=${BENCH_ROOTFS:-1}
do_scale=${BENCH_SCALE:-1}
scale_sizes=${BENCH_SCALE_SIZES:-1GiB 4GiB}
stage_pref=${BENCH_STAGE:-auto}
case $stage_pref in auto|disk|tmpfs) ;; *) echo "bench: BENCH_STAGE is auto, disk or tmpfs" >&2; exit 2 ;; esac
shm='' stage='' other_stage=''
epoch=1700000000
start_time=$SECONDS

cache=$PWD/.cache/bench
mkdir -p "$cache"
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/kiln-bench.XXXXXX")
partial=() # inputs being made: removed if we stop half-way
cleanup() { rm -rf "$work" ${partial[@]+"${partial[@]}"}; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$work # kiln's spill files, mmdebstrap's scratch: all in the work folder

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
notes=()
declare -A scale_bytes=() scale_stage=()
note() { notes+=("$*"); }

for c in mmdebstrap sgdisk mkfs.vfat mcopy mdir fsck.vfat mke2fs e2fsck qemu-img xz tar truncate "$GO"; do
  command -v "$c" >/dev/null || die "$c is missing: run make deps"
done
[ -x bin/kiln ] || die "bin/kiln is missing: run make build"
# A copy, so that a make build during the bench cannot mix two kilns in one
# table (kiln finds kiln-init beside itself).
mkdir "$work/bin"
cp bin/kiln "$work/bin/kiln"
[ ! -e bin/kiln-init ] || cp bin/kiln-init "$work/bin/kiln-init"
kiln=$work/bin/kiln
bt=$work/bench # the helper: split, stat, setfile, time, row, get
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
row() { "$bt" row -i "$res" "$@"; }
# stage_dir disk|tmpfs: the folder the pipeline extracts into.
stage_dir() { if [ "$1" = disk ]; then echo "$work"; else echo "$shm"; fi; }
shm_room() { # shm_room BYTES: /dev/shm is there and can take BYTES more
  [ -n "$shm" ] && [ "$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -n1)" -gt "$1" ] 2>/dev/null
}
if [ "$stage_pref" != disk ] && [ -d /dev/shm ]; then
  shm=$(mktemp -d /dev/shm/kiln-bench.XXXXXX)
  partial+=("$shm")
fi
mib_up() { echo $(( ($1 + (1 << 20) - 1) >> 20 )); } # bytes -> MiB, rounded up

kiln_help=$("$kiln" build --help 2>&1)
cold=() # kiln build flags for a cold build
if grep -q -- '--no-cache' <<<"$kiln_help"; then
  cold=(--no-cache)
fi
has_cache=0
grep -q -- '--cache ' <<<"$kiln_help" && has_cache=1

# ---- inputs ------------------------------------------------------------

rootfs=$cache/rootfs.tar
layers=$cache/layers
nodev=
if [ "$do_rootfs" = 1 ]; then
  if [ ! -s "$rootfs" ]; then
    say "making $rootfs: mmdebstrap --variant=minbase --include=linux-image-amd64 bookworm (a few minutes)"
    tmp=$cache/rootfs.tmp.$$.tar # mmdebstrap picks its output format from the name: keep .tar last
    partial+=("$tmp")
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | sed -n 1p)
    SOURCE_DATE_EPOCH=$epoch mmdebstrap --variant=minbase --include=linux-image-amd64 --quiet \
      bookworm "$tmp" ${mirror:+"$mirror"}
    mv "$tmp" "$rootfs"
  fi
  # Can tar -x make device nodes here (root, not in a user namespace)? If
  # not, both sides get layers without them, so both build the same tree.
  if ! mknod "$work/devtest" c 1 3 2>/dev/null; then
    nodev=-nodev
    note "This machine cannot mknod (tar -xpf could not extract /dev/*): both sides use layers without the character and block devices."
  fi
  rm -f "$work/devtest"
  layers=$cache/layers$nodev
  if [ ! -s "$layers/all.tar.xz" ] || [ "$rootfs" -nt "$layers/all.tar.xz" ]; then
    say "splitting $rootfs into base, kernel and top, and compressing with xz -T0 -6 (a few minutes)"
    mkdir -p "$layers" "$work/split"
    "$bt" split ${nodev:+-nodev} -o "$work/split" "$rootfs" | tee "$layers/split.txt" >&2
    [ -n "$nodev" ] || ln -s "$rootfs" "$work/split/all.tar"
    for l in base kernel top all; do
      partial+=("$layers/$l.tar.xz.tmp")
      xz -T0 -6 -c "$work/split/$l.tar" >"$layers/$l.tar.xz.tmp"
    done
    for l in base kernel top all; do mv "$layers/$l.tar.xz.tmp" "$layers/$l.tar.xz"; done
    rm -rf "$work/split"
  fi
fi

# ---- the rootfs: kiln and the pipeline ---------------------------------

rootfs_part() {
  read -r entries tar_data _ < <("$bt" stat "$rootfs")
  read -r _ _ root_blocks < <("$bt" stat -exclude boot "$rootfs")
  read -r _ boot_data boot_blocks < <("$bt" stat -only boot "$rootfs")
  tar_bytes=$(stat -c %s "$rootfs")
  # Fixed sizes, the same on both sides: the ESP holds /boot (kernel,
  # initrd) with room to spare, the root the rest with 25% headroom.
  esp_mib=$(( $(mib_up $(( boot_blocks * 3 / 2 ))) > 256 ? $(mib_up $(( boot_blocks * 3 / 2 ))) : 256 ))
  root_mib=$(mib_up $(( root_blocks * 5 / 4 )))
  disk_mib=$(( 1 + esp_mib + root_mib + 1 ))
  esp_first=2048
  esp_last=$(( esp_first + esp_mib * 2048 - 1 ))
  root_first=$(( esp_last + 1 ))
  root_last=$(( root_first + root_mib * 2048 - 1 ))

  # The pipeline's two free choices, measured on the single layer (one
  # extraction each), the fastest combination kept:
  # - the decompressor: GNU tar runs `xz -d`, which xz 5.4 runs on one
  #   thread (5.6 and later default to -T0); `xz -T0 -d` decodes the
  #   multi-block files xz -T0 -6 writes in parallel;
  # - where the tree is extracted: the work folder (disk) or tmpfs
  #   (/dev/shm), when it has room; creating tens of thousands of files
  #   can cost far more on a disk filesystem than on tmpfs.
  stages=(disk)
  [ "$stage_pref" != disk ] && shm_room $(( tar_data * 3 / 2 )) && stages+=(tmpfs)
  [ "$stage_pref" = tmpfs ] && stages=(tmpfs)
  [ "$stage_pref" = tmpfs ] && ! shm_room $(( tar_data * 3 / 2 )) && die "BENCH_STAGE=tmpfs: /dev/shm has no room for the tree"
  local best='' best_wall='' st dec x w
  extract_times=()
  for st in "${stages[@]}"; do
    for dec in plain T0; do
      x=$(stage_dir "$st")/x
      mkdir "$x"
      if [ $dec = plain ]; then
        say "pipeline: tar -xpf of the single layer into $st"
        timed "x.$dec.$st" "" tar --numeric-owner -xpf "$layers/all.tar.xz" -C "$x"
      else
        say "pipeline: tar -I 'xz -T0' -xpf of the single layer into $st"
        timed "x.$dec.$st" "" tar -I 'xz -T0' --numeric-owner -xpf "$layers/all.tar.xz" -C "$x"
      fi
      rm -rf "$x"
      read -r w _ < <(get "x.$dec.$st")
      extract_times+=("$([ $dec = plain ] && echo "tar -xpf" || echo "tar -I 'xz -T0' -xpf") into $st: ${w%??} s")
      if [ -z "$best" ] || awk -v a="$w" -v b="$best_wall" 'BEGIN { exit !(a < b) }'; then
        best=$dec.$st best_wall=$w
      fi
    done
  done
  tarx=; [ "${best%%.*}" = T0 ] && tarx="-I 'xz -T0' "
  stage=${best#*.}
  other_stage=; [ ${#stages[@]} = 2 ] && { other_stage=disk; [ "$stage" = disk ] && other_stage=tmpfs; }
  pipe_choice="$(printf '%s; ' "${extract_times[@]}")the pipeline uses tar ${tarx}-xpf into $stage"
  say "$pipe_choice"
  [ "$stage" = tmpfs ] && note "The pipeline extracts into tmpfs: the extracted tree ($(( tar_data >> 20 )) MiB of file data) is held in RAM for the length of the run, which peak RSS does not show."

  # The pipeline, as a user would script it: extract the layers in order
  # (later ones overwrite), move /boot aside for the ESP, partition, make
  # both filesystems in place at their offsets (no dd copies).
  cat >"$work/pipeline.sh" <<EOF
#!/usr/bin/env bash
# pipeline.sh OUT.img DIR LAYER...
set -euo pipefail
out=\$1 x=\$2; shift 2
mkdir "\$x"
for l; do tar ${tarx}--numeric-owner -xpf "\$l" -C "\$x"; done
mv "\$x/boot" "\$x.boot"
mkdir "\$x/boot"; chmod --reference="\$x.boot" "\$x/boot"; touch -r "\$x.boot" "\$x/boot"
truncate -s ${disk_mib}M "\$out"
sgdisk -o -n 1:$esp_first:$esp_last -t 1:ef00 -c 1:esp -n 2:$root_first:$root_last -t 2:8304 -c 2:root "\$out"
mkfs.vfat -F 32 -s 1 -h $esp_first -n ESP --offset $esp_first "\$out" $(( esp_mib * 1024 ))
MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "\$out@@$(( esp_first * 512 ))" "\$x.boot"/* ::/
E2FSPROGS_FAKE_TIME=$epoch mke2fs -q -F -t ext4 -m 0 -L root -E offset=$(( root_first * 512 )) -d "\$x" "\$out" $(( root_mib * 1024 ))k
EOF
  chmod +x "$work/pipeline.sh"

  for n in 1 3; do
    if [ $n = 1 ]; then set -- all; else set -- base kernel top; fi
    {
      echo "epoch: $epoch"
      echo "layers:"
      for l; do echo "  - path: $layers/$l.tar.xz"; done
      cat <<EOF
disk:
  table: gpt
  size: ${disk_mib}MiB
  partitions:
    - {name: esp, type: esp, size: ${esp_mib}MiB, filesystem: vfat, mount: /boot}
    - {name: root, type: root, size: ${root_mib}MiB, filesystem: ext4, mount: /}
output: {path: out.img, format: raw}
EOF
    } >"$work/rootfs$n.yaml"
    printf '%s\n' "${@/#/$layers/}" | sed 's/$/.tar.xz/' >"$work/layers$n"
  done

  local r n k p x rc
  for (( r = 1; r <= runs; r++ )); do
    for n in 1 3; do
      say "rootfs, $n layer$([ $n = 1 ] || echo s), run $r/$runs"
      k=$work/k$n p=$work/p$n
      # zlib only on one layer: the like-for-like row for qemu-img -c.
      fmts=(raw qcow2 zstd); [ $n = 1 ] && fmts=(raw qcow2 zlib zstd)
      for f in "${fmts[@]}"; do
        case $f in
          raw) args=(--format raw -o "$k.img") ;;
          qcow2) args=(--format qcow2 -o "$k.qcow2") ;;
          *) args=(--format qcow2 --compression "$f" -o "$k-$f.qcow2") ;;
        esac
        rm -f "${args[-1]}"
        timed "r$n.k.$f" "${args[-1]}" "$kiln" build --quiet ${cold[@]+"${cold[@]}"} "${args[@]}" "$work/rootfs$n.yaml"
      done
      mapfile -t lay <"$work/layers$n"
      x=$(stage_dir "$stage")/p$n.x
      rm -rf "$p.img" "$x" "$x.boot"
      timed "r$n.p.raw" "$p.img" "$work/pipeline.sh" "$p.img" "$x" "${lay[@]}"
      rm -rf "$x" "$x.boot"
      # kiln fsyncs its output before renaming it into place; mke2fs
      # fsyncs the image on close. What a sync would still add:
      [ $n = 1 ] && timed p.sync "" sync "$p.img"
      if [ $n = 1 ] && [ -n "$other_stage" ]; then
        x=$(stage_dir "$other_stage")/p$n.x
        rm -rf "$p.img" "$x" "$x.boot"
        timed "r$n.p.raw.$other_stage" "$p.img" "$work/pipeline.sh" "$p.img" "$x" "${lay[@]}"
        rm -rf "$x" "$x.boot"
      fi
      # qemu-img convert of the raw image: timed on the 1-layer image
      # only, as the 3-layer one holds the same disk (the same files,
      # four directory mtimes aside).
      if [ $n = 1 ]; then
        rm -f "$p"*.qcow2
        timed "p.qcow2" "$p.qcow2" qemu-img convert -O qcow2 "$p.img" "$p.qcow2"
        timed "p.zlib" "$p-zlib.qcow2" qemu-img convert -c -O qcow2 "$p.img" "$p-zlib.qcow2"
        timed "p.zstd" "$p-zstd.qcow2" qemu-img convert -c -O qcow2 -o compression_type=zstd "$p.img" "$p-zstd.qcow2"
      fi
    done
  done

  # Sanity, not timed: both images valid, same layout, same files.
  say "checking the images"
  stats() { # the file counts e2fsck -v gives for the root of image $1
    e2fsck -fnv "$1?offset=$(( root_first * 512 ))" 2>&1 |
      awk '/^ *[0-9]+ (regular files|directories|character device files|block device files|fifos|links|symbolic links|sockets)/ { printf "%s %s; ", $1, $2 }'
  }
  for n in 1 3; do
    k=$work/k$n.img p=$work/p$n.img
    for i in "$k" "$p"; do
      sgdisk -v "$i" | grep 'No problems found' >/dev/null || die "sgdisk -v $i: problems"
      e2fsck -fn "$i?offset=$(( root_first * 512 ))" >>"$log" 2>&1 || die "e2fsck -fn on the root of $i: errors"
      dd if="$i" of="$work/esp.img" bs=1M skip=1 count="$esp_mib" status=none
      fsck.vfat -n "$work/esp.img" >>"$log" 2>&1 || die "fsck.vfat -n on the ESP of $i: errors"
    done
    rm -f "$work/esp.img"
    [ "$(sgdisk -p "$k" | sed -n '/^Number/,$p')" = "$(sgdisk -p "$p" | sed -n '/^Number/,$p')" ] ||
      die "$n layer(s): the partition tables of kiln and the pipeline differ"
    for qf in "$work/k$n.qcow2" "$work/k$n"-*.qcow2; do
      qemu-img check -q "$qf" || die "qemu-img check $qf failed"
      qemu-img compare -q "$k" "$qf" || die "kiln's $qf holds another disk than its raw image"
    done
    ks=$(stats "$k") ps=$(stats "$p")
    kb=$(MTOOLS_SKIP_CHECK=1 mdir -/ -b -i "$k@@1048576" :: | sort | md5sum) pb=$(MTOOLS_SKIP_CHECK=1 mdir -/ -b -i "$p@@1048576" :: | sort | md5sum)
    [ "$ks" = "$ps" ] || die "$n layer(s): different files in the root: kiln: $ks pipeline: $ps"
    [ "$kb" = "$pb" ] || die "$n layer(s): different files in the ESP"
    rc=0; "$kiln" diff "$k" "$p" >"$work/diff$n" 2>&1 || rc=$?
    [ $rc -le 1 ] || note "kiln diff failed ($n layer(s), exit $rc): $(tail -n 3 "$work/diff$n" | paste -sd' ' -)"
    # "changed PATH (field)" for each field of each changed file, the first 20
    changed=$(awk '/^  (added|removed) / { sub(/^  /, ""); print; p = ""; next }
                   /^  changed / { p = $2; next }
                   p != "" && /^      [a-z_]+:/ { f = $1; sub(/:$/, "", f); print "changed " p " (" f ")"; next }
                   { p = "" }' "$work/diff$n" | sed -n 1,20p | paste -sd, - | sed 's/,/, /g')
    note "Checked ($n layer$([ $n = 1 ] || echo s)): sgdisk -v, e2fsck -fn, fsck.vfat -n pass on both images; same partition table (sgdisk -p); same ESP file list; root: ${ks%; }. \`kiln diff\` of the two trees: ${changed:-no file differs}."
  done

  # Warm cache: only the top layer changed since the last build.
  if [ $has_cache = 1 ]; then
    say "warm-cache rebuilds"
    xz -dc "$layers/top.tar.xz" >"$work/top.tar"
    for (( r = 1; r <= runs; r++ )); do
      "$bt" setfile -name etc/motd -text "kiln bench, variant $r
" "$work/top.tar" "$work/top$r.tar"
      xz -T0 -6 -c "$work/top$r.tar" >"$work/top$r.tar.xz"
      sed "s|$layers/top.tar.xz|$work/top$r.tar.xz|" "$work/rootfs3.yaml" >"$work/warm$r.yaml"
      grep -q "top$r.tar.xz" "$work/warm$r.yaml" || die "no top layer in rootfs3.yaml"
    done
    rm -rf "$work/kcache" "$work/c.img"
    timed c.fill "$work/c.img" "$kiln" build --quiet --cache "$work/kcache" --format raw -o "$work/c.img" "$work/rootfs3.yaml"
    for (( r = 1; r <= runs; r++ )); do
      rm -f "$work/c.img"
      timed c.warm "$work/c.img" "$kiln" build --quiet --cache "$work/kcache" --format raw -o "$work/c.img" "$work/warm$r.yaml"
    done
    rm -rf "$work/kcache"
  fi
}

# ---- scaling: generated trees ------------------------------------------

scale_part() {
  $GO build -o "$work/gentree" ./scripts/gentree
  local s t r rr data blocks rmib st x
  for s in $scale_sizes; do
    t=$cache/tree-$s.tar
    if [ ! -s "$t" ]; then
      say "generating $t (gentree -size $s -files 20000)"
      partial+=("$t.tmp")
      "$work/gentree" -size "$s" -files 20000 -o "$t.tmp"
      mv "$t.tmp" "$t"
    fi
    read -r _ data blocks < <("$bt" stat "$t")
    scale_bytes[$s]=$data
    rmib=$(mib_up $(( blocks * 5 / 4 )))
    cat >"$work/scale-$s.yaml" <<EOF
epoch: $epoch
layers:
  - path: $t
disk:
  table: gpt
  size: $(( rmib + 2 ))MiB
  partitions:
    - {name: root, type: root, size: ${rmib}MiB, filesystem: ext4, mount: /}
output: {path: out.img, format: raw}
EOF
    cat >"$work/scale-$s.sh" <<EOF
#!/usr/bin/env bash
# scale.sh OUT.img DIR TREE.tar
set -euo pipefail
out=\$1 x=\$2
mkdir "\$x"
tar --numeric-owner -xpf "\$3" -C "\$x"
truncate -s $(( rmib + 2 ))M "\$out"
sgdisk -o -n 1:2048:$(( 2048 + rmib * 2048 - 1 )) -t 1:8304 -c 1:root "\$out"
E2FSPROGS_FAKE_TIME=$epoch mke2fs -q -F -t ext4 -m 0 -L root -E offset=1048576 -d "\$x" "\$out" $(( rmib * 1024 ))k
EOF
    chmod +x "$work/scale-$s.sh"
    # Where the pipeline extracts: as chosen on the rootfs, else tmpfs
    # when it has room (unless BENCH_STAGE=disk), else disk.
    st=${stage:-$([ "$stage_pref" = disk ] && echo disk || echo tmpfs)}
    if [ "$st" = tmpfs ] && ! shm_room $(( data * 6 / 5 )); then
      st=disk
      note "Scaling $s: /dev/shm has no room for the tree; the pipeline extracts to disk."
    fi
    scale_stage[$s]=$st
    x=$(stage_dir "$st")/sp.x
    rr=$runs; [ "$data" -gt $(( 1 << 30 )) ] && rr=$runs_large
    for (( r = 1; r <= rr; r++ )); do
      say "scaling, $s, run $r/$rr"
      rm -f "$work/s.img"
      timed "s.$s.k" "$work/s.img" "$kiln" build --quiet ${cold[@]+"${cold[@]}"} --format raw -o "$work/s.img" "$work/scale-$s.yaml"
      rm -rf "$work/sp.img" "$x"
      timed "s.$s.p" "$work/sp.img" "$work/scale-$s.sh" "$work/sp.img" "$x" "$t"
      rm -rf "$x"
    done
    for i in "$work/s.img" "$work/sp.img"; do
      e2fsck -fn "$i?offset=1048576" >>"$log" 2>&1 || die "e2fsck -fn on $i ($s): errors"
    done
    rm -rf "$work/s.img" "$work/sp.img"
  done
}

[ "$do_rootfs" = 1 ] && rootfs_part
[ "$do_scale" = 1 ] && scale_part

# ---- the report ----------------------------------------------------------

out=$work/results.md
{
  echo "# kiln bench"
  echo
  echo "- date: $(date -u)"
  echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
  echo "- kiln: $("$kiln" version)"
  echo "- tools: $(mke2fs -V 2>&1 | sed -n 1p); mkfs.vfat (dosfstools) $(dpkg-query -W -f '${Version}' dosfstools 2>/dev/null || echo '?'); $(mcopy --version | sed -n 1p); $(sgdisk --version | sed -n 1p | sed 's/^ *//'); $(qemu-img --version | sed -n 1p); $(xz --version | sed -n 1p); $(tar --version | sed -n 1p)"
  echo "- runs: $runs per case (scaling trees over 1 GiB: $runs_large); every figure is the median"
  if [ "$do_rootfs" = 1 ]; then
    echo "- rootfs: \`mmdebstrap --variant=minbase --include=linux-image-amd64 bookworm\` (SOURCE_DATE_EPOCH=$epoch): $tar_bytes tar bytes, $entries entries, $tar_data bytes of file data ($(( tar_data >> 20 )) MiB); /boot $(( boot_data >> 20 )) MiB"
    echo "- layers (xz -T0 -6, multi-block): one layer $(stat -c %s "$layers/all.tar.xz") bytes; three: base $(stat -c %s "$layers/base.tar.xz"), kernel $(stat -c %s "$layers/kernel.tar.xz"), top $(stat -c %s "$layers/top.tar.xz") bytes ($(paste -sd';' "$layers/split.txt" | sed 's/;/; /g'))"
    echo "- disk: GPT, ${disk_mib} MiB: ESP ${esp_mib} MiB (FAT32, /boot), root ${root_mib} MiB (ext4, the rest, 25% over its 4 KiB-rounded data)"
    echo "- the pipeline's choices (one extraction of the single layer each): $pipe_choice"
    echo
    echo "## Rootfs: kiln against the pipeline"
    echo
    echo "| case | kiln wall | kiln CPU | kiln RSS | kiln size (alloc / apparent) | pipeline wall | CPU | RSS | size (alloc / apparent) | kiln/pipeline wall | runs |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    row -title "1 layer: **raw**" -a r1.k.raw -b r1.p.raw
    [ -n "$other_stage" ] && row -title "1 layer: raw, the pipeline extracting into $other_stage" -a r1.k.raw -b "r1.p.raw.$other_stage"
    row -title "1 layer: qcow2" -a r1.k.qcow2 -b r1.p.raw+p.qcow2
    row -title "1 layer: qcow2 zlib (qemu-img -c)" -a r1.k.zlib -b r1.p.raw+p.zlib
    row -title "1 layer: qcow2 zstd" -a r1.k.zstd -b r1.p.raw+p.zstd
    row -title "1 layer: **kiln qcow2 zstd vs qemu-img -c**" -a r1.k.zstd -b r1.p.raw+p.zlib
    row -title "3 layers: **raw**" -a r3.k.raw -b r3.p.raw
    row -title "3 layers: qcow2" -a r3.k.qcow2 -b r3.p.raw+p.qcow2
    row -title "3 layers: qcow2 zstd" -a r3.k.zstd -b r3.p.raw+p.zstd
    row -title "3 layers: **kiln qcow2 zstd vs qemu-img -c**" -a r3.k.zstd -b r3.p.raw+p.zlib
    echo
    read -r sync_wall _ < <(get p.sync)
    echo "Both sides fsync their output: kiln before it renames the image into place, the pipeline in mkfs.vfat and mke2fs (the image file, on close); \`sync OUT\` right after the 1-layer pipeline's raw build took ${sync_wall%??} s more (median, not in the table)."
    echo
    echo "Pipeline qcow2 rows: the pipeline's raw build plus \`qemu-img convert\` of its image, each timed on its own (the convert on the 1-layer image, for both), medians added (wall, CPU), peak RSS the larger of the two, size the qcow2's. Targets (measured, not asserted): **raw** ≤ 0.5; **kiln qcow2 zstd vs qemu-img -c** (zlib) ≤ 0.5."
    if [ $has_cache = 1 ]; then
      echo
      echo "## Rootfs: layer cache (3 layers, raw)"
      echo
      echo "| case | wall | CPU | RSS | size (alloc / apparent) | cold --no-cache wall | CPU | RSS | size | ratio | runs |"
      echo "|---|---|---|---|---|---|---|---|---|---|---|"
      row -title "cold, filling an empty --cache" -a c.fill -b r3.k.raw
      row -title "**rebuild, top layer changed (etc/motd), warm --cache**" -a c.warm -b r3.k.raw
      echo
      echo "One build of the 3-layer spec fills an empty cache (1 run); then each run builds it with another etc/motd in the top layer (re-compressed, never seen by the cache): base and kernel come from the cache, the top layer is decompressed. Target: ≤ 0.25 of the cold build."
    else
      echo
      echo "cache: not available in this kiln"
    fi
  fi
  if [ "$do_scale" = 1 ]; then
    echo
    echo "## Scaling: generated trees (gentree, 20,000 files, plain tar), one ext4 root partition"
    echo
    echo "| tree | kiln wall | kiln CPU | kiln RSS | kiln MiB/s | pipeline wall | CPU | RSS | MiB/s | kiln/pipeline wall | runs |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for s in $scale_sizes; do
      row -title "$s (${scale_bytes[$s]} bytes; pipeline via ${scale_stage[$s]})" -a "s.$s.k" -b "s.$s.p" -bytes "${scale_bytes[$s]}"
    done
    echo
    echo "MiB/s: the tree's file bytes over the wall time. The pipeline: \`tar -xpf\` of the plain tar, \`sgdisk\`, \`mke2fs -d\` at the partition's offset in the GPT image. Targets: kiln's peak RSS < 300 MiB on 4 GiB; time linear in bytes."
  fi
  echo
  echo "## Commands"
  echo
  echo "- CPU is user+sys of the command and every process it waited for; peak RSS is wait4's ru_maxrss, the largest of them (not their sum); size is allocated bytes (\`du\`, raw is sparse) / apparent bytes."
  if [ "$do_rootfs" = 1 ]; then
    echo "- kiln: \`bin/kiln build --quiet ${cold[*]} --format raw|qcow2 [--compression zlib|zstd] -o OUT rootfsN.yaml\`"
    echo "- pipeline qcow2: \`qemu-img convert -O qcow2 p.img p.qcow2\`, \`qemu-img convert -c -O qcow2 ...\`, \`qemu-img convert -c -O qcow2 -o compression_type=zstd ...\`"
    [ $has_cache = 1 ] && echo "- layer cache: \`bin/kiln build --quiet --cache DIR --format raw -o OUT rootfs3.yaml\`, then the same with the changed top layer"
    echo "- the pipeline, run as \`pipeline.sh OUT.img DIR LAYER...\` (rm -rf DIR and OUT before each run, not timed):"
    echo
    echo '```sh'
    cat "$work/pipeline.sh"
    echo '```'
    echo
    echo "- rootfs3.yaml (rootfs1.yaml has the one layer all.tar.xz):"
    echo
    echo '```yaml'
    sed "s|$cache/|.cache/bench/|" "$work/rootfs3.yaml"
    echo '```'
  fi
  if [ "$do_scale" = 1 ]; then
    s=${scale_sizes##* }
    echo
    echo "- scaling, $s (the others differ in sizes only): \`bin/kiln build --quiet ${cold[*]} --format raw -o OUT scale.yaml\` and \`scale.sh OUT.img DIR TREE.tar\`:"
    echo
    echo '```yaml'
    sed "s|$cache/|.cache/bench/|" "$work/scale-$s.yaml"
    echo '```'
    echo
    echo '```sh'
    cat "$work/scale-$s.sh"
    echo '```'
  fi
  if [ ${#notes[@]} -gt 0 ]; then
    echo
    echo "## Notes"
    echo
    printf -- '- %s\n' "${notes[@]}"
  fi
  echo
  echo "Bench time: $(( SECONDS - start_time )) s."
} >"$out"
cp "$out" "$cache/results.md"
cat "$out"
