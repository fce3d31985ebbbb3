"""Fault injection: SIGKILL while carrier relays a batch (RFC 5321 6.1: a message acknowledged
with 250 must be delivered or bounced, never lost; RFC 5321 4.5.4: what was cut off is retried).

carrier relays every message for sink.test over SMTP to a sink on 127.0.0.5 (SmtpPeer of
tests/e2e/relay_helpers.py) that records each transaction it answered with 250 and takes
20 ms per message, so a batch is still being relayed when the kill comes. The test sends a
batch (each message with a unique Message-ID), then kills carrier with SIGKILL FAULT_ROUNDS
times, each time only once the sink has received a message from the current process, and
restarts it on the same data directory (sending more when the queue runs low). At the end the
queue must drain. Counted at the sink: delivered zero times (lost; must be 0), and delivered
more than once (duplicates: the sink's 250 arrived but the kill came before carrier recorded
it; allowed by RFC 5321 6.1 and counted). `pytest -s` prints the figures.
Handles no untrusted input (it is the client and the sink).
"""
from __future__ import annotations

import os
import random
import re
import smtplib
import time

from helpers import wait_for
from relay_helpers import SmtpPeer

BATCH = 60
SINK_DELAY = 0.02


def make_message(mid: str) -> bytes:
    return (f"From: batch@client.example\r\nTo: u@sink.test\r\nSubject: relay {mid}\r\n"
            f"Message-ID: <{mid}>\r\n\r\n" + f"body of {mid}\r\n" * 20).encode()


def run_restart_delivery(carrier_factory, rounds: int, seed: int | None = None) -> dict:
    rng = random.Random(seed)
    started = time.monotonic()
    sink = SmtpPeer("127.0.0.5")

    def slow_ok(n, txn):
        time.sleep(SINK_DELAY)
        return "250 2.0.0 OK stored"

    sink.data_reply = slow_ok
    sink.start()
    overrides = {
        "server": {"retry_initial": "1s", "retry_max": "2s"},
        "relay": {"trusted_networks": ["127.0.0.0/8"], "connect_timeout": "5s"},
        "route": [{"domain": "sink.test", "next_hop": f"[127.0.0.5]:{sink.port}", "tls": "none"}],
    }
    acked: list[str] = []
    seq = [0]

    def send_batch(c, n: int) -> None:
        with smtplib.SMTP(c.host, c.port, local_hostname="batch.client.example", timeout=30) as s:
            for _ in range(n):
                mid = f"relay-{seq[0]}@client.example"
                seq[0] += 1
                s.sendmail("batch@client.example", ["u@sink.test"], make_message(mid))
                acked.append(mid)  # sendmail returned: the 250 arrived

    def sink_counts() -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in sink.delivered():
            m = re.search(rb"^Message-ID: <([^>]+)>\r$", t.data, re.M)
            assert m, f"a message without our Message-ID at the sink: {t.data[:200]!r}"
            counts[m.group(1).decode()] = counts.get(m.group(1).decode(), 0) + 1
        return counts

    try:
        c = carrier_factory(**overrides)
        data_dir = c.data_dir
        send_batch(c, BATCH)
        for _ in range(rounds):
            if len(acked) - len(sink_counts()) < BATCH // 2:
                send_batch(c, BATCH)
            before = len(sink.delivered())
            time.sleep(rng.uniform(0.1, 0.5))
            wait_for(lambda: len(sink.delivered()) > before, 30,
                     what="the sink to receive a message from the current carrier")
            c.kill()
            c = carrier_factory(data_dir=data_dir, **overrides)
        c.wait_queue_empty(timeout=120)
        counts = sink_counts()
        lost = [m for m in acked if m not in counts]
        figures = {
            "kills": rounds,
            "acknowledged": len(acked),
            "sink_transactions": sum(counts.values()),
            "delivered_distinct": len(counts),
            "duplicated": sum(n - 1 for n in counts.values() if n > 1),
            "cut_in_data": sum(1 for t in sink.snapshot() if t.data is None and t.accepted),
            "lost": len(lost),
            "seconds": round(time.monotonic() - started, 1),
        }
        print("restart-during-delivery figures: " + " ".join(f"{k}={v}" for k, v in figures.items()))
        assert not lost, f"{len(lost)} acknowledged messages never reached the sink, e.g. {lost[:5]}"
        assert set(counts) <= set(acked), "the sink got a message nobody sent"
        assert sink.errors == [], sink.errors
        return figures
    finally:
        sink.stop()


def test_kill9_during_relay_loses_nothing(carrier_factory):
    run_restart_delivery(carrier_factory, int(os.environ.get("FAULT_ROUNDS", "20")))
