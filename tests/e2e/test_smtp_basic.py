"""End-to-end: mail accepted over SMTP by the real carrier binary reaches local Maildirs
byte for byte (RFC 5321 3.3, 4.1.1.4, 4.4; RFC 6152 8BITMIME; RFC 6531 SMTPUTF8; RFC 3030
CHUNKING; RFC 2920 PIPELINING), local recipients are resolved (postmaster, subaddresses,
aliases) and nothing is relayed for an untrusted client.
"""
from __future__ import annotations

import hashlib
import random
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from helpers import (QUEUE_ID_RE, as_stored, parse_delivered, received_id)


def message(subject: str, body: bytes = b"Hello.\r\n", extra: bytes = b"") -> bytes:
    return (b"From: Sender <sender@client.example>\r\n"
            b"To: Demo <demo@localhost>\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@client.example>\r\n"
            + extra + b"\r\n" + body)


def send(carrier, sender: str, rcpts: list[str], msg: bytes, mail_options=()) -> str:
    """Sends with smtplib; returns the queue id from the final 250."""
    with carrier.smtp() as s:
        s.ehlo()
        s.mail(sender, list(mail_options))
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, f"RCPT {r}: {code} {text!r}"
        code, text = s.data(msg)
        assert code == 250, f"DATA: {code} {text!r}"
        m = re.match(rb"2\.0\.0 Ok: queued as ([0-9A-Z]{12})$", text)
        assert m, f"final reply is not '250 2.0.0 Ok: queued as QUEUEID': {text!r}"
        return m.group(1).decode()


def settle(carrier, seconds: float = 0.5) -> None:
    """Gives asynchronous delivery time to do something it must not do (extra copies)."""
    time.sleep(seconds)


# --- byte-exact delivery -----------------------------------------------------------------------

def test_delivery_is_byte_exact(carrier):
    """RFC 5321 4.4 (Return-Path, Received trace fields) and 4.1.1.4 (content is the data as
    sent): the Maildir file is our three trace headers + the message with CRLF → LF."""
    msg = message("byte exact", b"Line one\r\n\r\n  indented\r\nTab\there\r\nlast line\r\n",
                  extra=b"X-Folded: first\r\n second\r\n")
    qid = send(carrier, "sender@client.example", ["demo@localhost"], msg)
    assert QUEUE_ID_RE.match(qid)
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert d.return_path == b"<sender@client.example>"
    assert d.delivered_to == b"demo@localhost"
    assert received_id(d.received) == qid, "Received: id differs from the 250's queue id"
    assert d.received.startswith(b"Received: from client.example ")  # our EHLO name
    assert b"[127.0.0.1]" in d.received.split(b"\n")[0]   # TCP-info (RFC 5321 4.4)
    assert b"\n\tby mx.test.example" in d.received
    assert re.search(rb"\n\tfor <demo@localhost>; ", d.received), d.received
    assert d.content == as_stored(msg), "content differs from what was sent (CRLF -> LF)"
    assert b"\r" not in data, "Maildir file must use LF line endings"
    settle(carrier)
    assert len(carrier.messages("demo")) == 1
    carrier.wait_queue_empty()


def test_message_without_final_crlf(carrier):
    """RFC 5321 4.1.1.4: smtplib adds the CRLF before "." when the message lacks one; the
    stored message ends with that line ending."""
    msg = message("no final newline", b"no newline at the end")
    send(carrier, "sender@client.example", ["demo@localhost"], msg)
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == as_stored(msg + b"\r\n")


def test_8bitmime_body(carrier):
    """RFC 6152 2-3: BODY=8BITMIME; octets >= 128 in the body arrive unchanged."""
    body = bytes(range(128, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    body += "Grüße aus Köln — ½ €\r\n".encode("utf-8") + b"\xff\xfe raw latin-1 \xe9\r\n"
    msg = message("8bit", body, extra=b"Content-Type: text/plain; charset=utf-8\r\n"
                                      b"Content-Transfer-Encoding: 8bit\r\n")
    with carrier.smtp() as s:
        s.ehlo()
        assert s.has_extn("8bitmime")
    send(carrier, "sender@client.example", ["demo@localhost"], msg, ["BODY=8BITMIME"])
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == as_stored(msg)


def test_smtputf8_sender_and_headers(carrier):
    """RFC 6531 3.4: with SMTPUTF8 on MAIL, a UTF-8 reverse-path and UTF-8 header fields are
    accepted and stored as UTF-8."""
    sender = "jörg.müller@bücher.example"
    msg = ("From: Jörg <jörg.müller@bücher.example>\r\nTo: demo@localhost\r\n"
           "Subject: Größenwahn ✓\r\n\r\nUTF-8 everywhere: 日本語\r\n").encode("utf-8")
    with carrier.smtp() as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
    send(carrier, sender, ["demo@localhost"], msg, ["SMTPUTF8", "BODY=8BITMIME"])
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert d.return_path == f"<{sender}>".encode("utf-8")
    assert d.content == as_stored(msg)


def test_20_mib_message(carrier):
    """RFC 5321 4.5.3.1.7 (the server accepts messages up to its SIZE, RFC 1870): a 20 MiB
    message arrives intact (sha256 of the stored content = sha256 of what was sent)."""
    # Deterministic pseudo-random text: random bytes mapped onto printable characters, about
    # one byte in 32 turned into a line end (lines stay far below 998 octets); "." is common,
    # so dot-stuffing is exercised.
    rng = random.Random(20)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;-\t"
    table = bytes(10 if i < 8 else alphabet[i % len(alphabet)] for i in range(256))
    body = rng.randbytes(20 * 1024 * 1024).translate(table).replace(b"\n", b"\r\n")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    msg = message("big", body)
    with carrier.smtp(timeout=120) as s:
        s.ehlo()
        sz = s.esmtp_features.get("size", "")
        assert sz.isdigit() and int(sz) >= len(msg), f"SIZE {sz!r} below the message size"
    send(carrier, "big@client.example", ["demo@localhost"], msg, [f"SIZE={len(msg)}"])
    [data] = carrier.wait_messages("demo", 1, timeout=60)
    content = parse_delivered(data).content
    assert len(content) == len(as_stored(msg))
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(as_stored(msg)).hexdigest()


def test_dot_stuffing_is_removed(carrier):
    """RFC 5321 4.5.2: the client doubles a leading "."; the server removes one. A line of
    only "." inside the message (stuffed to "..") does not end it."""
    body = (b"first\r\n.leading dot\r\n..two dots\r\n.\r\n...\r\n. space\r\nlast\r\n")
    msg = message("dots", body)
    send(carrier, "sender@client.example", ["demo@localhost"], msg)  # smtplib stuffs dots
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == as_stored(msg)


def test_dot_stuffing_raw_wire(carrier):
    """RFC 5321 4.5.2 on the wire, without smtplib: "..x" is stored as ".x", "..." as "..",
    and ".." alone as "."."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<raw@client.example>", 250)
        s.cmd("RCPT TO:<demo@localhost>", 250)
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: raw dots\r\n\r\n..x\r\n...\r\n..\r\n.\r\n")
        qid = s.expect(250, "2.0.0").queue_id()
        s.cmd("QUIT", 221)
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert received_id(d.received) == qid
    assert d.content == b"Subject: raw dots\n\n.x\n..\n.\n"


# --- BDAT (RFC 3030) ---------------------------------------------------------------------------

def test_bdat_chunks(carrier):
    """RFC 3030 2-3: CHUNKING advertised; BDAT chunks are taken as exact octet counts with no
    dot-stuffing (a "." line is content), each chunk gets 250, BDAT n LAST queues."""
    content = (b"Subject: chunked\r\nMessage-ID: <bdat@client.example>\r\n\r\n"
               b"part one\r\n.\r\n..not stuffed\r\n" + b"x" * 5000 + b"\r\nend\r\n")
    chunks = [content[:7], content[7:40], content[40:3000], content[3000:]]
    with carrier.session() as s:
        ext = s.start()
        assert {"CHUNKING", "BINARYMIME", "PIPELINING"} <= ext
        s.cmd("MAIL FROM:<chunk@client.example>", 250)
        s.cmd("RCPT TO:<demo@localhost>", 250)
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1
            s.send_raw(f"BDAT {len(c)}{' LAST' if last else ''}\r\n".encode() + c)
            r = s.expect(250)
        qid = r.queue_id()
        s.cmd("QUIT", 221)
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert received_id(d.received) == qid
    assert d.content == as_stored(content)


def test_bdat_pipelined_with_zero_last(carrier):
    """RFC 3030 2 and 4.2: BDAT chunks pipelined in one write, ended by "BDAT 0 LAST"."""
    content = b"Subject: pipelined bdat\r\n\r\nhello\r\n"
    with carrier.session() as s:
        s.start()
        s.send_raw(b"MAIL FROM:<p@client.example>\r\nRCPT TO:<demo@localhost>\r\n"
                   + f"BDAT {len(content[:10])}\r\n".encode() + content[:10]
                   + f"BDAT {len(content[10:])}\r\n".encode() + content[10:]
                   + b"BDAT 0 LAST\r\n")
        replies = [s.expect(250) for _ in range(5)]  # MAIL, RCPT, 3 x BDAT
        replies[-1].queue_id()
        assert "queued as" not in replies[2].text + replies[3].text
        s.cmd("QUIT", 221)
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == as_stored(content)


def test_bdat_binary_content_kept(carrier):
    """RFC 3030 3 (BINARYMIME): BDAT content is not dot-unstuffed and may hold any octets;
    with BODY=BINARYMIME the lone CR/LF bytes are the message, not line-ending errors."""
    content = b"Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\n" + \
        bytes(range(256)) + b"\r\n"
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<bin@client.example> BODY=BINARYMIME", 250)
        s.cmd("RCPT TO:<demo@localhost>", 250)
        s.send_raw(f"BDAT {len(content)} LAST\r\n".encode() + content)
        s.expect(250)
        s.cmd("QUIT", 221)
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert bytes(range(14, 256)) in d.content


# --- recipients --------------------------------------------------------------------------------

def test_unknown_user_rejected(carrier):
    """RFC 5321 3.3 / RFC 3463 5.1.1: an unknown local mailbox gets 550 5.1.1 at RCPT."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<a@client.example>", 250)
        s.cmd("RCPT TO:<nobody@localhost>", 550, "5.1.1")
        s.cmd("RCPT TO:<nobody+tag@example.test>", 550, "5.1.1")
        s.cmd("QUIT", 221)


@pytest.mark.parametrize("rcpt", ["postmaster@localhost", "POSTMASTER@localhost",
                                  "PostMaster@example.test", "postmaster@LOCALHOST"])
def test_postmaster_any_case(carrier, rcpt):
    """RFC 5321 4.5.1: "postmaster" is a case-insensitive local name that every domain
    served must accept."""
    send(carrier, "", [rcpt], message("to postmaster"))
    [data] = carrier.wait_messages("postmaster", 1)
    assert parse_delivered(data).delivered_to == rcpt.encode()


def test_bare_postmaster_without_domain(carrier):
    """RFC 5321 4.5.1 and 4.1.1.3: "RCPT TO:<Postmaster>" with no domain MUST be supported."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<a@client.example>", 250)
        s.cmd("RCPT TO:<Postmaster>", 250)
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: bare postmaster\r\n\r\nhi\r\n.\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    carrier.wait_messages("postmaster", 1)


def test_domain_is_case_insensitive(carrier):
    """RFC 5321 2.4: domain names are case-insensitive."""
    send(carrier, "a@client.example", ["demo@LocalHost"], message("domain case"))
    carrier.wait_messages("demo", 1)


def test_subaddress(carrier):
    """RFC 5233 (subaddress): demo+tag@localhost is delivered to demo; Delivered-To keeps
    the address as given."""
    msg = message("subaddress")
    send(carrier, "a@client.example", ["demo+tag@localhost"], msg)
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert d.delivered_to == b"demo+tag@localhost"
    assert d.content == as_stored(msg)


def test_alias_fans_out(carrier):
    """RFC 5321 3.9.2 (lists/aliases): team@example.test expands to demo and alice; each
    Maildir gets one copy of the same message."""
    msg = message("team mail")
    qid = send(carrier, "a@client.example", ["team@example.test"], msg)
    [d1] = carrier.wait_messages("demo", 1)
    [d2] = carrier.wait_messages("alice", 1)
    for data in (d1, d2):
        d = parse_delivered(data)
        assert d.delivered_to == b"team@example.test"
        assert d.content == as_stored(msg)
        assert received_id(d.received) == qid
    settle(carrier)
    assert len(carrier.messages("demo")) == 1 and len(carrier.messages("alice")) == 1
    assert carrier.messages("postmaster") == []


def test_several_recipients_one_transaction(carrier):
    """RFC 5321 3.3: several RCPTs in one transaction; each mailbox gets exactly one copy."""
    msg = message("two rcpts")
    send(carrier, "a@client.example", ["alice@localhost", "demo@example.test"], msg)
    [a] = carrier.wait_messages("alice", 1)
    [d] = carrier.wait_messages("demo", 1)
    assert parse_delivered(a).content == parse_delivered(d).content == as_stored(msg)
    # Received: carries "for <rcpt>" only with a single recipient (RFC 5321 4.4).
    assert b"\tfor <" not in parse_delivered(a).received


def test_null_sender(carrier):
    """RFC 5321 4.5.5 and 3.6.3: MAIL FROM:<> (bounces) is accepted; Return-Path is <>."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<>", 250)
        s.cmd("RCPT TO:<demo@localhost>", 250)
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: bounce\r\n\r\nundeliverable\r\n.\r\n")
        s.expect(250)
        s.cmd("QUIT", 221)
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).return_path == b"<>"


# --- relaying ----------------------------------------------------------------------------------

def test_relay_denied(carrier):
    """RFC 5321 3.6.2 and 7.1: an open relay is refused; a non-local domain from an untrusted
    client gets 554 5.7.1."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<a@client.example>", 250)
        s.cmd("RCPT TO:<user@other.test>", 554, "5.7.1")
        s.cmd("RCPT TO:<demo@localhost.other.test>", 554, "5.7.1")
        s.cmd("QUIT", 221)
    assert carrier.queue_files() == []


@pytest.mark.parametrize("rcpt", [
    "<user%other.test@localhost>",        # percent hack (RFC 5321 3.6.1 discourages it)
    "<@localhost:user@other.test>",       # source route (RFC 5321 4.1.1.3, Appendix C)
    "<\"user@other.test\"@localhost>",    # quoted local part holding an address
    "<user!other.test@localhost>",        # bang path
    "<user@other.test@localhost>",        # two @ (syntax error)
])
def test_relay_tricks_never_relay(carrier, rcpt):
    """RFC 5321 3.6.1 and 7.1: routing tricks through a local domain must not open a relay:
    the RCPT is refused (550/554/501) or, if the local part is taken literally, it is an
    unknown user — never 250."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<a@client.example>", 250)
        s.send(f"RCPT TO:{rcpt}")
        r = s.read_reply()
        assert r.code in (550, 554, 501, 553), f"RCPT TO:{rcpt} got {r}"
        s.cmd("QUIT", 221)
    assert carrier.queue_files() == []


def test_relay_from_trusted_network_is_queued(carrier_factory):
    """RFC 5321 3.6.2: a trusted client (127.0.0.0/8 listed) may relay; relaying itself is not
    implemented yet, so the message stays in spool/queue/."""
    carrier = carrier_factory(relay={"trusted_networks": ["127.0.0.0/8"]})
    msg = message("relay me")
    qid = send(carrier, "a@client.example", ["user@other.test"], msg)
    settle(carrier, 1.0)
    files = carrier.queue_files()
    assert len(files) == 1, f"spool/queue/ holds {files}"
    assert qid in files[0].name
    assert carrier.messages("demo") == []


# --- pipelining and concurrency ------------------------------------------------------------

def test_100_pipelined_rcpts_in_one_write(carrier):
    """RFC 2920 3.1: MAIL, 100 RCPTs and DATA in ONE write; 102 replies in order; demo gets
    the message once (the 100 recipients are the same mailbox)."""
    with carrier.session() as s:
        ext = s.start()
        assert "PIPELINING" in ext
        batch = b"MAIL FROM:<pipe@client.example>\r\n"
        batch += b"".join(b"RCPT TO:<demo@localhost>\r\n" for _ in range(100))
        batch += b"DATA\r\n"
        s.send_raw(batch)
        s.expect(250)
        for _ in range(100):
            s.expect(250)
        s.expect(354)
        s.send_raw(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        s.expect(250, "2.0.0")
        s.expect(221)
    carrier.wait_messages("demo", 1)
    settle(carrier)
    assert len(carrier.messages("demo")) == 1


def test_200_concurrent_sessions(carrier_factory):
    """RFC 5321 4.5.3.2 (servers handle many clients): 200 sessions open at once, each sends
    one message; all 200 arrive, each once."""
    carrier = carrier_factory(limits={"max_connections_per_ip": 300})
    n = 200
    opened = threading.Barrier(n, timeout=60)
    errors: list[str] = []
    ids: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        try:
            with carrier.smtp(timeout=60) as s:
                opened.wait()
                s.sendmail(f"c{i}@client.example", ["demo@localhost"],
                           message(f"concurrent {i}", f"n={i}\r\n".encode()))
            with lock:
                ids.append(f"n={i}")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    msgs = carrier.wait_messages("demo", n, timeout=60)
    bodies = sorted(parse_delivered(m).content.rsplit(b"\n\n", 1)[1] for m in msgs)
    assert bodies == sorted(f"n={i}\n".encode() for i in range(n))


def test_several_messages_per_connection(carrier):
    """RFC 5321 3.3: transactions one after another on one connection, with RSET between."""
    with carrier.smtp() as s:
        for i in range(5):
            s.sendmail("a@client.example", ["alice@localhost"], message(f"seq {i}"))
            s.rset()
    assert len(carrier.wait_messages("alice", 5)) == 5


# --- real clients ------------------------------------------------------------------------------

def swaks(carrier, *extra: str, subject: str) -> subprocess.CompletedProcess:
    exe = shutil.which("swaks")
    assert exe, "swaks is not installed (scripts/install-deps installs it)"
    return subprocess.run(
        [exe, "--server", f"{carrier.host}:{carrier.port}", "--to", "demo@localhost",
         "--from", "a@b.example", "--helo", "swaks.client.example",
         "--header", f"Subject: {subject}", "--body", "Hello from swaks", *extra],
        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", [[], ["--pipeline"]], ids=["plain", "pipeline"])
def test_swaks(carrier, mode):
    """A real SMTP client (swaks) talks to carrier, with and without PIPELINING (RFC 2920)."""
    subject = f"swaks {uuid.uuid4().hex}"
    p = swaks(carrier, *mode, subject=subject)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "queued as" in p.stdout
    [data] = carrier.wait_messages("demo", 1)
    d = parse_delivered(data)
    assert f"Subject: {subject}\n".encode() in d.content
    assert b"Hello from swaks" in d.content
    assert d.return_path == b"<a@b.example>"
