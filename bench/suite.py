#!/usr/bin/python3
"""suite.py: every benchmark scenario of issue 8, carrier next to Postfix, Exim and OpenSMTPD in
ONE run, interleaved, each run bounded in time (benchmark, not a test; run as root after
../shared/bench/setup.sh; `make bench` runs it through bench/suite.sh).

  bench/suite.py --out DIR [--carrier BIN] [--load BIN] [--only SCENARIO,...] [--quick]

Writes TSV files into DIR (runs.tsv, tls.tsv, backlog.tsv, idle.tsv, gcprobe.tsv, meta.tsv,
limits.txt); bench/report.py turns them into the tables of docs/performance.md.

How one throughput run works (run_load): a fresh smtp-sink on 127.0.0.1:2526 counts what is
relayed; the server starts fresh (peers through ../shared/bench/peer.sh, carrier with a config
written here, spool on the bench disk) inside its own cpuacct cgroup, so the CPU of every
process it forks is counted, orphans included; bench/tls_load (carrier-tls-load --plain) sends
for a fixed time with SESSIONS threads, K messages per connection, and reports time-to-250
percentiles; then the run waits until the sink (or the Maildir) has every accepted message,
bounded; peak RSS/PSS are sampled every 0.5 s over the cgroup's processes; disk flushes are
read from the block device's stat. Loopback only; stops only what it started.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = os.path.normpath(os.path.join(ROOT, "..", "shared", "bench"))
BENCH_ROOT = "/var/tmp/mta-bench"
SUITE_ROOT = f"{BENCH_ROOT}/suite"
CGROUP = "/sys/fs/cgroup/cpuacct"
PEER_PORT, SINK_PORT, CARRIER_PORT = 2525, 2526, 2527
PEERS = ("postfix", "exim", "opensmtpd")
HZ = os.sysconf("SC_CLK_TCK")

RUN_COLS = ["scenario", "label", "sessions", "size", "per_conn", "duration_s", "accepted",
            "failed", "accept_s", "accept_mps", "delivered", "deliver_s", "deliver_mps",
            "complete", "cpu_s", "cpu_s_per_1000", "peak_rss_kb", "peak_pss_kb", "peak_procs",
            "t250_p50_ms", "t250_p99_ms", "flushes_per_msg", "listen_drops", "load_avg",
            "machine_busy_pct", "server_cores", "note", "started"]


def log(msg):
    print(time.strftime("[%H:%M:%S] ") + "suite: " + msg, file=sys.stderr, flush=True)


def cpu_times():
    """(busy, total) jiffies of the whole machine."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(f) - f[3] - f[4], sum(f)


def load_avg():
    return open("/proc/loadavg").read().split()[0]


def port_open(port, host="127.0.0.1"):
    import socket
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_port(port, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if port_open(port):
            return True
        time.sleep(0.1)
    return False


def listen_drops():
    lines = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    return int(lines[1][lines[0].index("ListenDrops")])


def flush_stat_path():
    st = os.stat(BENCH_ROOT)
    p = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    if os.path.exists(p + "/partition"):
        p += "/.."
    return p + "/stat"


def disk_flushes():
    try:
        f = open(flush_stat_path()).read().split()
        return int(f[15]) if len(f) > 15 else None
    except OSError:
        return None


# --- a cpuacct cgroup per server: CPU of every process it ever had, and its live processes ------
class Cgroup:
    def __init__(self, name):
        self.path = f"{CGROUP}/mtabench-{name}-{os.getpid()}"
        os.makedirs(self.path, exist_ok=True)

    def prefix(self):
        """A shell prefix that moves the shell into this cgroup and then execs the rest."""
        return f"echo $$ > {self.path}/cgroup.procs && exec "

    def cpu_s(self):
        return int(open(f"{self.path}/cpuacct.usage").read()) / 1e9

    def pids(self):
        try:
            return [int(x) for x in open(f"{self.path}/cgroup.procs").read().split()]
        except OSError:
            return []

    def mem(self):
        """(rss_kb, pss_kb, nprocs) summed over the live processes."""
        rss = pss = n = 0
        for p in self.pids():
            try:
                for line in open(f"/proc/{p}/smaps_rollup"):
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                n += 1
            except OSError:
                pass
        return rss, pss, n

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


class MemSampler(threading.Thread):
    def __init__(self, cg):
        super().__init__(daemon=True)
        self.cg, self.stop, self.peak = cg, threading.Event(), (0, 0, 0)

    def run(self):
        while not self.stop.is_set():
            r, p, n = self.cg.mem()
            a, b, c = self.peak
            self.peak = (max(a, r), max(b, p), max(c, n))
            self.stop.wait(0.5)


# --- the sink ----------------------------------------------------------------------------------
class Sink:
    def __init__(self, port=SINK_PORT):
        self.out = f"{SUITE_ROOT}/sink.out"
        self.proc = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-c",
                                      f"127.0.0.1:{port}", "1024"],
                                     stdout=open(self.out, "wb"), stderr=subprocess.DEVNULL)
        if not wait_port(port, 10):
            raise SystemExit("smtp-sink did not start")

    def count(self):
        try:
            with open(self.out, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 96))
                m = re.findall(rb"mesg=(\d+)\r", f.read())
                return int(m[-1]) if m else 0
        except OSError:
            return 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# --- servers -----------------------------------------------------------------------------------
def sh(cmd, **kw):
    return subprocess.run(["bash", "-c", cmd], **kw)


class Peer:
    """Postfix, Exim or OpenSMTPD through ../shared/bench/peer.sh (relays to the sink)."""

    def __init__(self, name, maildir=None, postconf=()):
        self.name, self.label = name, name
        self.dir = f"{BENCH_ROOT}/run/{name}"
        self.cg = Cgroup(name)
        r = sh(self.cg.prefix() + f"{KIT}/peer.sh start {name} {PEER_PORT} {SINK_PORT}",
               capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            raise RuntimeError(f"peer.sh start {name}: {r.stderr.strip()[-300:]}")
        self.pid = int(r.stdout.split()[-1])
        self.port = PEER_PORT
        changes = list(postconf)
        if maildir:
            # Postfix's virtual(8) delivery agent: every recipient in sink.invalid to the
            # Maildir MAILDIR/rcpt/ (owned by nobody), instead of relaying to the sink.
            os.makedirs(maildir, exist_ok=True)
            shutil.chown(maildir, "nobody", "nogroup")
            nobody = sh("id -u nobody; id -g nobody", capture_output=True, text=True).stdout.split()
            sh(f"postconf -c {self.dir}/etc -M 'virtual/unix=virtual unix - n n - - virtual'")
            changes += ["virtual_mailbox_domains=sink.invalid", f"virtual_mailbox_base={maildir}",
                        "virtual_mailbox_maps=static:rcpt/", f"virtual_uid_maps=static:{nobody[0]}",
                        f"virtual_gid_maps=static:{nobody[1]}", "virtual_minimum_uid=1"]
        if changes:
            sh(f"postconf -c {self.dir}/etc -e " + " ".join(f"'{c}'" for c in changes), check=True)
            sh(f"postfix -c {self.dir}/etc reload >/dev/null 2>&1", check=True)
            time.sleep(1)
        if not wait_port(self.port, 30):
            raise RuntimeError(f"{name} does not listen")

    def stop(self):
        sh(f"{KIT}/peer.sh stop {self.name} >/dev/null 2>&1", timeout=60)
        self.cg.remove()


CARRIER_BASE = """[server]
hostname = "carrier.bench.invalid"
run_as_root = true
data_dir = "{data}"
sync_mode = "file"
delivery_threads = 32
log_level = "warn"
{server_extra}
[[listener]]
address = "127.0.0.1:{port}"
{listener_extra}
[limits]
max_connections = {maxconn}
max_connections_per_ip = {maxconn}
max_message_size = "64M"

[local]
domains = [{domains}]
mailboxes = ["postmaster", "rcpt"]

[relay]
trusted_networks = ["127.0.0.0/8"]
smarthost = "[127.0.0.1]:{sink}"
max_per_destination = 32
connect_timeout = "2s"
{tail}"""


class Carrier:
    def __init__(self, binary, maildir=False, maxconn=4000, server_extra="", tail="",
                 name="carrier", port=CARRIER_PORT, sink=SINK_PORT):
        self.label, self.port = name, port
        self.root = f"{SUITE_ROOT}/{name}"
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        domains = '"carrier.bench.invalid", "sink.invalid"' if maildir else '"carrier.bench.invalid"'
        conf = CARRIER_BASE.format(data=f"{self.root}/var", port=port, sink=sink, maxconn=maxconn,
                                   domains=domains, server_extra=server_extra, listener_extra="",
                                   tail=tail)
        open(f"{self.root}/carrier.toml", "w").write(conf)
        self.maildir = f"{self.root}/var/mail/rcpt" if maildir else None
        self.cg = Cgroup(name)
        self.proc = subprocess.Popen(
            ["bash", "-c", self.cg.prefix() + f"setsid {binary} serve --config {self.root}/carrier.toml"],
            stdout=open(f"{self.root}/stdout", "wb"), stderr=open(f"{self.root}/stderr", "wb"))
        if not wait_port(port, 30):
            raise RuntimeError("carrier does not listen: " + open(f"{self.root}/stderr").read()[-300:])
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cg.remove()


def count_dir(path):
    try:
        return sum(1 for _ in os.scandir(path))
    except OSError:
        return 0


# --- the load ----------------------------------------------------------------------------------
def load(args, port, sessions, size, per_conn, duration=0, messages=None, to="rcpt@sink.invalid",
         timeout=120, extra=()):
    cmd = [args.load, "--plain", "--target", f"127.0.0.1:{port}", "--sessions", str(sessions),
           "--size", str(size), "--per-conn", str(per_conn), "--no-quit-wait", "--timeout", "10",
           "--from", "bench@source.invalid", "--to", to, "--helo", "source.invalid", *extra]
    if duration:
        cmd += ["--duration", str(duration), "--messages", str(messages or 10_000_000)]
    else:
        cmd += ["--messages", str(messages)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + duration)
        out, err = r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        out, err = (e.stdout or b"").decode(errors="replace"), "load timed out"
    kv = dict(x.split("=", 1) for x in out.split() if "=" in x)
    if err.strip():
        log("load: " + err.strip().splitlines()[0][:200])
    return kv


def run_load(args, out, scenario, server, sessions, size, per_conn, duration, sink=None,
             note="", settle=20, stall=6, cap=None):
    """One measured run against a started server; appends a row to runs.tsv."""
    started, la = time.strftime("%Y-%m-%dT%H:%M:%S"), load_avg()
    sampler = MemSampler(server.cg)
    sampler.start()
    maildir = getattr(server, "maildir", None)
    delivered_count = (lambda: count_dir(maildir + "/new")) if maildir else sink.count
    base = 0 if maildir else sink.count()
    cpu0, fl0, d0 = server.cg.cpu_s(), disk_flushes(), listen_drops()
    m0 = cpu_times()
    t0 = time.monotonic()
    kv = load(args, server.port, sessions, size, per_conn, duration, messages=cap)
    t1 = time.monotonic()
    ok, failed = int(kv.get("ok", 0)), int(kv.get("failures", 0))
    # wait for delivery of everything accepted: bounded by `settle` s after the load and `stall`
    # s without progress
    last, moved = -1, time.monotonic()
    while True:
        got = delivered_count() - base
        now = time.monotonic()
        if got >= ok:
            break
        if got != last:
            last, moved = got, now
        if now - t1 > settle or now - moved > stall:
            break
        time.sleep(0.05)
    t2 = time.monotonic()
    cpu = server.cg.cpu_s() - cpu0
    m1 = cpu_times()
    fl1, d1 = disk_flushes(), listen_drops()
    sampler.stop.set()
    sampler.join()
    rss, pss, procs = sampler.peak
    secs = float(kv.get("seconds", t1 - t0) or (t1 - t0))
    complete = got >= ok and ok > 0
    row = {
        "scenario": scenario, "label": server.label, "sessions": sessions, "size": size,
        "per_conn": per_conn, "duration_s": duration, "accepted": ok, "failed": failed,
        "accept_s": f"{secs:.2f}", "accept_mps": f"{ok / secs:.0f}" if ok else "0",
        "delivered": got, "deliver_s": f"{t2 - t0:.2f}",
        "deliver_mps": f"{got / (t2 - t0):.0f}" if complete else "INCOMPLETE",
        "complete": int(complete), "cpu_s": f"{cpu:.2f}",
        "cpu_s_per_1000": f"{1000 * cpu / ok:.3f}" if ok else "-",
        "peak_rss_kb": rss, "peak_pss_kb": pss, "peak_procs": procs,
        "t250_p50_ms": kv.get("t250_p50_ms", "-"), "t250_p99_ms": kv.get("t250_p99_ms", "-"),
        "flushes_per_msg": f"{(fl1 - fl0) / ok:.2f}" if ok and fl0 is not None else "-",
        "listen_drops": d1 - d0, "load_avg": la, "note": note, "started": started,
        "machine_busy_pct": f"{100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]):.0f}",
        "server_cores": f"{cpu / (t2 - t0):.2f}",
    }
    append(out, "runs.tsv", RUN_COLS, row)
    log(f"{scenario} {server.label}: accepted {ok} ({row['accept_mps']}/s, {failed} failed), "
        f"delivered {got} ({row['deliver_mps']}/s), cpu {row['cpu_s_per_1000']} s/1000, "
        f"t250 p50 {row['t250_p50_ms']} p99 {row['t250_p99_ms']} ms, PSS {pss // 1024} MiB")
    return row


def append(out, name, cols, row):
    path = f"{out}/{name}"
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("\t".join(cols) + "\n")
        f.write("\t".join(str(row.get(c, "-")) for c in cols) + "\n")


def failed_row(out, scenario, label, sessions, size, per_conn, duration, note):
    append(out, "runs.tsv", RUN_COLS, {
        "scenario": scenario, "label": label, "sessions": sessions, "size": size,
        "per_conn": per_conn, "duration_s": duration, "accepted": 0, "complete": 0,
        "accept_mps": "FAIL", "deliver_mps": "FAIL", "note": note,
        "load_avg": load_avg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    log(f"{scenario} {label}: FAILED: {note}")


# --- scenarios ---------------------------------------------------------------------------------
# name, sessions, body bytes, messages per connection, load seconds, rounds. The scenarios the
# targets are judged on get several rounds of Postfix and carrier, interleaved (report.py takes
# the medians): 5 where the last runs were within ±10 % of a target (accept-1, conc-1), 3 for
# accept-100; Exim and OpenSMTPD run in the first round only.
THROUGHPUT = [
    ("accept-1", 20, 4096, 1, 8, 5),
    ("accept-100", 20, 4096, 100, 8, 3),
    ("size-100k", 20, 100 * 1024, 1, 8, 1),
    ("size-10m", 20, 10 * 1024 * 1024, 1, 10, 1),
    ("conc-1", 1, 4096, 1, 8, 5),
    ("conc-200", 200, 4096, 1, 8, 1),
]


def throughput(args, out, scenario, sessions, size, per_conn, duration, rounds=1):
    order = ["postfix", "carrier", "exim", "opensmtpd"]
    order += ["postfix", "carrier"] * (rounds - 1)
    for who in order:
        if who in PEERS and who not in args.peers:
            continue
        sink = Sink()
        srv = None
        try:
            if who == "carrier":
                srv = Carrier(args.carrier)
            else:
                # Postfix's default message_size_limit is 10240000 bytes: raised for 10 MiB.
                pc = ["message_size_limit=67108864"] if who == "postfix" and size > 10_000_000 else []
                srv = Peer(who, postconf=pc)
            note = ""
            if who == "postfix" and sessions > 100:
                note = "smtpd process limit 100: the other sessions wait in the listen queue"
            if who == "opensmtpd":
                note = "no fsync; listen backlog 5; relaying held by its per-destination limits"
            # OpenSMTPD's relaying never finishes in time (its politeness limits): wait less, and
            # cap what it queues (the next peer.sh start removes its spool, slowly on this disk)
            smtpd = who == "opensmtpd"
            # smtp-sink reads 10 MiB messages at ~110 MiB/s here (one process): what carrier
            # accepts in 10 s takes it longer than 20 s to take in.
            settle = 8 if smtpd else 60 if size > 1_000_000 else 20
            run_load(args, out, scenario, srv, sessions, size, per_conn, duration, sink=sink,
                     note=note, settle=settle, cap=5000 if smtpd else None)
        except Exception as e:  # a peer that cannot run is reported, not hidden
            failed_row(out, scenario, who, sessions, size, per_conn, duration, str(e)[:200])
        finally:
            if srv:
                srv.stop()
            sink.stop()


def maildir(args, out):
    scenario, sessions, size, per_conn, duration = "maildir", 20, 4096, 1, 8
    for who in ["postfix", "carrier"]:
        srv = None
        try:
            if who == "carrier":
                srv = Carrier(args.carrier, maildir=True)
            else:
                md = f"{SUITE_ROOT}/postfix-mail"
                shutil.rmtree(md, ignore_errors=True)
                srv = Peer("postfix", maildir=md)
                srv.maildir = f"{md}/rcpt"
            run_load(args, out, scenario, srv, sessions, size, per_conn, duration,
                     note="virtual(8) to Maildir" if who == "postfix" else "local Maildir")
        except Exception as e:
            failed_row(out, scenario, who, sessions, size, per_conn, duration, str(e)[:200])
        finally:
            if srv:
                srv.stop()
    for who in ("exim", "opensmtpd"):
        if who in args.peers:
            append(out, "runs.tsv", RUN_COLS, {
                "scenario": scenario, "label": who, "sessions": sessions, "size": size,
                "per_conn": per_conn, "duration_s": duration, "accept_mps": "NOT RUN",
                "deliver_mps": "NOT RUN", "complete": 0,
                "note": "the shared peer setup relays only (no local Maildir delivery configured)",
                "load_avg": load_avg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    shutil.rmtree(f"{SUITE_ROOT}/postfix-mail", ignore_errors=True)


def tls(args, out):
    """bench/tls.sh (Postfix and carrier: the peer setup has STARTTLS for Postfix only)."""
    env = dict(os.environ, CARRIER_BIN=args.carrier, TLS_LOAD_BIN=args.load)
    r = subprocess.run([f"{ROOT}/bench/tls.sh", "-n", str(args.tls_n), "-c", "20", "-r", "1",
                        "-w", "100", "-t", "90", "-o", f"{out}/tls.tsv"],
                       env=env, capture_output=True, text=True, timeout=400)
    log("tls.sh rc=%d: %s" % (r.returncode, r.stdout.strip().splitlines()[-2:] if r.stdout else r.stderr[-300:]))


BACKLOG_COLS = ["label", "msgs", "size", "accepted", "accept_s", "rss_start_kb",
                "rss_backlog_kb", "pss_backlog_kb", "per_msg_bytes", "drain_s", "drain_mps",
                "drained", "peak_rss_drain_kb", "rss_after_kb", "cpu_s_per_1000_drain", "note",
                "load_avg", "started"]


def backlog(args, out, who, n, size, drain=True):
    """N messages queued while the next hop (the sink's port) is down, then the sink starts and
    the queue drains. RSS before, with the backlog, while draining."""
    started, la = time.strftime("%Y-%m-%dT%H:%M:%S"), load_avg()
    srv = sink = None
    row = {"label": who, "msgs": n, "size": size, "load_avg": la, "started": started}
    try:
        if who == "carrier":
            srv = Carrier(args.carrier, name="carrier-backlog",
                          server_extra='retry_initial = "5s"\nretry_max = "20s"',
                          tail='[dns]\nupstream = "127.0.0.1@1"\n')
        else:
            srv = Peer(who)
        time.sleep(0.5)
        rss0, _, _ = srv.cg.mem()
        t0 = time.monotonic()
        kv = load(args, srv.port, 20, size, 100, messages=n, timeout=600)
        acc_s = time.monotonic() - t0
        ok = int(kv.get("ok", 0))
        time.sleep(1)
        rss1, pss1, _ = srv.cg.mem()
        row.update(accepted=ok, accept_s=f"{acc_s:.1f}", rss_start_kb=rss0, rss_backlog_kb=rss1,
                   pss_backlog_kb=pss1,
                   per_msg_bytes=f"{1024 * (rss1 - rss0) / max(ok, 1):.0f}")
        log(f"backlog {who}: {ok} of {n} x {size} B accepted in {acc_s:.1f} s, "
            f"RSS {rss0} -> {rss1} KiB")
        if drain:
            cpu0 = srv.cg.cpu_s()
            sink = Sink()
            t2 = time.monotonic()
            # both are told to retry now rather than at their next scheduled attempt
            if who == "postfix":
                sh(f"postqueue -c {BENCH_ROOT}/run/postfix/etc -f")
            else:
                sh(f"{args.carrier} queue --config {srv.root}/carrier.toml retry --all >/dev/null")
            peak, last, moved = 0, -1, t2
            while True:
                got = sink.count()
                peak = max(peak, srv.cg.mem()[0])
                now = time.monotonic()
                if got >= ok:
                    break
                if got != last:
                    last, moved = got, now
                if now - t2 > args.drain_limit or now - moved > 30:
                    break
                time.sleep(0.5)
            d = time.monotonic() - t2
            cpu = srv.cg.cpu_s() - cpu0
            row.update(drain_s=f"{d:.1f}", drained=got,
                       drain_mps=f"{got / d:.0f}" if got >= ok else "INCOMPLETE",
                       peak_rss_drain_kb=peak, rss_after_kb=srv.cg.mem()[0],
                       cpu_s_per_1000_drain=f"{1000 * cpu / max(got, 1):.3f}")
            log(f"backlog {who}: drained {got} in {d:.1f} s, peak RSS {peak} KiB")
        else:
            row.update(drain_s="-", drain_mps="-", note="accept only (RSS against body size)")
    except Exception as e:
        row["note"] = f"FAILED: {str(e)[:200]}"
        log(f"backlog {who}: {row['note']}")
    finally:
        if srv:
            srv.stop()
        if sink:
            sink.stop()
        if who == "carrier":
            shutil.rmtree(f"{SUITE_ROOT}/carrier-backlog", ignore_errors=True)
    append(out, "backlog.tsv", BACKLOG_COLS, row)


IDLE_COLS = ["label", "connections", "opened", "open_s", "rss_before_kb", "rss_after_kb",
             "pss_before_kb", "pss_after_kb", "rss_per_conn_kb", "pss_per_conn_kb", "procs_before",
             "procs_after", "threads_after", "note", "load_avg", "started"]


def idle(args, out, who, n):
    import socket
    started, la = time.strftime("%Y-%m-%dT%H:%M:%S"), load_avg()
    row = {"label": who, "connections": n, "load_avg": la, "started": started}
    srv, socks = None, []
    try:
        if who == "carrier":
            srv = Carrier(args.carrier, maxconn=n + 100, name="carrier-idle")
        else:
            srv = Peer(who)
        # warm up: one whole session, so first-use allocations are not counted per connection
        w = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        w.recv(1024)
        w.sendall(b"EHLO warm.invalid\r\nQUIT\r\n")
        time.sleep(0.5)
        w.close()
        time.sleep(1.5)
        r0, p0, n0 = srv.cg.mem()
        t0 = time.monotonic()
        opened = 0
        for i in range(n):
            s = socket.socket()
            s.settimeout(10)
            s.bind((f"127.0.0.{1 + i % 50}", 0))  # spread over 50 source addresses
            try:
                s.connect(("127.0.0.1", srv.port))
                if not s.recv(512).startswith(b"220"):
                    s.close()
                    break
            except OSError:
                s.close()
                break
            socks.append(s)
            opened += 1
        open_s = time.monotonic() - t0
        time.sleep(3)
        r1, p1, n1 = srv.cg.mem()
        threads = sum(int(l.split()[1]) for p in srv.cg.pids()
                      for l in open(f"/proc/{p}/status") if l.startswith("Threads:"))
        row.update(opened=opened, open_s=f"{open_s:.2f}", rss_before_kb=r0, rss_after_kb=r1,
                   pss_before_kb=p0, pss_after_kb=p1,
                   rss_per_conn_kb=f"{(r1 - r0) / max(opened, 1):.1f}",
                   pss_per_conn_kb=f"{(p1 - p0) / max(opened, 1):.1f}", procs_before=n0,
                   procs_after=n1, threads_after=threads)
        if opened < n:
            row["note"] = f"only {opened} of {n} greeted"
        log(f"idle {who}: {opened} connections, RSS {r0} -> {r1} KiB, PSS {p0} -> {p1} KiB")
    except Exception as e:
        row["note"] = f"FAILED: {str(e)[:200]}"
        log(f"idle {who}: {row['note']}")
    finally:
        for s in socks:
            s.close()
        if srv:
            srv.stop()
    append(out, "idle.tsv", IDLE_COLS, row)


GC_COLS = ["mode", "threads", "bytes", "ops", "ops_per_s", "avg_lat_us", "dir_fsyncs", "load_avg"]


def limits(args, out):
    r = subprocess.run([f"{KIT}/limits.sh", str(args.limit_secs)], capture_output=True, text=True,
                       timeout=600)
    open(f"{out}/limits.txt", "w").write(r.stdout + r.stderr[-2000:])
    probe = f"{BENCH_ROOT}/bin/gcprobe"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", probe, f"{ROOT}/bench/gcprobe.c"],
                   check=True)
    d = f"{BENCH_ROOT}/gcprobe"
    for threads in (1, 20, 200):
        for mode in ("new", "recycle"):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            la = load_avg()
            # bytes: a spool file of a 4 KiB message (header line, envelope, Received: line)
            r = subprocess.run([probe, d, str(threads), str(args.limit_secs), "4400", mode],
                               capture_output=True, text=True, timeout=120)
            kv = dict(x.split("=", 1) for x in r.stdout.split() if "=" in x)
            kv["load_avg"] = la
            append(out, "gcprobe.tsv", GC_COLS, kv)
            log(f"gcprobe {mode} {threads} threads: {kv.get('ops_per_s')} ops/s")
    shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--carrier", default=f"{ROOT}/build/carrier")
    ap.add_argument("--load", default=f"{ROOT}/build/carrier-tls-load")
    ap.add_argument("--peers", default="postfix,exim,opensmtpd")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--peer-backlog", type=int, default=20_000)
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--peer-idle", type=int, default=100)
    ap.add_argument("--tls-n", type=int, default=2000)
    ap.add_argument("--limit-secs", type=int, default=3)
    ap.add_argument("--drain-limit", type=int, default=240)
    args = ap.parse_args()
    args.peers = [p for p in args.peers.split(",") if p]
    args.carrier, args.load = os.path.abspath(args.carrier), os.path.abspath(args.load)
    if os.geteuid() != 0:
        raise SystemExit("suite.py: run as root")
    for b in (args.carrier, args.load):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"suite.py: no executable {b}")
    for p in (PEER_PORT, SINK_PORT, CARRIER_PORT):
        if port_open(p):
            raise SystemExit(f"suite.py: 127.0.0.1:{p} is in use")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(SUITE_ROOT, exist_ok=True)
    only = set(x for x in args.only.split(",") if x)
    want = lambda s: not only or s in only
    t_start = time.time()
    meta = [("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")), ("load_avg_start", open("/proc/loadavg").read().strip()),
            ("carrier", args.carrier),
            ("commit", subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True).stdout.strip()),
            ("cpus", str(os.cpu_count()))]
    # the source the carrier binary was built from: its build directory's CMakeCache names it;
    # a snapshot made with `git archive` holds the commit in a file .commit
    cache = os.path.join(os.path.dirname(args.carrier), "CMakeCache.txt")
    src = next((l.split("=", 1)[1].strip() for l in open(cache) if l.startswith("CMAKE_HOME_DIRECTORY:")),
               "") if os.path.exists(cache) else ""
    if src:
        c = (open(f"{src}/.commit").read().strip() if os.path.exists(f"{src}/.commit") else
             subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip())
        meta.append(("carrier_commit", c or "?"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    loads = []
    stop_loadwatch = threading.Event()

    def loadwatch():
        while not stop_loadwatch.wait(10):
            loads.append(float(load_avg()))
    threading.Thread(target=loadwatch, daemon=True).start()

    if want("limits"):
        log("machine limits (limits.sh, gcprobe)")
        limits(args, out=args.out)
    for sc in THROUGHPUT:
        if want(sc[0]):
            log(f"scenario {sc[0]}")
            throughput(args, args.out, *sc)
    if want("maildir"):
        log("scenario maildir")
        maildir(args, args.out)
    if want("tls"):
        log("scenario tls")
        tls(args, args.out)
    if want("backlog"):
        log("scenario backlog")
        backlog(args, args.out, "carrier", args.backlog, 4096)
        backlog(args, args.out, "carrier", args.backlog // 10, 100 * 1024, drain=False)
        if "postfix" in args.peers:
            backlog(args, args.out, "postfix", args.peer_backlog, 4096)
    if want("idle"):
        log("scenario idle")
        idle(args, args.out, "carrier", args.idle)
        idle(args, args.out, "carrier", args.peer_idle)
        for p in args.peers:
            idle(args, args.out, p, args.peer_idle)
    stop_loadwatch.set()
    meta += [("finished", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
             ("total_s", f"{time.time() - t_start:.0f}"),
             ("load_avg_end", open("/proc/loadavg").read().strip()),
             ("load_avg_mean", f"{sum(loads) / len(loads):.1f}" if loads else "-"),
             ("load_avg_max", f"{max(loads):.1f}" if loads else "-")]
    with open(f"{args.out}/meta.tsv", "a") as f:
        for k, v in meta:
            f.write(f"{k}\t{v}\n")
    log(f"done in {time.time() - t_start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
