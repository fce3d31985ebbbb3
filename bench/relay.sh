#!/bin/bash
# relay.sh: end-to-end relay rate smtp-source -> MTA -> smtp-sink, carrier next to Postfix (and
# optionally Exim and OpenSMTPD) in ONE run, interleaved (benchmark, not a test; run as root
# after ../shared/bench/setup.sh; builds nothing).
#
#   bench/relay.sh [-n MSGS] [-r ROUNDS] [-p "postfix exim opensmtpd"] [-o TSV]
#
# Each round runs every peer and carrier with the same load (peer-bench.sh: 20 sessions, 4 KiB,
# one message per connection, then with -d connection reuse). carrier: $CARRIER_BIN or
# build/carrier via bench/carrier-relay-start.sh (smarthost route to the sink; spool on the
# bench disk). relay_mps (messages counted by the sink / seconds) is the headline.
set -euo pipefail
cd "$(dirname "$0")/.."
B=../shared/bench
N=6000 ROUNDS=1 PEERS="postfix" OUT=/var/tmp/mta-bench/relay.tsv
while getopts "n:r:p:o:" o; do case $o in n) N=$OPTARG;; r) ROUNDS=$OPTARG;; p) PEERS=$OPTARG;;
  o) OUT=$OPTARG;; *) exit 2;; esac; done
export CARRIER_BIN=${CARRIER_BIN:-$PWD/build/carrier}
[ -x "$CARRIER_BIN" ] || { echo "build carrier first (make build)" >&2; exit 1; }
: > "$OUT"
CPU=$OUT.cpu   # label, mode, server CPU ticks of the run (bench/cpu-watch.sh)
: > "$CPU"
# run_watched NAME LABEL MODE peer-bench args...: one peer-bench run with the server's CPU sampled
run_watched() {
  local name=$1 label=$2 mode=$3; shift 3
  local f; f=$(mktemp)
  bench/cpu-watch.sh "$name" "$f" & local w=$!
  "$@" || true
  kill -TERM "$w"; wait "$w" 2>/dev/null || true
  printf '%s\t%s\t%s\n' "$label" "$mode" "$(cat "$f" 2>/dev/null || echo 0)" >> "$CPU"
  rm -f "$f"
}
for r in $(seq "$ROUNDS"); do
  for mode in "" -d; do
    md=$([ -n "$mode" ] && echo 1 || echo 0)
    for p in $PEERS; do run_watched "$p" "$p" "$md" "$B/peer-bench.sh" -n "$N" $mode -o "$OUT" "$p"; done
    for sm in file filesystem; do
      run_watched carrier "carrier-$sm" "$md" env SYNC_MODE=$sm "$B/peer-bench.sh" -n "$N" $mode -o "$OUT" \
        -l "carrier-$sm" --target 127.0.0.1:2527 --start "SYNC_MODE=$sm exec $PWD/bench/carrier-relay-start.sh"
    done
  done
done
echo
echo "relay rate (sink-counted msgs/s); ratio = carrier / mean of postfix in the same mode;"
echo "CPU ms/msg = the server's processes (incl. reaped children) over the whole run / messages sunk:"
HZ=$(getconf CLK_TCK)
awk -F'\t' -v hz="$HZ" 'FNR==NR { cpu[$1 "|" $2 "|" (++seen[$1 "|" $2])] = $3; next }
  FNR==1 {for (i=1;i<=NF;i++) col[$i]=i; next}
  { mode = $col["reuse"]==1 ? "reuse" : "1/conn"; lab[FNR]=$col["label"]; md[FNR]=mode
    mps[FNR]=$col["relay_mps"]; pss[FNR]=$col["peak_pss_kb"]/1024; rss[FNR]=$col["peak_rss_kb"]/1024
    fl[FNR]=$col["disk_flushes"]/$col["msgs"]
    k = $col["label"] "|" $col["reuse"] "|" (++used[$col["label"] "|" $col["reuse"]])
    n = $col["sunk"] > 0 ? $col["sunk"] : 0
    cms[FNR] = (k in cpu && n > 0) ? sprintf("%.2f", 1000 * cpu[k] / hz / n) : "-"
    if ($col["label"] == "postfix" && $col["relay_mps"] ~ /^[0-9.]+$/) { ps[mode]+=$col["relay_mps"]; pn[mode]++ }
    last = FNR }
  END { printf "%-20s %-7s %10s %8s %11s %9s %9s %12s\n", "label", "mode", "msgs/s", "ratio", "CPU ms/msg", "PSS MiB", "RSS MiB", "flushes/msg"
        for (r=2; r<=last; r++) { ratio = (pn[md[r]] && mps[r] ~ /^[0-9.]+$/) ? sprintf("%.2f", mps[r]/(ps[md[r]]/pn[md[r]])) : "-"
          printf "%-20s %-7s %10s %8s %11s %9.1f %9.1f %12.2f\n", lab[r], md[r], mps[r], ratio, cms[r], pss[r], rss[r], fl[r] } }' "$CPU" "$OUT"
