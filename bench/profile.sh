#!/bin/bash
# profile.sh: where carrier's time goes on the relay path (benchmark helper, not a test; root;
# loopback only; stops only what it started).
#
#   bench/profile.sh [-n MSGS] [-c SESSIONS] [-k PER_CONN] [-s "perf strace malloc ctx"] [-o DIR]
#
# carrier ($CARRIER_BIN, default build/carrier) relays to smtp-sink with the same config as
# bench/suite.py's; bench/tls_load ($LOAD_BIN) sends MSGS messages of 4 KiB over SESSIONS
# sessions, PER_CONN per connection. One run per step, each with a fresh carrier and spool:
#   1. perf record -g (call graphs) on carrier for the whole load   -> DIR/perf.txt
#   2. strace -c -f on carrier for the whole load                    -> DIR/strace.txt
#      (per message: divide the calls by MSGS; strace slows carrier down, the counts stay)
#   3. bench/malloc_count.c (LD_PRELOAD) with MSGS messages and with none: the difference
#      over MSGS is the heap allocations per message                  -> DIR/malloc.txt
#   4. (only when asked: -s ctx) context switches per message, by thread name, from
#      /proc/PID/task/*/status before and after the load               -> DIR/ctx.txt
set -eu   # no pipefail: perf report | head is meant to be cut short
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARRIER_BIN=$(readlink -f "${CARRIER_BIN:-$ROOT/build/carrier}")
LOAD_BIN=$(readlink -f "${LOAD_BIN:-$ROOT/build/carrier-tls-load}")
N=5000 C=20 K=1 STEPS="perf strace malloc" OUT=/var/tmp/mta-bench/profile-$(date +%Y%m%dT%H%M%S)
while getopts "n:c:k:s:o:" o; do case $o in n) N=$OPTARG;; c) C=$OPTARG;; k) K=$OPTARG;; s) STEPS=$OPTARG;;
  o) OUT=$OPTARG;; *) sed -n '2,16p' "$0"; exit 2;; esac; done
[ "$(id -u)" = 0 ] || { echo "profile.sh: run as root" >&2; exit 1; }
W=/var/tmp/mta-bench/profile-work PORT=2537 SINK=2536
mkdir -p "$OUT" /var/tmp/mta-bench/bin
SO=/var/tmp/mta-bench/bin/malloc_count.so
gcc -O2 -Wall -shared -fPIC -o "$SO" "$ROOT/bench/malloc_count.c"

SINK_PID="" CPID=""
cleanup() {
  [ -n "$CPID" ] && { kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; }
  [ -n "$SINK_PID" ] && { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }
  CPID="" SINK_PID=""
}
trap cleanup EXIT
wait_port() { local i; for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
sink_count() { local c; c=$(tail -c 96 "$W/sink.out" 2>/dev/null) || true
  if [[ $c =~ .*mesg=([0-9]+)$'\r' ]]; then echo "${BASH_REMATCH[1]}"; else echo 0; fi; }

start() {  # start carrier (with env PRELOAD...) and the sink
  rm -rf "$W"; mkdir -p "$W"
  cat > "$W/carrier.toml" <<EOT
[server]
hostname = "carrier.bench.invalid"
run_as_root = true
data_dir = "$W/var"
sync_mode = "file"
delivery_threads = 32
log_level = "warn"
[[listener]]
address = "127.0.0.1:$PORT"
[limits]
max_connections = 4000
max_connections_per_ip = 4000
[local]
domains = ["carrier.bench.invalid"]
mailboxes = ["postmaster"]
[relay]
trusted_networks = ["127.0.0.0/8"]
smarthost = "[127.0.0.1]:$SINK"
max_per_destination = 32
EOT
  /usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$SINK" 1024 > "$W/sink.out" 2>/dev/null & SINK_PID=$!
  env "$@" "$CARRIER_BIN" serve --config "$W/carrier.toml" > "$W/stdout" 2> "$W/stderr" & CPID=$!
  wait_port "$PORT" && wait_port "$SINK"
}
load() {  # MSGS
  "$LOAD_BIN" --plain --target "127.0.0.1:$PORT" --sessions "$C" --messages "$1" --size 4096 \
    --per-conn "$K" --no-quit-wait --from bench@source.invalid --to rcpt@sink.invalid \
    --helo source.invalid
  local i; for i in $(seq 300); do [ "$(sink_count)" -ge "$1" ] && return 0; sleep 0.1; done
  echo "profile.sh: sink has $(sink_count) of $1" >&2
}
stop() { kill -TERM "$CPID"; wait "$CPID" || true; CPID=""; kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=""; }

want() { [[ " $STEPS " == *" $1 "* ]]; }
if want perf; then
echo "== perf record -g: $N msgs, $C sessions, $K per connection" | tee "$OUT/perf.txt"
start
perf record -g -o "$OUT/perf.data" -p "$CPID" 2> "$OUT/perf-record.err" & PERF=$!
sleep 0.5
load "$N" | tee -a "$OUT/perf.txt"
kill -INT "$PERF"; wait "$PERF" || true
stop
{
  echo "-- by symbol (self), top 40"
  perf report -i "$OUT/perf.data" --stdio --no-children --sort sym 2>/dev/null | grep -E '^ +[0-9]' | head -40
  echo "-- by command/thread name"
  perf report -i "$OUT/perf.data" --stdio --no-children --sort comm 2>/dev/null | grep -E '^ +[0-9]' | head -15
  echo "-- kernel vs user"
  perf report -i "$OUT/perf.data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -15
  echo "-- callers (children), top 40"
  perf report -i "$OUT/perf.data" --stdio --children --sort sym 2>/dev/null | grep -E '^ +[0-9]' | head -40
} >> "$OUT/perf.txt"
fi

if want strace; then
echo "== strace -c -f: $N msgs" | tee "$OUT/strace.txt"
start
strace -c -f -o "$OUT/strace.raw" -p "$CPID" 2>/dev/null & ST=$!
sleep 1
load "$N" | tee -a "$OUT/strace.txt"
sleep 0.5
kill -INT "$ST"; wait "$ST" || true
stop
awk -v n="$N" 'NR <= 2 { print; next } /^-/ { print; next }
  { printf "%s   per msg: %.2f\n", $0, ($4 ~ /^[0-9]+$/ ? $4 : $5) / n }' "$OUT/strace.raw" >> "$OUT/strace.txt"
fi

if want ctx; then
echo "== context switches per message, by thread name: $N msgs" | tee "$OUT/ctx.txt"
start
sleep 0.5
ctx_snapshot() {  # name voluntary nonvoluntary, summed per thread name
  for t in /proc/"$CPID"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' _ < "$t/comm")" \
      "$(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")" \
      "$(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$t/status")"
  done | awk '{v[$1] += $2; n[$1] += $3} END {for (k in v) print k, v[k], n[k]}' | sort
}
ctx_snapshot > "$W/ctx0"
load "$N" >> "$OUT/ctx.txt"
ctx_snapshot > "$W/ctx1"
stop
join "$W/ctx0" "$W/ctx1" | awk -v n="$N" '{ v = ($4 - $2) / n; w = ($5 - $3) / n; tv += v; tw += w
  printf "%-16s voluntary %6.2f  involuntary %6.2f  per msg\n", $1, v, w }
  END { printf "%-16s voluntary %6.2f  involuntary %6.2f  per msg\n", "all", tv, tw }' | tee -a "$OUT/ctx.txt"
fi

if want malloc; then
echo "== malloc_count: $N msgs vs none" | tee "$OUT/malloc.txt"
start MALLOC_COUNT_OUT="$W/../malloc-0.txt" LD_PRELOAD="$SO"
sleep 1; stop
start MALLOC_COUNT_OUT="$W/../malloc-n.txt" LD_PRELOAD="$SO"
load "$N" >> "$OUT/malloc.txt"
stop
python3 - "$N" /var/tmp/mta-bench/malloc-0.txt /var/tmp/mta-bench/malloc-n.txt >> "$OUT/malloc.txt" <<'PY'
import sys
n = int(sys.argv[1])
kv = [dict(x.split("=") for x in open(p).read().split()) for p in sys.argv[2:4]]
print(f"idle start+stop: {kv[0]}")
print(f"with {n} msgs:   {kv[1]}")
for k in ("allocs", "frees", "bytes", "reallocs"):
    print(f"{k} per message: {(int(kv[1][k]) - int(kv[0][k])) / n:.1f}")
PY
cat "$OUT/malloc.txt"
fi
echo "profile.sh: results in $OUT" >&2
