"""End-to-end: carrier's command line — --version, --help, check-config diagnostics
(file:line:col: message), serve with --listen/--data-dir overrides, SIGTERM exit status, and
log output (text and JSON, every line about a message carries its queue id).
"""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time

from conftest import CARRIER_BIN, default_sections, render_config
from helpers import parse_delivered, received_id, wait_for


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([str(CARRIER_BIN), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version():
    p = run("--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "carrier 0.1.0"


def test_help():
    p = run("--help")
    assert p.returncode == 0, p.stderr
    for word in ("serve", "check-config"):
        assert word in p.stdout, p.stdout
    p = run("serve", "--help")
    assert p.returncode == 0
    for flag in ("--config", "--listen", "--data-dir"):
        assert flag in p.stdout, p.stdout


def test_unknown_subcommand_fails():
    p = run("frobnicate")
    assert p.returncode != 0
    assert p.stderr.strip(), "an error message is expected on stderr"


def test_check_config_good(tmp_path):
    cfg = tmp_path / "good.toml"
    cfg.write_text(render_config(default_sections(tmp_path / "var")))
    p = run("check-config", str(cfg))
    assert p.returncode == 0, p.stderr


def diag_lines(stderr: str, path) -> list[tuple[int, int, str]]:
    """(line, col, message) of each `file:line:col: message` diagnostic about `path`."""
    out = []
    for m in re.finditer(rf"^{re.escape(str(path))}:(\d+):(\d+): (.+)$", stderr, re.M):
        out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_check_config_reports_every_error_with_its_line(tmp_path):
    """Each mistake is reported at its own line (unknown key, wrong type, bad address,
    bad enum value, value below its RFC minimum); all of them, not only the first."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        "[server]\n"                                 # 1
        'hostname = "mx.test.example"\n'             # 2
        f'data_dir = "{tmp_path / "var"}"\n'         # 3
        "colour = \"blue\"\n"                        # 4  unknown key
        'bare_newline = "sometimes"\n'               # 5  not one of reject/normalize
        "\n"                                         # 6
        "[[listener]]\n"                             # 7
        'address = "127.0.0.1:99999"\n'              # 8  bad port
        "\n"                                         # 9
        "[limits]\n"                                 # 10
        'max_errors = "many"\n'                      # 11 wrong type
        "max_recipients = 5\n"                       # 12 below 100 (RFC 5321 4.5.3.1.8)
    )
    p = run("check-config", str(cfg))
    assert p.returncode != 0
    diags = diag_lines(p.stderr, cfg)
    lines = {ln for ln, _, _ in diags}
    assert {4, 5, 8, 11, 12} <= lines, f"diagnostics at lines {sorted(lines)}:\n{p.stderr}"
    by_line = {ln: msg for ln, _, msg in diags}
    assert "colour" in by_line[4]
    assert all(col >= 1 for _, col, _ in diags)


def test_check_config_bad_listener_address(tmp_path):
    cfg = tmp_path / "addr.toml"
    cfg.write_text('[server]\nhostname = "h.example"\n\n[[listener]]\naddress = "not an address"\n')
    p = run("check-config", str(cfg))
    assert p.returncode != 0
    assert [ln for ln, _, _ in diag_lines(p.stderr, cfg)] == [5], p.stderr


def test_check_config_toml_syntax_error(tmp_path):
    cfg = tmp_path / "syntax.toml"
    cfg.write_text('[server]\nhostname = "unterminated\n')
    p = run("check-config", str(cfg))
    assert p.returncode != 0
    assert diag_lines(p.stderr, cfg) and diag_lines(p.stderr, cfg)[0][0] == 2, p.stderr


def test_check_config_missing_file(tmp_path):
    p = run("check-config", str(tmp_path / "nope.toml"))
    assert p.returncode != 0
    assert "nope.toml" in p.stderr


def test_serve_refuses_bad_config(tmp_path):
    """serve with an invalid file exits non-zero with the same diagnostics, listening on
    nothing."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nhostnam = "typo"\n')
    p = run("serve", "--config", str(cfg))
    assert p.returncode != 0
    assert diag_lines(p.stderr, cfg), p.stderr


def test_listen_and_data_dir_override(carrier_factory, tmp_path):
    """--listen and --data-dir override the file: the server listens on the given port and
    delivers under the given directory."""
    port = free_port()
    other = tmp_path / "other-var"
    c = carrier_factory(args=["--listen", f"127.0.0.1:{port}", "--data-dir", str(other)])
    assert c.port == port, c.stdout()
    assert c.listeners == [("127.0.0.1", port, "smtp")]
    with c.smtp() as s:
        s.sendmail("a@client.example", ["demo@localhost"], b"Subject: override\r\n\r\nx\r\n")
    wait_for(lambda: list((other / "mail" / "demo" / "new").glob("*")), timeout=15,
             what="delivery under the --data-dir directory")
    assert not (c.data_dir / "mail").exists()


def test_stdout_ready_lines(carrier):
    """The ready line names the real port (0 was configured) and is printed once per listener."""
    out = carrier.stdout()
    assert out.splitlines()[0] == f"carrier: listening on 127.0.0.1:{carrier.port} (smtp)"
    assert carrier.port != 0


def test_two_listeners(carrier_factory):
    c = carrier_factory(listener=[{"address": "127.0.0.1:0"}, {"address": "127.0.0.1:0"}])
    assert len(c.listeners) == 2 and c.listeners[0][1] != c.listeners[1][1]
    for _, port, _ in c.listeners:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            assert s.recv(100).startswith(b"220 mx.test.example")


def test_sigterm_with_open_sessions_exits_zero(carrier):
    """SIGTERM while clients are connected: the server closes them and exits 0 promptly."""
    socks = [socket.create_connection((carrier.host, carrier.port), timeout=10) for _ in range(5)]
    for s in socks:
        assert s.recv(100).startswith(b"220 ")
    t0 = time.monotonic()
    assert carrier.stop(timeout=20) == 0
    assert time.monotonic() - t0 < 15
    for s in socks:
        s.close()


def send_one(c, subject: str) -> str:
    with c.smtp() as s:
        s.ehlo()
        s.mail("log@client.example")
        s.rcpt("demo@localhost")
        code, text = s.data(f"Subject: {subject}\r\n\r\nlog test\r\n".encode())
        assert code == 250
    m = re.search(rb"queued as ([0-9A-Z]{12})", text)
    assert m, text
    return m.group(1).decode()


def test_text_log_names_queue_id(carrier):
    qid = send_one(carrier, "text log")
    carrier.wait_messages("demo", 1)
    wait_for(lambda: len([ln for ln in carrier.log().splitlines() if qid in ln]) >= 2,
             timeout=10, what="an accept and a delivery log line with the queue id")


def test_json_logs(carrier_factory):
    """log_format = "json": every stderr line is one JSON object; lines about the message
    carry its queue id."""
    c = carrier_factory(server={"log_format": "json"})
    qid = send_one(c, "json log")
    c.wait_messages("demo", 1)

    def about_message():
        objs = [json.loads(ln) for ln in c.log().splitlines() if ln.strip()]
        return [o for o in objs if qid in json.dumps(o)]

    wait_for(lambda: len(about_message()) >= 2, timeout=10,
             what="two JSON log lines about the message")
    assert c.stop() == 0
    lines = [ln for ln in c.log().splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        obj = json.loads(ln)  # raises (fails the test) if a line is not JSON
        assert isinstance(obj, dict), ln
    for o in about_message():
        assert o.get("id") == qid, f"line about {qid} without \"id\": {o}"


def test_size_with_suffix(carrier_factory):
    """max_message_size = "30M" is 30 MiB, advertised as SIZE 31457280 (RFC 1870 4)."""
    c = carrier_factory(limits={"max_message_size": "30M"})
    with c.smtp() as s:
        s.ehlo()
        assert s.esmtp_features.get("size") == "31457280"


def test_sigterm_lets_a_transaction_in_progress_finish(carrier):
    """SIGTERM in the middle of DATA: the transaction in progress may finish (250 with a queue
    id), the server then exits 0, and the message is not lost: it is in the Maildir or still
    in spool/queue/ (RFC 5321 6.1: once accepted, never lost)."""
    with carrier.session() as s:
        s.start()
        s.cmd("MAIL FROM:<a@client.example>", 250)
        s.cmd("RCPT TO:<demo@localhost>", 250)
        s.cmd("DATA", 354)
        s.send_raw(b"Subject: during shutdown\r\n\r\nhalf")
        carrier.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        s.send_raw(b" and the rest\r\n.\r\n")
        qid = s.expect(250, "2.0.0").queue_id()
        s.send("QUIT")
        s.expect(221, "2.0.0")
    assert carrier.stop(timeout=20) == 0
    in_maildir = any(received_id(parse_delivered(m).received) == qid
                     for m in carrier.messages("demo"))
    in_queue = any(qid in p.name for p in carrier.queue_files())
    assert in_maildir or in_queue, "the acknowledged message is neither delivered nor queued"


def test_make_install_puts_a_working_sendmail_symlink(tmp_path, carrier):
    """`make install` installs carrier and PREFIX/sbin/sendmail -> carrier; run under that name
    it behaves as sendmail(8) (issue 6)."""
    import subprocess
    from conftest import CARRIER_BIN, REPO
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", f"BUILD={CARRIER_BIN.parent}"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    link = dest / "usr" / "sbin" / "sendmail"
    assert link.is_symlink() and link.resolve() == (dest / "usr" / "sbin" / "carrier").resolve()
    assert (dest / "etc" / "carrier" / "carrier.toml.example").is_file()
    unit = (dest / "lib" / "systemd" / "system" / "carrier.service").read_text()
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert (dest / "usr" / "share" / "man" / "man8" / "carrier.8").is_file()
    r = subprocess.run([str(link), "-C", str(carrier.config_path), "-bs"], input=b"QUIT\r\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(b"220 ") and b"221 " in r.stdout, r
