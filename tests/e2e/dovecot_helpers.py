"""A private Dovecot (IMAP, POP3, LMTP) for carrier's end-to-end tests, started with
../shared/peers/dovecot.sh in the test's own directory on free loopback ports, stopped at
teardown. Users come from a file of "user@domain:password" lines. Traffic stays on 127.0.0.1."""
from __future__ import annotations

import imaplib
import poplib
import re
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOVECOT_SH = REPO.parent / "shared" / "peers" / "dovecot.sh"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """n DIFFERENT free loopback ports: the sockets stay bound until all are chosen (one at a
    time, the kernel may hand out the same port twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Dovecot:
    def __init__(self, directory: Path, users: dict[str, str]):
        self.dir = directory
        self.users = users
        self.imap = self.pop3 = self.lmtp = 0
        self.info: dict[str, str] = {}

    def start(self) -> "Dovecot":
        self.dir.mkdir(parents=True, exist_ok=True)
        users_file = self.dir.parent / f"{self.dir.name}-users"
        users_file.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        if not self.imap:
            self.imap, self.pop3, self.lmtp = free_ports(3)
        out = subprocess.run(
            [str(DOVECOT_SH), "start", str(self.dir), "--imap", str(self.imap), "--pop3",
             str(self.pop3), "--lmtp", str(self.lmtp), "--users", str(users_file)],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"dovecot.sh start failed: {out.stderr}"
        line = [l for l in out.stdout.splitlines() if l.startswith("dovecot ready:")][-1]
        self.info = dict(kv.split("=", 1) for kv in line.split()[2:])
        return self

    def stop(self) -> None:
        subprocess.run([str(DOVECOT_SH), "stop", str(self.dir)], capture_output=True, timeout=60)

    @property
    def owner(self) -> tuple[int, int]:
        uid, gid = self.info["owner"].split(":")
        return int(uid), int(gid)

    def maildir(self, user: str) -> Path:
        local, domain = user.split("@")
        return self.dir / "mail" / domain / local

    def new_files(self, user: str) -> list[Path]:
        d = self.maildir(user) / "new"
        return sorted(d.iterdir()) if d.is_dir() else []

    def imap_messages(self, user: str) -> list[bytes]:
        """Every message in INBOX as IMAP returns it (RFC822, CRLF line ends)."""
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=15)
        try:
            m.login(user, self.users[user])
            m.select("INBOX", readonly=True)
            typ, data = m.search(None, "ALL")
            out = []
            for num in data[0].split():
                typ, msg = m.fetch(num, "(RFC822)")
                assert typ == "OK", msg
                out.append(msg[0][1])
            return out
        finally:
            m.logout()

    def pop3_messages(self, user: str) -> list[bytes]:
        """Every message as POP3 RETR gives it (lines joined with CRLF, dots unstuffed)."""
        p = poplib.POP3("127.0.0.1", self.pop3, timeout=15)
        try:
            p.user(user)
            p.pass_(self.users[user])
            count, _ = p.stat()
            return [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, count + 1)]
        finally:
            p.quit()


TRACE = re.compile(rb"^(Return-Path|Delivered-To|Received):", re.I)


def strip_trace(msg: bytes) -> tuple[list[bytes], bytes]:
    """Splits off the trace fields at the top (Return-Path, Delivered-To, Received and their
    continuation lines): returns (their names, the rest of the message unchanged)."""
    names: list[bytes] = []
    rest = msg
    while True:
        m = TRACE.match(rest)
        if not m:
            return names, rest
        names.append(m.group(1).lower())
        end = rest.index(b"\r\n") + 2
        while rest[end:end + 1] in (b" ", b"\t"):
            end = rest.index(b"\r\n", end) + 2
        rest = rest[end:]
