#!/usr/bin/python3
"""latency.py: time-to-250 of an SMTP server under load (benchmark, not a test).

THREADS client threads (raw sockets, no smtplib) send N messages of SIZE body bytes to
HOST:PORT; for each message the time from sending the final "\\r\\n.\\r\\n" to reading the
complete 250 reply is recorded (the server's "I have it on disk" latency). By default one
message per connection (connect, EHLO, MAIL, RCPT, DATA, QUIT), with --reuse one connection
per thread for all its messages (RSET between). Prints one tab-separated line:
  label  msgs  ok  failed  wall_s  msgs_per_s  p50_ms  p90_ms  p99_ms  max_ms
Only talks to 127.x.x.x. Handles replies from the server under test (untrusted): any
unexpected reply counts the message as failed, never crashes the run.
"""
import argparse
import socket
import statistics
import sys
import threading
import time


class Failed(Exception):
    pass


def read_reply(sock: socket.socket, buf: bytearray) -> int:
    """Reads one (possibly multi-line) reply; returns its code."""
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise Failed("connection closed")
            buf += chunk
        i = buf.index(b"\r\n")
        line = bytes(buf[:i])
        del buf[:i + 2]
        if len(line) < 3 or not line[:3].isdigit():
            raise Failed(f"bad reply line {line[:80]!r}")
        if len(line) == 3 or line[3:4] == b" ":
            return int(line[:3])


def expect(sock, buf, code: int) -> None:
    got = read_reply(sock, buf)
    if got != code:
        raise Failed(f"expected {code}, got {got}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", "--messages", type=int, default=4000)
    ap.add_argument("-c", "--threads", type=int, default=20)
    ap.add_argument("-s", "--size", type=int, default=4096, help="body bytes")
    ap.add_argument("--reuse", action="store_true", help="one connection per thread")
    ap.add_argument("--from", dest="sender", default="bench@source.invalid")
    ap.add_argument("--to", dest="rcpt", default="rcpt@sink.invalid")
    ap.add_argument("-l", "--label", default="server")
    ap.add_argument("--header", action="store_true", help="print the column names first")
    a = ap.parse_args()
    if not a.host.startswith("127."):
        print("latency.py: loopback (127.x.x.x) only", file=sys.stderr)
        return 2

    line = b"x" * 70 + b"\r\n"
    body = (line * (a.size // len(line) + 1))[:a.size]
    if not body.endswith(b"\r\n"):
        body = body[:-2] + b"\r\n"
    message = (f"From: <{a.sender}>\r\nTo: <{a.rcpt}>\r\nSubject: latency\r\n\r\n").encode() + body
    envelope = (f"MAIL FROM:<{a.sender}>\r\nRCPT TO:<{a.rcpt}>\r\nDATA\r\n").encode()

    lat: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    per_thread = [a.messages // a.threads + (1 if i < a.messages % a.threads else 0)
                  for i in range(a.threads)]

    def connect():
        s = socket.create_connection((a.host, a.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        expect(s, buf, 220)
        s.sendall(b"EHLO latency.client.invalid\r\n")
        expect(s, buf, 250)
        return s, buf

    def one(s, buf) -> float:
        # MAIL, RCPT, DATA one by one (as smtp-source does, no pipelining)
        for cmd, code in zip(envelope.split(b"\r\n")[:3], (250, 250, 354)):
            s.sendall(cmd + b"\r\n")
            expect(s, buf, code)
        s.sendall(message)               # message ends with CRLF; the terminator completes it
        t0 = time.perf_counter()
        s.sendall(b".\r\n")              # so "\r\n.\r\n" is complete with this write
        expect(s, buf, 250)
        return time.perf_counter() - t0

    def worker(count: int) -> None:
        s = buf = None
        mine: list[float] = []
        errs: list[str] = []
        for _ in range(count):
            try:
                if s is None:
                    s, buf = connect()
                mine.append(one(s, buf))
                if a.reuse:
                    s.sendall(b"RSET\r\n")
                    expect(s, buf, 250)
                else:
                    s.sendall(b"QUIT\r\n")
                    try:
                        expect(s, buf, 221)
                    except (Failed, OSError):
                        pass
                    s.close()
                    s = None
            except (Failed, OSError) as e:
                errs.append(str(e))
                if s is not None:
                    s.close()
                s = None
        if s is not None:
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            s.close()
        with lock:
            lat.extend(mine)
            failures.extend(errs)

    threads = [threading.Thread(target=worker, args=(c,)) for c in per_thread]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    def pct(p: float) -> float:
        if not lat:
            return float("nan")
        s = sorted(lat)
        return 1000 * s[min(len(s) - 1, int(p / 100 * len(s)))]

    if a.header:
        print("label\tmsgs\tok\tfailed\twall_s\tmsgs_per_s\tp50_ms\tp90_ms\tp99_ms\tmax_ms")
    med = 1000 * statistics.median(lat) if lat else float("nan")
    print(f"{a.label}{'/reuse' if a.reuse else ''}\t{a.messages}\t{len(lat)}\t{len(failures)}\t"
          f"{wall:.2f}\t{len(lat) / wall:.0f}\t{med:.2f}\t{pct(90):.2f}\t{pct(99):.2f}\t"
          f"{pct(100):.2f}")
    if failures:
        print(f"latency.py: {len(failures)} failures, first: {failures[0]}", file=sys.stderr)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
