#!/bin/bash
# backlog.sh: a backlog of N messages (default 100000) queued while the next hop is down, then
# drained when it comes up; carrier's RSS before, while queued, while draining and after, and
# the drain time. (Benchmark, not a test; root; loopback only; stops what it started.)
#
#   bench/backlog.sh [-n MSGS] [-s BODY_BYTES]
#
# carrier relays everything to 127.0.0.1:2536 (smarthost); nothing listens there at first, so
# every message is deferred (retry 5 s doubling to 20 s). Then smtp-sink starts there and the
# queue drains. RSS must not grow with the bytes queued: bodies stay on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
N=100000 SIZE=4096
while getopts "n:s:" o; do case $o in n) N=$OPTARG;; s) SIZE=$OPTARG;; *) exit 2;; esac; done
BIN=${CARRIER_BIN:-$PWD/build/carrier}
root=/var/tmp/mta-bench/carrier-backlog
rm -rf "$root"; mkdir -p "$root"
cat > "$root/carrier.toml" <<EOT
[server]
hostname = "carrier.backlog.invalid"
run_as_root = true
data_dir = "$root/var"
log_level = "warn"
delivery_threads = 32
retry_initial = "5s"
retry_max = "20s"
[[listener]]
address = "127.0.0.1:2535"
[local]
domains = ["carrier.backlog.invalid"]
mailboxes = ["postmaster"]
[relay]
trusted_networks = ["127.0.0.0/8"]
smarthost = "[127.0.0.1]:2536"
max_per_destination = 32
connect_timeout = "2s"
[dns]
upstream = "127.0.0.1@1"
EOT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
queued() { find "$root/var/spool/queue" -type f | wc -l; }
"$BIN" serve --config "$root/carrier.toml" > "$root/out" 2> "$root/err" & P=$!
SINK=""
trap 'kill $P 2>/dev/null || true; [ -n "$SINK" ] && kill $SINK 2>/dev/null || true' EXIT
for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/2535) 2>/dev/null && break; sleep 0.1; done
echo "rss_kb start: $(rss $P)"
T0=$(date +%s.%N)
for i in $(seq 20); do timeout 900 /usr/sbin/smtp-source -s 1 -m $((N/20)) -l "$SIZE" -f bench@source.invalid -t rcpt@sink.invalid 127.0.0.1:2535 & done
wait $(jobs -p | grep -v "^$P$") 2>/dev/null || true
T1=$(date +%s.%N)
echo "accepted $N in $(echo "$T1 - $T0" | bc) s; queued now: $(queued); rss_kb with backlog: $(rss $P)"
/usr/sbin/smtp-sink -u nobody -c 127.0.0.1:2536 2000 > "$root/sink.out" 2>&1 & SINK=$!
T2=$(date +%s.%N); peak=0
while :; do
  q=$(queued); r=$(rss $P); [ "$r" -gt "$peak" ] && peak=$r
  [ "$q" -eq 0 ] && break
  if [ "$(echo "$(date +%s.%N) - $T2 > 900" | bc)" = 1 ]; then echo "not drained after 900 s: $q left"; exit 1; fi
  sleep 1
done
T3=$(date +%s.%N)
echo "drained in $(echo "$T3 - $T2" | bc) s; peak rss_kb while draining: $peak; rss_kb after: $(rss $P)"
