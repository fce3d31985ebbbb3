"""DKIM in the message path (RFC 6376, RFC 8463, RFC 8601; docs/defence.md "DKIM").

Signing: a message submitted by an authenticated user and relayed to a scripted SMTP peer
arrives with a DKIM-Signature that dkimpy (python3-dkim, an independent verifier) verifies
against the record `carrier dkim keygen` printed, for RSA and Ed25519 keys. A From: domain
listed in [dkim] sign_domains without a key is refused with 451 4.7.5 and nothing is queued.
Key files that cannot be read or are not keys are configuration errors (file:line).

Verification: messages signed by dkimpy, sent in by an outside client, with the key served by
a real Unbound: Authentication-Results: dkim=pass in the delivered copy; a tampered body gives
dkim=fail, an unknown selector dkim=permerror, an unsigned message dkim=none.
"""
from __future__ import annotations

import base64
import re
import smtplib
import subprocess
from pathlib import Path

import pytest

from conftest import CARRIER_BIN
from helpers import wait_for
from relay_helpers import SmtpPeer, Unbound
from tls_helpers import (auth_plain, carrier_passwd, pki, send_message, tls_overrides,
                         wait_listeners, write_password_file)
from helpers import RawSession

__all__ = ["pki"]

dkim = pytest.importorskip("dkim")

ALICE, ALICE_PW = "alice@example.test", "Alice-dkim pass"
PEER_IP = "127.0.0.5"


def keygen(tmp_path: Path, domain: str, selector: str, algorithm: str) -> tuple[Path, bytes]:
    """`carrier dkim keygen`: (key file, the TXT record's data joined)."""
    key = tmp_path / f"{selector}.{domain}.key"
    p = subprocess.run([str(CARRIER_BIN), "dkim", "keygen", domain, selector, "--algorithm",
                        algorithm, "--out", str(key)], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    chunks = re.findall(r"\"([^\"]*)\"", p.stdout.decode())
    return key, "".join(chunks).encode()


def message(subject: str, frm: str = ALICE, to: str = "bob@peer.test") -> bytes:
    return (f"From: Alice <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@example.test>\r\n"
            "\r\nHello   Bob,\r\n\r\n.a line with a leading dot\r\ntrailing space \r\n\r\n\r\n").encode()


@pytest.fixture
def peer():
    p = SmtpPeer(host=PEER_IP).start()
    yield p
    p.stop()


@pytest.fixture
def signer(carrier_factory, pki, tmp_path, peer):
    """carrier with AUTH (plaintext on loopback), a route to the peer and the given [dkim]."""
    pw = write_password_file(tmp_path / "passwd", [(ALICE, carrier_passwd(ALICE_PW), None)])

    def start(**dkim_section):
        c = carrier_factory(**tls_overrides(pki, pw, auth={"plaintext_on_loopback": True}),
                            route=[{"domain": "peer.test", "next_hop": f"[{PEER_IP}]:{peer.port}"}],
                            dkim=dkim_section)
        c.ports = wait_listeners(c, 3)
        return c
    return start


def submit(c, msg: bytes, sender: str = ALICE, rcpt: str = "bob@peer.test", code: int = 250):
    host, port = c.ports["submission"]
    s = RawSession(host, port)
    try:
        s.greeting()
        s.ehlo()
        auth_plain(s, ALICE, ALICE_PW)
        if code == 250:
            return send_message(s, sender, [rcpt], msg)
        s.cmd(f"MAIL FROM:<{sender}>", 250)
        s.cmd(f"RCPT TO:<{rcpt}>", 250)
        s.cmd("DATA", 354)
        s.send_raw(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return s.expect(code)
    finally:
        s.close()


def dns_for(name: str, txt: bytes):
    def lookup(qname, timeout=5):
        assert qname.rstrip(b".") == name.encode(), qname
        return txt
    return lookup


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_authenticated_mail_is_signed_and_verifies(signer, peer, tmp_path, algorithm):
    key, txt = keygen(tmp_path, "example.test", "s1", algorithm)
    other, _ = keygen(tmp_path, "other.test", "s9", algorithm)
    c = signer(key=[{"domain": "example.test", "selector": "s1", "key_file": str(key)},
                    {"domain": "other.test", "selector": "s9", "key_file": str(other)}])
    qid = submit(c, message(f"signed {algorithm}"))
    data = peer.wait_delivered(1)[0].data
    assert data.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if algorithm == "rsa" else b"ed25519")
                           + b"-sha256;"), data[:200]
    assert re.search(rb"d=example\.test;\s+s=s1;", data), data[:400]
    assert dkim.verify(data, dnsfunc=dns_for("s1._domainkey.example.test", txt)), data.decode()
    # The body that left is the one that was signed: a change breaks it.
    assert not dkim.verify(data.replace(b"Hello   Bob", b"Hello Bob!"),
                           dnsfunc=dns_for("s1._domainkey.example.test", txt))
    assert re.search(rf"{qid}: dkim-sign=example\.test/s1", c.log()), c.log()[-2000:]


def test_parent_domain_key_and_envelope_sender_fallback(signer, peer, tmp_path):
    """A key for example.test signs From: x@sub.example.test; a From: domain without a key
    falls back to the envelope sender's domain."""
    key, txt = keygen(tmp_path, "example.test", "s1", "rsa")
    c = signer(key=[{"domain": "example.test", "selector": "s1", "key_file": str(key)}])
    submit(c, message("parent", frm="bob@sub.example.test"))
    submit(c, message("fallback", frm="someone@elsewhere.test"))
    got = peer.wait_delivered(2)
    for t in got:
        assert dkim.verify(t.data, dnsfunc=dns_for("s1._domainkey.example.test", txt)), t.data.decode()
        assert b"d=example.test;" in t.data


def test_sign_domain_without_key_is_refused_451(signer, peer, tmp_path):
    key, _ = keygen(tmp_path, "other.test", "s1", "rsa")
    c = signer(sign_domains=["example.test"],
               key=[{"domain": "other.test", "selector": "s1", "key_file": str(key)}])
    r = submit(c, message("must be signed"), code=451)
    assert r.text.startswith("4.7.5 "), r.text
    assert re.search(r"refused by dkim-sign: 451 not signed: no \[\[dkim\.key\]\] for the From: domain "
                     r"example\.test \(listed in \[dkim\] sign_domains\)", c.log()), c.log()[-2000:]
    assert c.queue_files() == []
    assert peer.snapshot() == [] or all(t.data is None for t in peer.snapshot())


def test_key_file_errors_are_configuration_errors(carrier_factory, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    pub = tmp_path / "pub.key"
    pub.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    c = carrier_factory(start=False, dkim={"key": [
        {"domain": "example.test", "selector": "a", "key_file": str(tmp_path / "missing.key")},
        {"domain": "example.test", "selector": "b", "key_file": str(bad)},
        {"domain": "example.test", "selector": "c", "key_file": str(pub)}]})
    p = subprocess.run([str(CARRIER_BIN), "check-config", str(c.config_path)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    err = p.stderr + p.stdout
    assert re.search(r":\d+:\d+: \[\[dkim\.key\]\] key_file: cannot read .*missing\.key: No such file", err), err
    assert re.search(r":\d+:\d+: \[\[dkim\.key\]\] key_file: .*bad\.key: not a PEM private key", err), err
    assert re.search(r":\d+:\d+: \[\[dkim\.key\]\] key_file: .*pub\.key: this is a public key", err), err


# ---- verification ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkimkeys")
    rsa_key, rsa_txt = keygen(d, "sender.test", "rsa1", "rsa")
    # dkimpy signs with a traditional RSA key (BEGIN RSA PRIVATE KEY).
    trad = d / "rsa1.trad"
    subprocess.run(["openssl", "rsa", "-in", str(rsa_key), "-traditional", "-out", str(trad)],
                   check=True, capture_output=True, timeout=60)
    ed_key, ed_txt = keygen(d, "sender.test", "ed1", "ed25519")
    der = base64.b64decode("".join(l for l in ed_key.read_text().splitlines() if "-----" not in l))
    return {"rsa": (trad.read_bytes(), rsa_txt), "ed25519": (base64.b64encode(der[-32:]), ed_txt)}


@pytest.fixture(scope="module")
def dns(tmp_path_factory, keys):
    def rec(name, txt):
        s = txt.decode()
        return f"{name} 300 TXT " + " ".join(f'"{s[i:i + 200]}"' for i in range(0, len(s), 200))
    zone = "\n".join([rec("rsa1._domainkey.sender.test.", keys["rsa"][1]),
                      rec("ed1._domainkey.sender.test.", keys["ed25519"][1])]) + "\n"
    u = Unbound(tmp_path_factory.mktemp("unbound"), zone).start()
    yield u
    u.stop()


def dkimpy_sign(msg: bytes, selector: str, key: bytes, algorithm: str) -> bytes:
    sig = dkim.sign(msg, selector.encode(), b"sender.test", key,
                    include_headers=[b"from", b"to", b"subject"],
                    signature_algorithm=b"ed25519-sha256" if algorithm == "ed25519" else b"rsa-sha256")
    return sig + msg


def send_in(c, msg: bytes):
    s = smtplib.SMTP(c.host, c.port, timeout=30)
    try:
        s.ehlo("outside.test")
        s.sendmail("someone@sender.test", ["demo@localhost"], msg)
    finally:
        s.quit()


def auth_results(stored: bytes) -> str:
    m = re.search(rb"^Authentication-Results: (.*?)\n(?![ \t])", stored, re.S | re.M)
    assert m, stored[:600]
    return re.sub(r"\s+", " ", m.group(1).decode())


@pytest.mark.parametrize("algorithm,selector", [("rsa", "rsa1"), ("ed25519", "ed1")])
def test_incoming_signatures_pass_and_tampering_fails(carrier_factory, dns, keys, algorithm, selector):
    c = carrier_factory(dns={"upstream": dns.upstream}, dkim={"verify": True})
    base = (b"From: Someone <someone@sender.test>\r\nTo: demo@localhost\r\nSubject: verify me\r\n"
            b"\r\nbody line one\r\nbody line two\r\n")
    signed = dkimpy_sign(base, selector, keys[algorithm][0], algorithm)
    send_in(c, signed)
    send_in(c, signed.replace(b"body line two", b"body line 2"))
    stored = c.wait_messages("demo", 2)
    results = sorted(auth_results(m) for m in stored)
    b8 = re.search(rb"b=([A-Za-z0-9+/]{8})", signed.replace(b"\r\n\t", b"").replace(b"bh=", b"xx=")).group(1).decode()
    assert any(re.fullmatch(rf"\S+; dkim=pass header.d=sender.test header.s={selector} header.b={re.escape(b8)}", r)
               for r in results), results
    assert any(re.search(r"dkim=fail reason=\"body hash did not verify\" header.d=sender.test", r)
               for r in results), results
    assert re.search(r": dkim=pass\(sender\.test\)", c.log()), c.log()[-2000:]


def test_unsigned_unknown_selector_and_trusted_clients(carrier_factory, dns, keys):
    c = carrier_factory(dns={"upstream": dns.upstream}, dkim={"verify": True})
    send_in(c, b"From: someone@sender.test\r\nSubject: unsigned\r\n\r\nhi\r\n")
    unknown = dkimpy_sign(b"From: someone@sender.test\r\nSubject: nokey\r\n\r\nhi\r\n", "nokey",
                          keys["rsa"][0], "rsa")
    send_in(c, unknown)
    stored = c.wait_messages("demo", 2)
    results = [auth_results(m) for m in stored]
    assert any(r.endswith("; dkim=none") for r in results), results
    assert any(re.search(r"dkim=permerror reason=\"no key record at nokey._domainkey.sender.test\" "
                         r"header.d=sender.test header.s=nokey", r) for r in results), results
