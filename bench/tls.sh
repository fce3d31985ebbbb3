#!/bin/bash
# tls.sh: messages per second over STARTTLS (RFC 3207), carrier next to Postfix 3.7 in ONE run,
# interleaved, same certificate, same load (benchmark, not a test; run as root after
# ../shared/bench/setup.sh). Loopback only; stops only what it started.
#
#   bench/tls.sh [-n MSGS] [-c SESSIONS] [-s BYTES] [-r ROUNDS] [-m "1conn reuse"]
#                [-k ec|rsa] [-T 1.2|1.3] [-R] [-w WARMUP] [-t LIMIT_S] [-o TSV] [-S SERVERS]
#
#   -n messages per run (2000)      -c concurrent sessions (10)   -s message bytes (4096)
#   -r rounds (1)                   -m modes: 1conn = one message per connection (a full
#   handshake each: handshake-bound), reuse = all messages of a session over one connection
#   -k server key: ec (P-256, default) or rsa (2048)   -T highest TLS version (1.3)
#   -R resume TLS sessions (tickets) in 1conn mode     -w warm-up messages per server (200)
#   -t time limit per run in s (150)  -o results file, rows appended (/var/tmp/mta-bench/tls.tsv)
#   -S servers to run ("postfix carrier")
#
# Makes a CA and a server certificate for bench.test (openssl CLI, temp dir), starts smtp-sink,
# Postfix (../shared/bench/peer.sh, then STARTTLS turned on with postconf + reload) and carrier
# ($CARRIER_BIN, default $BUILD_DIR/carrier; [[listener]] tls = "starttls", [tls] = the same
# certificate, relaying everything to the sink). The load is bench/tls_load (target
# carrier-tls-load, built here in $BUILD_DIR, default build/; or $TLS_LOAD_BIN): EHLO, STARTTLS,
# handshake (certificate verified against the CA), EHLO, MAIL, RCPT, DATA, QUIT. After each run
# it waits until the sink has counted every message, so runs never overlap.
# Columns: accept_mps = messages / seconds until the last 250 (the headline; ratio =
# carrier / postfix, medians over the rounds); relay_mps = until the sink counted them all;
# cpu_ms_per_msg = CPU of the server's processes (relaying included) per message; hs_* = client
# handshake time; msg_* = per message time (1conn: connect to 250 after the data); resumed =
# handshakes that resumed a TLS session (-R).
# Seen on 2026-11-23: over TLS 1.3 Postfix's smtpd (no TCP_NODELAY) holds its reply to the
# EHLO after the handshake behind its unacknowledged session tickets until the client's delayed
# ACK (~40 ms), so at -c 10 its 1conn rate is latency-bound (msg p50 ~45 ms, CPU half idle);
# cpu_ms_per_msg, -c 50 or -T 1.2 show the handshake cost without that stall.
# Ports: Postfix 2555, sink 2556, carrier 2557 (env PF_PORT, SINK_PORT, CARRIER_PORT).
# Postfix state lives in /var/tmp/mta-bench/tls/peer/run/postfix (its own BENCH_ROOT, so a
# concurrent peer-bench.sh run is not disturbed).
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${BENCH_KIT:-$ROOT/../shared/bench}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
CARRIER_BIN=${CARRIER_BIN:-$BUILD_DIR/carrier}
W=/var/tmp/mta-bench/tls
PF_PORT=${PF_PORT:-2555} SINK_PORT=${SINK_PORT:-2556} CARRIER_PORT=${CARRIER_PORT:-2557}
N=2000 CONC=10 SIZE=4096 ROUNDS=1 MODES="1conn reuse" KEY=ec TLS_MAX=1.3 RESUME="" WARM=200
LIMIT=150 STALL=20 OUT=/var/tmp/mta-bench/tls.tsv SERVERS="postfix carrier"
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "n:c:s:r:m:k:T:Rw:t:o:S:h" o; do
  case $o in
    n) N=$OPTARG;; c) CONC=$OPTARG;; s) SIZE=$OPTARG;; r) ROUNDS=$OPTARG;; m) MODES=$OPTARG;;
    k) KEY=$OPTARG;; T) TLS_MAX=$OPTARG;; R) RESUME=--resume;; w) WARM=$OPTARG;;
    t) LIMIT=$OPTARG;; o) OUT=$OPTARG;; S) SERVERS=$OPTARG;; *) usage;;
  esac
done
case $KEY in ec|rsa) ;; *) usage;; esac
case $TLS_MAX in 1.2|1.3) ;; *) usage;; esac
for m in $MODES; do case $m in 1conn|reuse) ;; *) usage;; esac; done
for x in $SERVERS; do case $x in postfix|carrier) ;; *) usage;; esac; done
want() { [[ " $SERVERS " == *" $1 "* ]]; }

# The kit's helpers: log, die, wait_port, port_free, stop_session (and the root check).
export BENCH_ROOT=$W/peer
. "$KIT/common.sh"
log() { printf '[%(%H:%M:%S)T] tls.sh: %s\n' -1 "$*" >&2; }
[ -x "$SMTP_SINK" ] || die "no smtp-sink: run $KIT/setup.sh first"
if want carrier; then
  [ -x "$CARRIER_BIN" ] || die "no carrier binary at $CARRIER_BIN (make build, or set CARRIER_BIN)"
  CARRIER_BIN=$(readlink -f "$CARRIER_BIN")
fi
mkdir -p "$W" "$BENCH_ROOT"
if [ -z "${TLS_LOAD_BIN:-}" ]; then
  [ -f "$BUILD_DIR/build.ninja" ] || [ -f "$BUILD_DIR/Makefile" ] ||
    die "$BUILD_DIR is not a configured build directory (make build, or set BUILD_DIR)"
  cmake --build "$BUILD_DIR" --target carrier-tls-load -j 2 >"$W/build.log" 2>&1 ||
    { tail -n 20 "$W/build.log" >&2; die "building carrier-tls-load in $BUILD_DIR failed"; }
  TLS_LOAD_BIN=$BUILD_DIR/carrier-tls-load
fi
for p in "$PF_PORT" "$SINK_PORT" "$CARRIER_PORT"; do
  port_free "$p" || die "127.0.0.1:$p is in use (set PF_PORT, SINK_PORT, CARRIER_PORT)"
done
RUN=$(date +%Y%m%dT%H%M%S)
PF_DIR=$BENCH_ROOT/run/postfix

SINK_PID="" CARRIER_PID="" PF_STARTED="" CERTS=""
cleanup() {
  if [ -n "$CARRIER_PID" ]; then stop_session "$CARRIER_PID" 15; wait "$CARRIER_PID" 2>/dev/null || true; fi
  [ -n "$PF_STARTED" ] && { "$KIT/peer.sh" stop postfix >/dev/null 2>&1 || true; }
  if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; fi
  [ -n "$CERTS" ] && rm -rf "$CERTS"
  SINK_PID="" CARRIER_PID="" PF_STARTED="" CERTS=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- (1) a CA and a server certificate for bench.test, the same for both servers ----------------
CERTS=$(mktemp -d "$W/certs.XXXXXX")
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
[ "$KEY" = rsa ] && newkey=(-newkey rsa:2048)
(
  cd "$CERTS"
  openssl req -x509 "${newkey[@]}" -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=carrier bench CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl req "${newkey[@]}" -nodes -keyout server.key -out server.csr -subj "/CN=bench.test"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:bench.test" > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem
  openssl verify -CAfile ca.pem server.pem
) >"$W/openssl.log" 2>&1 || { cat "$W/openssl.log" >&2; die "making the certificates failed"; }
chmod 600 "$CERTS/server.key" "$CERTS/ca.key"
log "certificate: CN/SAN bench.test, $([ "$KEY" = rsa ] && echo RSA 2048 || echo EC P-256), CA $CERTS/ca.pem"

load() {  # TARGET_PORT EXTRA_ARGS... -> the tls_load result line on stdout
  local port=$1; shift
  timeout "$LIMIT" "$TLS_LOAD_BIN" --target "127.0.0.1:$port" --ca "$CERTS/ca.pem" \
    --name bench.test --tls-max "$TLS_MAX" "$@"
}
# probe PORT WHAT: one message over STARTTLS, retried for up to 10 s (a reload is not instant)
probe() {
  local i
  for i in $(seq 20); do load "$1" --messages 1 --sessions 1 >/dev/null 2>"$W/probe.err" && return 0; sleep 0.5; done
  cat "$W/probe.err" >&2; die "$2 does not accept mail over STARTTLS"
}

# --- (2) the sink ------------------------------------------------------------------------------
"$SMTP_SINK" -u nobody -c "127.0.0.1:$SINK_PORT" 1024 >"$W/sink.out" 2>"$W/sink.err" &
SINK_PID=$!
wait_port "$SINK_PORT" 10 || die "smtp-sink did not start: $(cat "$W/sink.err")"
sink_count() {  # messages counted by the sink ("... mesg=N\r", rewritten on every change)
  local c; c=$(tail -c 96 "$W/sink.out" 2>/dev/null) || true
  if [[ $c =~ .*mesg=([0-9]+)$'\r' ]]; then echo "${BASH_REMATCH[1]}"; else echo 0; fi
}

# --- (3) Postfix, then STARTTLS on in that instance ----------------------------------------------
start_postfix() {
PF_PID=$("$KIT/peer.sh" start postfix "$PF_PORT" "$SINK_PORT")
PF_STARTED=1
mkdir -p "$PF_DIR/tls"
cp "$CERTS/server.pem" "$CERTS/server.key" "$PF_DIR/tls/"   # smtpd reads them as root
# peer.sh's master.cf has no tlsmgr (TLS off there); smtpd needs it for TLS.
postconf -c "$PF_DIR/etc" -M "tlsmgr/unix=tlsmgr unix - - n 1000? 1 tlsmgr"
postconf -c "$PF_DIR/etc" -e smtpd_tls_security_level=may \
  "smtpd_tls_cert_file=$PF_DIR/tls/server.pem" "smtpd_tls_key_file=$PF_DIR/tls/server.key"
postfix -c "$PF_DIR/etc" reload >/dev/null 2>&1 || die "postfix reload failed"
probe "$PF_PORT" Postfix
log "postfix (pid $PF_PID) on 127.0.0.1:$PF_PORT with STARTTLS"
}
want postfix && start_postfix

# --- (4) carrier ---------------------------------------------------------------------------------
CW=$W/carrier
start_carrier() {
rm -rf "$CW"; mkdir -p "$CW"
cat > "$CW/carrier.toml" <<EOF
[server]
hostname = "carrier.bench.invalid"
run_as_root = true
data_dir = "$CW/var"
sync_mode = "file"
delivery_threads = 32
log_level = "warn"

[[listener]]
address = "127.0.0.1:$CARRIER_PORT"
name = "smtp"
tls = "starttls"

[tls]
cert_file = "$CERTS/server.pem"
key_file = "$CERTS/server.key"

[limits]
max_connections = 4000
max_connections_per_ip = 4000

[local]
domains = ["carrier.bench.invalid"]
mailboxes = ["postmaster"]

[relay]
trusted_networks = ["127.0.0.0/8"]
smarthost = "[127.0.0.1]:$SINK_PORT"
max_per_destination = 32
EOF
"$CARRIER_BIN" check-config "$CW/carrier.toml" >"$CW/check-config.out" 2>&1 ||
  { cat "$CW/check-config.out" >&2; die "carrier check-config failed"; }
setsid "$CARRIER_BIN" serve --config "$CW/carrier.toml" </dev/null >"$CW/carrier.log" 2>&1 &
CARRIER_PID=$!
wait_port "$CARRIER_PORT" 30 || die "carrier did not listen on $CARRIER_PORT: $(tail -n 5 "$CW/carrier.log")"
probe "$CARRIER_PORT" carrier
log "carrier (pid $CARRIER_PID) on 127.0.0.1:$CARRIER_PORT with STARTTLS"
}
want carrier && start_carrier

# --- (5) the runs --------------------------------------------------------------------------------
# CPU ticks of every process in session SID, with the children each has reaped (Postfix's
# master reaps its smtpd/cleanup/smtp processes): a difference of two samples is the CPU used.
session_ticks() {
  local p t=0 x
  for p in $(session_pids "$1"); do
    x=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || continue
    t=$((t + ${x:-0}))
  done
  echo "$t"
}
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
HZ=$(getconf CLK_TCK)
HDR="run	label	mode	msgs	size	sessions	key	tls_max	resume	accept_s	accept_mps	failures	relay_s	relay_mps	cpu_ms_per_msg	cpu_busy_pct	hs_p50_ms	hs_p99_ms	msg_p50_ms	msg_p99_ms	connections	resumed	tls	cipher	group	cert	started"
[ -s "$OUT" ] || echo "$HDR" > "$OUT"

# run_one LABEL PORT SID MODE MSGS [record]
run_one() {
  local label=$1 port=$2 sid=$3 mode=$4 n=$5 record=${6:-}
  local args=(--messages "$n" --sessions "$CONC" --size "$SIZE") line rc=0 base got last moved
  [ "$mode" = reuse ] && args+=(--reuse)
  [ "$mode" = 1conn ] && [ -n "$RESUME" ] && args+=("$RESUME")
  base=$(sink_count)
  local k0 c0 i0 started t0 t1 t2 k1 c1 i1
  k0=$(session_ticks "$sid"); read -r c0 i0 < <(cpu_ticks); started=$(date +%FT%T)
  t0=$EPOCHREALTIME
  line=$(load "$port" "${args[@]}" 2>"$W/load.err") || rc=$?
  t1=$EPOCHREALTIME
  [ "$rc" = 0 ] || log "$label $mode: carrier-tls-load rc=$rc: $(head -n 3 "$W/load.err" | tr '\n' ' ')"
  local ok; ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$line"); ok=${ok:-0}
  last=-1 moved=$SECONDS
  while :; do
    got=$(( $(sink_count) - base ))
    [ "$got" -ge "$ok" ] && break
    [ "$got" != "$last" ] && { last=$got; moved=$SECONDS; }
    if [ $((SECONDS - moved)) -ge "$STALL" ]; then log "$label $mode: sink has $got of $ok"; break; fi
    sleep 0.05
  done
  t2=$EPOCHREALTIME
  k1=$(session_ticks "$sid"); read -r c1 i1 < <(cpu_ticks)
  [ -n "$record" ] || return 0
  awk -v run="$RUN" -v label="$label" -v mode="$mode" -v n="$n" -v size="$SIZE" -v conc="$CONC" \
      -v key="$KEY" -v tmax="$TLS_MAX" -v resume="$([ -n "$RESUME" ] && [ "$mode" = 1conn ] && echo 1 || echo 0)" \
      -v t0="$t0" -v t1="$t1" -v t2="$t2" -v got="$got" -v ok="$ok" -v rc="$rc" \
      -v cpu="$((k1 - k0))" -v hz="$HZ" -v ct="$((c1 - c0))" -v ci="$((i1 - i0))" \
      -v started="$started" -v line="$line" 'BEGIN {
    split(line, kv, " "); for (i in kv) { p = index(kv[i], "="); if (p) f[substr(kv[i], 1, p - 1)] = substr(kv[i], p + 1) }
    a = t1 - t0; r = t2 - t0
    acc = (rc == 0 && ok == n) ? sprintf("%.0f", n / a) : "FAIL"
    rel = (got >= n) ? sprintf("%.0f", n / r) : "INCOMPLETE"
    printf "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\t%.2f\t%s\t%d\t%.2f\t%s\t%.2f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
      run, label, mode, n, size, conc, key, tmax, resume, a, acc, n - ok, r, rel,
      ok ? 1000 * cpu / hz / ok : 0, ct ? 100 * (1 - ci / ct) : 0,
      f["hs_p50_ms"], f["hs_p99_ms"], f["msg_p50_ms"], f["msg_p99_ms"], f["connections"],
      f["resumed"], f["tls"], f["cipher"],
      f["group"], f["cert"], started }' | tee -a "$OUT" | cut -f2-3,10-20 | tr '\t' ' ' >&2
}

# peer.sh: Postfix's master leads its own session, as carrier does (setsid above)
log "warm-up: $WARM messages each"
want postfix && run_one postfix "$PF_PORT" "$PF_PID" 1conn "$WARM"
want carrier && run_one carrier "$CARRIER_PORT" "$CARRIER_PID" 1conn "$WARM"
log "$N msgs x $SIZE B, $CONC sessions, TLS <= $TLS_MAX, $KEY key${RESUME:+, resumption in 1conn}; rounds $ROUNDS, modes $MODES"
log "columns: label mode accept_s accept_mps failures relay_s relay_mps cpu_ms/msg busy% hs_p50 hs_p99 msg_p50 msg_p99"
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in $MODES; do
    want postfix && run_one postfix "$PF_PORT" "$PF_PID" "$mode" "$N" record
    want carrier && run_one carrier "$CARRIER_PORT" "$CARRIER_PID" "$mode" "$N" record
  done
done

# Problems the servers logged during the run (TLS handshake failures, crashes, ...): the most
# frequent lines, with times and pids cut off.
logged() {  # FILE REGEX
  [ -f "$1" ] || return 0
  local n; n=$(grep -ciE "$2" "$1" || true)
  echo "$1: $n line(s) matching $2"
  [ "$n" = 0 ] || grep -iE "$2" "$1" | sed -E 's/^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} //; s/\[[0-9]+\]//g; s/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+//g' |
    sort | uniq -c | sort -rn | head -n 5
}
problems=$(want postfix && logged "$PF_DIR/log/maillog" 'warning|error|fatal|panic'
           want carrier && logged "$CW/carrier.log" 'error|warn|fatal|abort|sanitizer|assert'
           if want carrier && ! is_alive "$CARRIER_PID"; then echo "carrier is no longer running!"; fi)
cleanup

# --- (6) table: medians over the rounds, carrier / postfix ---------------------------------------
/usr/bin/python3 - "$OUT" "$RUN" <<'PY'
import csv, statistics, sys
path, run = sys.argv[1:3]
rows = [r for r in csv.DictReader(open(path), delimiter="\t") if r["run"] == run]
def med(rs, col):
    v = [float(r[col]) for r in rs if r[col] not in ("FAIL", "INCOMPLETE", "-", "")]
    return statistics.median(v) if v else float("nan")
if rows:
    r0 = rows[0]
    rounds = max(sum(1 for r in rows if (r["label"], r["mode"]) == k)
                 for k in {(r["label"], r["mode"]) for r in rows})
    print(f"\nSTARTTLS: {r0['msgs']} msgs x {r0['size']} B, {r0['sessions']} sessions, "
          f"{r0['key']} key, TLS <= {r0['tls_max']}; medians of {rounds} round(s)")
    for label in ("postfix", "carrier"):
        neg = sorted({f"{r['tls']} {r['cipher']} {r['group']} cert {r['cert']}" for r in rows if r["label"] == label})
        if neg:
            print(f"  {label}: {', '.join(neg)}")
print(f"{'mode':6} {'server':8} {'msgs/s':>8} {'relay/s':>8} {'cpu ms/msg':>10} {'hs p50 ms':>9} "
      f"{'msg p50 ms':>10} {'fail':>5} {'ratio msgs/s':>12} {'ratio cpu':>9}")
for mode in ("1conn", "reuse"):
    base = base_cpu = None
    for label in ("postfix", "carrier"):
        rs = [r for r in rows if r["label"] == label and r["mode"] == mode]
        if not rs:
            continue
        m, cpu = med(rs, "accept_mps"), med(rs, "cpu_ms_per_msg")
        if label == "postfix":
            base, base_cpu = m, cpu
        ratio = f"{m / base:.2f}" if label == "carrier" and base else "-"
        ratio_cpu = f"{cpu / base_cpu:.2f}" if label == "carrier" and base_cpu else "-"
        print(f"{mode:6} {label:8} {m:>8.0f} {med(rs, 'relay_mps'):>8.0f} {cpu:>10.2f} "
              f"{med(rs, 'hs_p50_ms'):>9.2f} {med(rs, 'msg_p50_ms'):>10.2f} "
              f"{sum(int(r['failures']) for r in rs):>5} {ratio:>12} {ratio_cpu:>9}")
print("ratio msgs/s = carrier / postfix (higher: carrier faster); "
      "ratio cpu = carrier / postfix server CPU per message (lower: carrier cheaper)")
print(f"rows: {path} (run {run})")
PY
echo "$problems"
