#!/usr/bin/env bash
# test.sh: every test of the module, then every fuzz target briefly; what
# `make test` runs after installing the judges. go test's JSON goes
# through scripts/testsum, which prints a line per package, the output of
# failed tests, every skip with its reason, and the count; the whole JSON
# stays in .cache/test.json. The last line is the count of tests: under
# CI a test skipped for a missing judge, package or privilege fails the
# run (see internal/testkit.Missing).
#
#   GO=go  FUZZTIME=15s  TESTFLAGS=  (e.g. TESTFLAGS='-run TestX')
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
GO=${GO:-go}
mkdir -p .cache
$GO build -o .cache/testsum ./scripts/testsum || exit 1

# Packages run one at a time (-p 1): QEMU boots under TCG on two cores are
# slow enough alone, and a starved guest kernel can fail its timer check.
# shellcheck disable=SC2086
$GO test -json -p 1 -count=1 -timeout 25m ${TESTFLAGS:-} ./... | tee .cache/test.json | .cache/testsum | tee .cache/test-summary.txt
codes=("${PIPESTATUS[@]}")
summary=$(tail -n 1 .cache/test-summary.txt)
status=0
if [ "${codes[2]}" -ne 0 ]; then
  status=1
elif [ "${codes[0]}" -ne 0 ]; then
  echo "go test exited ${codes[0]} although no test failed"
  status=1
fi

echo
if ! FUZZTIME=${FUZZTIME:-15s} GO=$GO scripts/fuzz.sh; then
  status=1
fi
echo
echo "tests: $summary"
exit $status
