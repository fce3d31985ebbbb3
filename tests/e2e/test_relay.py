"""End-to-end: relaying with REAL peers on 127.0.0.0/8 — three carrier instances in a chain
(A 127.0.0.2 -> B 127.0.0.3 -> C 127.0.0.4, one shared port like port 25 on three hosts), a
real Unbound serving the test zone, a scripted SMTP peer on 127.0.0.5, and Postfix.

RFC 5321 5.1 (MX, implicit MX, preference order and fallback), 4.4 (Received: prepended by
every hop, earlier ones untouched, Return-Path only at final delivery), 4.5.4.1 (retry 4xx,
never drop), 4.2.5 / 6.1 (per-recipient results, no bounce to the null path), 3.6.2 / 7.1
(relay only for trusted clients); RFC 7505 (null MX); RFC 3464 / RFC 6522 (DSNs: Action,
Status, Final-Recipient, Diagnostic-Code); RFC 3463 (5.1.10, 5.1.2, 4.4.7); RFC 6152 (BODY=
8BITMIME passed on).
"""
from __future__ import annotations

import re
import smtplib
import time
import uuid

import pytest

from conftest import SERVERS
from helpers import RawSession, as_stored, wait_for
from relay_helpers import (Postfix, RelayCarrier, SmtpPeer, Unbound, carrier_sections,
                           free_port, leading_trace, one_line, parse_dsn, received_by,
                           received_from)

ZONE = """\
; the A -> B -> C chain: B finds C through c.test's MX
c.test. MX 10 mx.c.test.
mx.c.test. A 127.0.0.4
; implicit MX: an A record and no MX (RFC 5321 5.1)
implicit.test. A 127.0.0.4
; preference order and fallback: nothing listens on 127.0.0.6
pref.test. MX 20 mx2.pref.test.
pref.test. MX 10 mx1.pref.test.
pref.test. MX 30 mx3.pref.test.
mx1.pref.test. A 127.0.0.6
mx2.pref.test. A 127.0.0.4
mx3.pref.test. A 127.0.0.3
; RFC 7505 null MX
nullmx.test. MX 0 .
gone.test. NXDOMAIN
vanished.test. NXDOMAIN
; A is the best MX: a loop (RFC 5321 5.1)
loop.test. MX 10 mx.a.test.
mx.a.test. A 127.0.0.2
; A is MX 20: only the more preferred B (MX 10) may be used, never C (MX 30)
backup.test. MX 10 mx.b.test.
backup.test. MX 20 mx.a.test.
backup.test. MX 30 mx.c.test.
mx.b.test. A 127.0.0.3
broken.test. SERVFAIL
; every address of an MX host is tried: the first one (127.0.0.6) refuses connections
multi.test. MX 10 mx.multi.test.
mx.multi.test. A 127.0.0.6
mx.multi.test. A 127.0.0.4
; MX 10 answers its greeting with 554/421 (a peer on 127.0.0.6), MX 20 is C
greet.test. MX 10 mx1.greet.test.
greet.test. MX 20 mx2.greet.test.
mx1.greet.test. A 127.0.0.6
mx2.greet.test. A 127.0.0.4
"""

A_IP, B_IP, C_IP, PEER_IP, DEAD_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONE).start()
    yield u
    u.stop()


class Net:
    """carrier instances on 127.0.0.x sharing one port (relay.port is that port)."""

    def __init__(self, tmp_path, unbound: Unbound, servers: list):
        self.tmp_path = tmp_path
        self.unbound = unbound
        self.servers = servers
        self.port = free_port((A_IP, B_IP, C_IP, DEAD_IP))

    def start(self, name: str, ip: str, hostname: str, domains: list[str],
              mailboxes: list[str], listen: str | None = None, data_dir=None,
              **kw) -> RelayCarrier:
        sections = carrier_sections(
            data_dir or self.tmp_path / f"{name}-var", hostname=hostname,
            listen=listen or f"{ip}:{self.port}", relay_port=self.port,
            dns_upstream=self.unbound.upstream, domains=domains, mailboxes=mailboxes, **kw)
        c = RelayCarrier(self.tmp_path, name, sections, [])
        self.servers.append(c)
        try:
            return c.start()
        except AssertionError:
            c.stopped = True  # never ran: the start failure is the test's error
            raise

    def sender_a(self, name: str = "A", **kw) -> RelayCarrier:
        """A: hosts a.test (demo, postmaster), trusts 127.0.0.0/8."""
        return self.start(name, A_IP, "mx.a.test", ["a.test"], ["demo", "postmaster"], **kw)


@pytest.fixture
def net(request, tmp_path, unbound):
    servers: list = []
    request.node.stash[SERVERS] = servers  # conftest attaches their logs to a failed report
    yield Net(tmp_path, unbound, servers)
    problems = []
    for c in servers:
        if c.proc is None or c.stopped:
            continue
        if c.proc.poll() is not None:
            problems.append(f"{c.name} died during the test with status {c.proc.returncode}")
        elif (rc := c.stop()) != 0:
            problems.append(f"{c.name} exited with status {rc} after SIGTERM (expected 0)")
    assert not problems, "; ".join(problems)


@pytest.fixture
def peer():
    p = SmtpPeer(host=PEER_IP)
    yield p
    p.stop()
    assert not p.errors, f"the test peer failed: {p.errors}"


def route_to(peer: SmtpPeer, domain: str = "peer.test") -> list[dict]:
    return [{"domain": domain, "next_hop": f"[{peer.host}]:{peer.port}"}]


def message(subject: str, to: str, body: bytes = b"Hello.\r\n", frm: str = "demo@a.test",
            extra: bytes = b"") -> bytes:
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@a.test>\r\n").encode() + extra + b"\r\n" + body


def submit(c: RelayCarrier, sender: str, rcpts: list[str], msg: bytes,
           eightbit: bool = False) -> None:
    with c.smtp(timeout=15) as s:
        refused = s.sendmail(sender, rcpts, msg,
                             mail_options=["BODY=8BITMIME"] if eightbit else [])
        assert not refused, refused


def relayed_content(data: bytes, by: str) -> bytes:
    """A message as a peer received it: the relaying carrier's one Received: field (by `by`),
    then the original bytes. Returns those original bytes."""
    fields, rest = leading_trace(data)
    assert [n.lower() for n, _ in fields] == ["received"], (
        f"expected exactly one prepended Received: (RFC 5321 4.4), got {fields}")
    assert received_by(fields[0][1]) == by, fields
    return rest


def xtext_decode(s: str) -> str:
    """RFC 3461 4: "+XX" is the octet with hex value XX."""
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


# --- 1. A -> B -> C --------------------------------------------------------------------------

def test_chain_of_three_prepends_one_received_per_hop(net):
    """RFC 5321 4.4: each of A (route to B), B (MX of c.test -> C) and C (final delivery)
    prepends exactly one Received: whose "by" is its own name and "from" the previous hop's
    EHLO name (4.1.1.1); nothing else of the message changes (dot-stuffed lines and 8-bit text
    included, RFC 5321 4.5.2, RFC 6152); Return-Path: is added only at final delivery."""
    port = net.port
    a = net.sender_a(routes=[{"domain": "c.test", "next_hop": f"[{B_IP}]:{port}"}])
    b = net.start("B", B_IP, "mx.b.test", ["b.test"], ["postmaster"])
    c = net.start("C", C_IP, "mx.c.test", ["c.test"], ["user", "postmaster"])
    body = (b"First line.\r\n.leading dot\r\n..two dots\r\n.\r\n"
            + "Grüße aus A\r\n".encode() + b"last line\r\n")
    msg = message("three hops", "user@c.test", body)
    submit(a, "demo@a.test", ["user@c.test"], msg, eightbit=True)

    [data] = c.wait_messages("user", 1, timeout=20)
    fields, rest = leading_trace(data)
    names = [n for n, _ in fields]
    assert names == ["Return-Path", "Delivered-To", "Received", "Received", "Received"], (
        f"expected Return-Path, Delivered-To and one Received: per hop (C, B, A), got {names}")
    assert fields[0][1] == "<demo@a.test>"
    assert fields[1][1] == "user@c.test"
    received = [v for n, v in fields if n == "Received"]
    assert [received_by(v) for v in received] == ["mx.c.test", "mx.b.test", "mx.a.test"], received
    assert [received_from(v) for v in received] == ["mx.b.test", "mx.a.test", "client.example"], (
        "each hop's Received: names the previous hop's EHLO name (its host name)")
    for v in received:
        assert "for <user@c.test>" in v, v
    ids = [re.search(r"\bid (\S+)", v).group(1) for v in received]
    assert len(set(ids)) == 3, f"three different queue ids expected: {ids}"
    assert rest == as_stored(msg), "the message changed on the way (beyond the trace fields)"
    for hop in (a, b):
        hop.wait_queue_empty(timeout=10)
        assert hop.all_messages() == {}, f"{hop.name} kept a copy or got a bounce"


# --- 2. MX resolution through Unbound ------------------------------------------------------------

def test_mx_preference_order_and_fallback(net):
    """RFC 5321 5.1: MX hosts are tried in order of preference; an unreachable one (10, nothing
    listens) is skipped for the next (20 -> C), and the less preferred (30 -> B) is not used."""
    a = net.sender_a()
    b = net.start("B", B_IP, "mx.b.test", ["pref.test"], ["user"])
    c = net.start("C", C_IP, "mx.c.test", ["pref.test"], ["user"])
    msg = message("preference", "user@pref.test")
    submit(a, "demo@a.test", ["user@pref.test"], msg)
    [data] = c.wait_messages("user", 1, timeout=20)
    _, rest = leading_trace(data)
    assert rest == as_stored(msg)
    a.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    assert b.all_messages() == {}, "the MX of preference 30 got the message"


def test_implicit_mx_a_record_only(net):
    """RFC 5321 5.1: a domain without MX records but with an A record is its own mail host."""
    a = net.sender_a()
    c = net.start("C", C_IP, "mx.c.test", ["implicit.test"], ["user"])
    msg = message("implicit", "user@implicit.test")
    submit(a, "demo@a.test", ["user@implicit.test"], msg)
    [data] = c.wait_messages("user", 1, timeout=20)
    assert leading_trace(data)[1] == as_stored(msg)
    a.wait_queue_empty(timeout=10)


@pytest.mark.parametrize("domain,status", [
    ("nullmx.test", "5.1.10"),  # RFC 7505 3 / RFC 3463 as updated by RFC 7505 4.2
    ("gone.test", "5.1.2"),     # NXDOMAIN: bad destination system address (RFC 3463 3.2)
])
def test_undeliverable_domain_bounces(net, domain, status):
    """RFC 7505 / RFC 3464: a null MX or a nonexistent domain fails at once; the sender (a local
    user of A) gets a DSN with the null return path: Action failed, the right Status, the
    Final-Recipient, Reporting-MTA naming A, and the original header section returned."""
    a = net.sender_a()
    rcpt = f"user@{domain}"
    msg = message(f"to {domain}", rcpt)
    submit(a, "demo@a.test", [rcpt], msg)
    [data] = a.wait_messages("demo", 1, timeout=15)
    fields, _ = leading_trace(data)
    assert fields[0] == ("Return-Path", "<>"), "a DSN is sent with MAIL FROM:<> (RFC 3461 6.1)"
    dsn = parse_dsn(data)
    assert one_line(dsn.per_message["Reporting-MTA"]) == "dns; mx.a.test"
    [r] = dsn.recipients
    assert one_line(r["Final-Recipient"]).lower() == f"rfc822; {rcpt}"
    assert r["Action"].strip() == "failed"
    assert r["Status"].strip() == status
    assert "auto-replied" in (dsn.message["Auto-Submitted"] or ""), "RFC 3834 5: Auto-Submitted"
    assert dsn.returned is not None and b"Subject: to " + domain.encode() in dsn.returned.as_bytes()
    a.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    assert len(a.messages("demo")) == 1, "more than one DSN"


def test_best_mx_is_myself_is_a_loop(net):
    """RFC 5321 5.1: if the SMTP client finds itself as the best MX of a domain it does not
    host, that is a configuration error: the message fails (5.4.6 routing loop, RFC 3463)
    instead of being sent to itself."""
    a = net.sender_a()
    submit(a, "demo@a.test", ["user@loop.test"], message("loop", "user@loop.test"))
    [data] = a.wait_messages("demo", 1, timeout=15)
    r = parse_dsn(data).for_rcpt("user@loop.test")
    assert r["Action"].strip() == "failed"
    assert r["Status"].strip() == "5.4.6"
    a.wait_queue_empty(timeout=10)


def test_less_preferred_mx_than_myself_is_never_used(net):
    """RFC 5321 5.1: when the client is itself an MX (20) of the domain, it must discard every
    MX of preference 20 or more: with the better MX (10, B) down the message waits, and the
    worse MX (30, C) never gets it; once B is up it is delivered there."""
    a = net.sender_a()
    c = net.start("C", C_IP, "mx.c.test", ["backup.test"], ["user"])
    msg = message("backup", "user@backup.test")
    submit(a, "demo@a.test", ["user@backup.test"], msg)
    time.sleep(3.0)  # several attempts at B (refused) with retry_initial 1s
    assert len(a.queue_files()) == 1, "the message left the queue while the best MX was down"
    assert c.all_messages() == {} and a.all_messages() == {}
    b = net.start("B", B_IP, "mx.b.test", ["backup.test"], ["user"])
    [data] = b.wait_messages("user", 1, timeout=15)
    assert leading_trace(data)[1] == as_stored(msg)
    a.wait_queue_empty(timeout=10)
    assert c.all_messages() == {}


def test_routes_wildcards_and_smarthost(net, peer):
    """[[route]] first match wins over the smarthost: "*.sub.test" takes every subdomain of
    sub.test (to C) but not sub.test itself, which like every other relayed domain goes to the
    smarthost (the peer) without any MX lookup."""
    peer.start()
    a = net.sender_a(routes=[{"domain": "*.sub.test", "next_hop": f"[{C_IP}]:{net.port}"}],
                     relay={"smarthost": f"[{peer.host}]:{peer.port}"})
    c = net.start("C", C_IP, "mx.c.test", ["deep.sub.test"], ["user"])
    rcpts = ["user@deep.sub.test", "x@sub.test", "y@nullmx.test"]
    msg = message("routes", "user@deep.sub.test")
    submit(a, "demo@a.test", rcpts, msg)
    [data] = c.wait_messages("user", 1, timeout=15)
    assert leading_trace(data)[1] == as_stored(msg)
    wait_for(lambda: sorted(r for t in peer.delivered() for r in t.accepted)
             == ["x@sub.test", "y@nullmx.test"], timeout=15,
             what="x@sub.test and y@nullmx.test at the smarthost")
    a.wait_queue_empty(timeout=10)
    assert a.all_messages() == {}, "the smarthost route must not look at the null MX"
    assert "sub.test. MX" not in net.unbound.log()


@pytest.mark.parametrize("peer_has_dsn", [True, False])
def test_dsn_parameters_relayed(net, peer, peer_has_dsn):
    """RFC 3461 5.2.1 (and 4.1-4.4): relaying to a server that offers DSN passes NOTIFY,
    ORCPT, RET and ENVID on unchanged; to a server that does not offer DSN none of them is
    sent (RFC 5321 2.2.1: no extension the server did not announce)."""
    if peer_has_dsn:
        peer.keywords = peer.keywords + ("DSN",)
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    with RawSession(a.host, a.port) as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test> RET=HDRS ENVID=env+2D42", 250)
        s.cmd("RCPT TO:<x@peer.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;orig+2Bx@peer.test", 250)
        s.cmd("DATA", 354)
        s.send_raw(message("dsn params", "x@peer.test") + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    [t] = peer.wait_delivered(1, timeout=15)
    mail = {p.split("=", 1)[0].upper(): p.split("=", 1)[1] for p in t.mail_params if "=" in p}
    rcpt = {p.split("=", 1)[0].upper(): p.split("=", 1)[1]
            for p in t.rcpt_params["x@peer.test"] if "=" in p}
    if peer_has_dsn:
        # xtext (RFC 3461 4) may be re-encoded: compare the decoded values
        assert mail.get("RET", "").upper() == "HDRS", mail
        assert xtext_decode(mail.get("ENVID", "")) == "env-42", mail
        assert rcpt.get("NOTIFY", "").upper() == "FAILURE,DELAY", rcpt
        addr_type, _, orcpt = rcpt.get("ORCPT", "").partition(";")
        assert addr_type.lower() == "rfc822" and xtext_decode(orcpt) == "orig+x@peer.test", rcpt
    else:
        assert not {"RET", "ENVID"} & mail.keys(), t.mail_params
        assert not {"NOTIFY", "ORCPT"} & rcpt.keys(), t.rcpt_params
    a.wait_queue_empty(timeout=10)


@pytest.mark.parametrize("missing,status", [
    ("8BITMIME", "5.6.3"),   # RFC 6152 3: no 8-bit data to a server without 8BITMIME
    ("SIZE", "5.3.4"),       # RFC 1870 6.1: never send more than the server's SIZE
    ("SMTPUTF8", "5.6.7"),   # RFC 6531 3.4 / RFC 6533: a UTF-8 address needs SMTPUTF8
])
def test_peer_without_needed_extension_bounces(net, peer, missing, status):
    """A message the peer cannot take (8-bit body to a server without 8BITMIME; larger than
    the SIZE it announced; a UTF-8 recipient for a server without SMTPUTF8) is not sent at all
    and is returned to the sender (carrier does not convert, docs/relay.md)."""
    keywords = [k for k in peer.keywords if not k.startswith(missing)]
    if missing == "SIZE":
        keywords.append("SIZE 2000")
    peer.keywords = tuple(keywords)
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    rcpt = "x@peer.test"
    if missing == "8BITMIME":
        msg = message("needs 8BITMIME", rcpt, "8-bit: ñ\r\n".encode())
        submit(a, "demo@a.test", [rcpt], msg, eightbit=True)
    elif missing == "SIZE":
        msg = message("needs SIZE", rcpt, (b"x" * 70 + b"\r\n") * 60)
        submit(a, "demo@a.test", [rcpt], msg)
    else:
        rcpt = "jürgen@peer.test"
        with RawSession(a.host, a.port) as s:
            s.start()
            s.cmd("MAIL FROM:<demo@a.test> SMTPUTF8", 250)
            s.cmd(f"RCPT TO:<{rcpt}>", 250)
            s.cmd("DATA", 354)
            s.send_raw(message("needs SMTPUTF8", rcpt) + b".\r\n")
            s.expect(250)
            s.cmd("QUIT", 221)
    [data] = a.wait_messages("demo", 1, timeout=15)
    r = parse_dsn(data, is_global=missing == "SMTPUTF8").for_rcpt(rcpt)
    assert r["Action"].strip() == "failed" and r["Status"].strip() == status, (
        r["Action"], r["Status"], r["Diagnostic-Code"])
    assert all(t.data is None for t in peer.snapshot()), "the message was sent anyway"
    a.wait_queue_empty(timeout=10)


def test_every_address_of_an_mx_host_is_tried(net):
    """RFC 5321 5.1: when an MX host has several addresses and the first cannot be reached,
    the client tries the next address."""
    a = net.sender_a()
    c = net.start("C", C_IP, "mx.c.test", ["multi.test"], ["user"])
    msg = message("multi A", "user@multi.test")
    submit(a, "demo@a.test", ["user@multi.test"], msg)
    # the order of the two addresses is not fixed: with 127.0.0.6 first it must move on
    [data] = c.wait_messages("user", 1, timeout=15)
    assert leading_trace(data)[1] == as_stored(msg)
    a.wait_queue_empty(timeout=10)


@pytest.mark.parametrize("greeting", ["554 5.3.2 no service here", "421 4.3.2 busy, go away"])
def test_refused_greeting_moves_to_next_mx(net, greeting):
    """RFC 5321 3.1 / 5.1: an MX that refuses the session at its greeting (554 or 421) is
    skipped for the next MX; the message is delivered there and nothing is sent to the first."""
    refuser = SmtpPeer(host=DEAD_IP, port=net.port, name="mx1.greet.test")
    refuser.greeting = greeting
    refuser.start()
    try:
        a = net.sender_a()
        c = net.start("C", C_IP, "mx.c.test", ["greet.test"], ["user"])
        msg = message("greeting", "user@greet.test")
        submit(a, "demo@a.test", ["user@greet.test"], msg)
        [data] = c.wait_messages("user", 1, timeout=15)
        assert leading_trace(data)[1] == as_stored(msg)
        a.wait_queue_empty(timeout=10)
        assert refuser.connections >= 1, "MX 10 was never tried"
        assert refuser.snapshot() == [], "a transaction on a refused session"
        assert a.all_messages() == {}
    finally:
        refuser.stop()
    assert not refuser.errors, refuser.errors


def test_servfail_is_deferred_not_bounced(net):
    """RFC 5321 4.5.4.1 and 5.1: a temporary DNS failure (SERVFAIL) keeps the message queued and
    retried; no bounce comes back within a few retry intervals."""
    a = net.sender_a()
    submit(a, "demo@a.test", ["user@broken.test"], message("servfail", "user@broken.test"))
    wait_for(lambda: "broken.test. MX" in net.unbound.log(), timeout=10,
             what="carrier's MX query for broken.test at Unbound")
    time.sleep(3.5)  # retry_initial 1s, retry_max 2s: at least two more attempts
    assert len(a.queue_files()) == 1, "the message left the queue after a temporary DNS failure"
    assert a.all_messages() == {}, "a bounce for a temporary failure"


def test_relay_denied_to_untrusted_client(net):
    """RFC 5321 3.6.2 and 7.1: with relaying configured, a client outside trusted_networks still
    cannot relay (554 5.7.1) but may send to local users; a trusted client may relay."""
    a = net.sender_a(trusted=["127.0.0.1/32"])
    with RawSession(a.host, a.port, source="127.0.0.9") as s:
        s.start()
        s.cmd("MAIL FROM:<someone@elsewhere.test>", 250)
        s.cmd("RCPT TO:<user@c.test>", 554, "5.7.1")
        s.cmd("RCPT TO:<demo@a.test>", 250)
        s.cmd("RSET", 250)
    with RawSession(a.host, a.port, source="127.0.0.1") as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test>", 250)
        s.cmd("RCPT TO:<user@c.test>", 250)
        s.cmd("RSET", 250)
    assert a.queue_files() == []


# --- 3. a scripted SMTP peer --------------------------------------------------------------------

def test_peer_4xx_then_accepted_after_retry(net, peer):
    """RFC 5321 4.5.4.1: a 451 to RCPT defers the recipient; the retry (retry_initial 1s)
    delivers it once. The peer gets the original reverse path, BODY=8BITMIME passed on
    (RFC 6152 3), and the message with one Received: prepended."""
    peer.rcpt_reply = lambda n, addr: ("451 4.7.1 greylisted, come back later"
                                       if n == 1 else "250 2.1.5 OK")
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    msg = message("greylisted", "x@peer.test", "8-bit: ünïcödé\r\n".encode())
    submit(a, "demo@a.test", ["x@peer.test"], msg, eightbit=True)
    [t] = peer.wait_delivered(1, timeout=15)
    a.wait_queue_empty(timeout=10)
    txns = peer.snapshot()
    assert txns[0].rcpts == [("x@peer.test", 451)] and txns[0].data is None, txns[0]
    assert t.mail_from == "demo@a.test" and t.accepted == ["x@peer.test"]
    assert "BODY=8BITMIME" in [p.upper() for p in t.mail_params], t.mail_params
    assert t.helo == "mx.a.test"
    assert relayed_content(t.data, "mx.a.test") == msg
    assert len(peer.delivered()) == 1
    assert a.all_messages() == {}, "a DSN for a recipient that was delivered"


def test_peer_550_bounces_with_the_peers_text(net, peer):
    """RFC 3464 2.3.6: a 550 to RCPT fails the recipient at once; the DSN's Diagnostic-Code
    carries the peer's reply (smtp; 550 5.1.1 ... text), Status 5.1.1. No DATA is sent."""
    peer.rcpt_reply = lambda n, addr: (
        f"550 5.1.1 <{addr}>: no such user here (peer-marker-7731)")
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    submit(a, "demo@a.test", ["nobody@peer.test"], message("to nobody", "nobody@peer.test"))
    [data] = a.wait_messages("demo", 1, timeout=15)
    dsn = parse_dsn(data)
    r = dsn.for_rcpt("nobody@peer.test")
    assert r["Action"].strip() == "failed"
    assert r["Status"].strip() == "5.1.1"
    diag = one_line(r["Diagnostic-Code"])
    assert diag.lower().startswith("smtp;"), diag
    assert "550" in diag and "no such user here (peer-marker-7731)" in diag, diag
    assert all(t.data is None for t in peer.snapshot()), "DATA sent without an accepted RCPT"
    a.wait_queue_empty(timeout=10)


@pytest.mark.parametrize("stage", ["MAIL", "DATA"])
def test_peer_5xx_to_mail_or_end_of_data_bounces(net, peer, stage):
    """RFC 5321 3.3 / 4.2.5: a 5xx to MAIL, or to the end of the data, fails every recipient of
    the transaction; the DSN carries the peer's reply and its enhanced status code."""
    reply = f"554 5.7.1 rejected at {stage} (peer-marker-{stage})"
    if stage == "MAIL":
        peer.mail_reply = lambda n, path: reply
    else:
        peer.data_reply = lambda n, txn: reply
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    rcpts = ["x@peer.test", "y@peer.test"]
    submit(a, "demo@a.test", rcpts, message(f"5xx at {stage}", "x@peer.test"))
    [data] = a.wait_messages("demo", 1, timeout=15)
    dsn = parse_dsn(data)
    for rcpt in rcpts:
        r = dsn.for_rcpt(rcpt)
        assert r["Action"].strip() == "failed" and r["Status"].strip() == "5.7.1", dict(r)
        assert f"peer-marker-{stage}" in one_line(r["Diagnostic-Code"]), r["Diagnostic-Code"]
    a.wait_queue_empty(timeout=10)
    assert len(peer.delivered()) == 0


def test_peer_451_after_data_sends_the_message_again(net, peer):
    """RFC 5321 4.2.5 / 4.5.4.1: a 4xx to the end of data means not delivered: the whole
    message is sent again later and accepted then (delivered once)."""
    peer.data_reply = lambda n, txn: ("451 4.3.0 queue trouble, later" if n == 1
                                      else "250 2.0.0 OK accepted")
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    msg = message("again", "x@peer.test")
    submit(a, "demo@a.test", ["x@peer.test"], msg)
    [t] = peer.wait_delivered(1, timeout=15)
    first = peer.snapshot()[0]
    assert first.data_code == 451 and first.data == t.data
    assert relayed_content(t.data, "mx.a.test") == msg
    a.wait_queue_empty(timeout=10)
    assert a.all_messages() == {}


def test_reply_without_enhanced_code(net, peer):
    """RFC 3463 / RFC 3464 2.3.4: a peer without ENHANCEDSTATUSCODES says just "550 text"; the
    DSN's Status then comes from the reply class (5.0.0) and the Diagnostic-Code keeps the
    peer's words."""
    peer.keywords = tuple(k for k in peer.keywords if k != "ENHANCEDSTATUSCODES")
    peer.rcpt_reply = lambda n, addr: "550 mailbox unavailable (peer-marker-plain)"
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    submit(a, "demo@a.test", ["x@peer.test"], message("plain", "x@peer.test"))
    [data] = a.wait_messages("demo", 1, timeout=15)
    r = parse_dsn(data).for_rcpt("x@peer.test")
    assert r["Action"].strip() == "failed" and r["Status"].strip() == "5.0.0", r["Status"]
    diag = one_line(r["Diagnostic-Code"])
    assert diag.lower().startswith("smtp;") and "550 mailbox unavailable (peer-marker-plain)" \
        in diag, diag


def test_peer_down_then_up(net, peer):
    """RFC 5321 4.5.4.1: connection refused is temporary; once the peer listens the message
    is delivered, exactly once."""
    a = net.sender_a(routes=route_to(peer))
    msg = message("patience", "x@peer.test")
    submit(a, "demo@a.test", ["x@peer.test"], msg)
    time.sleep(2.5)  # at least one refused attempt (retry_initial 1s)
    assert len(a.queue_files()) == 1, "the message left the queue while the peer was down"
    assert a.all_messages() == {}
    peer.start()
    [t] = peer.wait_delivered(1, timeout=15)
    assert relayed_content(t.data, "mx.a.test") == msg
    a.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    assert len(peer.delivered()) == 1 and a.all_messages() == {}


def test_peer_drops_connection_mid_data(net, peer):
    """RFC 5321 4.1.1.4 / 4.5.4.1: a connection lost during DATA is no delivery; the message
    stays queued and is sent whole on the next attempt."""
    peer.drop_in_data = lambda n: n == 1
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    body = b"".join(b"line %06d of a message long enough to be cut in flight\r\n" % i
                    for i in range(8000))  # ~500 KB
    msg = message("cut", "x@peer.test", body)
    submit(a, "demo@a.test", ["x@peer.test"], msg)
    [t] = peer.wait_delivered(1, timeout=20)
    assert peer.snapshot()[0].dropped
    assert t.conn >= 2, "delivered on the connection that was dropped?"
    assert relayed_content(t.data, "mx.a.test") == msg
    a.wait_queue_empty(timeout=10)
    assert a.all_messages() == {}


def test_partial_acceptance_per_recipient(net, peer):
    """RFC 5321 4.2.5 / 3.3: each RCPT has its own outcome. ok: 250 -> delivered once;
    bad: 550 -> bounced (only it); later: 451 first -> retried, and the retry carries only
    `later` (the delivered and the failed recipients are not sent again)."""
    def rcpt(n, addr):
        if addr.startswith("bad@"):
            return "550 5.1.1 bad mailbox (peer-marker-550)"
        if addr.startswith("later@") and n == 1:
            return "452 4.2.2 mailbox full, try later"
        return "250 2.1.5 OK"
    peer.rcpt_reply = rcpt
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    rcpts = ["ok@peer.test", "bad@peer.test", "later@peer.test"]
    msg = message("partial", "ok@peer.test")
    with a.smtp(timeout=15) as s:
        assert not s.sendmail("demo@a.test", rcpts, msg)
    peer.wait_delivered(2, timeout=20)
    [data] = a.wait_messages("demo", 1, timeout=10)
    a.wait_queue_empty(timeout=10)
    time.sleep(1.0)
    done = peer.delivered()
    assert len(done) == 2, peer.snapshot()
    assert sorted(done[0].accepted) == ["ok@peer.test"], done[0]
    assert [a_ for a_, _ in done[1].rcpts] == ["later@peer.test"], (
        f"the retry must carry only the deferred recipient: {done[1].rcpts}")
    sent_ok = [t for t in peer.snapshot() for r, _ in t.rcpts if r == "ok@peer.test"]
    assert len(sent_ok) == 1, "the delivered recipient was sent again"
    sent_bad = [t for t in peer.snapshot() for r, _ in t.rcpts if r == "bad@peer.test"]
    assert len(sent_bad) == 1, "the permanently failed recipient was retried"
    for t in done:
        assert relayed_content(t.data, "mx.a.test") == msg
    dsn = parse_dsn(data)
    failed = [r for r in dsn.recipients if r["Action"].strip() == "failed"]
    assert [one_line(r["Final-Recipient"]).lower() for r in failed] == ["rfc822; bad@peer.test"]
    assert "peer-marker-550" in one_line(failed[0]["Diagnostic-Code"])
    assert not [r for r in dsn.recipients if "ok@peer.test" in r["Final-Recipient"]], (
        "the DSN reports the delivered recipient (no NOTIFY=SUCCESS was asked)")
    time.sleep(0.5)
    assert len(a.messages("demo")) == 1


def test_too_many_recipients_452_sent_again_later(net, peer):
    """RFC 5321 4.5.3.1.10: a server may take fewer recipients per transaction (452 4.5.3
    after its limit); the client sends the rest in later transactions. Every recipient is
    delivered exactly once."""
    def rcpt(n, addr):
        txn = peer.transactions[n - 1]
        return "452 4.5.3 too many recipients" if len(txn.rcpts) >= 2 else "250 2.1.5 OK"
    peer.rcpt_reply = rcpt
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    rcpts = [f"r{i}@peer.test" for i in range(5)]
    msg = message("many", rcpts[0])
    submit(a, "demo@a.test", rcpts, msg)
    wait_for(lambda: sorted(r for t in peer.delivered() for r in t.accepted) == rcpts,
             timeout=20, what=f"all of {rcpts} delivered")
    a.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    accepted = [r for t in peer.snapshot() for r, code in t.rcpts if code == 250]
    assert sorted(accepted) == rcpts, f"a recipient was delivered twice: {accepted}"
    for t in peer.delivered():
        assert relayed_content(t.data, "mx.a.test") == msg
    assert a.all_messages() == {}


def test_connection_reused_for_the_next_message(net, peer):
    """docs/relay.md: after a message a healthy connection waits for the next message to the
    same next hop (RFC 5321 3.3: one session may carry several transactions)."""
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    first, second = message("one", "x@peer.test"), message("two", "y@peer.test")
    submit(a, "demo@a.test", ["x@peer.test"], first)
    peer.wait_delivered(1, timeout=15)
    submit(a, "demo@a.test", ["y@peer.test"], second)
    done = peer.wait_delivered(2, timeout=15)
    assert [relayed_content(t.data, "mx.a.test") for t in done] == [first, second]
    assert peer.connections == 1, f"{peer.connections} connections for two messages"


def test_deferred_relay_survives_restart(net, peer):
    """RFC 5321 4.5.4.1 / 6.1: a relayed message deferred (peer down) stays in the spool over
    a clean restart and is delivered, once, when the peer comes up."""
    a = net.sender_a(routes=route_to(peer))
    msg = message("restart", "x@peer.test")
    submit(a, "demo@a.test", ["x@peer.test"], msg)
    time.sleep(1.5)
    assert a.stop() == 0
    assert len(a.queue_files()) == 1
    a2 = net.sender_a(name="A2", routes=route_to(peer), data_dir=a.data_dir)
    peer.start()
    [t] = peer.wait_delivered(1, timeout=20)
    assert relayed_content(t.data, "mx.a.test") == msg
    a2.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    assert len(peer.delivered()) == 1 and a2.all_messages() == {}


# --- 5. expiry, delay notices, bounce loops ------------------------------------------------------

def test_expiry_bounces_4_4_7_after_one_delay_notice(net, peer):
    """RFC 3464 2.3.3 / RFC 3463 4.4.7: a message that stays deferred gets ONE delay notice
    (Action: delayed) after delay_warning and, once older than max_queue_lifetime, a failure
    DSN with Status 4.4.7; then it leaves the queue."""
    peer.rcpt_reply = lambda n, addr: "451 4.3.0 not today"
    peer.start()
    a = net.sender_a(routes=route_to(peer),
                     server={"max_queue_lifetime": "8s", "delay_warning": "3s"})
    submit(a, "demo@a.test", ["x@peer.test"], message("expire", "x@peer.test"))
    start = time.monotonic()
    first = a.wait_messages("demo", 1, timeout=15)
    assert time.monotonic() - start >= 2.0, "the delay notice came before delay_warning"
    [delayed] = [parse_dsn(m) for m in first]
    r = delayed.for_rcpt("x@peer.test")
    assert r["Action"].strip() == "delayed" and r["Status"].strip().startswith("4."), (
        r["Action"], r["Status"])
    both = a.wait_messages("demo", 2, timeout=20)
    a.wait_queue_empty(timeout=10)
    actions = sorted(parse_dsn(m).for_rcpt("x@peer.test")["Action"].strip() for m in both)
    assert actions == ["delayed", "failed"], actions
    [failed] = [d for d in (parse_dsn(m) for m in both)
                if d.for_rcpt("x@peer.test")["Action"].strip() == "failed"]
    assert failed.for_rcpt("x@peer.test")["Status"].strip() == "4.4.7"
    time.sleep(1.5)
    assert len(a.messages("demo")) == 2, "more than one delay notice or failure DSN"
    assert len(peer.delivered()) == 0


def test_notify_failure_only_gets_no_delay_notice(net, peer):
    """RFC 3461 4.1: a delay notice only for NOTIFY=DELAY or no NOTIFY. With NOTIFY=FAILURE
    the sender hears nothing while the message waits, then one failure DSN (4.4.7) at expiry."""
    peer.rcpt_reply = lambda n, addr: "451 4.3.0 not today"
    peer.start()
    a = net.sender_a(routes=route_to(peer),
                     server={"max_queue_lifetime": "5s", "delay_warning": "1s"})
    with RawSession(a.host, a.port) as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test>", 250)
        s.cmd("RCPT TO:<x@peer.test> NOTIFY=FAILURE", 250)
        s.cmd("DATA", 354)
        s.send_raw(message("no delay notice", "x@peer.test") + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    [data] = a.wait_messages("demo", 1, timeout=20)
    r = parse_dsn(data).for_rcpt("x@peer.test")
    assert r["Action"].strip() == "failed" and r["Status"].strip() == "4.4.7", (
        f"the first notice must be the failure at expiry, got {r['Action']} {r['Status']}")
    a.wait_queue_empty(timeout=10)
    time.sleep(1.0)
    assert len(a.messages("demo")) == 1


def test_dsn_echoes_envid_and_orcpt(net, peer):
    """RFC 3461 6.3 / RFC 3464 2.2.1, 2.3.1: the DSN carries Original-Envelope-Id (the ENVID)
    and, per recipient, Original-Recipient (the ORCPT), decoded from xtext."""
    peer.rcpt_reply = lambda n, addr: "550 5.1.1 unknown"
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    with RawSession(a.host, a.port) as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test> ENVID=track+2Bme-42", 250)
        s.cmd("RCPT TO:<x@peer.test> ORCPT=rfc822;list+2Bx@peer.test", 250)
        s.cmd("DATA", 354)
        s.send_raw(message("envid", "x@peer.test") + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    [data] = a.wait_messages("demo", 1, timeout=15)
    dsn = parse_dsn(data)
    # written decoded or still in xtext: either way it must decode to what the client sent
    envid = one_line(dsn.per_message["Original-Envelope-Id"])
    assert xtext_decode(envid) == "track+me-42", envid
    r = dsn.for_rcpt("x@peer.test")
    orcpt = one_line(r["Original-Recipient"])
    assert orcpt.lower().startswith("rfc822;") and \
        xtext_decode(orcpt.split(";", 1)[1].strip()) == "list+x@peer.test", orcpt


def test_failed_bounce_is_not_bounced_again(net, peer):
    """RFC 5321 4.5.5 / 6.1 and RFC 3461 6.1: the DSN for a rejected recipient goes to the
    sender's domain, which does not exist (NXDOMAIN); that DSN, sent with the null path, fails
    and is dropped (logged), never bounced again: no mail loop, no DSN anywhere, empty queue."""
    peer.rcpt_reply = lambda n, addr: "550 5.1.1 no such user (peer-marker-loop)"
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    submit(a, "someone@vanished.test", ["nobody@peer.test"],
           message("loop?", "nobody@peer.test", frm="someone@vanished.test"))
    wait_for(lambda: "vanished.test. MX" in net.unbound.log(), timeout=15,
             what="the DSN's MX lookup of vanished.test")
    a.wait_queue_empty(timeout=15)
    time.sleep(1.0)
    assert a.all_messages() == {}
    assert [t.mail_from for t in peer.snapshot()] == ["someone@vanished.test"], peer.snapshot()
    assert a.queue_files() == []
    dropped = [ln for ln in a.log().splitlines()
               if "to=<someone@vanished.test>" in ln and "no bounce" in ln]
    assert len(dropped) == 1, "the undeliverable DSN must be logged once as not bounced"


def test_null_sender_failure_is_not_bounced(net, peer):
    """RFC 5321 4.5.5 / 6.1: a message with the null reverse path (itself a DSN) that fails is
    never answered with another DSN."""
    peer.rcpt_reply = lambda n, addr: "550 5.1.1 no such user"
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    submit(a, "", ["nobody@peer.test"], message("a bounce", "nobody@peer.test", frm="MAILER-DAEMON@x.test"))
    wait_for(lambda: len(peer.snapshot()) >= 1, timeout=15, what="the attempt at the peer")
    a.wait_queue_empty(timeout=10)
    time.sleep(1.0)
    assert a.all_messages() == {}
    assert [t.mail_from for t in peer.snapshot()] == [""]


# --- 4. Postfix on both sides -----------------------------------------------------------------

@pytest.fixture(scope="module")
def postfix():
    pf = Postfix().start()
    yield pf
    pf.stop()


def test_postfix_delivers_into_carrier(net, postfix):
    """Postfix's SMTP client -> carrier (RFC 5321 as spoken by Postfix 3.7: EHLO, PIPELINING,
    and BDAT if offered): the message lands in carrier's Maildir unchanged, below carrier's and
    Postfix's Received: fields."""
    b = net.start("B", "127.0.0.1", "mx.b.test", ["far.test"], ["user"],
                  listen=f"127.0.0.1:{postfix.sink_port}")
    msg = message("via postfix", "user@far.test", frm="sender@pf.test")
    with smtplib.SMTP("127.0.0.1", postfix.port, local_hostname="client.example",
                      timeout=15) as s:
        assert not s.sendmail("sender@pf.test", ["user@far.test"], msg)
    [data] = b.wait_messages("user", 1, timeout=20)
    fields, rest = leading_trace(data)
    assert [n for n, _ in fields] == ["Return-Path", "Delivered-To", "Received", "Received"], fields
    assert fields[0][1] == "<sender@pf.test>"
    assert received_by(fields[2][1]) == "mx.b.test"
    assert received_from(fields[2][1]) == "postfix.bench.invalid"
    assert received_by(fields[3][1]) == "postfix.bench.invalid"
    assert rest == as_stored(msg)


def test_carrier_relays_through_postfix(net, postfix):
    """carrier's SMTP client -> Postfix's smtpd -> carrier: A routes far.test to Postfix, which
    relays to B. B's copy shows three Received: fields (B, Postfix, A) over the unchanged
    message, and Postfix logged status=sent."""
    a = net.sender_a(routes=[{"domain": "far.test",
                              "next_hop": f"[127.0.0.1]:{postfix.port}"}])
    b = net.start("B", "127.0.0.1", "mx.b.test", ["far.test"], ["user"],
                  listen=f"127.0.0.1:{postfix.sink_port}")
    body = b".dot line\r\n" + "8-bit: façade\r\n".encode()
    msg = message("through postfix", "user@far.test", body)
    submit(a, "demo@a.test", ["user@far.test"], msg, eightbit=True)
    [data] = b.wait_messages("user", 1, timeout=20)
    fields, rest = leading_trace(data)
    names = [n for n, _ in fields]
    assert names == ["Return-Path", "Delivered-To", "Received", "Received", "Received"], fields
    assert fields[0][1] == "<demo@a.test>"
    received = [v for n, v in fields if n == "Received"]
    assert [received_by(v) for v in received] == [
        "mx.b.test", "postfix.bench.invalid", "mx.a.test"], received
    assert received_from(received[1]) == "mx.a.test", "carrier's EHLO name as Postfix saw it"
    assert rest == as_stored(msg)
    a.wait_queue_empty(timeout=10)
    wait_for(lambda: "status=sent" in postfix.maillog(), timeout=10, what="status=sent")


def test_bounce_to_a_remote_sender_goes_out_over_smtp(net, peer):
    """RFC 5321 4.5.5 / RFC 3461 6.1: the DSN for a sender in another domain is relayed like
    any mail (c.test MX -> C) with the null reverse path, and lands in the sender's mailbox."""
    peer.rcpt_reply = lambda n, addr: "550 5.1.1 unknown user (peer-marker-remote)"
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    c = net.start("C", C_IP, "mx.c.test", ["c.test"], ["user"])
    submit(a, "user@c.test", ["nobody@peer.test"],
           message("from c", "nobody@peer.test", frm="user@c.test"))
    [data] = c.wait_messages("user", 1, timeout=15)
    fields, _ = leading_trace(data)
    assert fields[0] == ("Return-Path", "<>")
    assert received_from([v for n, v in fields if n == "Received"][0]) == "mx.a.test"
    r = parse_dsn(data).for_rcpt("nobody@peer.test")
    assert r["Action"].strip() == "failed" and r["Status"].strip() == "5.1.1"
    assert "peer-marker-remote" in one_line(r["Diagnostic-Code"])
    a.wait_queue_empty(timeout=10)


def test_notify_success_and_never(net, peer):
    """RFC 3461 4.1 / 5.2.2: NOTIFY=SUCCESS relayed to a server without DSN earns a "relayed"
    DSN; NOTIFY=NEVER on a rejected recipient earns none. One DSN, one block."""
    peer.rcpt_reply = lambda n, addr: ("550 5.1.1 unknown" if addr.startswith("bad@")
                                       else "250 2.1.5 OK")
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    with RawSession(a.host, a.port) as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test>", 250)
        s.cmd("RCPT TO:<ok@peer.test> NOTIFY=SUCCESS", 250)
        s.cmd("RCPT TO:<bad@peer.test> NOTIFY=NEVER", 250)
        s.cmd("DATA", 354)
        s.send_raw(message("notify", "ok@peer.test") + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    peer.wait_delivered(1, timeout=15)
    [data] = a.wait_messages("demo", 1, timeout=15)
    dsn = parse_dsn(data)
    [r] = dsn.recipients
    assert one_line(r["Final-Recipient"]).lower() == "rfc822; ok@peer.test"
    assert r["Action"].strip() == "relayed" and r["Status"].strip().startswith("2."), (
        r["Action"], r["Status"])
    a.wait_queue_empty(timeout=10)
    time.sleep(1.0)
    assert len(a.messages("demo")) == 1, "a DSN for the NOTIFY=NEVER recipient"


@pytest.mark.parametrize("ret", ["FULL", None])
def test_bounce_returns_full_message_or_headers(net, peer, ret):
    """RFC 3461 4.3 / RFC 3464 2: RET=FULL returns the whole message (message/rfc822), else the
    header section only (text/rfc822-headers), without the body."""
    peer.rcpt_reply = lambda n, addr: "550 5.1.1 unknown"
    peer.start()
    a = net.sender_a(routes=route_to(peer))
    msg = message("ret", "x@peer.test", b"BODY-MARKER-31337\r\n")
    with RawSession(a.host, a.port) as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test>" + (f" RET={ret}" if ret else ""), 250)
        s.cmd("RCPT TO:<x@peer.test>", 250)
        s.cmd("DATA", 354)
        s.send_raw(msg + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    [data] = a.wait_messages("demo", 1, timeout=15)
    dsn = parse_dsn(data)
    assert dsn.returned is not None
    returned = dsn.returned.as_bytes()
    assert b"Subject: ret" in returned
    if ret == "FULL":
        assert dsn.returned.get_content_type() == "message/rfc822"
        assert b"BODY-MARKER-31337" in returned
    else:
        assert dsn.returned.get_content_type() == "text/rfc822-headers"
        assert b"BODY-MARKER-31337" not in returned


def test_forwarding_loop_is_cut_and_bounced(net):
    """RFC 5321 6.3: A and B route loop2.test to each other; the hop count (Received: fields)
    grows until a server refuses with 554 5.4.6 (max_received_headers); the sender gets a DSN
    and both queues empty: the loop ends."""
    port = net.port
    limits = {"max_received_headers": 6}
    a = net.sender_a(routes=[{"domain": "loop2.test", "next_hop": f"[{B_IP}]:{port}"}],
                     limits=limits)
    b = net.start("B", B_IP, "mx.b.test", ["b.test"], ["postmaster"], limits=limits,
                  routes=[{"domain": "loop2.test", "next_hop": f"[{A_IP}]:{port}"},
                          {"domain": "a.test", "next_hop": f"[{A_IP}]:{port}"}])
    submit(a, "demo@a.test", ["user@loop2.test"], message("round and round", "user@loop2.test"))
    [data] = a.wait_messages("demo", 1, timeout=20)
    r = parse_dsn(data).for_rcpt("user@loop2.test")
    assert r["Action"].strip() == "failed" and r["Status"].strip() == "5.4.6", (
        r["Status"], r["Diagnostic-Code"])
    assert "554" in one_line(r["Diagnostic-Code"])
    a.wait_queue_empty(timeout=10)
    b.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    assert len(a.messages("demo")) == 1 and b.all_messages() == {}


def test_notify_success_on_local_delivery(net):
    """RFC 3461 5.2.3: a recipient delivered locally with NOTIFY=SUCCESS earns a "delivered"
    DSN to the sender (here demo, mail to postmaster, both on A)."""
    a = net.sender_a()
    with RawSession(a.host, a.port) as s:
        s.start()
        s.cmd("MAIL FROM:<demo@a.test>", 250)
        s.cmd("RCPT TO:<postmaster@a.test> NOTIFY=SUCCESS", 250)
        s.cmd("DATA", 354)
        s.send_raw(message("success please", "postmaster@a.test") + b".\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    a.wait_messages("postmaster", 1, timeout=15)
    [data] = a.wait_messages("demo", 1, timeout=15)
    [r] = parse_dsn(data).recipients
    assert one_line(r["Final-Recipient"]).lower() == "rfc822; postmaster@a.test"
    assert r["Action"].strip() == "delivered" and r["Status"].strip().startswith("2."), (
        r["Action"], r["Status"])
