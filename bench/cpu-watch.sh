#!/bin/bash
# cpu-watch.sh NAME OUTFILE: while a peer-bench.sh run is going on, samples every 0.2 s the CPU
# ticks of the server under test — every process in its session, plus the children each has
# reaped (Postfix's master reaps smtpd/cleanup/smtp, Exim's daemon its per-connection forks) —
# and, when it gets SIGTERM, writes the largest total seen (ticks, CLK_TCK per second) to
# OUTFILE. NAME: postfix | exim | opensmtpd (pid file under $BENCH_ROOT/run/NAME) or carrier
# (the carrier that bench/carrier-relay-start.sh runs). The server is started after this and stopped before it ends,
# so the maximum is the CPU of the whole run. Benchmark helper, not a test.
name=$1 out=$2
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/mta-bench}
max=0 stop=0
trap 'stop=1' TERM INT
sid_of() {
  local pid
  if [ "$name" = carrier ]; then pid=$(pgrep -o -f "serve --config $BENCH_ROOT/carrier-relay" 2>/dev/null)
  else pid=$(cat "$BENCH_ROOT/run/$name/pid" 2>/dev/null); fi
  [ -n "$pid" ] && ps -o sid= -p "$pid" 2>/dev/null | tr -d ' '
}
ticks() {  # utime stime cutime cstime of every process in session $1
  local t=0 p x
  for p in $(ps -e -o pid=,sid= | awk -v s="$1" '$2 == s {print $1}'); do
    x=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || continue
    t=$((t + ${x:-0}))
  done
  echo "$t"
}
while [ "$stop" = 0 ]; do
  sid=$(sid_of)
  if [ -n "$sid" ]; then t=$(ticks "$sid"); [ "$t" -gt "$max" ] && max=$t; fi
  sleep 0.2
done
echo "$max" > "$out"
