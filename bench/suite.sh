#!/bin/bash
# suite.sh: the whole benchmark suite of issue 8 (what `make bench` runs): every scenario, carrier
# next to Postfix, Exim and OpenSMTPD (../shared/bench) back to back in one run, then
# bench/report.py writes the tables into docs/performance.md (between its generated-section
# markers; the hand-written sections stay). Benchmark, not a test; root; loopback only; each
# scenario bounded in time (about 17 minutes in all on the 2-core bench VM).
#
#   [BUILD=build] [CARRIER_BIN=...] [LOAD_BIN=...] [OUT=DIR] bench/suite.sh [suite.py options]
#
# CARRIER_BIN defaults to $BUILD/carrier, LOAD_BIN to $BUILD/carrier-tls-load (bench/tls_load);
# results go to OUT (default /var/tmp/mta-bench/suite-TIMESTAMP). Options are passed to
# bench/suite.py, e.g. --only accept-1,idle to run some scenarios (the report then has only
# those: do not commit such a report).
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${BENCH_KIT:-$ROOT/../shared/bench}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD;; esac
CARRIER_BIN=${CARRIER_BIN:-$BUILD/carrier}
LOAD_BIN=${LOAD_BIN:-$BUILD/carrier-tls-load}
OUT=${OUT:-/var/tmp/mta-bench/suite-$(date +%Y%m%dT%H%M%S)}
[ "$(id -u)" = 0 ] || { echo "suite.sh: run as root (starts the peers, raises limits)" >&2; exit 1; }
for b in "$CARRIER_BIN" "$LOAD_BIN"; do
  [ -x "$b" ] || { echo "suite.sh: no $b (make bench builds it)" >&2; exit 1; }
done
# 10,000 idle connections: both ends in this machine need the descriptors
ulimit -n "$(ulimit -Hn)"   # the hard limit (20000 here): enough for 10,000 on each side
"$KIT/setup.sh" >/dev/null
t0=$SECONDS
/usr/bin/python3 "$ROOT/bench/suite.py" --out "$OUT" --carrier "$CARRIER_BIN" --load "$LOAD_BIN" "$@"
/usr/bin/python3 "$ROOT/bench/report.py" "$OUT" --doc "$ROOT/docs/performance.md"
echo "suite.sh: $((SECONDS - t0)) s; results in $OUT; tables in docs/performance.md" >&2
