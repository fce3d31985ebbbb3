"""End-to-end: every error reply carrier promises, as short transcripts against the real
binary. "C:" lines are sent (consecutive ones pipelined), "S:" lines give the expected reply
code and enhanced status code (RFC 5321 4.2, RFC 2034, RFC 3463). Every reply except the
greeting and the EHLO/HELO reply is checked for an enhanced code of its own class.
"""
from __future__ import annotations

import socket
import time

from helpers import transcript

SAFE_MAIL = "MAIL FROM:<sender@client.example>"


def msg_with_received(n: int) -> bytes:
    hops = b"".join(b"Received: from hop%d.example by hop%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(n))
    return hops + b"Subject: loop\r\n\r\nbody\r\n.\r\n"


# --- command order (RFC 5321 4.1.4, 3.3) --------------------------------------------------------

def test_mail_before_helo(carrier):
    """RFC 5321 4.1.4: a session starts with EHLO/HELO; MAIL before it is out of sequence
    (503 5.5.1, RFC 3463 5.5.1 invalid command)."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: MAIL FROM:<a@client.example>
            S: 503 5.5.1
            C: EHLO client.example
            S: 250 EHLO
            C: MAIL FROM:<a@client.example>
            S: 250 2.1.0
            C: QUIT
            S: 221 2.0.0
        """)


def test_rcpt_before_mail(carrier):
    """RFC 5321 3.3 and 4.1.4: RCPT without a MAIL transaction → 503 5.5.1."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: EHLO client.example
            S: 250 EHLO
            C: RCPT TO:<demo@localhost>
            S: 503 5.5.1
        """)


def test_data_before_rcpt(carrier):
    """RFC 5321 3.3: DATA needs a MAIL and at least one accepted RCPT → 503 5.5.1."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: EHLO client.example
            S: 250 EHLO
            C: DATA
            S: 503 5.5.1
            C: MAIL FROM:<a@client.example>
            S: 250 2.1.0
            C: DATA
            S: 503 5.5.1
        """)


def test_data_after_only_rejected_rcpts(carrier):
    """RFC 5321 3.3: "If there was no MAIL, or no RCPT, command, or all such commands were
    rejected, the server MAY return a 503 or 554" — never 354."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: EHLO client.example
            S: 250 EHLO
            C: MAIL FROM:<a@client.example>
            S: 250 2.1.0
            C: RCPT TO:<nobody@localhost>
            S: 550 5.1.1
        """)
        s.send("DATA")
        r = s.read_reply()
        assert r.code in (503, 554), r
        assert r.enhanced in ("5.5.1", "5.5.0", "5.1.1", "5.7.1"), r


def test_nested_mail(carrier):
    """RFC 5321 4.1.4: MAIL inside a transaction is out of sequence (503 5.5.1); RSET ends the
    transaction (RFC 5321 4.1.1.5) and MAIL is accepted again."""
    with carrier.session() as s:
        transcript(s, f"""
            S: 220
            C: EHLO client.example
            S: 250 EHLO
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: {SAFE_MAIL}
            S: 503 5.5.1
            C: RSET
            S: 250 2.0.0
            C: RCPT TO:<demo@localhost>
            S: 503 5.5.1
            C: {SAFE_MAIL}
            S: 250 2.1.0
        """)


# --- syntax (RFC 5321 4.1.2, 4.2.2; RFC 3463 5.5.2, 5.5.4, 5.1.3, 5.1.7) ------------------------

def test_unknown_command(carrier):
    """RFC 5321 4.2.4: an unrecognised command → 500 5.5.1; the session goes on."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: XYZZY plugh
            S: 500 5.5.1
            C: EHLO client.example
            S: 250 EHLO
            C: FOO
            S: 500 5.5.1
            C: NOOP
            S: 250 2.0.0
        """)


def test_ehlo_without_domain(carrier):
    """RFC 5321 4.1.1.1: EHLO needs a domain or address literal → 501 (5.5.2/5.5.4)."""
    with carrier.session() as s:
        s.greeting()
        s.send("EHLO")
        r = s.expect(501)
        assert r.enhanced in ("5.5.2", "5.5.4"), r


def test_mail_syntax_errors(carrier):
    """RFC 5321 4.1.2 (Path syntax) and 3.3: a MAIL without "FROM:<path>" is a syntax error
    (501 5.5.2/5.5.4); a malformed sender address is 501 5.1.7 (RFC 3463 bad sender's
    mailbox address syntax)."""
    with carrier.session() as s:
        s.start()
        for bad in ("MAIL", "MAIL TO:<a@client.example>", "MAIL FROM:a@client.example extra junk"):
            s.send(bad)
            r = s.expect(501)
            assert r.enhanced in ("5.5.2", "5.5.4", "5.1.7"), (bad, r)
        transcript(s, """
            C: MAIL FROM:<a b@client.example>
            S: 501 5.1.7
            C: MAIL FROM:<a@@client.example>
            S: 501 5.1.7
            C: MAIL FROM:<a@client.example>
            S: 250 2.1.0
        """)


def test_rcpt_syntax_errors(carrier):
    """RFC 5321 4.1.2: a malformed recipient address is 501 5.1.3 (RFC 3463 bad destination
    mailbox address syntax); the transaction goes on."""
    with carrier.session() as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@@localhost>
            S: 501 5.1.3
            C: RCPT TO:<de mo@localhost>
            S: 501 5.1.3
            C: RCPT TO:<>
            S: 501 5.1.3
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
        """)


def test_unknown_mail_parameter(carrier):
    """RFC 5321 4.1.1.11 and 4.2.3: an unrecognised MAIL parameter → 555 (or 501) 5.5.4."""
    with carrier.session() as s:
        s.start()
        s.send("MAIL FROM:<a@client.example> FROBNICATE=yes")
        r = s.read_reply()
        assert r.code in (555, 501) and r.enhanced == "5.5.4", r


def test_data_with_argument(carrier):
    """RFC 5321 4.1.1.4: DATA takes no argument → 501 5.5.4."""
    with carrier.session() as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
            C: DATA now
            S: 501 5.5.4
        """)


def test_line_too_long(carrier):
    """RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF; a longer one
    gets 500 5.5.6 and the session continues (the rest of the line is not a command). 512
    octets exactly is fine."""
    with carrier.session() as s:
        s.start()
        s.send("NOOP " + "x" * (512 - 2 - 5))       # 512 with CRLF: allowed
        s.expect(250, "2.0.0")
        s.send("NOOP " + "x" * (512 - 2 - 5 + 1))   # 513: too long
        s.expect(500, "5.5.6")
        s.send("X" * 20000 + "QUIT")                 # far too long, ends in something command-like
        s.expect(500, "5.5.6")
        transcript(s, """
            C: NOOP
            S: 250 2.0.0
            C: MAIL FROM:<a@client.example>
            S: 250 2.1.0
        """)


# --- limits -------------------------------------------------------------------------------------

def test_too_many_recipients(carrier_factory):
    """RFC 5321 4.5.3.1.8 and 4.5.3.1.10: over the recipient limit → 452 4.5.3 (temporary:
    the client sends the rest later); the recipients already taken still get the message."""
    carrier = carrier_factory(limits={"max_recipients": 100})
    with carrier.session() as s:
        s.start()
        s.send_raw(SAFE_MAIL.encode() + b"\r\n" +
                   b"".join(b"RCPT TO:<demo+%d@localhost>\r\n" % i for i in range(100)))
        s.expect(250)
        for _ in range(100):
            s.expect(250, "2.1.5")
        transcript(s, """
            C: RCPT TO:<alice@localhost>
            S: 452 4.5.3
            C: DATA
            S: 354
        """)
        s.send_raw(b"Subject: many\r\n\r\nx\r\n.\r\n")
        s.expect(250, "2.0.0")
    carrier.wait_messages("demo", 1)
    assert carrier.messages("alice") == []


def test_size_parameter_over_limit(carrier_factory):
    """RFC 1870 4 and 6.1: EHLO advertises SIZE <max>; MAIL with SIZE= above it → 552 5.3.4
    (RFC 3463 message too big for system)."""
    carrier = carrier_factory(limits={"max_message_size": 100000})
    with carrier.session() as s:
        s.greeting()
        s.send("EHLO client.example")
        ext_lines = s.expect(250, enhanced_required=False).lines
        assert "SIZE 100000" in ext_lines, ext_lines
        transcript(s, """
            C: MAIL FROM:<a@client.example> SIZE=100001
            S: 552 5.3.4
            C: MAIL FROM:<a@client.example> SIZE=100000
            S: 250 2.1.0
        """)


def test_message_over_limit(carrier_factory):
    """RFC 1870 6.2 and RFC 5321 4.5.3.1.10: a message larger than the limit (no SIZE
    given) is read to its end and refused with 552 5.3.4; nothing is delivered; the session
    goes on."""
    carrier = carrier_factory(limits={"max_message_size": 100000})
    with carrier.session() as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
            C: DATA
            S: 354
        """)
        s.send_raw(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 200 + b".\r\n")
        s.expect(552, "5.3.4")
        s.cmd("NOOP", 250, "2.0.0")
    time.sleep(0.5)
    assert carrier.messages("demo") == []
    assert carrier.queue_files() == []


def test_bdat_over_limit(carrier_factory):
    """RFC 3030 2 and RFC 1870 6.2: BDAT content beyond the limit → 552 5.3.4."""
    carrier = carrier_factory(limits={"max_message_size": 100000})
    chunk = b"z" * 60000
    with carrier.session() as s:
        s.start()
        s.send_raw(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<demo@localhost>\r\n"
                   + b"BDAT 60000\r\n" + chunk + b"BDAT 60000 LAST\r\n" + chunk)
        s.expect(250, "2.1.0")
        s.expect(250, "2.1.5")
        s.expect(250)
        s.expect(552, "5.3.4")
        s.cmd("NOOP", 250, "2.0.0")
    time.sleep(0.5)
    assert carrier.messages("demo") == []


def test_too_many_errors(carrier_factory):
    """RFC 5321 4.2.2 (421 closing) and 7.8 (resistance to attacks): after max_errors bad
    commands the server answers 421 4.7.0 and closes the connection."""
    carrier = carrier_factory(limits={"max_errors": 5})
    with carrier.session() as s:
        s.start()
        replies = []
        for _ in range(7):
            s.send("XYZZY")
            replies.append(s.read_reply())
            if replies[-1].code != 421 and s.reply_pending(0.3):
                replies.append(s.read_reply())  # a 421 right after the error reply
            if replies[-1].code == 421:
                break
        *errors, last = replies
        assert (last.code, last.enhanced) == (421, "4.7.0"), replies
        assert all((r.code, r.enhanced) == (500, "5.5.1") for r in errors), replies
        assert len(errors) in (5, 6), f"421 after {len(errors)} error replies, max_errors = 5"
        assert s.closed_by_peer(), "connection still open after 421"


def test_received_loop(carrier):
    """RFC 5321 6.3: more Received: fields than max_received_headers (100) means a mail loop
    → 554 5.4.6 (RFC 3463 routing loop detected); 50 is fine."""
    with carrier.session() as s:
        s.start()
        for n, code, enh in ((101, 554, "5.4.6"), (50, 250, "2.0.0")):
            transcript(s, f"""
                C: {SAFE_MAIL}
                S: 250 2.1.0
                C: RCPT TO:<demo@localhost>
                S: 250 2.1.5
                C: DATA
                S: 354
            """)
            s.send_raw(msg_with_received(n))
            s.expect(code, enh)
    [data] = carrier.wait_messages("demo", 1)
    assert data.count(b"\nReceived: from hop") == 50


def test_bare_lf_rejected(carrier):
    """RFC 5321 2.3.8 and 4.1.1.4: lines end with CRLF; with bare_newline = "reject" a message
    holding a bare LF is read to its real end and refused with 554 5.5.2."""
    with carrier.session() as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
            C: DATA
            S: 354
        """)
        s.send_raw(b"Subject: bare\r\n\r\nline with bare LF\nnext\r\n.\r\n")
        s.expect(554, "5.5.2")
        s.cmd("NOOP", 250, "2.0.0")
    time.sleep(0.5)
    assert carrier.messages("demo") == []


# --- informational commands ---------------------------------------------------------------------

def test_vrfy_does_not_disclose(carrier):
    """RFC 5321 3.5.3 and 7.3: VRFY may answer 252 ("cannot verify, will try") so that user
    names are not disclosed: same reply for existing and unknown users."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: EHLO client.example
            S: 250 EHLO
            C: VRFY demo
            S: 252 2.5.0
            C: VRFY nosuchuser
            S: 252 2.5.0
            C: VRFY <demo@localhost>
            S: 252 2.5.0
        """)


def test_noop_rset_help_quit(carrier):
    """RFC 5321 4.1.1.9 NOOP (250), 4.1.1.5 RSET (250), 4.1.1.8 HELP (214), 4.1.1.10 QUIT
    (221, then the server closes the connection)."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: NOOP
            S: 250 2.0.0
            C: EHLO client.example
            S: 250 EHLO
            C: NOOP anything
            S: 250 2.0.0
            C: RSET
            S: 250 2.0.0
            C: HELP
            S: 214
            C: QUIT
            S: 221 2.0.0
        """)
        assert s.closed_by_peer(), "connection still open after QUIT"


def test_greeting_and_ehlo(carrier):
    """RFC 5321 4.2 and 4.1.1.1: the greeting is 220 followed by our host name; EHLO's first
    line is our host name and the rest lists the extensions carrier promises."""
    with carrier.session() as s:
        g = s.greeting()
        assert g.lines[0].split()[0] == "mx.test.example", g
        s.send("EHLO client.example")
        r = s.expect(250, enhanced_required=False)
        assert r.lines[0].split()[0] == "mx.test.example", r
        ext = {ln.split()[0].upper(): ln for ln in r.lines[1:]}
        for kw in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                   "CHUNKING", "BINARYMIME", "DSN"):
            assert kw in ext, f"EHLO does not advertise {kw}: {r.lines}"
        assert ext["SIZE"] == "SIZE 52428800"


def test_helo_then_mail(carrier):
    """RFC 5321 4.1.1.1: HELO (no extensions) still allows a plain transaction."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: HELO client.example
        """)
        r = s.expect(250, enhanced_required=False)
        assert r.lines[0].split()[0] == "mx.test.example"
        transcript(s, """
            C: MAIL FROM:<a@client.example>
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
            C: DATA
            S: 354
            C: Subject: helo
            C:
            C: hi
            C: .
            S: 250 2.0.0
        """)
    carrier.wait_messages("demo", 1)


# --- BDAT misuse (RFC 3030) ---------------------------------------------------------------------

def test_data_after_bdat(carrier):
    """RFC 3030 2: a transaction that began with BDAT cannot switch to DATA → 503 5.5.1."""
    with carrier.session() as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
        """)
        s.send_raw(b"BDAT 5\r\nhello")
        s.expect(250)
        s.cmd("DATA", 503, "5.5.1")
        s.send_raw(b"BDAT 2 LAST\r\n\r\n")
        s.expect(250, "2.0.0").queue_id()
    carrier.wait_messages("demo", 1)


def test_bdat_without_transaction(carrier):
    """RFC 3030 2 and RFC 5321 4.1.4: BDAT without MAIL/RCPT → 503 5.5.1; its chunk is read
    and thrown away (its bytes are never taken as commands)."""
    with carrier.session() as s:
        s.start()
        s.send_raw(b"BDAT 23\r\nQUIT\r\nMAIL FROM:<x@y>\r\n")
        s.expect(503, "5.5.1")
        s.cmd("NOOP", 250, "2.0.0")


# --- connections and timeouts -------------------------------------------------------------------

def test_too_many_connections_per_ip(carrier_factory):
    """RFC 5321 4.3.2 and 3.8: a server may refuse a connection with 421 and close it; carrier
    does so (421 4.7.0) beyond max_connections_per_ip from one address."""
    carrier = carrier_factory(limits={"max_connections_per_ip": 3})
    held = [carrier.session() for _ in range(3)]
    try:
        for s in held:
            s.greeting()
        extra = carrier.session()
        r = extra.read_reply()
        assert (r.code, r.enhanced) == (421, "4.7.0"), r
        assert extra.closed_by_peer()
        extra.close()
        # the held sessions still work; once one leaves, a new one gets in
        held[0].cmd("QUIT", 221, "2.0.0")
        held[0].closed_by_peer()
        held[0].close()
        time.sleep(0.3)
        again = carrier.session()
        again.greeting()
        held[0] = again
        held[1].cmd("NOOP", 250, "2.0.0")
    finally:
        for s in held:
            s.close()


def test_other_address_not_limited_by_per_ip(carrier_factory):
    """The per-IP limit counts one client address: 127.0.0.2 still gets in while 127.0.0.1
    is at its limit (RFC 5321 4.3.2 leaves the policy to the server)."""
    carrier = carrier_factory(limits={"max_connections_per_ip": 2})
    held = [carrier.session() for _ in range(2)]
    try:
        for s in held:
            s.greeting()
        other = carrier.session(source="127.0.0.2")
        other.greeting()
        other.close()
    finally:
        for s in held:
            s.close()


def test_command_timeout(carrier_factory):
    """RFC 5321 4.5.3.2.7: the server times out an idle client; carrier says 421 4.4.2 and
    closes."""
    carrier = carrier_factory(limits={"command_timeout": "1s"})
    with carrier.session(timeout=10) as s:
        s.start()
        t0 = time.monotonic()
        r = s.read_reply(timeout=10)
        assert (r.code, r.enhanced) == (421, "4.4.2"), r
        assert time.monotonic() - t0 < 8
        assert s.closed_by_peer()


def test_client_disconnect_mid_data(carrier):
    """RFC 5321 3.8: a connection lost during DATA aborts the transaction: nothing is
    delivered and the server goes on serving."""
    s = carrier.session()
    s.start()
    transcript(s, f"""
        C: {SAFE_MAIL}
        S: 250 2.1.0
        C: RCPT TO:<demo@localhost>
        S: 250 2.1.5
        C: DATA
        S: 354
    """)
    s.send_raw(b"Subject: cut\r\n\r\nhalf a message")
    s.sock.shutdown(socket.SHUT_RDWR)
    s.close()
    time.sleep(0.5)
    with carrier.session() as s2:
        s2.start()
        s2.cmd("QUIT", 221, "2.0.0")
    assert carrier.messages("demo") == []
    assert carrier.queue_files() == []


def test_data_timeout(carrier_factory):
    """RFC 5321 4.5.3.2.6 (DATA block and termination timeouts): a client that stalls in the
    middle of DATA is dropped with 421 4.4.2; the partial message is not delivered."""
    carrier = carrier_factory(limits={"data_timeout": "1s", "command_timeout": "1s"})
    with carrier.session(timeout=10) as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
            C: DATA
            S: 354
        """)
        s.send_raw(b"Subject: stalled\r\n\r\npart")
        r = s.read_reply(timeout=10)
        assert (r.code, r.enhanced) == (421, "4.4.2"), r
        assert s.closed_by_peer()
    time.sleep(0.3)
    assert carrier.messages("demo") == []
    assert carrier.queue_files() == []


def test_too_many_connections_total(carrier_factory):
    """RFC 5321 3.8 and 4.3.2: beyond max_connections (all clients together) a new connection
    gets 421 4.7.0 and is closed, whatever its address."""
    carrier = carrier_factory(limits={"max_connections": 3})
    held = [carrier.session(source=f"127.0.0.{i}") for i in (2, 3, 4)]
    try:
        for s in held:
            s.greeting()
        extra = carrier.session(source="127.0.0.5")
        r = extra.read_reply()
        assert (r.code, r.enhanced) == (421, "4.7.0"), r
        assert extra.closed_by_peer()
        extra.close()
    finally:
        for s in held:
            s.close()


def test_commands_are_case_insensitive(carrier):
    """RFC 5321 2.4: command verbs and the FROM:/TO: keywords are case-insensitive."""
    with carrier.session() as s:
        transcript(s, """
            S: 220
            C: ehlo client.example
            S: 250 EHLO
            C: mail from:<a@client.example>
            S: 250 2.1.0
            C: rcpt to:<demo@localhost>
            S: 250 2.1.5
            C: DaTa
            S: 354
            C: Subject: lower case
            C:
            C: x
            C: .
            S: 250 2.0.0
            C: quit
            S: 221 2.0.0
        """)
    carrier.wait_messages("demo", 1)


def test_dsn_parameters_accepted(carrier):
    """RFC 3461 4.1-4.4: with DSN advertised, RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT are
    accepted; NOTIFY=NEVER combined with another value is a syntax error (RFC 3461 4.1)."""
    with carrier.session() as s:
        s.start()
        transcript(s, """
            C: MAIL FROM:<a@client.example> RET=HDRS ENVID=QQ314159
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;demo@localhost
            S: 250 2.1.5
        """)
        s.send("RCPT TO:<alice@localhost> NOTIFY=NEVER,SUCCESS")
        r = s.read_reply()
        assert r.code in (501, 555) and r.enhanced in ("5.5.4", "5.5.2"), r
        transcript(s, """
            C: DATA
            S: 354
            C: Subject: dsn
            C:
            C: x
            C: .
            S: 250 2.0.0
        """)
    carrier.wait_messages("demo", 1)
    assert carrier.messages("alice") == []


def test_data_timeout_bounds_whole_transfer(carrier_factory):
    """data_timeout bounds the WHOLE DATA transfer (src/config/config.hpp: "whole DATA/BDAT
    transfer"), so a client dripping one byte at a time cannot hold a session for ever
    (RFC 5321 4.5.3.2 lets servers choose; 7.8 asks them to resist resource exhaustion)."""
    carrier = carrier_factory(limits={"data_timeout": "2s"})
    with carrier.session(timeout=15) as s:
        s.start()
        transcript(s, f"""
            C: {SAFE_MAIL}
            S: 250 2.1.0
            C: RCPT TO:<demo@localhost>
            S: 250 2.1.5
            C: DATA
            S: 354
        """)
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 8 and not closed:
            try:
                s.sock.sendall(b"x")
            except OSError:
                closed = True
                break
            closed = s.reply_pending(0.3)
        elapsed = time.monotonic() - t0
        assert closed, f"still in DATA after {elapsed:.1f}s of a 1-byte-per-0.3s drip"
        if s.buf:
            r = s.read_reply()
            assert (r.code, r.enhanced) == (421, "4.4.2"), r
        assert elapsed < 6


def test_non_ascii_address_needs_smtputf8(carrier):
    """RFC 6531 3.4 and 3.7.4.1: a non-ASCII address without the SMTPUTF8 parameter is
    refused (553 5.6.7); with SMTPUTF8 it is taken (RFC 6531 3.4)."""
    with carrier.session() as s:
        s.start()
        s.send("MAIL FROM:<jörg@bücher.example>")
        s.expect(553, "5.6.7")
        s.cmd("MAIL FROM:<jörg@bücher.example> SMTPUTF8", 250, "2.1.0")
        s.cmd("RCPT TO:<demo@localhost>", 250, "2.1.5")


def test_message_size_boundary(carrier_factory):
    """RFC 1870 4: the message size counts the octets of the content including CRLFs, without
    the terminating "." line or the dots added by stuffing. Exactly max_message_size is
    accepted; one octet more is refused with 552 5.3.4."""
    limit = 100000
    carrier = carrier_factory(limits={"max_message_size": limit})

    def content(n: int) -> bytes:
        head = b"Subject: edge\r\n\r\n"
        line = b".dotted line, stuffed on the wire\r\n"
        body = line * ((n - len(head)) // len(line))
        body += b"x" * (n - len(head) - len(body) - 2) + b"\r\n"
        assert len(head + body) == n
        return head + body

    with carrier.session() as s:
        s.start()
        for n, code, enh in ((limit, 250, "2.0.0"), (limit + 1, 552, "5.3.4")):
            transcript(s, f"""
                C: {SAFE_MAIL}
                S: 250 2.1.0
                C: RCPT TO:<demo@localhost>
                S: 250 2.1.5
                C: DATA
                S: 354
            """)
            wire = content(n).replace(b"\r\n.", b"\r\n..")
            s.send_raw(wire + b".\r\n")
            s.expect(code, enh)
    carrier.wait_messages("demo", 1)
    time.sleep(0.3)
    assert len(carrier.messages("demo")) == 1
