"""Fault injection: SIGKILL under load (RFC 5321 6.1: once the server has sent the final 250
for DATA it MUST NOT lose the message).

Twenty client threads send continuously (one message per connection, each with a unique
Message-ID and Subject) to one carrier that delivers to a local Maildir. The daemon is killed
with SIGKILL at random moments FAULT_ROUNDS times (default 20) and restarted on the same data
directory each time; the clients follow it to its new port. At the end the last carrier must
empty its queue, and demo's Maildir must hold every message whose final 250 a client saw:
lost must be 0. Duplicates (a message delivered before the kill and delivered again after the
restart) are allowed and counted; every delivered body must match the one sent for its id.
`pytest -s` prints the figures. Handles no untrusted input (it is the client).
"""
from __future__ import annotations

import os
import random
import re
import smtplib
import threading
import time

from helpers import parse_delivered, wait_for

THREADS = 20
LIMITS = {"max_connections_per_ip": 1000}


def body_for(mid: str) -> bytes:
    # ~1 KiB that depend on the id, so a torn or mixed-up file is noticed.
    return f"payload of {mid}\r\n".encode() * 32


def make_message(mid: str) -> bytes:
    return (f"From: load@client.example\r\nTo: demo@localhost\r\nSubject: kill9 {mid}\r\n"
            f"Message-ID: <{mid}>\r\n\r\n").encode() + body_for(mid)


def run_kill9(carrier_factory, rounds: int, seed: int | None = None) -> dict:
    """Runs the scenario with `rounds` SIGKILLs; returns the figures (asserts lost == 0)."""
    rng = random.Random(seed)
    started = time.monotonic()
    server = carrier_factory(limits=LIMITS)
    data_dir = server.data_dir
    target = {"addr": (server.host, server.port)}
    acked: list[str] = []
    attempted = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(t: int) -> None:
        seq = 0
        while not stop.is_set():
            mid = f"kill9-{t}-{seq}@client.example"
            seq += 1
            with lock:
                host, port = target["addr"]
                attempted[0] += 1
            try:
                with smtplib.SMTP(host, port, local_hostname="load.client.example",
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
                time.sleep(0.02)  # the server is gone or restarting: try again

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(THREADS)]
    for t in threads:
        t.start()
    acked_per_round: list[int] = []
    try:
        for _ in range(rounds):
            with lock:
                before = len(acked)
            # Run under load for a random time, but at least until this incarnation has
            # acknowledged something, so every kill hits a server that is doing work.
            time.sleep(rng.uniform(0.3, 1.2))
            wait_for(lambda: len(acked) > before, timeout=20,
                     what="a message acknowledged by the current carrier")
            server.kill()
            with lock:
                acked_per_round.append(len(acked) - before)
            server = carrier_factory(data_dir=data_dir, limits=LIMITS)
            with lock:
                target["addr"] = (server.host, server.port)
        time.sleep(0.5)  # the last incarnation takes some load too
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    with lock:
        acknowledged = list(acked)

    server.wait_queue_empty(timeout=120)

    def delivered_ids() -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in server.message_files("demo"):
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
    figures = {
        "kills": rounds,
        "attempted": attempted[0],
        "acknowledged": len(acknowledged),
        "delivered": sum(counts.values()),
        "delivered_distinct": len(counts),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "delivered_without_ack": len(set(counts) - set(acknowledged)),
        "lost": len(lost),
        "min_acked_per_round": min(acked_per_round) if acked_per_round else 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("kill9 figures: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    # Every Maildir file is one of ours: nothing half-written reached new/.
    assert all(m.startswith("kill9-") for m in counts)
    assert len(set(acknowledged)) == len(acknowledged)
    return figures


def test_kill9_under_load_loses_nothing(carrier_factory):
    run_kill9(carrier_factory, int(os.environ.get("FAULT_ROUNDS", "20")))
