#!/bin/bash
# idle.sh: memory cost of idle SMTP connections in carrier (benchmark, not a test).
#
#   bench/idle.sh [CONNECTIONS (1000)] [PORT (2528)]
#
# Starts carrier ($CARRIER_BIN or build/carrier) on 127.0.0.1:PORT with a temporary config
# and data dir under /var/tmp/mta-bench/carrier-idle, reads its VmRSS (/proc/PID/status),
# opens CONNECTIONS connections that each read the 220 greeting and then sit idle, waits for
# RSS to settle, reads VmRSS again and prints the delta per connection; then closes them,
# checks the server still answers, and stops it with SIGTERM. Raises the open-files limit.
# Loopback only; stops only what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARRIER_BIN=${CARRIER_BIN:-$ROOT/build/carrier}
CONNS=${1:-1000} PORT=${2:-2528}
W=/var/tmp/mta-bench/carrier-idle
[ -x "$CARRIER_BIN" ] || { echo "idle.sh: no carrier binary at $CARRIER_BIN (set CARRIER_BIN)" >&2; exit 1; }
ulimit -n $((CONNS * 2 + 1024)) || { echo "idle.sh: cannot raise the open-files limit (run as root)" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W"
cat > "$W/carrier.toml" <<EOF
[server]
hostname = "carrier.idle.invalid"
run_as_root = true
data_dir = "$W/var"
log_level = "warn"

[[listener]]
address = "127.0.0.1:$PORT"

[limits]
max_connections = $((CONNS + 100))
max_connections_per_ip = $((CONNS + 100))
EOF
"$CARRIER_BIN" serve --config "$W/carrier.toml" >"$W/stdout" 2>"$W/stderr" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$W/stdout" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" "$W/stdout" || { echo "idle.sh: carrier did not start: $(tail -3 "$W/stderr")" >&2; exit 1; }

/usr/bin/python3 - "$PID" "$PORT" "$CONNS" <<'PY'
import socket, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def status(key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0

def greet(s):
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("idle.sh: connection closed before the greeting (limit hit?)")
        buf += chunk
    if not buf.startswith(b"220"):
        raise SystemExit(f"idle.sh: greeting was {buf[:60]!r}")

# warm up: one full session, so first-use allocations are not counted per connection
w = socket.create_connection(("127.0.0.1", port), timeout=30); greet(w)
w.sendall(b"EHLO warm.invalid\r\nQUIT\r\n"); time.sleep(0.3); w.close()
time.sleep(1)
rss0, thr0 = status("VmRSS"), status("Threads")
socks = []
t0 = time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    greet(s)
    socks.append(s)
opened = time.monotonic() - t0
time.sleep(2)
rss1, thr1 = status("VmRSS"), status("Threads")
print(f"connections         {n} (opened and greeted in {opened:.2f} s)")
print(f"VmRSS before        {rss0} KiB ({thr0} threads)")
print(f"VmRSS with {n:<5}    {rss1} KiB ({thr1} threads)")
print(f"delta per connection {(rss1 - rss0) / n:.1f} KiB")
for s in socks:
    s.close()
time.sleep(1)
c = socket.create_connection(("127.0.0.1", port), timeout=30); greet(c); c.close()
print(f"VmRSS after closing {status('VmRSS')} KiB; server still answers")
PY
kill -TERM "$PID"
wait "$PID" && echo "carrier exited 0 after SIGTERM" || echo "carrier exit status $?"
trap - EXIT
