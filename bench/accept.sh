#!/bin/bash
# accept.sh: accept rate and time-to-250 of carrier next to Postfix, in ONE run, interleaved
# (benchmark, not a test; run as root after ../shared/bench/setup.sh; builds nothing).
#
#   bench/accept.sh [-n MSGS] [-r ROUNDS] [-c SESSIONS] [-s BYTES] [-L LATENCY_MSGS] [-o TSV]
#
# For each round and each mode (1 message per connection, and -d: connections reused),
# Postfix (../shared/bench/peer-bench.sh postfix) and carrier get the same smtp-source load:
# MSGS messages of BYTES, SESSIONS concurrent smtp-source processes. accept msgs/s = MSGS /
# seconds until every smtp-source got its last reply (peer-bench's accept_mps column).
# carrier does not relay yet: it delivers rcpt@sink.invalid to a local Maildir, so its
# "relay" columns read INCOMPLETE; only the accept columns are compared.
# Then bench/latency.py measures time-to-250 (p50/p99) for both, again interleaved.
# carrier: $CARRIER_BIN or build/carrier, on 127.0.0.1:2527, data under
# /var/tmp/mta-bench/carrier-bench (same disk as the peers' spools). Loopback only; stops
# only what it started.
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${BENCH_KIT:-$ROOT/../shared/bench}
CARRIER_BIN=${CARRIER_BIN:-$ROOT/build/carrier}
BENCH_ROOT=/var/tmp/mta-bench
W=$BENCH_ROOT/carrier-bench
N=6000 ROUNDS=3 CONC=20 SIZE=4096 LAT_N=4000 PORT=2527 PF_PORT=2525 SINK_PORT=2526
OUT=""
while getopts "n:r:c:s:L:o:h" o; do
  case $o in
    n) N=$OPTARG;; r) ROUNDS=$OPTARG;; c) CONC=$OPTARG;; s) SIZE=$OPTARG;;
    L) LAT_N=$OPTARG;; o) OUT=$OPTARG;;
    *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "accept.sh: run as root (peer-bench starts postfix)" >&2; exit 1; }
[ -x "$CARRIER_BIN" ] || { echo "accept.sh: no carrier binary at $CARRIER_BIN (set CARRIER_BIN)" >&2; exit 1; }
[ -x /usr/sbin/smtp-source ] || { echo "accept.sh: run $KIT/setup.sh first" >&2; exit 1; }
CARRIER_BIN=$(readlink -f "$CARRIER_BIN")
mkdir -p "$W"
stamp=$(date +%Y%m%dT%H%M%S) started=$(date +%FT%T)
OUT=${OUT:-$BENCH_ROOT/accept-$stamp.tsv}
LAT_OUT=${OUT%.tsv}-latency.tsv
: > "$LAT_OUT"

# smtp-source (as peer-bench.sh runs it) sends MAIL FROM:<bench@source.invalid>,
# RCPT TO:<rcpt@sink.invalid>: make sink.invalid local and rcpt a mailbox.
CONF=$W/carrier.toml
cat > "$CONF" <<EOF
[server]
hostname = "carrier.bench.invalid"
run_as_root = true
data_dir = "$W/var"
log_level = "warn"

[[listener]]
address = "127.0.0.1:$PORT"

[limits]
max_connections = 4000
max_connections_per_ip = 4000

[local]
domains = ["localhost", "sink.invalid"]
mailboxes = ["postmaster", "rcpt"]
EOF
"$CARRIER_BIN" check-config "$CONF"

log() { printf '[%(%H:%M:%S)T] accept.sh: %s\n' -1 "$*" >&2; }
CARRIER_CMD="exec $CARRIER_BIN serve --config $CONF"

run_carrier_peerbench() {  # MODE_FLAG...
  rm -rf "$W/var"
  # -S 2: carrier relays nothing to the sink, so stop waiting for it after 2 s of no progress.
  "$KIT/peer-bench.sh" -n "$N" -c "$CONC" -s "$SIZE" -S 2 "$@" -o "$OUT" -l carrier \
    --target "127.0.0.1:$PORT" --start "$CARRIER_CMD" >/dev/null || true
  local got
  got=$(find "$W/var/mail/rcpt/new" -type f 2>/dev/null | wc -l)
  log "carrier delivered $got of $N to its Maildir"
}

for ((r = 1; r <= ROUNDS; r++)); do
  for mode in "" -d; do
    log "round $r/$ROUNDS mode ${mode:-1/conn}: postfix"
    "$KIT/peer-bench.sh" -n "$N" -c "$CONC" -s "$SIZE" $mode -o "$OUT" postfix >/dev/null || true
    log "round $r/$ROUNDS mode ${mode:-1/conn}: carrier"
    run_carrier_peerbench $mode
  done
done

# --- time-to-250 -------------------------------------------------------------------------------
SINK_PID="" CARRIER_PID="" PF_STARTED=""
cleanup() {
  [ -n "$CARRIER_PID" ] && { kill "$CARRIER_PID" 2>/dev/null || true; wait "$CARRIER_PID" 2>/dev/null || true; }
  [ -n "$PF_STARTED" ] && { "$KIT/peer.sh" stop postfix >/dev/null 2>&1 || true; }
  [ -n "$SINK_PID" ] && { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }
  CARRIER_PID="" PF_STARTED="" SINK_PID=""
}
trap cleanup EXIT
wait_port() { local i; for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

/usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 1024 >/dev/null 2>&1 &
SINK_PID=$!
wait_port "$SINK_PORT" || { log "smtp-sink did not start"; exit 1; }
header=--header
for ((r = 1; r <= ROUNDS; r++)); do
  for reuse in "" --reuse; do
    "$KIT/peer.sh" start postfix "$PF_PORT" "$SINK_PORT" >/dev/null; PF_STARTED=1
    wait_port "$PF_PORT"
    /usr/bin/python3 "$ROOT/bench/latency.py" $header --port "$PF_PORT" -n "$LAT_N" -c "$CONC" \
      -s "$SIZE" $reuse -l postfix >> "$LAT_OUT" || true
    header=""
    "$KIT/peer.sh" stop postfix >/dev/null; PF_STARTED=""
    rm -rf "$W/var"
    "$CARRIER_BIN" serve --config "$CONF" >/dev/null 2>"$W/carrier-latency.log" &
    CARRIER_PID=$!
    wait_port "$PORT"
    /usr/bin/python3 "$ROOT/bench/latency.py" --port "$PORT" -n "$LAT_N" -c "$CONC" \
      -s "$SIZE" $reuse -l carrier >> "$LAT_OUT" || true
    kill "$CARRIER_PID"; wait "$CARRIER_PID" || true; CARRIER_PID=""
  done
done
cleanup

# --- summary: medians per (label, mode) and the carrier/postfix ratio --------------------------
/usr/bin/python3 - "$OUT" "$LAT_OUT" "$started" <<'PY'
import csv, statistics, sys
acc_file, lat_file, started = sys.argv[1:4]
# only the rows of this run (the -o file may hold older ones); ISO times compare as strings
rows = [r for r in csv.DictReader(open(acc_file), delimiter="\t") if r["started"] >= started]
def med(vals):
    v = [float(x) for x in vals if x not in ("FAIL", "INCOMPLETE", "-", "")]
    return statistics.median(v) if v else float("nan")
print("\naccept rate (smtp-source, medians of the rounds in this run)")
print(f"{'label':10} {'mode':8} {'runs':>4} {'msgs/s':>8} {'range':>13} {'peak PSS MiB':>12} {'flushes/msg':>11} {'carrier/postfix':>15}")
base = {}
for mode, reuse in (("1/conn", "0"), ("reuse", "1")):
    for label in ("postfix", "carrier"):
        rs = [r for r in rows if r["label"] == label and r["reuse"] == reuse]
        if not rs:
            continue
        vals = [float(r["accept_mps"]) for r in rs if r["accept_mps"] not in ("FAIL",)]
        m = med(r["accept_mps"] for r in rs)
        pss = med(r["peak_pss_kb"] for r in rs) / 1024
        fl = med(float(r["disk_flushes"]) / float(r["msgs"]) for r in rs if r["disk_flushes"] != "-")
        if label == "postfix":
            base[mode] = m
        ratio = f"{m / base[mode]:.2f}" if label == "carrier" and base.get(mode) else "-"
        rng = f"{min(vals):.0f}-{max(vals):.0f}" if vals else "-"
        print(f"{label:10} {mode:8} {len(rs):>4} {m:>8.0f} {rng:>13} {pss:>12.1f} {fl:>11.2f} {ratio:>15}")
lat = list(csv.DictReader(open(lat_file), delimiter="\t"))
print("\ntime-to-250 (bench/latency.py, medians of the rounds)")
print(f"{'label':16} {'runs':>4} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
for label in sorted({r["label"] for r in lat}, key=lambda l: ("reuse" in l, "carrier" in l)):
    rs = [r for r in lat if r["label"] == label]
    print(f"{label:16} {len(rs):>4} {med(r['msgs_per_s'] for r in rs):>8.0f} "
          f"{med(r['p50_ms'] for r in rs):>8.2f} {med(r['p99_ms'] for r in rs):>8.2f} "
          f"{sum(int(r['failed']) for r in rs):>6}")
print(f"\nrows: {acc_file}  {lat_file}")
PY
