"""Rate limits (issue 10; docs/defence.md "Rate limits"): messages and recipients per window,
per client IP, per authenticated user and per sender domain, crossed and recovered against the
real binary. A client IP over its message allowance gets 421 4.7.0 and is disconnected
(RFC 5321 3.8); a user or sender domain over its allowance gets 450 4.7.1 at MAIL; recipients
over the allowance get 450 4.7.1 at RCPT (RFC 5321 4.5.3.1.10). Bounces (null reverse-path)
are not counted against users or sender domains. Windows are a few seconds; the buckets
refill evenly, so waiting part of a window gives part of the allowance back."""
from __future__ import annotations

import smtplib
import time

import pytest

from tls_helpers import carrier_passwd, write_password_file

MSG = b"Subject: rate\r\n\r\nhello\r\n"


def send(c, sender="a@example.test", rcpts=("demo@localhost",), source="127.0.0.1", port=None):
    """One message in its own session; returns the MAIL reply code (and the DATA one)."""
    s = smtplib.SMTP(c.host, port or c.port, timeout=10, source_address=(source, 0))
    try:
        s.ehlo("client.test")
        code, msg = s.mail(sender)
        if code != 250:
            return code, msg
        for r in rcpts:
            code, msg = s.rcpt(r)
            if code != 250:
                return code, msg
        code, msg = s.data(MSG)
        return code, msg
    finally:
        try:
            s.quit()
        except (smtplib.SMTPServerDisconnected, OSError):
            pass


def test_client_ip_limit_421_then_recovers_other_clients_unaffected(carrier_factory):
    c = carrier_factory(rate_limit={"rule": [{"key": "ip", "messages": 2, "window": "4s"}]})
    assert send(c)[0] == 250
    assert send(c)[0] == 250
    s = smtplib.SMTP(c.host, c.port, timeout=10)
    s.ehlo("client.test")
    code, msg = s.mail("a@example.test")
    assert code == 421 and msg.startswith(b"4.7.0"), msg
    assert b"[127.0.0.1]" in msg and b"limit 2 per 4s" in msg
    with pytest.raises(smtplib.SMTPServerDisconnected):  # RFC 5321 3.8: closed after 421
        s.noop()
    # Another address has its own allowance.
    assert send(c, source="127.0.0.2")[0] == 250
    time.sleep(2.5)  # half the window refills one message
    assert send(c)[0] == 250
    assert "too many messages from [127.0.0.1]" in c.log()


def test_recipient_limit_450_per_rcpt_and_the_message_goes_to_the_others(carrier_factory):
    c = carrier_factory(local={"mailboxes": ["demo", "postmaster", "alice", "u1", "u2", "u3"]},
                        rate_limit={"rule": [{"key": "ip", "recipients": 2, "window": "60s"}]})
    s = smtplib.SMTP(c.host, c.port, timeout=10)
    s.ehlo("client.test")
    assert s.mail("a@example.test")[0] == 250
    assert s.rcpt("u1@localhost")[0] == 250
    assert s.rcpt("u2@localhost")[0] == 250
    code, msg = s.rcpt("u3@localhost")
    assert code == 450 and msg.startswith(b"4.7.1"), msg
    assert s.data(MSG)[0] == 250  # delivered to the two accepted recipients
    s.quit()
    # The two are used up for the window.
    code, msg = send(c, rcpts=("demo@localhost",))
    assert code == 450, msg


def test_sender_domain_limit_skips_bounces(carrier_factory):
    c = carrier_factory(rate_limit={"rule": [{"key": "sender_domain", "messages": 1, "window": "60s"}]})
    assert send(c, sender="one@limited.test")[0] == 250
    code, msg = send(c, sender="two@LIMITED.test")
    assert code == 450 and msg.startswith(b"4.7.1") and b"sender domain limited.test" in msg, msg
    assert send(c, sender="other@free.test")[0] == 250
    for _ in range(3):  # null reverse-path: never counted, never refused
        assert send(c, sender="")[0] == 250


def test_authenticated_user_limit_follows_the_user_not_the_address(carrier_factory, tmp_path):
    pw = write_password_file(tmp_path / "passwd", [("alice", carrier_passwd("alice-pw"), "alice@localhost"),
                                                    ("bob", carrier_passwd("bob-pw"), "bob@localhost")])
    c = carrier_factory(
        listener=[{"address": "127.0.0.1:0", "name": "smtp"},
                  {"address": "127.0.0.1:0", "name": "submission", "submission": True}],
        auth={"password_file": str(pw), "plaintext_on_loopback": True, "failure_delay": "0s"},
        rate_limit={"rule": [{"key": "user", "messages": 1, "window": "3s"}]})
    sub_port = [p for h, p, kind in c.listeners if kind == "submission"][0]

    def submit(user, pw_, source):
        s = smtplib.SMTP(c.host, sub_port, timeout=10, source_address=(source, 0))
        try:
            s.ehlo("client.test")
            s.login(user, pw_)
            code, msg = s.mail(f"{user}@localhost")
            if code != 250:
                return code, msg
            s.rcpt("demo@localhost")
            return s.data(MSG)
        finally:
            s.quit()

    assert submit("alice", "alice-pw", "127.0.0.1")[0] == 250
    code, msg = submit("alice", "alice-pw", "127.0.0.3")  # another address, same user
    assert code == 450 and b"user alice" in msg, msg
    assert submit("bob", "bob-pw", "127.0.0.1")[0] == 250  # another user, same address
    time.sleep(3.2)
    assert submit("alice", "alice-pw", "127.0.0.3")[0] == 250
