"""End-to-end: SMTP smuggling (CVE-2023-51764 family). The only end of DATA is <CRLF>.<CRLF>
(RFC 5321 4.1.1.4 and 2.3.8: lines end with CRLF; a bare CR or LF is not a line ending). A
fake terminator such as <LF>.<LF> followed by "MAIL FROM ... DATA ..." must never start a
second transaction:
- bare_newline = "reject": the whole message is read to its real end and refused with
  554 5.5.2; nothing is delivered and nothing after the fake end is executed;
- bare_newline = "normalize": the message is accepted as ONE message (the smuggled commands
  are its content) and the smuggled recipient gets nothing.
"""
from __future__ import annotations

import time

import pytest

from helpers import parse_delivered

VARIANTS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r"]
IDS = [v.decode().replace("\r", "CR").replace("\n", "LF") for v in VARIANTS]

SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n\r\n"
            b"smuggled\r\n")


def smuggle(carrier, variant: bytes):
    """One transaction to demo whose data holds VARIANT + a smuggled transaction to alice.
    Returns the replies to the data and to a QUIT sent after it."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: x\r\n\r\nbody" + variant + SMUGGLED + b"\r\n.\r\n")
        first = s.read_reply()
        s.send("QUIT")
        second = s.read_reply()
        assert s.closed_by_peer()
        return first, second


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_smuggling_rejected(carrier, variant):
    """RFC 5321 2.3.8 and 4.1.1.4 with bare_newline = "reject": 554 5.5.2 for the whole
    message, the next reply is QUIT's 221 (no replies to smuggled commands), nobody gets mail."""
    first, second = smuggle(carrier, variant)
    assert (first.code, first.enhanced) == (554, "5.5.2"), first
    assert (second.code, second.enhanced) == (221, "2.0.0"), (
        f"a reply to a smuggled command: {second}")
    time.sleep(0.5)
    assert carrier.messages("alice") == []
    assert carrier.messages("demo") == []
    assert carrier.queue_files() == []


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_smuggling_normalized(carrier_factory, variant):
    """RFC 5321 4.1.1.4 with bare_newline = "normalize": accepted as ONE message to demo whose
    content holds the smuggled commands as text; alice gets nothing."""
    carrier = carrier_factory(server={"bare_newline": "normalize"})
    first, second = smuggle(carrier, variant)
    assert (first.code, first.enhanced) == (250, "2.0.0"), first
    first.queue_id()
    assert (second.code, second.enhanced) == (221, "2.0.0"), (
        f"a reply to a smuggled command: {second}")
    [data] = carrier.wait_messages("demo", 1)
    content = parse_delivered(data).content
    assert b"MAIL FROM:<evil@x>" in content and b"smuggled" in content
    time.sleep(0.5)
    assert len(carrier.messages("demo")) == 1
    assert carrier.messages("alice") == []


def test_normalize_turns_bare_lf_into_line_end(carrier_factory):
    """bare_newline = "normalize": a bare LF becomes a line ending (stored as LF in the Maildir,
    like every CRLF); a real CRLF line is unchanged."""
    carrier = carrier_factory(server={"bare_newline": "normalize"})
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<sender@client.example>", 250)
        s.cmd("RCPT TO:<demo@localhost>", 250)
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: n\r\n\r\none\ntwo\r\nthree\r\n.\r\n")
        s.expect(250, "2.0.0")
    [data] = carrier.wait_messages("demo", 1)
    assert parse_delivered(data).content == b"Subject: n\n\none\ntwo\nthree\n"
