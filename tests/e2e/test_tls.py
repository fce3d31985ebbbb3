"""End-to-end: TLS in carrier — STARTTLS (RFC 3207), implicit TLS (RFC 8314 3), certificates
chosen by SNI (RFC 6066 3), the STARTTLS command injection (pipelined bytes after STARTTLS are
discarded, RFC 3207 4.2 / RFC 2920 3.1), certificate reload without dropping sessions,
check-config on certificate files, and relaying over TLS with the policies may / encrypt /
verify (RFC 3207 4, RFC 6125 host name check) between two carriers on 127.0.0.2 / 127.0.0.3.

Certificates come from a test CA made with the openssl CLI (tls_helpers.make_pki); clients
trust only that CA. Everything runs on 127.0.0.0/8.
"""
from __future__ import annotations

import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import uuid

import pytest

from conftest import CARRIER_BIN, SERVERS, default_sections, render_config
from helpers import RawSession, parse_delivered, wait_for
from relay_helpers import RelayCarrier, carrier_sections, free_port, leading_trace, received_by
from tls_helpers import (MX_NAME, OTHER_NAME, B_NAME, BrokenTlsPeer, carrier_passwd,
                         cert_text, client_context, closed, insecure_context, leaf_der,
                         open_submission, peer_cert_der, pki, send_message, starttls,
                         tls_overrides, tls_session, wait_listeners,
                         write_password_file)

__all__ = ["pki"]  # the session fixture, imported so pytest finds it

TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
USING_RE = re.compile(r"using (TLSv1\.[23]) with cipher (\S+) \((\d+)/(\d+) bits\)")


def msg(subject: str, frm: str = "sender@client.example", to: str = "demo@example.test") -> bytes:
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@client.example>\r\n\r\nHello over TLS.\r\n").encode()


@pytest.fixture
def tls_carrier(carrier_factory, pki):
    """smtp (STARTTLS), submission (STARTTLS) and submissions (implicit TLS) listeners, the
    mx.test.example chain as default certificate and smtp.other.example for SNI."""
    c = carrier_factory(**tls_overrides(pki))
    c.ports = wait_listeners(c, 3)
    return c


def one_message(c, mailbox: str = "demo") -> bytes:
    [data] = c.wait_messages(mailbox, 1)
    return data


# --- STARTTLS and implicit TLS ----------------------------------------------------------------

def test_starttls_with_smtplib_verifies_chain_and_version(tls_carrier, pki):
    """RFC 3207 4: STARTTLS is advertised on a plain connection, answered 220 2.0.0, and after
    the handshake no longer advertised (4.2). The client trusts only the test root, and the
    leaf is issued by an intermediate: the handshake verifies only if carrier sends the whole
    chain of cert_file. TLS 1.2 or 1.3. The Received: field says ESMTPS (RFC 3848 2) and
    carries the negotiated version and cipher."""
    host, port = tls_carrier.ports["smtp"]
    with smtplib.SMTP(host, port, local_hostname="client.example", timeout=15) as s:
        s.ehlo()
        assert s.has_extn("starttls"), s.esmtp_features
        assert not s.has_extn("auth"), "AUTH must not be offered on the smtp listener"
        code, text = s.starttls(context=client_context(pki))
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        version = s.sock.version()
        cipher = s.sock.cipher()[0]
        assert version in TLS_VERSIONS
        assert s.sock.getpeercert(binary_form=True) == pki.mx.leaf_der
        issuer = dict(x[0] for x in s.sock.getpeercert()["issuer"])
        assert issuer["commonName"] == "carrier e2e intermediate"
        s.ehlo()
        assert not s.has_extn("starttls"), "STARTTLS advertised again after TLS (RFC 3207 4.2)"
        assert not s.has_extn("auth"), "AUTH is for submission listeners only"
        assert s.sendmail("sender@client.example", ["demo@example.test"], msg("starttls")) == {}
    d = parse_delivered(one_message(tls_carrier))
    received = d.received.decode()
    assert " with ESMTPS " in received, received
    m = USING_RE.search(received)
    assert m, f"no 'using TLSv1.x with cipher NAME (N/N bits)' in {received!r}"
    assert (m.group(1), m.group(2)) == (version, cipher), received


def test_implicit_tls_listener_with_smtp_ssl(tls_carrier, pki):
    """RFC 8314 3: on the implicit-TLS (submissions) listener TLS starts with the first byte,
    so the greeting arrives over TLS; STARTTLS is not offered there (3.3), AUTH PLAIN and LOGIN
    are (RFC 4954 3, submission listener)."""
    host, port = tls_carrier.ports["submissions"]
    with smtplib.SMTP_SSL(host, port, local_hostname="client.example", timeout=15,
                          context=client_context(pki)) as s:
        assert s.sock.version() in TLS_VERSIONS
        assert s.sock.getpeercert(binary_form=True) == pki.mx.leaf_der
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered inside implicit TLS"
        assert s.has_extn("auth"), s.esmtp_features
        mechs = set(s.esmtp_features["auth"].upper().split())
        assert {"PLAIN", "LOGIN"} <= mechs, mechs


def test_implicit_tls_listener_says_nothing_in_clear(tls_carrier):
    """RFC 8314 3: a client speaking plain SMTP to the implicit-TLS port gets no 220 in clear;
    the server waits for a ClientHello, and plain text is a failed handshake (closed)."""
    host, port = tls_carrier.ports["submissions"]
    with socket.create_connection((host, port), timeout=5) as so:
        so.settimeout(1.0)
        try:
            early = so.recv(100)
        except socket.timeout:
            early = b""
        assert not early.startswith(b"220"), f"a plain greeting on the implicit port: {early!r}"
        so.sendall(b"EHLO client.example\r\n")
        so.settimeout(5.0)
        got = b""
        try:
            while chunk := so.recv(4096):
                got += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        assert b"250" not in got and not got.startswith(b"220"), (
            f"carrier answered plain SMTP on the implicit-TLS port: {got!r}")


@pytest.mark.parametrize("listener", ["submissions", "smtp"])
def test_sni_chooses_the_certificate(tls_carrier, pki, listener):
    """RFC 6066 3: the server_name sent by the client selects the certificate whose names
    include it (extra_certificates); our own name and an unknown name get the default one, and
    so does a client that sends no SNI (a connection by IP address)."""
    host, port = tls_carrier.ports[listener]

    def cert_for(name: str | None, verify: bool = True) -> bytes:
        ctx = client_context(pki) if verify else insecure_context()
        if listener == "submissions":
            s = tls_session(host, port, ctx, server_hostname=name)
            s.greeting()
        else:
            s = RawSession(host, port)
            s.start()
            starttls(s, ctx, name)
        with s:
            s.ehlo()  # the session works over TLS
            s.cmd("QUIT", 221)
            return peer_cert_der(s)

    assert cert_for(OTHER_NAME) == pki.other.leaf_der, "SNI smtp.other.example ignored"
    assert cert_for(MX_NAME) == pki.mx.leaf_der
    assert cert_for("unknown.example", verify=False) == pki.mx.leaf_der
    assert cert_for(None, verify=False) == pki.mx.leaf_der


def test_openssl_s_client_starttls_verifies(tls_carrier, pki):
    """RFC 3207 4 with another TLS implementation: openssl s_client -starttls smtp verifies the
    chain against the test root and the host name mx.test.example."""
    host, port = tls_carrier.ports["smtp"]
    p = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{host}:{port}",
         "-CAfile", str(pki.ca), "-verify_return_error", "-verify_hostname", MX_NAME,
         "-servername", MX_NAME, "-brief", "-quiet"],
        input="EHLO client.example\r\nQUIT\r\n", capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr  # (its exit status reflects the end of the connection, tested
    assert "Verification: OK" in out, out  # in test_quit_over_tls_ends_with_close_notify)
    assert f"Verified peername: {MX_NAME}" in out, out
    assert re.search(r"Protocol version: TLSv1\.[23]", out), out
    assert re.search(rf"^250-{re.escape(MX_NAME)}", p.stdout, re.M), out
    assert re.search(r"^221 2\.0\.0", p.stdout, re.M), f"no reply to QUIT over TLS: {out}"


def test_quit_over_tls_ends_with_close_notify(tls_carrier, pki):
    """RFC 8446 6.1 (and RFC 5246 7.2.1): a party closing a TLS connection sends close_notify
    before closing its write side. After 221 to QUIT, carrier ends TLS cleanly: the client
    reads a TLS end of data, not a bare TCP end (which is indistinguishable from truncation)."""
    ctx = client_context(pki)
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # Python sets it: a bare EOF would read as b""
    for listener in ("smtp", "submissions"):
        host, port = tls_carrier.ports[listener]
        if listener == "smtp":
            s = RawSession(host, port)
            s.start()
            starttls(s, ctx, strict_eof=True)
        else:
            s = tls_session(host, port, ctx, strict_eof=True)
            s.start()
        with s:
            s.cmd("QUIT", 221, "2.0.0")
            s.sock.settimeout(5)
            try:
                rest = s.sock.recv(100)
            except ssl.SSLError as e:  # SSLEOFError, or UNEXPECTED_EOF_WHILE_READING
                raise AssertionError(
                    f"{listener}: TCP closed after 221 without TLS close_notify: {e}") from None
            assert rest == b"", f"{listener}: bytes after 221: {rest!r}"


def test_listen_option_replaces_listeners_with_one_starttls_smtp(carrier_factory, pki):
    """`serve --listen ADDR:PORT` replaces every configured listener with one plain "smtp"
    listener that offers STARTTLS (and no AUTH)."""
    c = carrier_factory(args=["--listen", "127.0.0.1:0"], **tls_overrides(pki))
    time.sleep(0.3)
    assert [kind for _, _, kind in c.listen_re.findall(c.stdout())] == ["smtp"], c.stdout()
    with c.session() as s:
        kw = s.start()
        assert "STARTTLS" in kw and "AUTH" not in kw, kw
        starttls(s, client_context(pki))
        assert "AUTH" not in s.ehlo()


def test_tls12_client_gets_tls12_and_received_says_so(tls_carrier, pki):
    """A client limited to TLS 1.2 negotiates TLS 1.2 (RFC 5246), and the Received: field
    names that version and the cipher of this session (not a fixed string)."""
    ctx = client_context(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    host, port = tls_carrier.ports["smtp"]
    with RawSession(host, port) as s:
        s.start()
        starttls(s, ctx)
        assert s.sock.version() == "TLSv1.2"
        cipher = s.sock.cipher()[0]
        s.ehlo()
        send_message(s, "sender@client.example", ["demo@example.test"], msg("tls 1.2"))
    d = parse_delivered(one_message(tls_carrier))
    m = USING_RE.search(d.received.decode())
    assert m and m.group(1) == "TLSv1.2", d.received
    # OpenSSL and Python name TLS 1.2 suites alike (e.g. ECDHE-ECDSA-AES256-GCM-SHA384)
    assert m.group(2) == cipher, (d.received, cipher)


def test_failed_handshakes_do_not_hurt_the_server(tls_carrier, pki):
    """Untrusted input: a client that sends garbage instead of a ClientHello (after STARTTLS and
    on the implicit-TLS port), or drops the connection in the middle of the handshake, only
    loses its own connection; the server goes on serving TLS."""
    host, port = tls_carrier.ports["smtp"]
    with RawSession(host, port) as s:
        s.start()
        s.cmd("STARTTLS", 220, "2.0.0")
        s.send_raw(b"\x16\x03\x01\x00\x05garbage-not-a-hello" + bytes(range(256)))
        assert closed(s), "the server kept a connection with a broken handshake"
    host2, port2 = tls_carrier.ports["submissions"]
    with socket.create_connection((host2, port2), timeout=5) as so:
        so.sendall(b"GET / HTTP/1.0\r\n\r\n")
        so.settimeout(5)
        try:
            while so.recv(4096):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    # a handshake cut off after the ClientHello
    raw = socket.create_connection((host2, port2), timeout=5)
    inbio, outbio = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(pki).wrap_bio(inbio, outbio, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    raw.sendall(outbio.read())
    raw.close()
    for listener in ("smtp", "submissions"):
        h, p = tls_carrier.ports[listener]
        if listener == "smtp":
            s = RawSession(h, p)
            s.start()
            starttls(s, client_context(pki))
        else:
            s = tls_session(h, p, client_context(pki))
            s.start()
        with s:
            s.ehlo()
            s.cmd("NOOP", 250)
    assert tls_carrier.running()


# --- STARTTLS command injection -------------------------------------------------------------------

def test_starttls_pipelined_commands_are_discarded(tls_carrier, pki):
    """RFC 3207 4.2 and RFC 2920 3.1 (STARTTLS ends a pipelined group): bytes sent in the same
    write as STARTTLS, before the handshake, must be thrown away, never executed in clear or
    inside TLS (the STARTTLS command injection). Proof: nothing follows the 220 in clear, the
    handshake succeeds (no plain reply was mixed into it), the first reply inside TLS is the
    one to our EHLO with no other reply pending, RCPT after that EHLO finds no open
    transaction (503 5.5.1), one MAIL is accepted once, only our message is delivered, and
    the injected address never reaches the log."""
    host, port = tls_carrier.ports["smtp"]
    injected = ("MAIL FROM:<injected@evil.example>\r\nRCPT TO:<demo@example.test>\r\n"
                "DATA\r\nSubject: injected\r\n\r\nsmuggled\r\n.\r\n")
    with RawSession(host, port) as s:
        s.start()
        s.send_raw(b"STARTTLS\r\n" + injected.encode())
        s.expect(220, "2.0.0")
        assert not s.reply_pending(0.5), f"more replies in clear after the 220: {s.buf!r}"
        s.sock = client_context(pki).wrap_socket(s.sock, server_hostname="127.0.0.1")
        assert s.sock.version() in TLS_VERSIONS
        assert not s.reply_pending(0.5), f"a reply inside TLS before any command: {s.buf!r}"
        s.send("EHLO client.example")
        ehlo = s.expect(250, enhanced_required=False)
        assert ehlo.lines[0].startswith(MX_NAME), f"first TLS reply is not the EHLO's: {ehlo}"
        assert not s.reply_pending(0.5), f"an extra reply after EHLO: {s.buf!r}"
        s.cmd("RCPT TO:<demo@example.test>", 503, "5.5.1")
        s.cmd("MAIL FROM:<real@client.example>", 250)
        s.cmd("MAIL FROM:<real@client.example>", 503, "5.5.1")  # nested MAIL: one is open
        s.cmd("RCPT TO:<demo@example.test>", 250)
        s.cmd("DATA", 354)
        s.send_raw(msg("real") + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    [data] = tls_carrier.wait_messages("demo", 1)
    time.sleep(0.5)
    assert len(tls_carrier.messages("demo")) == 1, "the injected message was delivered too"
    assert b"Subject: real" in data and b"smuggled" not in data
    assert "injected@evil.example" not in tls_carrier.log(), "the injected MAIL was executed"


def test_starttls_refused_when_not_applicable(tls_carrier, carrier_factory, pki):
    """RFC 3207 4.2: STARTTLS is not offered and refused with 503 5.5.1 once TLS is active
    (after STARTTLS and on the implicit-TLS listener); a listener with tls = "none" never
    offers it and answers 502."""
    host, port = tls_carrier.ports["smtp"]
    with RawSession(host, port) as s:
        s.start()
        starttls(s, client_context(pki))
        assert "STARTTLS" not in s.ehlo()
        s.cmd("STARTTLS", 503, "5.5.1")
        s.cmd("NOOP", 250)  # the TLS session goes on
    host, port = tls_carrier.ports["submissions"]
    with tls_session(host, port, client_context(pki)) as s:
        assert "STARTTLS" not in s.start()
        s.cmd("STARTTLS", 503, "5.5.1")
    plain = carrier_factory(listener=[{"address": "127.0.0.1:0", "name": "plain", "tls": "none"}])
    with plain.session() as s:
        assert "STARTTLS" not in s.start()
        s.send("STARTTLS")
        reply = s.read_reply()
        assert reply.code == 502, f"STARTTLS on a tls = \"none\" listener: {reply}"
        s.cmd("NOOP", 250)


def test_ehlo_required_again_after_starttls(tls_carrier, pki):
    """RFC 3207 4.2: after the handshake the session is back in its initial state: MAIL before
    a new EHLO is refused (503 5.5.1); after EHLO it is accepted."""
    host, port = tls_carrier.ports["smtp"]
    with RawSession(host, port) as s:
        s.start()
        starttls(s, client_context(pki))
        s.cmd("MAIL FROM:<a@client.example>", 503, "5.5.1")
        s.ehlo()
        s.cmd("MAIL FROM:<a@client.example>", 250)


def test_self_signed_certificate_when_none_configured(carrier_factory):
    """Without [tls] files carrier makes a self-signed certificate for [server] hostname in
    DATA_DIR/tls/ at start and offers STARTTLS with it; the private key is not readable by
    group or others."""
    c = carrier_factory()
    with c.session() as s:
        assert "STARTTLS" in s.start()
        starttls(s, insecure_context())
        der = peer_cert_der(s)
        s.ehlo()
        s.cmd("QUIT", 221)
    text = cert_text(der)
    assert f"DNS:{MX_NAME}" in text, text
    tls_dir = c.data_dir / "tls"
    files = [p for p in tls_dir.iterdir() if p.is_file()]
    certs = [p for p in files if "BEGIN CERTIFICATE" in p.read_text(errors="replace")]
    keys = [p for p in files if "PRIVATE KEY" in p.read_text(errors="replace")]
    assert any(leaf_der(p) == der for p in certs), f"served certificate not in {files}"
    assert keys, f"no private key in {tls_dir}: {files}"
    for k in keys:
        assert k.stat().st_mode & 0o077 == 0, f"{k} is readable by others: {oct(k.stat().st_mode)}"


# --- reload -----------------------------------------------------------------------------------

def _copy_pair(src, dst_dir, stem: str):
    cert, key = dst_dir / f"{stem}.pem", dst_dir / f"{stem}.key"
    shutil.copyfile(src.cert, cert)
    shutil.copyfile(src.key, key)
    return cert, key


def _replace(src, dst) -> None:
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.rename(dst)


def _served_cert(host: str, port: int) -> bytes:
    with RawSession(host, port) as s:
        s.start()
        starttls(s, insecure_context())
        return peer_cert_der(s)


def test_certificate_reload_on_sighup_keeps_open_sessions(carrier_factory, pki, tmp_path):
    """SIGHUP re-reads the certificate files: a TLS session opened before it completes its
    message, and a new connection gets the new certificate."""
    cert, key = _copy_pair(pki.mx, tmp_path, "live")
    c = carrier_factory(tls={"cert_file": str(cert), "key_file": str(key)})
    s = c.session()
    s.start()
    starttls(s, client_context(pki))
    assert peer_cert_der(s) == pki.mx.leaf_der
    s.ehlo()
    s.cmd("MAIL FROM:<before@client.example>", 250)
    s.cmd("RCPT TO:<demo@example.test>", 250)

    _replace(pki.mx_new.cert, cert)
    _replace(pki.mx_new.key, key)
    c.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: _served_cert(c.host, c.port) == pki.mx_new.leaf_der, 10,
             what="a new connection to see the new certificate after SIGHUP")

    s.cmd("DATA", 354)
    s.send_raw(msg("sent across a reload") + b".\r\n")
    s.expect(250)
    s.cmd("QUIT", 221)
    s.close()
    data = one_message(c)
    assert b"Subject: sent across a reload" in data
    # the new certificate verifies as well
    with RawSession(c.host, c.port) as s2:
        s2.start()
        starttls(s2, client_context(pki))
        assert peer_cert_der(s2) == pki.mx_new.leaf_der
    assert c.running()


def test_reload_command_keeps_old_certificate_when_new_files_are_bad(carrier_factory, pki,
                                                                     tmp_path):
    """`carrier reload --config F` re-reads the certificates; a key that does not match its
    certificate makes the whole new configuration invalid: reload exits 1 naming the file and
    the old certificate stays in use; fixed files are taken by the next reload."""
    cert, key = _copy_pair(pki.mx, tmp_path, "live")
    c = carrier_factory(tls={"cert_file": str(cert), "key_file": str(key)})
    assert (c.data_dir / "carrier.pid").read_text().strip() == str(c.pid)

    def reload(expect: int = 0) -> subprocess.CompletedProcess:
        p = subprocess.run([str(CARRIER_BIN), "reload", "--config", str(c.config_path)],
                           capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert p.returncode == expect, f"carrier reload: {p.returncode}: {p.stdout}{p.stderr}"
        return p

    _replace(pki.mx_new.cert, cert)
    _replace(pki.stray_key, key)  # does not match mx_new
    p = reload(expect=1)
    assert str(key) in p.stderr and "not applied" in p.stderr, p.stderr
    assert _served_cert(c.host, c.port) == pki.mx.leaf_der, "a bad reload replaced the cert"

    _replace(pki.mx_new.key, key)
    reload()
    wait_for(lambda: _served_cert(c.host, c.port) == pki.mx_new.leaf_der, 10,
             what="the new certificate after a good reload")
    assert c.running()


# --- check-config -------------------------------------------------------------------------------

def test_check_config_reports_certificate_problems(tmp_path, pki):
    """check-config reads the [tls] files: a missing certificate file and a key that does not
    match its certificate are errors that name the file."""
    def check(tls: dict) -> subprocess.CompletedProcess:
        sections = default_sections(tmp_path / "var")
        sections["tls"] = tls
        cfg = tmp_path / "c.toml"
        cfg.write_text(render_config(sections))
        return subprocess.run([str(CARRIER_BIN), "check-config", str(cfg)], capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL)

    good = check({"cert_file": str(pki.mx.cert), "key_file": str(pki.mx.key),
                  "extra_certificates": [pki.other.files()]})
    assert good.returncode == 0, good.stderr

    missing = tmp_path / "no-such-cert.pem"
    p = check({"cert_file": str(missing), "key_file": str(pki.mx.key)})
    assert p.returncode != 0, "a missing cert_file passed check-config"
    assert str(missing) in p.stderr, p.stderr

    p = check({"cert_file": str(pki.mx.cert), "key_file": str(pki.stray_key)})
    assert p.returncode != 0, "a key that does not match its certificate passed check-config"
    assert str(pki.stray_key) in p.stderr or str(pki.mx.cert) in p.stderr, p.stderr
    assert re.search(r"(?i)match", p.stderr), p.stderr

    p = check({"cert_file": str(pki.mx.cert), "key_file": str(pki.mx.key),
               "extra_certificates": [{"cert_file": str(pki.other.cert),
                                       "key_file": str(pki.wrong.key)}]})
    assert p.returncode != 0, "a mismatched extra certificate passed check-config"
    assert re.search(r"(?i)match", p.stderr), p.stderr


# --- swaks ----------------------------------------------------------------------------------------

def test_swaks_starttls_and_tls_on_connect(tls_carrier, pki):
    """RFC 3207 and RFC 8314 3 with a third client (swaks, Net::SSLeay), verifying the
    certificate against the test root."""
    for listener, mode in (("smtp", "--tls"), ("submissions", "--tls-on-connect")):
        host, port = tls_carrier.ports[listener]
        args = ["swaks", "--server", host, "--port", str(port), mode, "--tls-verify",
                "--tls-ca-path", str(pki.ca), "--helo", "client.example",
                "--from", "sender@client.example", "--to", "demo@example.test",
                "--header", f"Subject: swaks {listener}", "--timeout", "15"]
        if listener == "submissions":
            args += ["--quit-after", "EHLO"]  # no AUTH user here: only the TLS part
        p = subprocess.run(args, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        assert re.search(r"TLS started with cipher TLSv1\.[23]", out), out
    d = parse_delivered(one_message(tls_carrier))
    assert b" with ESMTPS " in d.received, d.received


# --- outbound relay TLS: carrier A -> carrier B ----------------------------------------------------

A_IP, B_IP, PEER_IP = "127.0.0.2", "127.0.0.3", "127.0.0.5"
ALICE, ALICE_PW = "alice@a.test", "relay-pass-A1!"


class Pair:
    """carrier A (127.0.0.2: smtp + submission) and B (127.0.0.3) sharing one port."""

    def __init__(self, tmp_path, servers, pki):
        self.tmp_path, self.servers, self.pki = tmp_path, servers, pki
        self.port = free_port((A_IP, B_IP, PEER_IP))

    def _start(self, name, sections) -> RelayCarrier:
        c = RelayCarrier(self.tmp_path, name, sections, [])
        self.servers.append(c)
        try:
            return c.start()
        except AssertionError:
            c.stopped = True
            raise

    def a(self, route: dict, pw_hash: str) -> RelayCarrier:
        sections = carrier_sections(
            self.tmp_path / "A-var", hostname="mx.a.test", listen=f"{A_IP}:{self.port}",
            relay_port=self.port, dns_upstream="127.0.0.1@1", domains=["a.test"],
            mailboxes=["postmaster"], trusted=[],
            relay={"tls_ca_file": str(self.pki.ca)}, routes=[route])
        sections["listener"] = [{"address": f"{A_IP}:{self.port}", "name": "smtp"},
                                {"address": f"{A_IP}:0", "name": "submission",
                                 "submission": True}]
        sections["tls"] = self.pki.mx.files()
        pw = write_password_file(self.tmp_path / "A-passwd", [(ALICE, pw_hash, None)])
        sections["auth"] = {"password_file": str(pw), "failure_delay": "0s"}
        c = self._start("A", sections)
        c.ports = wait_listeners(c, 2)
        return c

    def b(self, cert=None, tls: str = "starttls") -> RelayCarrier:
        sections = carrier_sections(
            self.tmp_path / "B-var", hostname=B_NAME, listen=f"{B_IP}:{self.port}",
            relay_port=self.port, dns_upstream="127.0.0.1@1", domains=["b.test"],
            mailboxes=["bob", "postmaster"], trusted=[])
        sections["listener"] = [{"address": f"{B_IP}:{self.port}", "name": "smtp", "tls": tls}]
        if cert is not None:
            sections["tls"] = cert.files()
        return self._start("B", sections)


@pytest.fixture
def pair(request, tmp_path, pki):
    servers: list = []
    request.node.stash[SERVERS] = servers
    yield Pair(tmp_path, servers, pki)
    problems = []
    for c in reversed(servers):  # A first: it closes its pooled connection to B
        if c.proc is None or c.stopped:
            continue
        if c.proc.poll() is not None:
            problems.append(f"{c.name} died during the test with status {c.proc.returncode}")
        elif (rc := c.stop()) != 0:
            problems.append(f"{c.name} exited with status {rc} after SIGTERM (expected 0)")
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return carrier_passwd(ALICE_PW)


def submit_to_a(a: RelayCarrier, pki, subject: str) -> str:
    host, port = a.ports["submission"]
    with open_submission(host, port, client_context(pki), ALICE, ALICE_PW,
                         server_hostname=MX_NAME) as s:
        qid = send_message(s, ALICE, ["bob@b.test"], msg(subject, frm=ALICE, to="bob@b.test"))
        s.cmd("QUIT", 221)
    return qid


@pytest.mark.parametrize("case", ["verify", "verify-next-hop-ip", "encrypt-any-cert",
                                  "may-any-cert"])
def test_relay_over_tls_to_carrier_b(pair, pki, alice_hash, case):
    """Submission (RFC 6409, STARTTLS + AUTH) to A, which relays to B over STARTTLS (RFC 3207):
    "verify" checks the chain against [relay] tls_ca_file (the test root) and the name —
    tls_name, or by default the next hop's host, here the IP literal 127.0.0.3 that B's
    certificate lists (RFC 6125 6); "encrypt" and "may" take any certificate (B presents one
    for wrong.example). B's Received: says ESMTPS with the TLS version and cipher (RFC 3848 2);
    A's own Received: says ESMTPSA."""
    route = {"domain": "b.test", "next_hop": f"[{B_IP}]:{pair.port}"}
    cert = pki.b
    if case == "verify":
        route.update(tls="verify", tls_name=B_NAME)
    elif case == "verify-next-hop-ip":
        route.update(tls="verify")
    else:
        route.update(tls=case.split("-")[0])
        cert = pki.wrong
    b = pair.b(cert=cert)
    a = pair.a(route, alice_hash)
    qid = submit_to_a(a, pki, f"relay over TLS ({case})")
    [data] = b.wait_messages("bob", 1)
    fields, _ = leading_trace(data)
    received = [v for n, v in fields if n == "Received"]
    assert [received_by(v) for v in received] == [B_NAME, "mx.a.test"], received
    assert " with ESMTPS " in received[0] and USING_RE.search(received[0]), received[0]
    assert " with ESMTPSA " in received[1] and USING_RE.search(received[1]), received[1]
    a.wait_queue_empty(10)
    assert re.search(rf"{qid}.*using TLSv1\.[23]", a.log()), "A's log does not show TLS"


@pytest.mark.parametrize("case", ["verify-wrong-name", "verify-untrusted", "encrypt-no-tls"])
def test_relay_tls_failure_defers_and_never_sends_in_clear(pair, pki, alice_hash, case):
    """Policies "verify" (chain AND name, RFC 6125 6) and "encrypt" (TLS required): B with a
    certificate for another name, B with its self-signed certificate (untrusted chain), or B
    without STARTTLS: the message is deferred — it stays in A's queue, A's log says why with a
    4.7.x status — and B receives nothing, not even in clear, through A's retries."""
    if case == "verify-wrong-name":
        b = pair.b(cert=pki.wrong)
        route, why = {"tls": "verify", "tls_name": B_NAME}, r"(?i)host ?name|name mismatch"
    elif case == "verify-untrusted":
        b = pair.b(cert=None)  # self-signed for mx.b.test: the right name, an unknown issuer
        route, why = {"tls": "verify", "tls_name": B_NAME}, r"(?i)verif|self.signed|issuer"
    else:
        b = pair.b(tls="none")
        route, why = {"tls": "encrypt"}, r"(?i)TLS|STARTTLS"
    a = pair.a(dict(route, domain="b.test", next_hop=f"[{B_IP}]:{pair.port}"), alice_hash)
    qid = submit_to_a(a, pki, f"must not go in clear ({case})")
    deferred = re.compile(rf"^.*{qid}: to=<bob@b\.test> .*status=deferred.*$", re.M)
    # retry_initial 1s: wait for the first attempt and one retry
    lines = wait_for(lambda: (x := deferred.findall(a.log())) and len(x) >= 2 and x, 10,
                     what=f"two deferred attempts for {qid} in A's log")
    for ln in lines:
        assert re.search(r"\b4\.7\.\d+\b", ln), f"no 4.7.x reason: {ln}"
        assert re.search(why, ln), f"the reason is not given: {ln}"
    assert qid in [p.name for p in a.queue_files()], "the message left A's queue"
    assert b.all_messages() == {}, "B received the message"
    assert not b.queue_files(), "B accepted the message into its queue"
    assert "bob@b.test" not in b.log(), "A sent the envelope to B in clear"


@pytest.mark.parametrize("mode", ["refuse", "break"])
def test_relay_may_falls_back_to_clear_only_before_the_handshake(pair, pki, alice_hash, mode):
    """Policy "may" (RFC 3207 4): STARTTLS refused with 454 (the handshake never started) →
    the message goes on in clear on that connection. A handshake that started and failed
    leaves that connection unusable: nothing more is sent on it; as Postfix does at level
    "may", the same host is then tried again on a NEW connection without STARTTLS, so a
    server with a broken TLS stack still gets its mail (opportunistic TLS never promised
    secrecy; "encrypt" and "verify" do, see the test above)."""
    peer = BrokenTlsPeer(PEER_IP, pair.port, mode).start()
    try:
        a = pair.a({"domain": "b.test", "next_hop": f"[{PEER_IP}]:{pair.port}", "tls": "may"},
                   alice_hash)
        qid = submit_to_a(a, pki, f"may ({mode})")
        if mode == "refuse":
            wait_for(lambda: any(t.data for t in peer.snapshot()), 10,
                     what="the message at the peer in clear after 454 to STARTTLS")
            assert peer.starttls_seen >= 1
            a.wait_queue_empty(10)
        else:
            wait_for(lambda: any(t.data for t in peer.snapshot()), 10,
                     what="the message in clear on a new connection after the failed handshake")
            assert peer.starttls_seen >= 1
            for t in peer.snapshot():
                assert t.conn not in peer.starttls_conns, (
                    f"A went on in clear on the connection whose handshake failed: {t}")
            a.wait_queue_empty(10)
            assert re.search(rf"{qid}: relay to b\.test: .*TLS handshake failed.*again without TLS",
                             a.log()), "the fallback is logged with its reason"
    finally:
        peer.stop()
    assert not peer.errors, peer.errors
