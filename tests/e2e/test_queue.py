"""Queue control and message trace (issue 7): `carrier queue list|summary|show|retry|hold|
release|delete|bounce|trace` against a running daemon with messages in several states, through
its admin socket; the trace of a message deferred twice then delivered. Relaying goes to
loopback ports only."""
from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from conftest import CARRIER_BIN
from helpers import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def q(c, *args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(CARRIER_BIN), "queue", "--config", str(c.config_path), *args],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, f"carrier queue {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r


def qjson(c, *args) -> dict:
    return json.loads(q(c, "--json", *args).stdout)


def queued_carrier(carrier_factory, next_hop_port: int, **over):
    return carrier_factory(
        server={"retry_initial": over.pop("retry_initial", "1h"), "retry_max": "1h"},
        relay={"trusted_networks": ["127.0.0.0/8"]},
        route=[{"domain": "*", "next_hop": f"[127.0.0.1]:{next_hop_port}", "tls": "none"}],
        **over)


def send(c, to: list[str], subject: str) -> str:
    with c.smtp() as s:
        s.ehlo()
        s.mail("alice@example.test")
        for t in to:
            s.rcpt(t)
        code, text = s.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        assert code == 250
        return text.decode().rsplit(" ", 1)[1]


def test_list_summary_show_and_actions(carrier_factory):
    c = queued_carrier(carrier_factory, free_port())  # nothing listens there: deferred
    ids = [send(c, ["bob@remote.test"], "one"), send(c, ["carol@remote.test"], "two"),
           send(c, ["dan@other.test"], "three")]
    wait_for(lambda: c.log().count("status=deferred") >= 3, 15, what="three deferrals")

    listed = qjson(c, "list")
    assert listed["total"] == 3
    assert {m["id"] for m in listed["messages"]} == set(ids)
    assert all(m["state"] == "deferred" and "Connection refused" in m["last_error"]
               for m in listed["messages"])
    assert [m["id"] for m in qjson(c, "list", "--domain", "other.test")["messages"]] == [ids[2]]
    assert qjson(c, "list", "--older-than", "1h")["total"] == 0
    human = q(c, "list").stdout
    assert ids[0] in human and "deferred" in human and "bob@remote.test" in human

    summary = qjson(c, "summary")
    assert summary["destinations"]["remote.test"]["recipients"] == 2
    assert summary["destinations"]["other.test"]["by_state"] == {"deferred": 1}

    shown = qjson(c, "show", ids[0])
    assert shown["sender"] == "alice@example.test"
    assert shown["headers"].startswith("Received: from ")
    assert "Subject: one" in shown["headers"]
    assert "next_try" in shown and shown["attempts"] == 1

    # hold survives a restart; release brings it back
    q(c, "hold", ids[0])
    assert [m["id"] for m in qjson(c, "list", "--state", "held")["messages"]] == [ids[0]]
    assert c.stop() == 0
    c2 = carrier_factory(data_dir=c.data_dir, server=c.sections["server"],
                         relay=c.sections["relay"], route=c.sections["route"])
    wait_for(lambda: qjson(c2, "list", "--state", "held")["total"] == 1, 15,
             what="the hold to be found again after the restart")
    r = q(c2, "retry", ids[0], check=False)
    assert r.returncode == 1 and "held: release it first" in r.stderr
    q(c2, "release", ids[0])
    wait_for(lambda: qjson(c2, "list", "--state", "held")["total"] == 0, 10, what="release")

    # bounce: the sender gets a DSN; delete: gone without one
    q(c2, "bounce", ids[1])
    (dsn,) = c2.wait_messages("alice", 1)
    assert b"Status: 5.0.0" in dsn and b"carol@remote.test" in dsn
    q(c2, "delete", ids[2])
    r = q(c2, "show", ids[2], check=False)
    assert r.returncode == 1 and "no message" in r.stderr
    assert {m["id"] for m in qjson(c2, "list")["messages"]} == {ids[0]}

    trace = q(c2, "trace", ids[1]).stdout
    for what in ("received from", "status=deferred", "returned to the sender by the operator",
                 "status=failed", "notice to the sender", "done: removed"):
        assert what in trace, trace
    assert "deleted by the operator" in q(c2, "trace", ids[2]).stdout


def test_trace_of_a_message_deferred_twice_then_delivered(carrier_factory):
    port = free_port()
    a = queued_carrier(carrier_factory, port, retry_initial="1s")
    qid = send(a, ["bob@b.test"], "late")
    wait_for(lambda: a.log().count(f"{qid}: to=<bob@b.test> relay=smtp") >= 2, 20,
             what="two deferred attempts")
    b = carrier_factory(listener=[{"address": f"127.0.0.1:{port}"}],
                        local={"domains": ["b.test"], "mailboxes": ["bob"],
                               "aliases": {"team": ["bob"], "abuse": ["bob"]}})
    b.wait_messages("bob", 1, timeout=20)
    a.wait_queue_empty(10)
    lines = q(a, "trace", qid).stdout.splitlines()
    assert "received from" in lines[0] and "from=<alice@example.test>" in lines[0]
    deferred = [l for l in lines if "status=deferred" in l]
    assert len(deferred) >= 2 and all("Connection refused" in l for l in deferred)
    delivered = [l for l in lines if "status=delivered" in l]
    assert len(delivered) == 1 and f"127.0.0.1]:{port}" in delivered[0] and "250 2.0.0" in delivered[0]
    assert lines[-1].endswith("done: removed from the queue")


def test_clear_errors_when_the_daemon_is_not_running(tmp_path):
    r = subprocess.run([str(CARRIER_BIN), "queue", "--data-dir", str(tmp_path), "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 69
    assert "carrier is not running" in r.stderr and str(tmp_path) in r.stderr


def _admin(path_or_port, payload: bytes, timeout: float = 10) -> dict:
    if isinstance(path_or_port, int):
        s = socket.create_connection(("127.0.0.1", path_or_port), timeout=timeout)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(str(path_or_port))
    with s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.endswith(b"\n") and data.count(b"\n") == 1, data
    return json.loads(data)


def test_admin_api_refuses_bad_requests(carrier_factory):
    """The admin protocol takes one JSON object per line (docs/admin-api.md); anything else gets
    {"ok": false, "error": ...} and the daemon goes on. Over TCP a token is required."""
    port = free_port()
    token = "0123456789abcdef-token"
    c = carrier_factory(admin={"listen": f"127.0.0.1:{port}", "token": token})
    sock = c.data_dir / "admin.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o660"
    cases = [
        (b"not json\n", "not valid JSON"),
        (b"[1, 2]\n", 'string "cmd"'),
        (b'{"cmd": 5}\n', 'string "cmd"'),
        (b'{"cmd": "rm -rf"}\n', "unknown command"),
        (b'{"cmd": "queue.list", "args": {"state": "exploded"}}\n', "state must be"),
        (b'{"cmd": "queue.hold", "args": {}}\n', 'give an id'),
        (b'{"cmd": "queue.show", "args": {"id": "../../etc/passwd"}}\n', "no message"),
        (b'{"cmd": "ping"', "incomplete request"),
        (b"x" * (64 * 1024), "request too large"),  # the limit, with no end of line
    ]
    for payload, why in cases:
        r = _admin(sock, payload)
        assert r["ok"] is False and why in r["error"], (payload[:60], r)
    assert _admin(sock, b'{"cmd": "ping"}\n') == {"ok": True, "pong": True}
    # TCP: only with the token
    assert _admin(port, b'{"cmd": "ping"}\n')["ok"] is False
    assert _admin(port, b'{"cmd": "ping", "token": "wrong-token-0000000"}\n')["ok"] is False
    assert _admin(port, json.dumps({"cmd": "ping", "token": token}).encode() + b"\n")["ok"] is True
    # still serving mail
    with c.smtp() as s:
        assert s.noop()[0] == 250
