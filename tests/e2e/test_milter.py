"""Milters ([[milter]], docs/defence.md "Milters") against a real rspamd (Debian's rspamd 3.4):
its proxy worker in milter mode, self-scanning, started by the tests on 127.0.0.1 with a
config directory of its own (no redis, no other workers). A GTUBE message is refused at the
end of DATA with rspamd's reply; a normal message is delivered with the header fields rspamd's
milter_headers module adds; a milter that is down gives 451 with on_failure = "tempfail" and
lets the message through with on_failure = "accept"."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers import wait_for

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

RSPAMD_CONF = """
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    enable_test_patterns = true;   # GTUBE
    dns {{ nameserver = ["127.0.0.1:{dns_port}"]; timeout = 1s; retransmits = 1; }}
}}
logging {{
    type = "console";
    level = "notice";
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    timeout = 120s;
    count = 1;
    upstream "local" {{
        default = yes;
        self_scan = yes;
    }}
}}
"""

# Mail from 127.0.0.1 counts as local for milter_headers: add the fields anyway.
MILTER_HEADERS = """
use = ["x-spamd-result", "x-rspamd-queue-id", "authentication-results"];
skip_local = false;
skip_authenticated = false;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Rspamd:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Rspamd":
        for d in ("local/local.d", "run", "db", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # DNS goes to a closed port on loopback: lookups fail at once, nothing leaves the host.
        conf = self.root / "rspamd.conf"
        conf.write_text(RSPAMD_CONF.format(port=self.port, dns_port=free_port()))
        (self.root / "local/local.d/milter_headers.conf").write_text(MILTER_HEADERS)
        self.log = open(self.root / "rspamd.out", "wb")
        self.proc = subprocess.Popen(
            [shutil.which("rspamd") or "/usr/bin/rspamd", "-f", "-u", "root", "-g", "root",
             "-c", str(conf), f"--var=LOCAL_CONFDIR={self.root / 'local'}",
             f"--var=RUNDIR={self.root / 'run'}", f"--var=DBDIR={self.root / 'db'}",
             f"--var=LOGDIR={self.root / 'log'}"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        # Loading the rules takes a while the first time (hyperscan compiles them).
        wait_for(lambda: self.proc.poll() is not None or listening(self.port), 120,
                 what=f"rspamd listening on 127.0.0.1:{self.port}")
        assert self.proc.poll() is None, self.output()
        return self

    def output(self) -> str:
        return (self.root / "rspamd.out").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    r = Rspamd(tmp_path_factory.mktemp("rspamd")).start()
    yield r
    r.stop()


def send(c, body: str, subject: str = "milter test"):
    s = c.smtp()
    try:
        s.ehlo("client.example")
        assert s.mail("alice@example.org")[0] == 250
        assert s.rcpt("demo@localhost")[0] == 250
        msg = (f"From: Alice <alice@example.org>\r\nTo: demo@localhost\r\nSubject: {subject}\r\n"
               f"Message-ID: <{time.time_ns()}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
               f"\r\n{body}\r\n").encode()
        s.putcmd("data")
        code, _ = s.getreply()
        assert code == 354
        s.send(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return s.getreply()
    finally:
        try:
            s.quit()
        except Exception:
            pass


def test_gtube_is_rejected_with_rspamds_reply(carrier_factory, rspamd):
    c = carrier_factory(milter=[{"address": f"inet:127.0.0.1:{rspamd.port}", "name": "rspamd"}])
    code, msg = send(c, f"This is spam.\r\n{GTUBE}\r\n")
    # rspamd's own reply for its reject action on GTUBE.
    assert (code, msg) == (554, b"5.7.1 Gtube pattern"), c.log()
    assert "refused by milter" in c.log()
    assert "milter(rspamd)=reject" in c.log()
    assert not c.message_files("demo")
    assert not c.queue_files()


def test_normal_message_delivered_with_rspamd_headers(carrier_factory, rspamd):
    c = carrier_factory(milter=[{"address": f"inet:127.0.0.1:{rspamd.port}", "name": "rspamd"}])
    code, msg = send(c, "Hello Bob,\r\n\r\nsee you at lunch tomorrow.\r\n\r\nAlice\r\n")
    assert code == 250, (code, msg, c.log())
    [m] = c.wait_messages("demo", 1)
    head = m.split(b"\n\n", 1)[0]
    assert b"\nX-Spamd-Result: default: False [" in head, head.decode(errors="replace")
    assert b"\nX-Rspamd-Queue-Id: " in head, head.decode(errors="replace")
    # rspamd's Authentication-Results: field, named by {daemon_name} (our host name, as Postfix).
    assert b"\nAuthentication-Results: mx.test.example;" in head, head.decode(errors="replace")
    assert b"Subject: milter test" in head
    assert b"see you at lunch tomorrow" in m
    assert "milter(rspamd)=accept" in c.log()


def test_milter_down_tempfails(carrier_factory):
    c = carrier_factory(milter=[{"address": f"inet:127.0.0.1:{free_port()}", "name": "gone",
                                 "timeout": "5s"}])
    code, msg = send(c, "hello\r\n")
    assert code == 451, (code, msg)
    assert msg.startswith(b"4.7.1"), msg
    assert "milter gone:" in c.log() and "on_failure = tempfail" in c.log()
    assert not c.message_files("demo")


def test_milter_down_accepts_with_on_failure_accept(carrier_factory, tmp_path):
    c = carrier_factory(milter=[{"address": f"unix:{tmp_path / 'no-such.sock'}", "name": "gone",
                                 "on_failure": "accept"}])
    code, msg = send(c, "hello\r\n")
    assert code == 250, (code, msg)
    [m] = c.wait_messages("demo", 1)
    assert b"hello" in m
    assert "on_failure = accept" in c.log()
