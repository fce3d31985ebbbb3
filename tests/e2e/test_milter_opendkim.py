"""Milters ([[milter]], docs/defence.md "Milters") against a real opendkim (Debian's opendkim
2.11, a libmilter filter): opendkim signs and verifies through carrier's milter client with a
plain configuration of its own (Mode sv, one Domain/Selector/KeyFile, Socket inet:PORT@127.0.0.1,
InternalHosts 127.0.0.1, default simple/simple canonicalization), started by the tests on
loopback. Its DNS lookups go to a real Unbound serving the test zone (ResolverConfiguration:
a libunbound configuration forwarding "." to it), so no query leaves the machine.

Signing: a message from example.test sent by a client on 127.0.0.1 (internal for opendkim) and
relayed by carrier to a scripted SMTP peer arrives with the DKIM-Signature opendkim asked for
(a header edit at the end of the body, placed at the top of the header), and dkimpy
(python3-dkim, an independent verifier) verifies it against the key record `carrier dkim
keygen` printed. A field without a space after the colon and a folded field are in the signed
set: with simple header canonicalization the signature holds only if opendkim saw the fields
byte for byte (SMFIP_HDR_LEADSPC, which opendkim asks for).
Verification: messages signed by dkimpy (simple/simple) and sent by a client on 127.0.0.2
(external for opendkim) are delivered with opendkim's Authentication-Results: field,
dkim=pass for an intact message and dkim=fail for a changed body.
"""
from __future__ import annotations

import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import dkim  # Debian python3-dkim (scripts/install-deps)
import pytest

from conftest import CARRIER_BIN
from helpers import wait_for
from relay_helpers import SmtpPeer, Unbound, free_port

PEER_IP = "127.0.0.5"
OUTSIDE_IP = "127.0.0.2"  # a client address opendkim does not count as internal
AUTHSERV = "opendkim.test"

OPENDKIM_CONF = """\
# A standard opendkim setup, reduced to what the test needs.
Mode                    sv
Domain                  example.test
Selector                s1
KeyFile                 {key}
Socket                  inet:{port}@127.0.0.1
InternalHosts           127.0.0.1
AuthservID              {authserv}
Background              no
Syslog                  no
PidFile                 {root}/opendkim.pid
ResolverConfiguration   {root}/unbound.conf
# The key lives below /tmp (pytest's tmp_path), which others may write: opendkim refuses such
# a key path unless told otherwise. Production keys live in /etc/dkimkeys.
RequireSafeKeys         false
"""

# libunbound inside opendkim: every query goes to the test Unbound on loopback; "test." is
# one of Unbound's built-in local zones (RFC 6761, always NXDOMAIN) unless told otherwise.
RESOLVER_CONF = """\
server:
    do-not-query-localhost: no
    local-zone: "test." nodefault
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{port}
"""


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def keygen(d: Path) -> tuple[Path, bytes]:
    """`carrier dkim keygen example.test s1`: (key file, the TXT record's data joined)."""
    key = d / "s1.example.test.key"
    p = subprocess.run([str(CARRIER_BIN), "dkim", "keygen", "example.test", "s1", "--out",
                        str(key)], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return key, "".join(re.findall(r"\"([^\"]*)\"", p.stdout.decode())).encode()


class OpenDkim:
    def __init__(self, root: Path, key: Path, dns_port: int):
        self.root = root
        self.port = free_port()
        (root / "unbound.conf").write_text(RESOLVER_CONF.format(port=dns_port))
        self.conf = root / "opendkim.conf"
        self.conf.write_text(OPENDKIM_CONF.format(key=key, port=self.port, root=root,
                                                  authserv=AUTHSERV))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OpenDkim":
        self.log = open(self.root / "opendkim.out", "wb")
        self.proc = subprocess.Popen(
            [shutil.which("opendkim") or "/usr/sbin/opendkim", "-f", "-x", str(self.conf)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or listening(self.port), 30,
                 what=f"opendkim listening on 127.0.0.1:{self.port}")
        assert self.proc.poll() is None, self.output()
        return self

    def output(self) -> str:
        return (self.root / "opendkim.out").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("odkkey")
    k, txt = keygen(d)
    # dkimpy signs with a traditional RSA key (BEGIN RSA PRIVATE KEY).
    trad = d / "s1.trad"
    subprocess.run(["openssl", "rsa", "-in", str(k), "-traditional", "-out", str(trad)],
                   check=True, capture_output=True, timeout=60)
    return k, txt, trad.read_bytes()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, key):
    s = key[1].decode()
    zone = ("s1._domainkey.example.test. 300 TXT "
            + " ".join(f'"{s[i:i + 200]}"' for i in range(0, len(s), 200)) + "\n")
    u = Unbound(tmp_path_factory.mktemp("unbound"), zone).start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def opendkim(tmp_path_factory, key, dns):
    o = OpenDkim(tmp_path_factory.mktemp("opendkim"), key[0], dns.port).start()
    yield o
    o.stop()


@pytest.fixture
def peer():
    p = SmtpPeer(host=PEER_IP).start()
    yield p
    p.stop()


def dns_for(txt: bytes):
    def lookup(qname, timeout=5):
        assert qname.rstrip(b".") == b"s1._domainkey.example.test", qname
        return txt
    return lookup


def message(subject: str, frm: str = "alice@example.test", to: str = "bob@peer.test") -> bytes:
    # A folded field and one without a space after the colon: with simple header
    # canonicalization the signature only holds if the milter saw the fields as they are.
    return (f"From: Alice <{frm}>\r\nTo: <{to}>,\r\n\t<carol@peer.test>\r\nSubject:{subject}\r\n"
            f"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\nMessage-ID: <{time.time_ns()}@example.test>\r\n"
            "\r\nHello   Bob,\r\n\r\n.a line with a leading dot\r\ntrailing space \r\n\r\n\r\n").encode()


def send(c, msg: bytes, sender: str, rcpts: list[str], source: str = "127.0.0.1"):
    s = smtplib.SMTP(c.host, c.port, local_hostname="client.example", timeout=60,
                     source_address=(source, 0))
    try:
        return s.sendmail(sender, rcpts, msg)
    finally:
        s.quit()


def milter(o: OpenDkim) -> list[dict]:
    return [{"address": f"inet:127.0.0.1:{o.port}", "name": "opendkim", "timeout": "30s"}]


def test_opendkim_signs_mail_from_an_internal_client(carrier_factory, opendkim, key, peer):
    c = carrier_factory(milter=milter(opendkim),
                        relay={"trusted_networks": ["127.0.0.1/32"]},
                        route=[{"domain": "peer.test", "next_hop": f"[{PEER_IP}]:{peer.port}"}])
    send(c, message("signed by opendkim"), "alice@example.test", ["bob@peer.test"])
    data = peer.wait_delivered(1)[0].data
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    assert re.search(r"(?m)^DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=example\.test;",
                     head), head + "\n" + opendkim.output()
    assert re.search(r"\bs=s1;", head), head
    signed = {f.strip().lower() for f in re.search(r"\bh=([^;]*);", head).group(1).split(":")}
    assert {"from", "to", "subject"} <= signed, head
    assert dkim.verify(data, dnsfunc=dns_for(key[1])), data.decode(errors="replace")
    # What left is what opendkim signed: a changed body no longer verifies.
    assert not dkim.verify(data.replace(b"Hello   Bob", b"Hello Bob!"), dnsfunc=dns_for(key[1]))
    assert "milter(opendkim)=accept(1 header edits)" in c.log()


def test_opendkim_verifies_mail_from_outside(carrier_factory, opendkim, key):
    c = carrier_factory(milter=milter(opendkim))
    for subject in ("intact", "changed"):
        msg = message(subject, frm="someone@example.test", to="demo@localhost")
        # simple/simple: opendkim must see the fields byte for byte as the client sent them.
        signed = dkim.sign(msg, b"s1", b"example.test", key[2],
                           include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
                           canonicalize=(b"simple", b"simple"))
        signed += msg
        if subject == "changed":
            signed = signed.replace(b"Hello   Bob", b"Hello Mallory")
        send(c, signed, "someone@example.test", ["demo@localhost"], source=OUTSIDE_IP)
    got = c.wait_messages("demo", 2)
    results = {}
    for m in got:
        head = m.split(b"\n\n", 1)[0].decode(errors="replace")
        subject = re.search(r"(?m)^Subject:(\S+)", head).group(1)
        ar = re.search(rf"(?m)^Authentication-Results: {re.escape(AUTHSERV)};(.*(?:\n[ \t].*)*)",
                       head)
        assert ar, head + "\n" + opendkim.output()
        results[subject] = " ".join(ar.group(1).split())
    assert re.match(r"dkim=pass \(2048-bit key; unprotected\) header\.d=example\.test "
                    r"header\.i=@example\.test header\.a=rsa-sha256 header\.s=s1 ",
                    results["intact"]), results
    assert re.match(r'dkim=fail reason="signature verification failed" .*header\.d=example\.test ',
                    results["changed"]), results
    assert c.log().count("milter(opendkim)=accept(1 header edits)") == 2, c.log()
