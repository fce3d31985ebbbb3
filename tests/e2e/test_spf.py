"""SPF checking of incoming mail (RFC 7208; docs/defence.md "SPF") against a real Unbound
(../shared/peers/unbound.sh) serving the test domains' SPF records. The client connects from
127.0.0.1. Results go into the delivered message's Authentication-Results: field (RFC 8601);
with action "reject" a fail is refused with 550 5.7.23 (RFC 7372) and nothing is delivered."""
from __future__ import annotations

import smtplib

import pytest

from helpers import wait_for
from relay_helpers import Unbound

# Every name sits in a zone of its own (its last two labels), so a missing TXT is NODATA.
ZONE = """
pass.test. 300 TXT "v=spf1 ip4:127.0.0.1 -all"
fail.test. 300 TXT "v=spf1 ip4:192.0.2.1 -all"
soft.test. 300 TXT "v=spf1 ip4:192.0.2.1 ~all"
block.test. 300 TXT "v=spf1 ip4:127.0.0.0/8 -all"
inc.test. 300 TXT "v=spf1 ip4:192.0.2.1 include:block.test -all"
redir.test. 300 TXT "v=spf1 ip4:192.0.2.1 redirect=block.test"
macro.test. 300 TXT "v=spf1 exists:%{i}.%{l}._spf.%{d} -all"
127.0.0.1.alice._spf.macro.test. 300 A 127.0.0.2
many.test. 300 TXT "v=spf1 a:h1.many.test a:h2.many.test a:h3.many.test a:h4.many.test a:h5.many.test a:h6.many.test a:h7.many.test a:h8.many.test a:h9.many.test a:h10.many.test a:h11.many.test +all"
nothing.test. 300 A 192.0.2.1
helo.test. 300 TXT "v=spf1 a:mx.helo.test -all"
mx.helo.test. 300 A 127.0.0.1
broken.test. SERVFAIL
""" + "".join(f"h{i}.many.test. 300 A 192.0.2.{i}\n" for i in range(1, 12))


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONE).start()
    yield u
    u.stop()


def spf_carrier(carrier_factory, dns, action="tag", **extra):
    return carrier_factory(dns={"upstream": dns.upstream},
                           spf={"enabled": True, "action": action}, **extra)


def send(c, sender, helo="client.test"):
    """(code, text) of the reply to the end of data for one message from 127.0.0.1."""
    s = smtplib.SMTP(c.host, c.port, timeout=30, source_address=("127.0.0.1", 0))
    try:
        s.ehlo(helo)
        assert s.mail(sender)[0] == 250
        assert s.rcpt("demo@localhost")[0] == 250
        try:
            return s.data(b"Subject: spf\r\n\r\nhello\r\n")
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
    finally:
        s.quit()


def delivered(c, count=1):
    """The delivered messages' bytes (Maildir new/), once `count` are there."""
    box = c.data_dir / "mail" / "demo" / "new"
    wait_for(lambda: box.exists() and len(list(box.iterdir())) >= count, timeout=15)
    return [p.read_bytes() for p in sorted(box.iterdir())]


def header(msg: bytes) -> bytes:
    return msg.split(b"\n\n", 1)[0]


def ar_results(c, senders, helo="client.test"):
    """Sends one message per sender (tag mode) and returns each message's header section."""
    for s in senders:
        code, text = send(c, s, helo)
        assert code == 250, (s, text)
    msgs = delivered(c, len(senders))
    assert len(msgs) == len(senders)
    return [header(m) for m in msgs]


def find(headers, needle: bytes) -> bytes:
    hits = [h for h in headers if needle in h]
    assert len(hits) == 1, (needle, headers)
    return hits[0]


def test_results_in_authentication_results(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="tag")
    heads = ar_results(c, ["bob@pass.test", "bob@fail.test", "bob@soft.test", "bob@inc.test",
                           "bob@redir.test", "alice@macro.test", "bob@many.test",
                           "bob@nothing.test"])
    # The field is at the top (after the delivery's Return-Path: and Delivered-To:), named by
    # our host name, one result per message.
    host = c.sections["server"]["hostname"].encode()
    for h in heads:
        top = h.split(b"\n")[2:4]
        assert top[0] == b"Authentication-Results: " + host + b";", h[:300]
        assert top[1].startswith(b"\tspf="), h[:300]
        assert h.count(b"spf=") == 1, h[:400]
    find(heads, b"spf=pass smtp.mailfrom=pass.test")
    find(heads, b"spf=fail smtp.mailfrom=fail.test")         # -all under tag: accepted
    find(heads, b"spf=softfail smtp.mailfrom=soft.test")
    find(heads, b"spf=pass smtp.mailfrom=inc.test")          # include:block.test
    find(heads, b"spf=pass smtp.mailfrom=redir.test")        # redirect=block.test
    find(heads, b"spf=pass smtp.mailfrom=macro.test")        # exists:%{i}.%{l}._spf.%{d}
    find(heads, b"spf=permerror smtp.mailfrom=many.test")    # 11 DNS-querying terms
    find(heads, b"spf=none smtp.mailfrom=nothing.test")
    log = c.log()
    assert "spf=pass smtp.mailfrom=pass.test" in log
    assert "DNS-querying terms" in log


def test_macro_that_does_not_match_fails(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="reject")
    code, text = send(c, "mallory@macro.test")  # no 127.0.0.1.mallory._spf.macro.test
    assert code == 550 and text.startswith(b"5.7.23 SPF validation failed"), text


def test_quarantine_holds_fail_in_the_queue(carrier_factory, dns):
    """action "quarantine": a fail is accepted (250), tagged and held until released."""
    import json
    import subprocess
    from conftest import CARRIER_BIN
    c = spf_carrier(carrier_factory, dns, action="quarantine")
    code, text = send(c, "bob@fail.test")
    assert code == 250, text
    code, text = send(c, "bob@pass.test")
    assert code == 250, text
    heads = [header(m) for m in delivered(c, 1)]
    assert len(heads) == 1 and b"spf=pass smtp.mailfrom=pass.test" in heads[0], heads
    wait_for(lambda: len(c.queue_files()) == 1, timeout=15)
    r = subprocess.run([str(CARRIER_BIN), "queue", "--config", str(c.config_path), "--json", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert listed["total"] == 1 and listed["messages"][0]["state"] == "held", listed
    assert "spf=fail smtp.mailfrom=fail.test" in c.log()


def test_reject_refuses_fail_with_5_7_23(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="reject")
    code, text = send(c, "bob@fail.test")
    assert code == 550, text
    assert text.startswith(b"5.7.23 SPF validation failed"), text
    # pass, softfail and none are accepted; the accepted one carries its result.
    for s in ("bob@pass.test", "bob@soft.test", "bob@nothing.test"):
        code, text = send(c, s)
        assert code == 250, (s, text)
    heads = [header(m) for m in delivered(c, 3)]
    assert len(heads) == 3  # the refused message was never delivered
    find(heads, b"spf=pass smtp.mailfrom=pass.test")
    find(heads, b"spf=softfail smtp.mailfrom=soft.test")


def test_reject_gives_451_4_7_24_on_temperror(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="reject")
    code, text = send(c, "bob@broken.test")  # SERVFAIL
    assert code == 451, text
    assert text.startswith(b"4.7.24"), text


def test_null_sender_checks_the_helo_name(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="reject")
    code, text = send(c, "", helo="helo.test")
    assert code == 250, text
    h = header(delivered(c)[0])
    assert b"spf=pass smtp.helo=helo.test" in h, h[:400]


def test_trusted_networks_are_not_checked(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="reject",
                    relay={"trusted_networks": ["127.0.0.1/32"]})
    code, text = send(c, "bob@fail.test")
    assert code == 250, text
    h = header(delivered(c)[0])
    assert b"spf=" not in h, h[:400]


def test_forged_results_with_our_name_are_removed(carrier_factory, dns):
    c = spf_carrier(carrier_factory, dns, action="tag")
    s = smtplib.SMTP(c.host, c.port, timeout=30, source_address=("127.0.0.1", 0))
    try:
        s.ehlo("client.test")
        s.mail("bob@fail.test")
        s.rcpt("demo@localhost")
        host = c.sections["server"]["hostname"].encode()
        s.data(b"Authentication-Results: " + host + b"; spf=pass smtp.mailfrom=fail.test\r\n"
               b"Subject: forged\r\n\r\nhello\r\n")
    finally:
        s.quit()
    h = header(delivered(c)[0])
    assert b"spf=pass" not in h, h[:400]
    assert b"spf=fail smtp.mailfrom=fail.test" in h, h[:400]
