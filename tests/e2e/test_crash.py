"""End-to-end: the 250 promise survives a crash (RFC 5321 6.1: "the receiver-SMTP MUST NOT
lose the message ... once it has accepted responsibility" — a 250 after DATA means the message
is on stable storage).

Twenty clients send in a loop, one message per connection, each recording the Message-ID of
every message that got its final 250. After ~2 s the server is killed with SIGKILL (no
shutdown code runs). A new carrier on the same data directory must then deliver every
acknowledged message: none lost (duplicates are allowed and counted), and no Maildir file may
be torn (each body matches the one sent for its Message-ID).
"""
from __future__ import annotations

import re
import smtplib
import threading
import time

from helpers import parse_delivered, wait_for

THREADS = 20
LOAD_SECONDS = 2.0


def body_for(mid: str) -> bytes:
    # ~2 KiB that depend on the id, so a torn or mixed-up file is noticed.
    return (f"payload of {mid}\r\n".encode() * 64)


def make_message(mid: str) -> bytes:
    return (f"From: load@client.example\r\nTo: demo@localhost\r\nSubject: crash {mid}\r\n"
            f"Message-ID: <{mid}>\r\n\r\n").encode() + body_for(mid)


def test_sigkill_loses_no_acknowledged_message(carrier_factory):
    first = carrier_factory(limits={"max_connections_per_ip": 1000})
    acked: list[str] = []
    attempted = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(t: int) -> None:
        seq = 0
        while not stop.is_set():
            mid = f"crash-{t}-{seq}@client.example"
            seq += 1
            with lock:
                attempted[0] += 1
            try:
                with smtplib.SMTP(first.host, first.port, local_hostname="load.client.example",
                                  timeout=10) as s:
                    s.sendmail("load@client.example", ["demo@localhost"], make_message(mid))
                    # sendmail returned: the final 250 arrived, the message is acknowledged
                    with lock:
                        acked.append(mid)
                    try:
                        s.quit()
                    except (smtplib.SMTPException, OSError):
                        pass
            except (smtplib.SMTPException, OSError):
                if stop.is_set():
                    return
                time.sleep(0.01)  # the server is gone: stop soon

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    first.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "client threads hung after the kill"
    with lock:
        acknowledged = list(acked)
    assert acknowledged, "no message was acknowledged before the kill"
    in_queue_at_restart = len(first.queue_files())

    second = carrier_factory(data_dir=first.data_dir,
                             limits={"max_connections_per_ip": 1000})
    second.wait_queue_empty(timeout=120)
    # Delivery of the last queued message may still be renaming into new/; wait until every
    # acknowledged id is there or the count stops changing.
    def delivered_ids() -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in second.message_files("demo"):
            d = parse_delivered(p.read_bytes())
            m = re.search(rb"^Message-ID: <([^>]+)>$", d.content, re.M)
            assert m, f"{p}: no Message-ID"
            mid = m.group(1).decode()
            assert d.content.split(b"\n\n", 1)[1] == body_for(mid).replace(b"\r\n", b"\n"), (
                f"{p}: torn or mixed-up message body")
            counts[mid] = counts.get(mid, 0) + 1
        return counts

    try:
        wait_for(lambda: set(acknowledged) <= set(delivered_ids()), timeout=30,
                 what="every acknowledged message in demo's Maildir")
    except AssertionError:
        pass  # reported with numbers below
    counts = delivered_ids()
    lost = [m for m in acknowledged if m not in counts]
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    unacked_delivered = len(set(counts) - set(acknowledged))
    tmp = second.data_dir / "mail" / "demo" / "tmp"
    tmp_left = len(list(tmp.iterdir())) if tmp.is_dir() else 0
    print(f"attempted={attempted[0]} acknowledged={len(acknowledged)} "
          f"queued_at_restart={in_queue_at_restart} delivered_distinct={len(counts)} "
          f"duplicates={duplicates} delivered_without_ack={unacked_delivered} "
          f"maildir_tmp_leftovers={tmp_left} lost={len(lost)}")
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    # Every Maildir file is one of ours (nothing half-written found its way into new/).
    assert all(m.startswith("crash-") for m in counts)
    # Deliveries cut by the kill may leave files in the Maildir's tmp/: that is allowed (the
    # Maildir convention has readers remove tmp/ files older than 36 hours); only new/ counts.


def test_restart_delivers_queued_message(carrier_factory):
    """RFC 5321 6.1: a message accepted and queued (here: to a trusted relay recipient, which is
    kept in the queue) is still in the queue after a SIGKILL and a restart, and a local message
    sent to the restarted server is delivered as usual."""
    first = carrier_factory(relay={"trusted_networks": ["127.0.0.0/8"]})
    with first.smtp() as s:
        s.sendmail("a@client.example", ["user@other.test"], b"Subject: kept\r\n\r\nkept\r\n")
    wait_for(lambda: first.queue_files(), timeout=5, what="the queued message")
    [queued] = first.queue_files()
    first.kill()
    second = carrier_factory(data_dir=first.data_dir,
                             relay={"trusted_networks": ["127.0.0.0/8"]})
    with second.smtp() as s:
        s.sendmail("a@client.example", ["demo@localhost"], b"Subject: after\r\n\r\nafter\r\n")
    second.wait_messages("demo", 1)
    assert queued in second.queue_files()
