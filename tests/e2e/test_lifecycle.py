"""Lifecycle (issue 7): reload validates the whole configuration first and never applies a
broken one; systemd readiness notifications (sd_notify READY/RELOADING/STOPPING); SIGTERM
during 20 concurrent transactions loses nothing that was acknowledged."""
from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import threading
import time

from conftest import CARRIER_BIN, render_config
from helpers import wait_for


def reload(c) -> subprocess.CompletedProcess:
    return subprocess.run([str(CARRIER_BIN), "reload", "--config", str(c.config_path)],
                          capture_output=True, text=True, timeout=30)


def rcpt_code(c, addr: str) -> int:
    with c.smtp() as s:
        s.ehlo()
        s.mail("someone@example.net")
        return s.rcpt(addr)[0]


def test_broken_config_on_reload_leaves_the_old_one_serving(carrier_factory):
    c = carrier_factory()
    assert rcpt_code(c, "newbox@example.test") == 550
    good = dict(c.sections)
    good["local"] = dict(good["local"], mailboxes=good["local"]["mailboxes"] + ["newbox"])
    # A broken file: the new mailbox plus an error on a known line.
    text = render_config(good).replace("max_recipients = 1000", "max_recipients = 5", 1)
    c.config_path.write_text(text)
    bad_line = text.splitlines().index("max_recipients = 5") + 1
    r = reload(c)
    assert r.returncode == 1
    assert f"{c.config_path}:{bad_line}:" in r.stderr and "max_recipients" in r.stderr, r.stderr
    assert "not applied" in r.stderr
    # The daemon itself (SIGHUP) refuses it the same way and keeps the running one.
    c.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not valid" in c.log(), 10, what="the daemon to refuse it")
    assert f"{c.config_path}:{bad_line}:" in c.log()
    assert rcpt_code(c, "newbox@example.test") == 550, "the broken configuration was applied"
    # Fixed: applied without a restart, sessions keep being served.
    c.config_path.write_text(render_config(good))
    with c.smtp() as open_session:
        open_session.ehlo()
        r = reload(c)
        assert r.returncode == 0, r.stderr
        assert open_session.noop()[0] == 250, "a session in progress survives the reload"
    assert rcpt_code(c, "newbox@example.test") == 250
    assert c.running()


def test_sd_notify_ready_reloading_stopping(carrier_factory, tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    c = carrier_factory()
    assert sock.recv(4096) == b"READY=1"
    assert reload(c).returncode == 0
    assert sock.recv(4096) == b"RELOADING=1"
    assert sock.recv(4096) == b"READY=1"
    c.proc.send_signal(signal.SIGTERM)
    assert sock.recv(4096) == b"STOPPING=1"
    assert c.stop() == 0
    sock.close()


def test_sigterm_during_20_concurrent_transactions_loses_nothing_acknowledged(carrier_factory):
    c = carrier_factory()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            subject = f"c{n}-m{i}"
            i += 1
            try:
                with smtplib.SMTP(c.host, c.port, timeout=10) as s:
                    s.sendmail("a@example.net", ["demo@example.test"],
                               f"Subject: {subject}\r\n\r\nbody {subject}\r\n".encode())
                with lock:
                    acked.append(subject)
            except (OSError, smtplib.SMTPException):
                return  # the server went away: anything unacknowledged was never promised

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 40, 30, what="some messages acknowledged")
    c.proc.send_signal(signal.SIGTERM)
    rc = c.proc.wait(30)
    stop.set()
    for t in threads:
        t.join(30)
    assert rc == 0
    c.stopped = True
    # Restart on the same data: every acknowledged message is delivered, none twice.
    c2 = carrier_factory(data_dir=c.data_dir)
    with lock:
        want = set(acked)
    msgs = c2.wait_messages("demo", len(want), timeout=60)
    subjects = [m.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].rstrip(b"\r").decode() for m in msgs]
    assert want <= set(subjects), f"lost: {sorted(want - set(subjects))[:10]}"
    assert len(subjects) == len(set(subjects)), "a message was delivered twice"


def test_drops_root_to_the_configured_user(carrier_factory):
    """Least privilege (issue 7): started as root, carrier binds, reads its keys, then runs as
    [server] user/group; its data directories are handed to that user; mail is delivered by it."""
    import os
    import pwd
    import shutil
    import tempfile
    if os.geteuid() != 0:
        return  # only root can switch users; CI runs as root
    base = tempfile.mkdtemp(prefix="carrier-priv-")
    os.chmod(base, 0o755)
    try:
        nobody = pwd.getpwnam("nobody")
        c = carrier_factory(data_dir=__import__("pathlib").Path(base) / "var",
                            server={"user": "nobody", "group": "nogroup"})
        status = open(f"/proc/{c.pid}/status").read()
        uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0]
        assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4, uid_line
        with c.smtp() as s:
            s.sendmail("a@example.net", ["demo@example.test"], b"Subject: low\r\n\r\nx\r\n")
        (f,) = c.wait_messages("demo", 1) and c.message_files("demo")
        assert f.stat().st_uid == nobody.pw_uid
        assert (c.data_dir / "spool").stat().st_uid == nobody.pw_uid
        assert "running as nobody" in c.log()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return s.recv(512).startswith(b"220 ")
    except OSError:
        return False


def test_reload_adds_and_removes_listeners_and_changes_routes(carrier_factory):
    """Listeners added or removed and routes changed on reload, without a restart and without
    dropping the session in progress."""
    dead, extra = _free_port(), _free_port()
    b = carrier_factory(local={"domains": ["b.test"], "mailboxes": ["bob"],
                               "aliases": {"team": ["bob"], "abuse": ["bob"]}})
    sections = dict(relay={"trusted_networks": ["127.0.0.0/8"]},
                    server={"retry_initial": "1h", "retry_max": "1h"},
                    route=[{"domain": "b.test", "next_hop": f"[127.0.0.1]:{dead}", "tls": "none"}])
    a = carrier_factory(**sections)
    with a.smtp() as s:
        s.sendmail("x@example.net", ["bob@b.test"], b"Subject: rerouted\r\n\r\nx\r\n")
    wait_for(lambda: "status=deferred" in a.log(), 15, what="a deferral to the dead next hop")

    new = dict(a.sections)
    new["listener"] = a.sections["listener"] + [{"address": f"127.0.0.1:{extra}", "name": "extra"}]
    new["route"] = [{"domain": "b.test", "next_hop": f"[127.0.0.1]:{b.port}", "tls": "none"}]
    a.config_path.write_text(render_config(new))
    with a.smtp() as open_session:
        open_session.ehlo()
        r = reload(a)
        assert r.returncode == 0, r.stderr
        assert open_session.noop()[0] == 250
    assert _greets(extra), "the added listener accepts"
    assert _greets(a.port), "the old listener still accepts"
    subprocess.run([str(CARRIER_BIN), "queue", "--config", str(a.config_path), "retry", "--all"],
                   check=True, capture_output=True, timeout=30)
    (m,) = b.wait_messages("bob", 1)
    assert b"Subject: rerouted" in m

    a.config_path.write_text(render_config(dict(new, listener=a.sections["listener"])))
    assert reload(a).returncode == 0
    wait_for(lambda: not _greets(extra), 10, what="the removed listener to stop accepting")
    assert _greets(a.port)


def test_refuses_to_run_as_root_unless_told(carrier_factory):
    """Least privilege (issue 7): a configuration that neither names a [server] user nor says
    run_as_root = true is refused when started as root, with the fix in the message."""
    import os
    if os.geteuid() != 0:
        return
    c = carrier_factory(start=False, server={"run_as_root": False})
    r = subprocess.run([str(CARRIER_BIN), "serve", "--config", str(c.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "refusing to run as root" in r.stderr and 'user = "carrier"' in r.stderr, r.stderr
