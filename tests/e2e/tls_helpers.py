"""Helpers for the TLS and submission end-to-end tests (test_tls.py, test_submission.py).

- Pki / the session-scoped `pki` fixture: a test certificate authority made at test time with
  the openssl CLI (EC P-256): a root, an intermediate, and server certificates signed by them —
  "mx.test.example" (SAN DNS:mx.test.example, DNS:localhost, IP:127.0.0.1; leaf + intermediate
  in one PEM chain), a second one of the same names with a new key (reload), "smtp.other.example"
  (SNI), "wrong.example" (a valid chain with the wrong name), "mx.b.test" (relay peer), and a
  key that matches none of them.
- TLS client side: client_context() trusts only the test root; starttls() / tls_session()
  upgrade or open a RawSession over TLS (RFC 3207 4, RFC 8314 3); peer_cert_der().
- carrier_passwd(): `carrier passwd` with the password on stdin; write_password_file().
- tls_overrides(): carrier_factory overrides with the three listeners of the spec (smtp with
  STARTTLS, submission with STARTTLS, submissions with implicit TLS), [tls] and [auth].
- BrokenTlsPeer: an SMTP peer on raw sockets that offers STARTTLS, answers 220 and then
  breaks the handshake (or refuses STARTTLS with 454); it records any transaction sent in clear.
Handles only data made by the tests, by carrier or by openssl; every wait is bounded.
"""
from __future__ import annotations

import base64
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import CARRIER_BIN, Carrier
from helpers import RawSession, wait_for
from relay_helpers import SmtpPeer

MX_NAME = "mx.test.example"       # conftest.HOSTNAME: carrier's [server] hostname
OTHER_NAME = "smtp.other.example"  # the second certificate, chosen by SNI
WRONG_NAME = "wrong.example"
B_NAME = "mx.b.test"


# --- the test PKI ---------------------------------------------------------------------------

@dataclass
class CertPair:
    cert: Path   # PEM, leaf first (then any intermediate)
    key: Path

    @property
    def leaf_der(self) -> bytes:
        return leaf_der(self.cert)

    def files(self) -> dict:
        return {"cert_file": str(self.cert), "key_file": str(self.key)}


@dataclass
class Pki:
    dir: Path
    ca: Path              # the root certificate: what clients trust
    mx: CertPair          # mx.test.example via the intermediate (chain file)
    mx_new: CertPair      # the same names, another key and serial (reload)
    other: CertPair       # smtp.other.example (SNI)
    wrong: CertPair       # wrong.example (valid chain, wrong name)
    b: CertPair           # mx.b.test, IP:127.0.0.3 (relay peer)
    stray_key: Path       # matches none of the certificates


def _openssl(*args: str, cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"openssl {' '.join(args)} failed:\n{p.stderr}"


def _new_key(d: Path, name: str) -> Path:
    key = d / f"{name}.key"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(key), cwd=d)
    return key


def _issue(d: Path, name: str, cn: str, sans: list[str], ca_cert: Path, ca_key: Path,
           serial: int, is_ca: bool = False) -> tuple[Path, Path]:
    key = _new_key(d, name)
    csr = d / f"{name}.csr"
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr), cwd=d)
    ext = d / f"{name}.ext"
    lines = ["subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid"]
    if is_ca:
        lines += ["basicConstraints = critical, CA:TRUE, pathlen:0",
                  "keyUsage = critical, keyCertSign, cRLSign"]
    else:
        lines += ["basicConstraints = critical, CA:FALSE",
                  "keyUsage = critical, digitalSignature",
                  "extendedKeyUsage = serverAuth",
                  "subjectAltName = " + ", ".join(sans)]
    ext.write_text("\n".join(lines) + "\n")
    cert = d / f"{name}.crt"
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-set_serial", str(serial), "-days", "3", "-sha256", "-extfile", str(ext),
             "-out", str(cert), cwd=d)
    return cert, key


def make_pki(d: Path) -> Pki:
    ca_key = _new_key(d, "root")
    ca = d / "root.crt"
    _openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=carrier e2e test root",
             "-days", "3", "-sha256",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash",
             "-out", str(ca), cwd=d)
    inter, inter_key = _issue(d, "intermediate", "carrier e2e intermediate", [], ca, ca_key,
                              100, is_ca=True)
    mx_sans = [f"DNS:{MX_NAME}", "DNS:localhost", "IP:127.0.0.1"]
    mx_leaf, mx_key = _issue(d, "mx", MX_NAME, mx_sans, inter, inter_key, 101)
    chain = d / "mx-fullchain.pem"
    chain.write_text(mx_leaf.read_text() + inter.read_text())
    mx_new = CertPair(*_issue(d, "mx-new", MX_NAME, mx_sans, ca, ca_key, 102))
    other = CertPair(*_issue(d, "other", OTHER_NAME, [f"DNS:{OTHER_NAME}"], ca, ca_key, 103))
    wrong = CertPair(*_issue(d, "wrong", WRONG_NAME, [f"DNS:{WRONG_NAME}"], ca, ca_key, 104))
    b = CertPair(*_issue(d, "b", B_NAME, [f"DNS:{B_NAME}", "IP:127.0.0.3"], ca, ca_key, 105))
    stray = _new_key(d, "stray")
    return Pki(d, ca, CertPair(chain, mx_key), mx_new, other, wrong, b, stray)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """The test PKI, made once per test session (import this fixture into a test module)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def leaf_der(pem_file: Path) -> bytes:
    """DER bytes of the first certificate in a PEM file."""
    text = pem_file.read_text()
    m = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    assert m, f"no certificate in {pem_file}"
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def cert_text(der: bytes) -> str:
    """`openssl x509 -text` of a DER certificate (names, issuer) for assertions and messages."""
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode(errors="replace")


# --- TLS clients ------------------------------------------------------------------------------

def client_context(pki: Pki) -> ssl.SSLContext:
    """Verifies the chain against the test root only, and the host name (Python's defaults:
    TLS 1.2 minimum)."""
    return ssl.create_default_context(cafile=str(pki.ca))


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls(s: RawSession, ctx: ssl.SSLContext, server_hostname: str = "127.0.0.1",
             strict_eof: bool = False) -> None:
    """RFC 3207 4: STARTTLS, 220 2.0.0, then the handshake on the same socket. Nothing may
    follow the 220 in clear. strict_eof: a TCP end without close_notify raises SSLEOFError
    instead of reading as an end of data."""
    s.cmd("STARTTLS", 220, "2.0.0")
    assert s.buf == b"", f"bytes after the 220 to STARTTLS, in clear: {s.buf!r}"
    s.sock = ctx.wrap_socket(s.sock, server_hostname=server_hostname,
                             suppress_ragged_eofs=not strict_eof)
    s.transcript.append(f"-- TLS up: {s.sock.version()} {s.sock.cipher()}")


def tls_session(host: str, port: int, ctx: ssl.SSLContext,
                server_hostname: str | None = "127.0.0.1", source: str | None = None,
                timeout: float = 15.0, strict_eof: bool = False) -> RawSession:
    """RFC 8314 3: TLS from the first byte; returns the session before the greeting."""
    s = RawSession(host, port, timeout=timeout, source=source)
    s.sock = ctx.wrap_socket(s.sock, server_hostname=server_hostname,
                             suppress_ragged_eofs=not strict_eof)
    s.transcript.append(f"-- TLS up: {s.sock.version()} {s.sock.cipher()}")
    return s


def peer_cert_der(s: RawSession) -> bytes:
    assert isinstance(s.sock, ssl.SSLSocket), "not a TLS session"
    der = s.sock.getpeercert(binary_form=True)
    assert der, "the server sent no certificate"
    return der


def tls_version(s: RawSession) -> str:
    assert isinstance(s.sock, ssl.SSLSocket), "not a TLS session"
    return s.sock.version()


def closed(s: RawSession, timeout: float = 5.0) -> bool:
    """True when the server closes the (plain or TLS) connection within `timeout`; bytes that
    arrive meanwhile are kept in s.buf."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return True
        if not chunk:
            return True
        s.buf += chunk
    return False


def b64(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_response(user: str, password: str, authzid: str = "") -> str:
    """RFC 4616 2: [authzid] NUL authcid NUL passwd, base64 (RFC 4954 4)."""
    return b64(f"{authzid}\0{user}\0{password}")


# --- carrier configuration ---------------------------------------------------------------------

def carrier_passwd(password: str) -> str:
    """`carrier passwd`, the password as one line on stdin (not a terminal): the hash line."""
    p = subprocess.run([str(CARRIER_BIN), "passwd"], input=password + "\n", capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, f"carrier passwd failed ({p.returncode}): {p.stderr}"
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, f"carrier passwd printed {p.stdout!r}; expected one hash line"
    return lines[0].strip()


def write_password_file(path: Path, users: list[tuple[str, str, str | None]]) -> Path:
    """users: (name, hash, senders or None) -> lines user:hash[:senders]."""
    lines = ["# carrier e2e test users", ""]
    for name, h, senders in users:
        lines.append(f"{name}:{h}" + (f":{senders}" if senders is not None else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def listeners(smtp: bool = True, submission: bool = True, submissions: bool = True,
              host: str = "127.0.0.1") -> list[dict]:
    out = []
    if smtp:
        out.append({"address": f"{host}:0", "name": "smtp"})
    if submission:
        out.append({"address": f"{host}:0", "name": "submission", "tls": "starttls",
                    "submission": True})
    if submissions:
        out.append({"address": f"{host}:0", "name": "submissions", "tls": "implicit",
                    "submission": True})
    return out


def tls_overrides(pki: Pki, password_file: Path | None = None, auth: dict | None = None,
                  extra: bool = True, cert: CertPair | None = None, **listener_kw) -> dict:
    """carrier_factory(**tls_overrides(...)): the spec's three listeners, [tls] with the
    mx.test.example chain (and smtp.other.example for SNI), [auth] with a short failure_delay."""
    c = cert or pki.mx
    tls: dict = {"cert_file": str(c.cert), "key_file": str(c.key)}
    if extra:
        tls["extra_certificates"] = [pki.other.files()]
    sections: dict = {"listener": listeners(**listener_kw), "tls": tls}
    a = {"failure_delay": "0s"}
    if password_file is not None:
        a["password_file"] = str(password_file)
    a.update(auth or {})
    sections["auth"] = a
    return sections


def wait_listeners(c: Carrier, n: int, timeout: float = 10.0) -> dict[str, tuple[str, int]]:
    """Waits for n "listening on" lines; returns {name: (host, port)}."""
    def found():
        got = c.listen_re.findall(c.stdout())
        return got if len(got) >= n else None
    got = wait_for(found, timeout, what=f"{n} 'listening on' lines from {c.name}")
    c.listeners = [(h, int(p), kind) for h, p, kind in got]
    return {kind: (h, int(p)) for h, p, kind in got}


# --- an SMTP peer whose TLS breaks ----------------------------------------------------------------

@dataclass
class ClearTransaction:
    conn: int
    mail_from: str
    rcpts: list[str] = field(default_factory=list)
    data: bytes | None = None


class BrokenTlsPeer(SmtpPeer):
    """Offers STARTTLS. mode "break": answers 220 2.0.0 and then sends bytes that are not a TLS
    handshake and closes (the handshake started and failed); mode "refuse": answers
    454 4.7.0 (the handshake never started, RFC 3207 4). Anything sent in clear afterwards
    (MAIL/RCPT/DATA) is recorded and accepted. Sockets, threads and stopping are SmtpPeer's;
    only the dialogue differs."""

    def __init__(self, host: str, port: int, mode: str):
        assert mode in ("break", "refuse")
        super().__init__(host, port, "broken.tls.test")
        self.mode = mode
        self.starttls_seen = 0
        self.starttls_conns: set[int] = set()  # connections on which STARTTLS was sent
        self.transactions: list[ClearTransaction] = []  # type: ignore[assignment]

    def _dialogue(self, conn: socket.socket, n: int) -> None:
        buf = bytearray()

        def line() -> bytes | None:
            while b"\r\n" not in buf:
                if len(buf) > 4096:
                    raise ValueError("line too long")
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                buf.extend(chunk)
            i = buf.index(b"\r\n")
            ln = bytes(buf[:i])
            del buf[:i + 2]
            return ln

        def say(text: str) -> None:
            conn.sendall(text.encode() + b"\r\n")

        say("220 broken.tls.test ESMTP test peer")
        txn: ClearTransaction | None = None
        while True:
            raw = line()
            if raw is None:
                return
            text = raw.decode("utf-8", "replace")
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                say("250-broken.tls.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                    "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS")
            elif verb == "STARTTLS":
                with self.lock:
                    self.starttls_seen += 1
                    self.starttls_conns.add(n)
                if self.mode == "refuse":
                    say("454 4.7.0 TLS not available due to temporary reason")
                    continue
                say("220 2.0.0 Ready to start TLS")
                conn.sendall(b"this is not a TLS server hello\r\n")
                time.sleep(0.2)
                return
            elif verb == "MAIL":
                m = re.match(r"(?i)MAIL FROM:<([^>]*)>", text)
                txn = ClearTransaction(n, m.group(1) if m else text)
                with self.lock:
                    self.transactions.append(txn)
                say("250 2.1.0 OK")
            elif verb == "RCPT":
                m = re.match(r"(?i)RCPT TO:<([^>]*)>", text)
                if txn is not None:
                    txn.rcpts.append(m.group(1) if m else text)
                say("250 2.1.5 OK")
            elif verb == "DATA":
                say("354 go ahead")
                data = bytearray()
                while True:
                    ln = line()
                    if ln is None or ln == b".":
                        break
                    data.extend(ln + b"\r\n")
                if txn is not None:
                    txn.data = bytes(data)
                say("250 2.0.0 OK got it in clear")
            elif verb == "QUIT":
                say("221 2.0.0 bye")
                return
            else:
                say("250 2.0.0 OK")


# --- a whole submission ------------------------------------------------------------------------

def auth_plain(s: RawSession, user: str, password: str, code: int = 235,
               enhanced: str | None = "2.7.0"):
    """RFC 4954 4 / RFC 4616: AUTH PLAIN with an initial response."""
    return s.cmd(f"AUTH PLAIN {plain_response(user, password)}", code, enhanced)


def open_submission(host: str, port: int, ctx: ssl.SSLContext, user: str | None,
                    password: str | None, implicit: bool = False,
                    server_hostname: str = "127.0.0.1", source: str | None = None) -> RawSession:
    """Greeting, EHLO, STARTTLS (unless implicit TLS), EHLO again, AUTH PLAIN when a user is
    given. Returns the session ready for MAIL."""
    if implicit:
        s = tls_session(host, port, ctx, server_hostname=server_hostname, source=source)
        s.start()
    else:
        s = RawSession(host, port, source=source)
        s.start()
        starttls(s, ctx, server_hostname)
        s.ehlo()
    if user is not None:
        auth_plain(s, user, password)
    return s


def send_message(s: RawSession, sender: str, rcpts: list[str], msg: bytes) -> str:
    """MAIL, RCPT..., DATA (dot-stuffed); returns the queue id of the 250."""
    s.cmd(f"MAIL FROM:<{sender}>", 250)
    for r in rcpts:
        s.cmd(f"RCPT TO:<{r}>", 250)
    s.cmd("DATA", 354)
    body = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in msg.split(b"\r\n"))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    s.send_raw(body + b".\r\n")
    return s.expect(250).queue_id()
