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
for r in $(seq "$ROUNDS"); do
  for mode in "" -d; do
    for p in $PEERS; do "$B/peer-bench.sh" -n "$N" $mode -o "$OUT" "$p" || true; done
    for sm in file filesystem; do
      SYNC_MODE=$sm "$B/peer-bench.sh" -n "$N" $mode -o "$OUT" -l "carrier-$sm" --target 127.0.0.1:2527 \
        --start "SYNC_MODE=$sm exec $PWD/bench/carrier-relay-start.sh" || true
    done
  done
done
echo
echo "relay rate (sink-counted msgs/s); ratio = carrier / mean of postfix in the same mode:"
awk -F'\t' 'NR==1 {for (i=1;i<=NF;i++) col[$i]=i; next}
  { mode = $col["reuse"]==1 ? "reuse" : "1/conn"; lab[NR]=$col["label"]; md[NR]=mode
    mps[NR]=$col["relay_mps"]; pss[NR]=$col["peak_pss_kb"]/1024; fl[NR]=$col["disk_flushes"]/$col["msgs"]
    if ($col["label"] == "postfix" && $col["relay_mps"] ~ /^[0-9.]+$/) { ps[mode]+=$col["relay_mps"]; pn[mode]++ } }
  END { printf "%-20s %-7s %10s %8s %12s %12s\n", "label", "mode", "msgs/s", "ratio", "PSS MiB", "flushes/msg"
        for (r=2; r<=NR; r++) { ratio = (pn[md[r]] && mps[r] ~ /^[0-9.]+$/) ? sprintf("%.2f", mps[r]/(ps[md[r]]/pn[md[r]])) : "-"
          printf "%-20s %-7s %10s %8s %12.1f %12.2f\n", lab[r], md[r], mps[r], ratio, pss[r], fl[r] } }' "$OUT"
