"""End-to-end abuse tests: hostile input from an untrusted client against the real binary.

Open-relay tricks (percent hack, source routes, quoted "@", bang paths, trailing dots, IP
literals, case and encoding games), SMTP smuggling variants not covered by test_smuggling.py,
oversize command and header lines, NUL bytes, 10,000 recipients, a 10 MB header section, a
million-line message, 8-bit headers without SMTPUTF8 and 5,000 pipelined commands in one write.
Each test asserts the exact replies, what ends up delivered or queued (nothing for refused
input), and that the server still answers a fresh connection normally afterwards.
Handles only data produced by the tests themselves; traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import threading
import time

import pytest

from helpers import parse_delivered, transcript

MAIL = "MAIL FROM:<sender@client.example>"


def assert_still_serves(carrier) -> None:
    """A fresh connection gets the normal dialogue: greeting, EHLO, MAIL, RCPT, RSET, QUIT."""
    assert carrier.running(), "carrier died"
    with carrier.session() as s:
        transcript(s, f"""
            S: 220
            C: EHLO fresh.example
            S: 250 EHLO
            C: NOOP
            S: 250 2.0.0
            C: {MAIL}
            S: 250 2.1.0
            C: RCPT TO:<postmaster@localhost>
            S: 250 2.1.5
            C: RSET
            S: 250 2.0.0
            C: QUIT
            S: 221 2.0.0
        """)
        assert s.closed_by_peer()


def send_and_read(s, data: bytes, n: int, timeout: float = 30.0):
    """Writes DATA from a thread (so neither side blocks on full socket buffers) while reading
    n replies; returns them in order."""
    t = threading.Thread(target=s.sock.sendall, args=(data,), daemon=True)
    t.start()
    replies = [s.read_reply(timeout=timeout) for _ in range(n)]
    t.join(timeout)
    assert not t.is_alive(), "the client could not finish writing"
    return replies


def nothing_stored(carrier) -> None:
    time.sleep(0.5)
    for box in ("demo", "alice", "postmaster"):
        assert carrier.messages(box) == [], f"{box} got mail"
    assert carrier.queue_files() == [], "something was queued"


# --- open relay (RFC 5321 3.6.1, 3.6.2, 4.5.1; RFC 2505 2.3 and 2.4) ---------------------------

# Addresses that must never be relayed: (address, reply code, enhanced code).
NOT_RELAYED = [
    ("user%other.test@localhost", 550, "5.1.1"),          # percent hack: an unknown local user
    ("demo%other.test@localhost", 550, "5.1.1"),
    ("user%other.test%localhost@localhost", 550, "5.1.1"),
    ("@a.test,@b.test:user@other.test", 554, "5.7.1"),    # source route: dropped, user@other.test
    ('"user@other.test"@localhost', 550, "5.1.1"),        # quoted @
    ('"demo@other.test"@localhost', 550, "5.1.1"),
    ("other.test!user@localhost", 550, "5.1.1"),          # bang path (UUCP)
    ("other.test!demo@localhost", 550, "5.1.1"),
    ("user@other.test.", 554, "5.7.1"),                   # trailing dot on a remote domain
    ("user@other.test..", 501, "5.1.3"),
    ("user@localhost.other.test", 554, "5.7.1"),          # local name as a prefix
    ("user@[1.2.3.4]", 554, "5.7.1"),                     # IP literals
    ("user@[127.0.0.1]", 554, "5.7.1"),
    ("demo@[127.0.0.1]", 554, "5.7.1"),
    ("user@[IPv6:::1]", 554, "5.7.1"),
    ("user@[IPv6:2001:db8::1]", 554, "5.7.1"),
    ("user@other.test@localhost", 501, "5.1.3"),          # two @
    ("user@localhost@other.test", 501, "5.1.3"),
    ("user@other.test%localhost", 501, "5.1.3"),
    ("user%40other.test@localhost", 550, "5.1.1"),        # URL-encoded @
    ("user=40other.test@localhost", 550, "5.1.1"),        # quoted-printable @
    ("postmaster@other.test", 554, "5.7.1"),
    ("POSTMASTER@OTHER.TEST", 554, "5.7.1"),
]


@pytest.mark.parametrize("addr,code,enhanced", NOT_RELAYED, ids=[a for a, _, _ in NOT_RELAYED])
def test_relay_attempt_refused(carrier, addr, code, enhanced):
    """RFC 5321 3.6.2 and RFC 2505 2.3/2.4: a client outside trusted_networks cannot get mail
    relayed through routing tricks in the address; the local part is never parsed for routing
    (docs/smtp.md "Recipients"). DATA is refused (no valid recipient) and nothing is queued."""
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd(f"RCPT TO:<{addr}>", code, enhanced)
        s.send("DATA")
        r = s.read_reply()
        assert r.code in (503, 554), f"DATA after only refused recipients: {r}"
    nothing_stored(carrier)
    assert_still_serves(carrier)


def test_relay_attempt_utf8_refused(carrier):
    """RFC 6531 3.4: with SMTPUTF8 a UTF-8 remote address is still a relay attempt (554 5.7.1);
    a UTF-8 local part in a local domain is an unknown user (550 5.1.1); without SMTPUTF8 it is
    553 5.6.7. Nothing is queued."""
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<dëmo@other.test>", 553, "5.6.7")
        s.cmd("RSET", 250, "2.0.0")
        s.cmd(MAIL + " SMTPUTF8", 250, "2.1.0")
        s.cmd("RCPT TO:<dëmo@other.test>", 554, "5.7.1")
        s.cmd("RCPT TO:<user@ðther.test>", 554, "5.7.1")
        s.cmd("RCPT TO:<dëmo@localhost>", 550, "5.1.1")
        s.cmd("RCPT TO:<user%ðther.test@localhost>", 550, "5.1.1")
        s.send("DATA")
        assert s.read_reply().code in (503, 554)
    nothing_stored(carrier)
    assert_still_serves(carrier)


# Local forms that are delivered locally (never relayed): (address, mailbox).
LOCAL_FORMS = [
    ("DEMO@LOCALHOST", "demo"),                # RFC 5321 2.4: domains are case-insensitive
    ("demo@localhost.", "demo"),               # trailing dot of a fully qualified local domain
    ("demo@LOCALHOST.", "demo"),
    ("Alice@Example.Test", "alice"),
    ('"demo"@localhost', "demo"),              # RFC 5321 4.1.2: quoting without need
    ("@a.test,@b.test:demo@localhost", "demo"),  # RFC 5321 C: source route dropped
    ("demo+x%other.test@localhost", "demo"),   # recipient delimiter: the part before +
]


@pytest.mark.parametrize("addr,box", LOCAL_FORMS, ids=[a for a, _ in LOCAL_FORMS])
def test_local_forms_delivered_locally(carrier, addr, box):
    """Equivalent spellings of a local address reach the local mailbox and nothing waits in
    the queue for the relay transport (relayed mail would stay queued: DNS is unreachable)."""
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd(f"RCPT TO:<{addr}>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: local form\r\n\r\nbody\r\n.\r\n")
        s.expect(250, "2.0.0")
    [data] = carrier.wait_messages(box, 1)
    assert parse_delivered(data).content == b"Subject: local form\n\nbody\n"
    carrier.wait_queue_empty(5)
    others = [b for b in ("demo", "alice", "postmaster") if b != box]
    assert all(carrier.messages(b) == [] for b in others)
    assert_still_serves(carrier)


# --- SMTP smuggling variants (RFC 5321 2.3.8, 4.1.1.4, 4.5.2; RFC 3030 2) ----------------------

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n\r\nsmuggled\r\n"

# Fake ends of data made only of CRLF line endings: one message, smuggled text is content.
CRLF_FAKES = [
    (b"\r\n..\r\n", b"\n.\n"),       # dot-stuffed line: unstuffed to "." (RFC 5321 4.5.2)
    (b"\r\n .\r\n", b"\n .\n"),      # a dot after a space
    (b"\r\n.\x00\r\n", b"\n\x00\n"),  # a dot and a NUL: the leading dot is removed (4.5.2)
    (b"\r\n\x00.\r\n", b"\n\x00.\n"),
    (b"\r\n.\t\r\n", b"\n\t\n"),
]


@pytest.mark.parametrize("fake,stored", CRLF_FAKES, ids=["dotdot", "space-dot", "dot-nul",
                                                         "nul-dot", "dot-tab"])
def test_smuggling_crlf_lookalikes(carrier, fake, stored):
    """RFC 5321 4.1.1.4: only a line holding exactly "." ends the data. Lines that look like
    it end nothing (a leading dot before other characters is removed, RFC 5321 4.5.2); the
    commands after them are content of ONE message, alice gets nothing, and the reply after
    the message is QUIT's (no reply to a smuggled command)."""
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: s\r\n\r\nbody" + fake + SMUGGLED + b"\r\n.\r\n")
        s.expect(250, "2.0.0")
        s.cmd("QUIT", 221, "2.0.0")
    [data] = carrier.wait_messages("demo", 1)
    content = parse_delivered(data).content
    assert content == b"Subject: s\n\nbody" + stored + SMUGGLED.replace(b"\r\n", b"\n") + b"\n"
    time.sleep(0.3)
    assert carrier.messages("alice") == [] and len(carrier.messages("demo")) == 1
    assert "evil@x" not in carrier.log()
    assert_still_serves(carrier)


def test_smuggling_cr_before_crlf_rejected(carrier):
    """RFC 5321 2.3.8: "." followed by a bare CR and then CRLF is not the end of data (a server
    that strips trailing CRs would see one); with bare_newline = "reject" the whole message is
    refused with 554 5.5.2 and the smuggled transaction never runs."""
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: s\r\n\r\nbody\r\n.\r\r\n" + SMUGGLED + b"\r\n.\r\n")
        s.expect(554, "5.5.2")
        s.cmd("QUIT", 221, "2.0.0")
    nothing_stored(carrier)
    assert_still_serves(carrier)


def test_smuggling_inside_bdat(carrier):
    """RFC 3030 2: BDAT content is counted, never scanned for "." lines: a chunk holding
    <CRLF>.<CRLF> and a whole transaction is one message's content."""
    body = b"Subject: b\r\n\r\nbody\r\n.\r\n" + SMUGGLED + b".\r\n"
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.send_raw(b"BDAT %d LAST\r\n" % len(body) + body)
        s.expect(250, "2.0.0")
        s.cmd("QUIT", 221, "2.0.0")
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == body.replace(b"\r\n", b"\n")
    time.sleep(0.3)
    assert carrier.messages("alice") == [] and len(carrier.messages("demo")) == 1
    assert_still_serves(carrier)


# --- oversize lines (RFC 5321 4.5.3.1.4, RFC 5322 2.1.1) ----------------------------------------

def test_megabyte_command_line(carrier):
    """RFC 5321 4.5.3.1.4: a 1 MB command line whose tail looks like commands gets exactly one
    500 5.5.6; nothing in it is executed (the next reply is for the next real command)."""
    with carrier.session() as s:
        s.start()
        s.send_raw(b"NOOP " + b"x" * 1_000_000 + b" RCPT TO:<user@other.test> QUIT\r\n")
        s.expect(500, "5.5.6", timeout=30)
        s.cmd("RCPT TO:<demo@localhost>", 503, "5.5.1")  # no MAIL ran
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RSET", 250, "2.0.0")
        for _ in range(3):
            s.send_raw(b"MAIL FROM:<" + b"a" * 600 + b"@client.example>\r\n")
            s.expect(500, "5.5.6")
        s.cmd("NOOP", 250, "2.0.0")
    assert_still_serves(carrier)


def test_oversize_header_lines(carrier):
    """RFC 5322 2.1.1 limits header lines to 998 characters, a limit for senders; carrier
    takes longer lines within max_message_size and stores them unchanged (1 MB and 2,000
    characters here)."""
    big = b"X-Big: " + b"a" * 1_000_000
    mid = b"Subject: " + b"b" * 2000
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(big + b"\r\n" + mid + b"\r\n\r\nbody\r\n.\r\n")
        s.expect(250, "2.0.0", timeout=30)
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == big + b"\n" + mid + b"\n\nbody\n"
    carrier.wait_queue_empty(5)
    assert_still_serves(carrier)


# --- NUL bytes ----------------------------------------------------------------------------------

def test_nul_in_commands(carrier_factory):
    """RFC 5321 4.1.2 and 2.3.8: NUL is not allowed in commands. A command holding one is an
    error with a reply, never truncated at the NUL (so "demo@localhost\\0..." is not demo),
    and the session goes on."""
    carrier = carrier_factory(limits={"max_errors": 100})
    with carrier.session() as s:
        s.start()
        for line, code, enh in [
            (b"NO\x00OP", 500, "5.5.1"),
            (b"NOOP\x00", 500, "5.5.1"),
            (b"\x00", 500, "5.5.1"),
            (b"\x00NOOP", 500, "5.5.1"),
            (b"MAIL FROM:<a\x00@client.example>", 501, "5.1.7"),
        ]:
            s.send(line)
            s.expect(code, enh)
        s.send(b"EHLO a\x00b")
        s.expect(501, "5.5.4")
        s.cmd(MAIL, 250, "2.1.0")
        for rcpt in [b"RCPT TO:<user@other.test\x00@localhost>",
                     b"RCPT TO:<demo@localhost\x00@other.test>",
                     b"RCPT TO:<demo@localhost\x00>"]:
            s.send(rcpt)
            s.expect(501, "5.1.3")
        s.send("DATA")
        assert s.read_reply().code in (503, 554)
    nothing_stored(carrier)
    assert_still_serves(carrier)


def test_nul_in_data(carrier):
    """NUL bytes in DATA (header and body) are taken as opaque content: one message, stored
    byte for byte, nothing cut at the NUL."""
    msg = b"Subject: a\x00b\r\n\r\nbody\x00after nul\r\n\x00\r\n"
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(msg + b".\r\n")
        s.expect(250, "2.0.0")
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == msg.replace(b"\r\n", b"\n")
    assert_still_serves(carrier)


# --- recipients and pipelining (RFC 5321 4.5.3.1.8, RFC 2920) -----------------------------------

def test_ten_thousand_recipients(carrier):
    """RFC 5321 4.5.3.1.8 and 4.5.3.1.10: 10,000 RCPTs in one write: the first 1,000
    (max_recipients) get 250 2.1.5, the other 9,000 get 452 4.5.3, and the session goes on (the
    452s do not count as errors that close it); DATA delivers to the accepted recipients."""
    with carrier.session() as s:
        s.start()
        cmds = (MAIL.encode() + b"\r\n"
                + b"".join(b"RCPT TO:<demo+%d@localhost>\r\n" % i for i in range(9999))
                + b"RCPT TO:<alice@localhost>\r\n")
        replies = send_and_read(s, cmds, 10001)
        assert (replies[0].code, replies[0].enhanced) == (250, "2.1.0")
        got = [(r.code, r.enhanced) for r in replies[1:]]
        assert got == [(250, "2.1.5")] * 1000 + [(452, "4.5.3")] * 9000
        s.cmd("NOOP", 250, "2.0.0")
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: many\r\n\r\nx\r\n.\r\n")
        s.expect(250, "2.0.0")
        s.cmd("QUIT", 221, "2.0.0")
    carrier.wait_messages("demo", 1)
    carrier.wait_queue_empty(15)
    assert carrier.messages("alice") == [], "alice was past the limit"
    assert_still_serves(carrier)


def test_pipelined_commands_far_beyond_window(carrier):
    """RFC 2920 3.1 and 3.2: a server must answer every pipelined command, in order. 5,000
    commands in one write (NOOP, with VRFY and HELP mixed in so the order is visible) get
    5,000 replies in the order sent."""
    kinds = [("VRFY someone", 252) if i % 7 == 3 else ("HELP", 214) if i % 11 == 5
             else ("NOOP", 250) for i in range(5000)]
    with carrier.session() as s:
        s.start()
        data = b"".join(c.encode() + b"\r\n" for c, _ in kinds)
        replies = send_and_read(s, data, len(kinds))
        assert [r.code for r in replies] == [code for _, code in kinds]
        assert not s.reply_pending(0.3), "more replies than commands"
        s.cmd("QUIT", 221, "2.0.0")
    assert_still_serves(carrier)


# --- big headers and many lines (RFC 1870 6.2, RFC 5322 2.2) ------------------------------------

def test_ten_megabyte_header_section(carrier):
    """A header section of 10 MB (100,000 fields) followed by an endlessly folded field is
    taken whole (within the 50 MiB limit) and stored unchanged."""
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(100_000))
    folded = b"Subject: x\r\n" + b" folded continuation line\r\n" * 20_000
    msg = headers + folded + b"\r\nbody\r\n"
    assert len(headers) >= 10_000_000
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(msg + b".\r\n")
        s.expect(250, "2.0.0", timeout=30)
    [data] = carrier.wait_messages("demo", 1, timeout=30)
    assert parse_delivered(data).content == msg.replace(b"\r\n", b"\n")
    assert_still_serves(carrier)


def test_endless_header_over_size_limit(carrier_factory):
    """RFC 1870 6.2: a header field folded on and on past max_message_size (1 MiB here) is
    refused with 552 5.3.4 after the end of data; nothing is stored and the session goes on."""
    carrier = carrier_factory(limits={"max_message_size": 1048576})
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: endless\r\n" + b" and on\r\n" * 300_000 + b"\r\nbody\r\n.\r\n")
        s.expect(552, "5.3.4", timeout=30)
        s.cmd("NOOP", 250, "2.0.0")
    nothing_stored(carrier)
    assert_still_serves(carrier)


def test_million_line_message(carrier_factory):
    """A message of 1,000,000 lines (3 MB) is accepted and stored with every line; the same
    message against a 1 MiB max_message_size is refused with 552 5.3.4 (RFC 1870 6.2). The
    server keeps serving either way."""
    body = b"l\r\n" * 1_000_000
    msg = b"Subject: lines\r\n\r\n" + body
    big = carrier_factory()
    small = carrier_factory(limits={"max_message_size": 1048576})
    for c, code, enh in ((big, 250, "2.0.0"), (small, 552, "5.3.4")):
        with c.session() as s:
            s.start()
            s.cmd(MAIL, 250, "2.1.0")
            s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
            s.cmd("DATA", 354)
            s.send_raw(msg + b".\r\n")
            s.expect(code, enh, timeout=30)
            s.cmd("NOOP", 250, "2.0.0")
    [data] = big.wait_messages("demo", 1, timeout=30)
    content = parse_delivered(data).content
    assert content.count(b"\n") == 1_000_000 + 2
    assert content == msg.replace(b"\r\n", b"\n")
    nothing_stored(small)
    assert_still_serves(big)
    assert_still_serves(small)


# --- 8-bit headers without SMTPUTF8 (RFC 6531 3.2, RFC 6152) ------------------------------------

def test_eight_bit_headers_without_smtputf8(carrier):
    """A message with raw UTF-8 (and non-UTF-8 8-bit) bytes in its header, sent without
    SMTPUTF8 or BODY=8BITMIME, is accepted and stored byte for byte; the Received protocol
    stays "ESMTP" (RFC 3848: UTF8SMTP only when SMTPUTF8 was used)."""
    hdr = ("Subject: Grüße\r\nFrom: Jörg <j@client.example>\r\n".encode()
           + b"X-Latin1: \xe9t\xe9\r\n")
    msg = hdr + b"\r\nbody\r\n"
    with carrier.session() as s:
        s.start()
        s.cmd(MAIL, 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(msg + b".\r\n")
        s.expect(250, "2.0.0")
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert d.content == msg.replace(b"\r\n", b"\n")
    assert b" with ESMTP id " in d.received
    assert_still_serves(carrier)
