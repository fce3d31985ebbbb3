"""Fault injection: a relay peer that stops answering in the middle of a transaction
(RFC 5321 4.5.3.2.4: a client waits at most 2 minutes for the 354 reply to DATA, then gives
up; 4.5.4.1: the message is retried later, never lost).

The peer (127.0.0.7, raw sockets) greets, answers EHLO, MAIL and RCPT, and then never answers
DATA on its first connection; from the second connection on it behaves. carrier (routes
stall.test to it, retry after 1 s) must time out that first attempt, record the message as
deferred with a timeout reason (not bounce it), and deliver it on the retry, exactly once.
Meanwhile a message to a healthy peer (127.0.0.5) is delivered at once. About 2 minutes
(carrier's default timeout, 120 s), so it runs only in `make test-faults`; `make test` runs
it with [relay] command_timeout = "5s" (tests/e2e/test_faults_short.py), and
tests/e2e/test_netfaults.py checks that many stalled deliveries hold up no other mail. Handles no untrusted input (it is the client and the peers).
"""
from __future__ import annotations

import re
import socket
import threading
import time

from helpers import wait_for
from relay_helpers import SmtpPeer, free_port


class DataStallPeer:
    """SMTP on host:port; connection 1 never answers DATA, later connections deliver."""

    def __init__(self, host: str):
        self.host, self.port = host, free_port((host,))
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, self.port))
        self.ls.listen(16)
        self.ls.settimeout(0.1)
        self.connections = 0
        self.stalled_at: float | None = None
        self.closed_after_stall: float | None = None
        self.delivered: list[bytes] = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_ev.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c, self.connections), daemon=True).start()

    def _serve(self, c: socket.socket, n: int) -> None:
        f = c.makefile("rb")
        try:
            c.sendall(b"220 stall.peer ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    c.sendall(b"250-stall.peer\r\n250 8BITMIME\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    c.sendall(b"250 2.0.0 OK\r\n")
                elif verb == b"DATA":
                    if n == 1:
                        self.stalled_at = time.monotonic()
                        c.settimeout(600)
                        while c.recv(65536):  # say nothing; read until the client gives up
                            pass
                        self.closed_after_stall = time.monotonic()
                        return
                    c.sendall(b"354 go ahead\r\n")
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                    self.delivered.append(data)
                    c.sendall(b"250 2.0.0 stored\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    c.sendall(b"502 5.5.1 no\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self) -> None:
        self.stop_ev.set()
        self.thread.join(5)
        self.ls.close()


def run_relay_stall(carrier_factory, command_timeout: int | None = None) -> None:
    """command_timeout None: carrier's default (RFC 5321 4.5.3.2.4: 2 minutes for the 354);
    else [relay] command_timeout in seconds."""
    limit = 120 if command_timeout is None else command_timeout
    relay = {"trusted_networks": ["127.0.0.0/8"], "connect_timeout": "5s"}
    if command_timeout is not None:
        relay["command_timeout"] = f"{command_timeout}s"
    stall = DataStallPeer("127.0.0.7")
    healthy = SmtpPeer("127.0.0.5").start()
    try:
        c = carrier_factory(
            server={"retry_initial": "1s", "retry_max": "2s"},
            relay=relay,
            route=[{"domain": "stall.test", "next_hop": f"[127.0.0.7]:{stall.port}", "tls": "none"},
                   {"domain": "ok.test", "next_hop": f"[127.0.0.5]:{healthy.port}", "tls": "none"}])
        with c.smtp() as s:
            s.sendmail("a@client.example", ["u@stall.test"],
                       b"Subject: stalled\r\nMessage-ID: <stalled@client.example>\r\n\r\nx\r\n")
        wait_for(lambda: stall.stalled_at is not None, 15, what="the peer to stall in DATA")
        with c.smtp() as s:
            s.sendmail("a@client.example", ["u@ok.test"], b"Subject: healthy\r\n\r\nx\r\n")
        healthy.wait_delivered(1, timeout=15)  # not held up by the stalled transaction

        # carrier gives up on the stalled DATA (after `limit` s) and retries: delivered once.
        wait_for(lambda: len(stall.delivered) >= 1, 2 * limit + 30, what="the retry to deliver")
        waited = stall.closed_after_stall - stall.stalled_at
        assert limit * 0.8 <= waited <= limit * 1.7 + 5, \
            f"carrier waited {waited:.0f}s for 354, not about {limit}s"
        c.wait_queue_empty(timeout=30)
        time.sleep(2)
        assert len(stall.delivered) == 1, "delivered more than once"
        assert b"Message-ID: <stalled@client.example>" in stall.delivered[0]
        assert re.search(r"stall\.test.*status=deferred", c.log()), "no deferral was logged"
        deferral = [ln for ln in c.log().splitlines() if "status=deferred" in ln][0]
        assert "timed out" in deferral.lower() or "timeout" in deferral.lower(), deferral
        assert c.messages("postmaster") == []
        print(f"relay stall: carrier waited {waited:.0f}s for 354, deferred ({deferral.strip()[:160]}),"
              f" delivered on retry once")
    finally:
        stall.stop()
        healthy.stop()


def test_relay_peer_stalling_in_data_times_out_and_is_retried(carrier_factory):
    run_relay_stall(carrier_factory)
