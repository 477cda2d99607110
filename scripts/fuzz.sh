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
flaked=()
ran=0
for pkg in "${pkgs[@]}"; do
  # The Fuzz targets of the package, as go test lists them.
  if ! out=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
    echo "$out"
    failed+=("$pkg (its tests do not build)")
    continue
  fi
  for target in $(grep '^Fuzz' <<<"$out" || true); do
    ran=$((ran + 1))
    corpus="$pkg/testdata/fuzz/$target"
    for try in 1 2; do
      echo "== $pkg $target ($fuzztime)"
      before=$(ls "$corpus" 2>/dev/null | sort || true)
      log=$(mktemp)
      if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" \
          -fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg" 2>&1 | tee "$log"; then
        rm -f "$log"
        break
      fi
      after=$(ls "$corpus" 2>/dev/null | sort || true)
      # Go 1.26's fuzz coordinator can fail a target with a bare "context
      # deadline exceeded" as -fuzztime ends, having found nothing
      # (golang/go#75804, fixed in Go 1.27): no new input is written. That
      # run is tried once more; a failure that writes an input, or any
      # other failure, fails the run.
      if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
        rm -f "$log"
        if [ "$try" = 1 ]; then
          echo "== $pkg $target: Go's fuzz coordinator stopped with a deadline and no failing input (golang/go#75804); once more"
          continue
        fi
        echo "== $pkg $target: the coordinator race again, with no failing input: counted as run"
        flaked+=("$pkg $target")
        break
      fi
      rm -f "$log"
      failed+=("$pkg $target")
      break
    done
  done
done

echo "== $ran fuzz targets run for $fuzztime each"
[ ${#flaked[@]} -gt 0 ] && printf 'stopped twice by the coordinator race, no failing input: %s\n' "${flaked[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
