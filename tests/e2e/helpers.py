"""Helpers for carrier's end-to-end tests (no server logic here, only client side).

- RawSession: a line-level SMTP client over a plain socket that parses replies (RFC 5321 4.2)
  and checks that every reply except the greeting and the EHLO/HELO reply carries an enhanced
  status code of the same class (RFC 2034 3, RFC 3463 2), as carrier promises.
- transcript(): runs a "C: ... / S: ..." dialogue, so error tests read like the RFC examples.
- parse_delivered(): splits a Maildir file written by carrier into its three trace headers
  (Return-Path, Delivered-To, Received) and the message content.
- wait_for(): polling with a deadline (delivery is asynchronous).
Handles only data produced by carrier or by the tests themselves.
"""
from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field

QUEUE_ID_RE = re.compile(r"^[0-9A-Z]{12}$")
QUEUED_RE = re.compile(r"queued as ([0-9A-Z]{12})\b")
_REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$", re.S)
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?= |$)")


class ProtocolError(AssertionError):
    """The server said something that is not a well-formed SMTP reply, or closed early."""


@dataclass
class Reply:
    code: int
    lines: list[str] = field(default_factory=list)  # text after "NNN-" / "NNN ", per line

    @property
    def enhanced(self) -> str | None:
        m = _ENHANCED.match(self.lines[0]) if self.lines else None
        return m.group(0) if m else None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def queue_id(self) -> str:
        m = QUEUED_RE.search(self.text)
        assert m, f"no 'queued as ID' in reply {self}"
        return m.group(1)

    def __str__(self) -> str:
        return " | ".join(f"{self.code} {ln}" for ln in self.lines)


def check_enhanced_everywhere(reply: Reply) -> None:
    """RFC 2034 3: with ENHANCEDSTATUSCODES every reply line starts with a status code whose
    class (first digit) is the class of the reply code. Enhanced codes exist only for the
    classes 2, 4 and 5 (RFC 3463 2), so a 3xx reply (354) carries none."""
    if reply.code // 100 == 3:
        return
    for ln in reply.lines:
        m = _ENHANCED.match(ln)
        assert m, f"reply line without an enhanced status code (RFC 2034): {reply.code} {ln!r}"
        assert int(m.group(1)) == reply.code // 100, (
            f"enhanced code class differs from the reply code (RFC 3463 2): {reply}")


class RawSession:
    """One SMTP connection driven line by line."""

    def __init__(self, host: str, port: int, timeout: float = 15.0, source: str | None = None):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None)
        self.buf = b""
        self.timeout = timeout
        self.transcript: list[str] = []

    # -- sending ---------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.transcript.append(f"C: {data[:200]!r}{'...' if len(data) > 200 else ''}")
        self.sock.sendall(data)

    def send(self, line: str | bytes) -> None:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send_raw(line + b"\r\n")

    # -- receiving -------------------------------------------------------------------------
    def _read_line(self, timeout: float | None) -> bytes:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"timeout waiting for a reply; transcript:\n{self.dump()}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise ProtocolError(f"timeout waiting for a reply; transcript:\n{self.dump()}")
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ProtocolError(f"connection closed before a full reply (have {self.buf!r});"
                                    f" transcript:\n{self.dump()}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self, timeout: float | None = None, enhanced_required: bool = True) -> Reply:
        code = None
        lines: list[str] = []
        while True:
            raw = self._read_line(timeout)
            m = _REPLY_LINE.match(raw)
            if not m:
                raise ProtocolError(f"malformed reply line {raw!r} (RFC 5321 4.2)")
            c = int(m.group(1))
            if code is not None and c != code:
                raise ProtocolError(f"multi-line reply changes code {code} -> {c} (RFC 5321 4.2.1)")
            code = c
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                break
        reply = Reply(code, lines)
        self.transcript.append(f"S: {reply}")
        if enhanced_required:
            check_enhanced_everywhere(reply)
        return reply

    def expect(self, code: int, enhanced: str | None = None, **kw) -> Reply:
        reply = self.read_reply(**kw)
        assert reply.code == code, f"expected {code} {enhanced or ''}, got {reply}\n{self.dump()}"
        if enhanced is not None:
            assert reply.enhanced == enhanced, (
                f"expected enhanced code {enhanced}, got {reply}\n{self.dump()}")
        return reply

    def cmd(self, line: str | bytes, code: int, enhanced: str | None = None) -> Reply:
        self.send(line)
        return self.expect(code, enhanced)

    def greeting(self) -> Reply:
        return self.expect(220, enhanced_required=False)

    def ehlo(self, name: str = "client.example") -> set[str]:
        """EHLO; returns the extension keywords (upper case, first word of each line)."""
        self.send(f"EHLO {name}")
        reply = self.expect(250, enhanced_required=False)
        return {ln.split(" ")[0].upper() for ln in reply.lines[1:]}

    def start(self, ehlo: str = "client.example") -> set[str]:
        self.greeting()
        return self.ehlo(ehlo)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) within `timeout`. Bytes
        that arrive meanwhile are kept in the buffer for read_reply()."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def reply_pending(self, timeout: float = 0.3) -> bool:
        """True if reply bytes arrive (or are already buffered) within `timeout`."""
        if self.buf:
            return True
        self.closed_by_peer(timeout)  # buffers whatever arrives
        return bool(self.buf)

    def dump(self) -> str:
        return "\n".join(self.transcript[-60:])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def transcript(session: RawSession, script: str) -> list[Reply]:
    """Plays a dialogue. Each "C: text" line is sent (CRLF added); each "S: 250" or
    "S: 503 5.5.1" line reads one reply and checks its code (and enhanced code if given).
    Client lines written back to back are pipelined. "S: 220" checks the greeting, which, like
    the EHLO reply ("S: 250 EHLO"), carries no enhanced code. Returns the replies read."""
    replies = []
    for raw in script.strip().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        who, _, rest = raw.partition(":")
        rest = rest[1:] if rest.startswith(" ") else rest  # "C:" alone sends an empty line
        if who == "C":
            session.send(rest)
        elif who == "S":
            parts = rest.split()
            code = int(parts[0])
            plain = code == 220 or (len(parts) > 1 and parts[1] == "EHLO")
            if plain:
                replies.append(session.expect(code, enhanced_required=False))
            else:
                replies.append(session.expect(code, parts[1] if len(parts) > 1 else None))
        else:
            raise ValueError(f"bad transcript line {raw!r}")
    return replies


@dataclass
class Delivered:
    return_path: bytes
    delivered_to: bytes
    received: bytes      # the whole Received: field, folded lines joined with their "\n\t"
    content: bytes       # everything after the three trace headers


def parse_delivered(data: bytes) -> Delivered:
    """carrier's Maildir file: Return-Path, Delivered-To, Received (folded with LF TAB), then
    the message. LF line endings."""
    lines = data.split(b"\n")
    assert lines[0].startswith(b"Return-Path: "), f"first line is not Return-Path: {lines[0]!r}"
    assert lines[1].startswith(b"Delivered-To: "), f"second line is not Delivered-To: {lines[1]!r}"
    assert lines[2].startswith(b"Received: "), f"third line is not Received: {lines[2]!r}"
    i = 3
    while i < len(lines) and lines[i].startswith(b"\t"):
        i += 1
    for ln in lines[:i]:
        assert not ln.endswith(b"\r"), f"trace header line ends with CR: {ln!r}"
    return Delivered(
        return_path=lines[0][len(b"Return-Path: "):],
        delivered_to=lines[1][len(b"Delivered-To: "):],
        received=b"\n".join(lines[2:i]),
        content=b"\n".join(lines[i:]),
    )


def received_id(received: bytes) -> str:
    m = re.search(rb"\bid ([0-9A-Z]{12})\b", received)
    assert m, f"no 'id QUEUEID' in {received!r}"
    return m.group(1).decode()


def as_stored(sent: bytes) -> bytes:
    """What a Maildir file holds for content sent over SMTP: CRLF becomes LF."""
    return sent.replace(b"\r\n", b"\n")


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
