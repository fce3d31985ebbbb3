#!/usr/bin/env bash
# Runs the whole unit suite (CTest) and the whole e2e suite (pytest, CARRIER_BIN pointing at
# BUILD_DIR/carrier) against a build made with -fsanitize=address,undefined (make
# test-sanitize configures and builds it). Fails when any test fails OR when any sanitizer
# report was written by any process: every instrumented process (unit tests, each carrier
# daemon the e2e tests start, carrier sendmail/queue/doctor runs) writes its AddressSanitizer /
# LeakSanitizer / UBSan report to its own file under a fresh report directory (log_path), so a
# report in a daemon whose stderr no test reads still fails the run. The directory must be
# empty at the end; the reports are printed.
# Usage: tests/sanitize/run.sh BUILD_DIR    (env: PYTHON, JOBS, PYTEST_ARGS)
set -u
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd) || exit 2
python=${PYTHON:-/usr/bin/python3}
jobs=${JOBS:-$(nproc)}
[ -x "$build/carrier" ] || { echo "no $build/carrier: build it first" >&2; exit 2; }

reports=$(mktemp -d /tmp/carrier-sanitize.XXXXXX)
chmod 0777 "$reports"  # carrier may drop privileges ([server] user) before it reports
supp="$root/tests/sanitize/lsan.supp"
# halt_on_error / abort_on_error: the first report ends the process with a failure status.
# log_path: each process writes its report to $reports/KIND.PID (nothing when clean).
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:check_initialization_order=1:log_path=$reports/asan"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export CARRIER_BIN="$build/carrier"

status=0
echo "== unit tests (ctest) under ASan+UBSan"
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 600) || status=1
echo "== e2e tests (pytest, CARRIER_BIN=$CARRIER_BIN) under ASan+UBSan"
(cd "$root" && "$python" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests/e2e) || status=1

found=$(find "$reports" -type f | sort)
if [ -n "$found" ]; then
  echo "== sanitizer reports ($(echo "$found" | wc -l) file(s) in $reports):"
  for f in $found; do
    echo "---- $f"
    head -60 "$f"
  done
  status=1
else
  echo "== no sanitizer report"
  rmdir "$reports"
fi
exit $status
