"""End-to-end: local delivery after the 250 — a temporary Maildir failure is retried (RFC 5321
4.5.4.1: retry deferred deliveries, never drop them), per recipient: the recipients that
succeeded are not delivered again, and the message leaves the queue only when all are done.
"""
from __future__ import annotations

import time

from helpers import parse_delivered, received_id, wait_for


def test_temporary_failure_is_retried_per_recipient(carrier):
    # demo's Maildir cannot be created: a regular file stands where the directory should be.
    mail = carrier.data_dir / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    blocker = mail / "demo"
    blocker.write_bytes(b"not a directory\n")
    with carrier.smtp() as s:
        s.ehlo()
        s.mail("a@client.example")
        s.rcpt("demo@localhost")
        s.rcpt("alice@localhost")
        code, text = s.data(b"Subject: retry\r\n\r\nretry me\r\n")
        assert code == 250, text
    qid = text.decode().rsplit(" ", 1)[1]
    [a] = carrier.wait_messages("alice", 1)
    assert received_id(parse_delivered(a).received) == qid
    time.sleep(1.5)  # at least one retry (retry_initial = 1s) fails the same way
    assert [p.name for p in carrier.queue_files()] == [qid], "deferred message left the queue"
    assert qid in carrier.log() and "deferred" in carrier.log()
    blocker.unlink()
    [d] = carrier.wait_messages("demo", 1, timeout=20)
    assert received_id(parse_delivered(d).received) == qid
    carrier.wait_queue_empty(timeout=10)
    time.sleep(0.5)
    assert len(carrier.messages("alice")) == 1, "alice got the message again on the retry"
    assert len(carrier.messages("demo")) == 1


def test_queue_survives_restart_while_deferred(carrier_factory):
    """A deferred message is still delivered after a clean restart (the queue is on disk)."""
    first = carrier_factory()
    mail = first.data_dir / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    (mail / "demo").write_bytes(b"blocker\n")
    with first.smtp() as s:
        s.sendmail("a@client.example", ["demo@localhost"], b"Subject: later\r\n\r\nlater\r\n")
    wait_for(lambda: "deferred" in first.log(), timeout=10, what="a deferral in the log")
    assert first.stop() == 0
    assert len(first.queue_files()) == 1
    (mail / "demo").unlink()
    second = carrier_factory(data_dir=first.data_dir)
    [d] = second.wait_messages("demo", 1, timeout=20)
    assert parse_delivered(d).content == b"Subject: later\n\nlater\n"
    second.wait_queue_empty(timeout=10)
