"""Helpers for the relay end-to-end tests (tests/e2e/test_relay.py): real peers on 127.0.0.0/8.

- free_port(): one TCP port that is free on several loopback addresses at once (three carrier
  instances on 127.0.0.2/.3/.4 share one port, as MTAs on different hosts share port 25).
- Unbound: a real authoritative-only Unbound on 127.0.0.1 (../shared/peers/unbound.sh) that
  serves the test zone carrier's resolver forwards to.
- SmtpPeer: a tiny SMTP server on raw sockets (RFC 5321 4.1, 4.2, 4.5.2) whose replies are
  scripted per connection: 4xx/5xx to RCPT, a dropped connection in the middle of DATA, down
  and up again. It records every transaction it saw.
- Postfix: the isolated Postfix of ../shared/bench/peer.sh, in a private BENCH_ROOT so it never
  touches a benchmark's instance.
- RelayCarrier / carrier_sections(): carrier listening on any 127.x address with the relay
  configuration ([relay], [[route]], [dns]).
- trace_fields(), parse_dsn(): split a Maildir file into its leading header fields; read an
  RFC 3464 delivery status notification with Python's email package.
Handles only data produced by carrier, the peers or the tests themselves; every wait is bounded.
"""
from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Callable

from conftest import CARRIER_BIN, REPO, Carrier, default_sections
from helpers import wait_for

SHARED = Path(os.environ.get("CARRIER_SHARED_DIR", REPO.parent / "shared"))
UNBOUND_SH = SHARED / "peers" / "unbound.sh"
PEER_SH = SHARED / "bench" / "peer.sh"

LISTEN_ANY_RE = re.compile(
    r"^carrier: listening on (127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d+) \((\w+)\)$", re.M)


# --- ports -----------------------------------------------------------------------------------

def _bindable(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(hosts: tuple[str, ...] = ("127.0.0.1",), udp: bool = False,
              avoid: tuple[int, ...] = ()) -> int:
    """A port that can be bound (TCP, and UDP too when `udp`) on every one of `hosts`."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if port in avoid:
            continue
        if all(_bindable(h, port, socket.SOCK_STREAM) for h in hosts) and (
                not udp or all(_bindable(h, port, socket.SOCK_DGRAM) for h in hosts)):
            return port
    raise AssertionError(f"no port free on all of {hosts}")


def port_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- Unbound -----------------------------------------------------------------------------------

class Unbound:
    """../shared/peers/unbound.sh start DIR PORT ZONEFILE on 127.0.0.1 (UDP + TCP)."""

    def __init__(self, workdir: Path, zone: str):
        self.dir = workdir
        self.zone_file = workdir / "zone.txt"
        self.zone_file.write_text(zone)
        self.port = 0
        self.pid = 0

    def start(self) -> "Unbound":
        assert UNBOUND_SH.exists(), f"{UNBOUND_SH} not found (set CARRIER_SHARED_DIR)"
        for _ in range(3):
            self.port = free_port(("127.0.0.1",), udp=True)
            p = subprocess.run([str(UNBOUND_SH), "start", str(self.dir), str(self.port),
                                str(self.zone_file)], capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
            if p.returncode == 0:
                line = p.stdout.strip().splitlines()[-1]
                kv = dict(x.split("=", 1) for x in line.split()[2:])
                self.pid = int(kv["pid"])
                assert int(kv["port"]) == self.port, line
                return self
            if "already in use" not in p.stderr:  # lost a race for the port: try another
                break
        raise AssertionError(f"unbound.sh start failed ({p.returncode}):\n{p.stderr}")

    @property
    def upstream(self) -> str:
        return f"127.0.0.1@{self.port}"

    def log(self) -> str:
        f = self.dir / "unbound.log"
        return f.read_text(errors="replace") if f.exists() else ""

    def stop(self) -> None:
        subprocess.run([str(UNBOUND_SH), "stop", str(self.dir)], capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL, check=True)


# --- a scripted SMTP peer ------------------------------------------------------------------

@dataclass
class Transaction:
    """One mail transaction the peer saw (from MAIL to the end of DATA, or to the drop)."""
    number: int                        # 1-based: the peer's n-th MAIL command
    conn: int                          # 1-based connection number since the peer was created
    helo: str
    mail_from: str                     # the reverse-path without <>
    mail_params: list[str]
    rcpts: list[tuple[str, int]] = field(default_factory=list)  # (address, reply code)
    rcpt_params: dict[str, list[str]] = field(default_factory=dict)  # address -> parameters
    data: bytes | None = None          # dot-unstuffed, CRLF line ends, without the final "."
    data_code: int = 0                 # the reply given to the end of data (0: none)
    dropped: bool = False              # the peer closed the connection during DATA

    @property
    def accepted(self) -> list[str]:
        return [a for a, c in self.rcpts if c // 100 == 2]

    @property
    def delivered(self) -> bool:
        return self.data is not None and self.data_code // 100 == 2


class SmtpPeer:
    """A minimal SMTP server (RFC 5321) on raw sockets, one thread per connection.

    Behaviour hooks (replace the attributes). `n` counts transactions (MAIL commands) from 1
    over the peer's whole life, whatever the connection (clients may reuse one):
      mail_reply(n, reverse_path) -> reply line for MAIL (a non-2xx ends the transaction)
      rcpt_reply(n, address) -> reply line, e.g. "451 4.3.0 try later"
      data_reply(n, txn) -> reply line for the end of data
      drop_in_data(n) -> True: close the connection (RST) after the first DATA bytes
    Every reply is one line "NNN text"; EHLO advertises `keywords`.
    """

    MAX_DATA = 64 * 1024 * 1024
    MAX_LINE = 4096

    def __init__(self, host: str = "127.0.0.5", port: int = 0, name: str = "peer.test",
                 keywords: tuple[str, ...] = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                                              "SIZE 67108864", "SMTPUTF8")):
        self.host = host
        self.port = port or free_port((host,))
        self.name = name
        self.keywords = keywords
        self.mail_reply: Callable[[int, str], str] = lambda n, path: "250 2.1.0 OK"
        self.rcpt_reply: Callable[[int, str], str] = lambda n, addr: "250 2.1.5 OK"
        self.data_reply: Callable[[int, Transaction], str] = (
            lambda conn, txn: "250 2.0.0 OK accepted")
        self.drop_in_data: Callable[[int], bool] = lambda conn: False
        self.greeting = f"220 {name} ESMTP test peer"  # e.g. "554 5.3.2 go away": then QUIT only
        self.lock = threading.Lock()
        self.transactions: list[Transaction] = []
        self.connections = 0
        self.errors: list[str] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "SmtpPeer":
        assert self._listener is None, "already running"
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port))
        ls.listen(64)
        ls.settimeout(0.1)
        self._listener = ls
        self._stop.clear()
        t = threading.Thread(target=self._accept_loop, args=(ls,), daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stops listening and closes every open connection (the peer goes down)."""
        self._stop.set()
        ls, self._listener = self._listener, None
        if ls is not None:
            ls.close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def running(self) -> bool:
        return self._listener is not None

    # -- observation -------------------------------------------------------------------------
    def snapshot(self) -> list[Transaction]:
        with self.lock:
            return list(self.transactions)

    def delivered(self) -> list[Transaction]:
        return [t for t in self.snapshot() if t.delivered]

    def wait_delivered(self, n: int, timeout: float = 15.0) -> list[Transaction]:
        wait_for(lambda: len(self.delivered()) >= n, timeout,
                 what=f"{n} delivered transaction(s) at the peer {self.host}:{self.port}"
                      f" (saw {self.snapshot()})")
        return self.delivered()

    # -- server ------------------------------------------------------------------------------
    def _accept_loop(self, ls: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, n), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, n: int) -> None:
        try:
            conn.settimeout(30)
            self._dialogue(conn, n)
        except (OSError, ConnectionError):
            pass
        except Exception as e:  # noqa: BLE001 - a bug in the peer must show in the test
            with self.lock:
                self.errors.append(f"connection {n}: {e!r}")
        finally:
            with self.lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _dialogue(self, conn: socket.socket, n: int) -> None:
        buf = bytearray()

        def line() -> bytes | None:
            while b"\r\n" not in buf:
                if len(buf) > self.MAX_LINE:
                    raise ValueError(f"command line longer than {self.MAX_LINE}")
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                buf.extend(chunk)
            i = buf.index(b"\r\n")
            ln = bytes(buf[:i])
            del buf[:i + 2]
            return ln

        def say(reply: str) -> None:
            conn.sendall(reply.encode() + b"\r\n")

        say(self.greeting)
        refused = not self.greeting.startswith("220")
        helo = ""
        txn: Transaction | None = None
        while True:
            raw = line()
            if raw is None:
                return
            text = raw.decode("utf-8", "replace")
            verb = text.split(" ", 1)[0].upper()
            arg = text[len(verb):].strip()
            if refused and verb != "QUIT":  # RFC 5321 3.1: after a 554 greeting only QUIT
                say("503 5.5.1 no service")
                continue
            if verb == "EHLO":
                helo = arg
                txn = None
                lines = [self.name] + list(self.keywords)
                say("\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}"
                    if len(lines) > 1 else f"250 {lines[0]}")
            elif verb == "HELO":
                helo, txn = arg, None
                say(f"250 {self.name}")
            elif verb == "MAIL":
                m = re.match(r"(?i)FROM:<([^>]*)>(.*)$", arg)
                if not m:
                    say("501 5.5.4 syntax")
                    continue
                with self.lock:
                    txn = Transaction(len(self.transactions) + 1, n, helo, m.group(1),
                                      m.group(2).split())
                    self.transactions.append(txn)
                reply = self.mail_reply(txn.number, txn.mail_from)
                if not reply.startswith("2"):
                    txn = None
                say(reply)
            elif verb == "RCPT":
                m = re.match(r"(?i)TO:<([^>]*)>(.*)$", arg)
                if txn is None or not m:
                    say("503 5.5.1 need MAIL" if txn is None else "501 5.5.4 syntax")
                    continue
                reply = self.rcpt_reply(txn.number, m.group(1))
                with self.lock:
                    txn.rcpts.append((m.group(1), int(reply[:3])))
                    txn.rcpt_params[m.group(1)] = m.group(2).split()
                say(reply)
            elif verb == "DATA":
                if txn is None or not txn.accepted:
                    say("554 5.5.1 no valid recipients" if txn else "503 5.5.1 need MAIL")
                    continue
                say("354 go ahead")
                if self.drop_in_data(txn.number):
                    while not buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf.extend(chunk)
                    with self.lock:
                        txn.dropped = True
                    # RST: the client sees the connection die in the middle of its data
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                data = self._read_data(conn, buf)
                if data is None:
                    return
                reply = self.data_reply(txn.number, txn)
                with self.lock:
                    txn.data = data
                    txn.data_code = int(reply[:3])
                say(reply)
                txn = None
            elif verb == "RSET":
                txn = None
                say("250 2.0.0 OK")
            elif verb == "NOOP":
                say("250 2.0.0 OK")
            elif verb == "QUIT":
                say("221 2.0.0 bye")
                return
            else:
                say("502 5.5.2 not implemented")

    def _read_data(self, conn: socket.socket, buf: bytearray) -> bytes | None:
        """Reads up to CRLF.CRLF (RFC 5321 4.1.1.4) and undoes dot-stuffing (4.5.2)."""
        while True:
            if buf.startswith(b".\r\n"):
                end, body = 0, b""
                break
            i = buf.find(b"\r\n.\r\n")
            if i >= 0:
                end, body = i + 2, bytes(buf[:i + 2])
                break
            if len(buf) > self.MAX_DATA:
                raise ValueError("message too large for the test peer")
            chunk = conn.recv(1 << 20)
            if not chunk:
                return None
            buf.extend(chunk)
        del buf[:end + 3]
        lines = body.split(b"\r\n")
        return b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)


# --- Postfix (../shared/bench/peer.sh) -------------------------------------------------------

class Postfix:
    """An isolated Postfix on 127.0.0.1:port that relays everything to [127.0.0.1]:sink_port
    (no DNS), started by peer.sh with its own BENCH_ROOT (a 0755 dir, as Postfix's unprivileged
    processes must reach their queue)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="carrier-e2e-postfix-", dir="/var/tmp"))
        self.root.chmod(0o755)
        self.port = free_port(("127.0.0.1",))
        self.sink_port = free_port(("127.0.0.1",), avoid=(self.port,))
        self.pid = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, BENCH_ROOT=str(self.root))
        return subprocess.run([str(PEER_SH), *args], capture_output=True, text=True, env=env,
                              timeout=120, stdin=subprocess.DEVNULL)

    def start(self) -> "Postfix":
        assert PEER_SH.exists(), f"{PEER_SH} not found (set CARRIER_SHARED_DIR)"
        assert shutil.which("postfix"), "postfix is not installed (scripts/install-deps)"
        p = self._run("start", "postfix", str(self.port), str(self.sink_port))
        assert p.returncode == 0, f"peer.sh start postfix failed:\n{p.stderr}"
        self.pid = int(p.stdout.strip().splitlines()[-1])
        return self

    def maillog(self) -> str:
        f = self.root / "run" / "postfix" / "log" / "maillog"
        return f.read_text(errors="replace") if f.exists() else ""

    def stop(self) -> None:
        p = self._run("stop", "postfix")
        assert p.returncode == 0, f"peer.sh stop postfix failed:\n{p.stderr}"
        shutil.rmtree(self.root, ignore_errors=True)


# --- carrier on any loopback address -------------------------------------------------------

class RelayCarrier(Carrier):
    """carrier whose listener may be on any 127.x address (the base class expects 127.0.0.1)."""

    listen_re = LISTEN_ANY_RE

    def all_messages(self) -> dict[str, list[bytes]]:
        """Every file in every Maildir new/ and cur/: {mailbox: [contents]}."""
        out: dict[str, list[bytes]] = {}
        root = self.data_dir / "mail"
        if root.is_dir():
            for box in sorted(root.iterdir()):
                files = [p for sub in ("new", "cur") if (box / sub).is_dir()
                         for p in sorted((box / sub).iterdir())]
                if files:
                    out[box.name] = [p.read_bytes() for p in files]
        return out


def carrier_sections(data_dir: Path, *, hostname: str, listen: str, relay_port: int,
                     dns_upstream: str, domains: list[str], mailboxes: list[str],
                     trusted: list[str] | None = None, routes: list[dict] | None = None,
                     server: dict | None = None, relay: dict | None = None,
                     limits: dict | None = None) -> dict:
    """A complete config for one relay test instance. `routes` become [[route]] tables."""
    base = default_sections(data_dir)
    sections: dict = {
        "server": {"hostname": hostname, "data_dir": str(data_dir), "log_format": "text",
                   "log_level": "debug", "retry_initial": "1s", "retry_max": "2s",
                   "run_as_root": True},
        "listener": [{"address": listen}],
        "limits": base["limits"],
        "local": {"domains": domains, "mailboxes": mailboxes},
        "relay": {"trusted_networks": trusted if trusted is not None else ["127.0.0.0/8"],
                  "port": relay_port, "connect_timeout": "5s"},
        "dns": {"upstream": dns_upstream, "ipv6": False},
    }
    sections["server"].update(server or {})
    sections["relay"].update(relay or {})
    sections["limits"] = dict(sections["limits"], **(limits or {}))
    if routes:
        sections["route"] = routes
    return sections


# --- reading what arrived --------------------------------------------------------------------

def header_fields(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Splits a message (LF or CRLF) into its header fields [(name, value unfolded)] and the
    rest, which starts with the empty line. Continuation lines are joined with one space."""
    fields: list[tuple[str, str]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        ln = data[pos:end].rstrip(b"\r\n")
        if ln == b"":
            break
        if ln[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + ln.decode("utf-8", "replace").strip())
        else:
            name, sep, value = ln.decode("utf-8", "replace").partition(":")
            assert sep, f"not a header field: {ln!r}"
            fields.append((name, value.strip()))
        pos = end
    return fields, data[pos:]


def leading_trace(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """The trace fields at the top of a delivered message (Return-Path, Delivered-To,
    Received, in file order) and the bytes after them, unchanged."""
    fields: list[tuple[str, str]] = []
    pos = 0
    trace = ("return-path", "delivered-to", "received")
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        ln = data[pos:end]
        if ln[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + ln.decode("utf-8", "replace").strip())
        else:
            name, sep, value = ln.decode("utf-8", "replace").partition(":")
            if not sep or name.lower() not in trace:
                break
            fields.append((name, value.strip()))
        pos = end
    return fields, data[pos:]


def received_by(value: str) -> str:
    m = re.search(r"\bby ([^\s;()]+)", value)
    assert m, f"Received: without a 'by' clause (RFC 5321 4.4): {value!r}"
    return m.group(1)


def received_from(value: str) -> str:
    m = re.match(r"from ([^\s;()]+)", value)
    assert m, f"Received: without a 'from' clause (RFC 5321 4.4): {value!r}"
    return m.group(1)


@dataclass
class Dsn:
    message: Message                    # the whole DSN (email.policy.default)
    per_message: Message                # the per-message fields block
    recipients: list[Message]           # one block per recipient
    returned: Message | None            # the third part (the returned message or headers)

    def for_rcpt(self, address: str) -> Message:
        for r in self.recipients:
            if r["Final-Recipient"].split(";", 1)[1].strip().lower() == address.lower():
                return r
        raise AssertionError(f"no per-recipient block for {address} in "
                             f"{[r['Final-Recipient'] for r in self.recipients]}")


def parse_dsn(data: bytes, is_global: bool = False) -> Dsn:
    """Checks the RFC 6522 / RFC 3464 structure of a DSN and returns its parts: a
    multipart/report with report-type=delivery-status whose second part is
    message/delivery-status (a per-message block then at least one per-recipient block);
    `is_global`: the RFC 6533 forms global-delivery-status / message/global-delivery-status."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", (
        f"a DSN is a multipart/report (RFC 6522 3), got {msg.get_content_type()}")
    kind = "global-delivery-status" if is_global else "delivery-status"
    assert msg.get_param("report-type") == kind, (
        f"report-type must be {kind} (RFC 3464 2, RFC 6533 6), got {msg.get_param('report-type')}")
    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) in (2, 3), f"{len(parts)} parts"
    assert parts[0].get_content_maintype() == "text", "first part is human-readable text"
    status = parts[1]
    assert status.get_content_type() == f"message/{kind}", status.get_content_type()
    blocks = status.get_payload()
    if is_global:  # Python knows only message/delivery-status: read the part's raw text
        blocks = [email.message_from_string(b + "\n", policy=email.policy.default)
                  for b in _raw_part(data, msg.get_boundary(), 1).split("\n\n") if b.strip()]
    assert isinstance(blocks, list) and len(blocks) >= 2, (
        f"delivery-status needs a per-message and >= 1 per-recipient block (RFC 3464 2.1): "
        f"{blocks!r}")
    returned = parts[2] if len(parts) == 3 else None
    return Dsn(msg, blocks[0], blocks[1:], returned)


def _raw_part(data: bytes, boundary: str, index: int) -> str:
    """The body of part `index` of a multipart message, as UTF-8 text with LF line ends."""
    text = data.decode("utf-8").replace("\r\n", "\n")
    parts = text.split(f"\n--{boundary}")
    assert len(parts) > index + 1, f"no part {index} in the multipart"
    part = parts[index + 1]
    _, sep, body = part.partition("\n\n")
    assert sep, f"part {index} has no header/body separator"
    return body.strip("\n")


def one_line(s: str | None) -> str:
    """Folding whitespace collapsed to single spaces."""
    return " ".join((s or "").split())
