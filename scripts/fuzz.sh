#!/usr/bin/env bash
# fuzz.sh [PACKAGE...]: runs every Fuzz target of the module (or of the
# packages given) for FUZZTIME each (default 30s), one after the other,
# as `go test -fuzz` allows one target at a time. New inputs the fuzzer
# finds stay in Go's cache; a failing input is written to the package's
# testdata/fuzz/<Target>/, where plain `go test` replays it: commit it
# with the fix. Exits non-zero if any target fails.
#
#   FUZZTIME=30s         time per target (a duration, or Nx for N runs)
#   FUZZMINIMIZETIME=5s  time to minimize each new input (go's default, 60s,
#                        would eat the whole budget of a short run)
#   FUZZPARALLEL=        workers per target (default: GOMAXPROCS)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}
fuzztime=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZETIME:-5s}
parallel=()
[ -n "${FUZZPARALLEL:-}" ] && parallel=(-parallel "$FUZZPARALLEL")

pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
  # The packages whose tests define a Fuzz target (found by grep, so that
  # only those test binaries are built).
  mapfile -t pkgs < <(grep -rl --include='*_test.go' '^func Fuzz[A-Z0-9_]' cmd pkg internal 2>/dev/null |
    xargs -r -n1 dirname | sort -u | sed 's|^|./|')
fi

failed=()
ran=0
for pkg in "${pkgs[@]}"; do
  # The Fuzz targets of the package, as go test lists them.
  if ! out=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
    echo "$out"
    failed+=("$pkg (its tests do not build)")
    continue
  fi
  for target in $(grep '^Fuzz' <<<"$out" || true); do
    echo "== $pkg $target ($fuzztime)"
    ran=$((ran + 1))
    if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" \
        -fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg"; then
      failed+=("$pkg $target")
    fi
  done
done

echo "== $ran fuzz targets run for $fuzztime each"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
