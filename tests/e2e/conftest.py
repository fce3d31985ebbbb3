"""Fixtures for carrier's end-to-end tests: they run the REAL binary over real sockets.

`carrier` starts build/carrier (or $CARRIER_BIN) on 127.0.0.1:0 with a config written into
the test's tmp_path, reads the real port from its stdout line
`carrier: listening on 127.0.0.1:PORT (smtp)`, and on teardown sends SIGTERM and asserts exit
status 0. `carrier_factory(**overrides)` starts servers with changed config sections. When a
test fails, each server's stderr log is attached to the report.
Network traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from helpers import RawSession, wait_for

REPO = Path(__file__).resolve().parents[2]
CARRIER_BIN = Path(os.environ.get("CARRIER_BIN", REPO / "build" / "carrier"))
LISTEN_RE = re.compile(r"^carrier: listening on (127\.0\.0\.1):(\d+) \((\w+)\)$", re.M)
HOSTNAME = "mx.test.example"

SERVERS = pytest.StashKey[list]()


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. extra_certificates = [ { cert_file = ... } ]
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot render {v!r}")


def default_sections(data_dir: Path) -> dict:
    return {
        "server": {
            "hostname": HOSTNAME,
            "data_dir": str(data_dir),
            "log_format": "text",
            "bare_newline": "reject",
            "retry_initial": "1s",
            "run_as_root": True,  # the tests run as root; production configs set `user`
        },
        "listener": [{"address": "127.0.0.1:0"}],
        "limits": {
            "max_message_size": 52428800,
            "max_recipients": 1000,
            "max_errors": 20,
            "max_received_headers": 100,
            "max_connections": 1000,
            "max_connections_per_ip": 100,
            "command_timeout": "5m",
            "data_timeout": "10m",
            "max_command_line": 512,
        },
        "local": {
            "domains": ["localhost", "example.test"],
            "mailboxes": ["postmaster", "demo", "alice"],
            "recipient_delimiter": "+",
            "aliases": {"team": ["demo", "alice"], "abuse": ["postmaster"]},
        },
        "relay": {"trusted_networks": []},
        # Never the system's resolver: lookups go to a closed loopback port and fail
        # temporarily, so relayed mail stays queued and no query leaves the machine.
        "dns": {"upstream": "127.0.0.1@1", "ipv6": False},
    }


def render_config(sections: dict) -> str:
    """Renders the nested dict as TOML: tables, arrays of tables ([[listener]]), subtables."""
    out: list[str] = []

    def table(name: str, body: dict) -> None:
        subs = {k: v for k, v in body.items() if isinstance(v, dict)}
        out.append(f"[{name}]")
        for k, v in body.items():
            if not isinstance(v, dict):
                out.append(f"{k} = {toml_value(v)}")
        out.append("")
        for k, v in subs.items():
            table(f"{name}.{k}", v)

    for name, body in sections.items():
        if isinstance(body, list):
            for item in body:
                out.append(f"[[{name}]]")
                out.extend(f"{k} = {toml_value(v)}" for k, v in item.items())
                out.append("")
        else:
            table(name, body)
    return "\n".join(out)


def merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


class Carrier:
    # The "listening on" line to wait for; subclasses on other loopback addresses widen it.
    listen_re = LISTEN_RE
    """A running carrier process and helpers to look at what it did."""

    def __init__(self, workdir: Path, name: str, sections: dict, args: list[str]):
        self.workdir = workdir
        self.name = name
        self.sections = sections
        self.data_dir = Path(sections["server"]["data_dir"])
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(render_config(sections))
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.listeners: list[tuple[str, int, str]] = []
        self.killed = False
        self.stopped = False  # stopped on purpose by the test (stop()/kill())

    # -- process ---------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "Carrier":
        assert CARRIER_BIN.exists(), f"carrier binary not found at {CARRIER_BIN} (set CARRIER_BIN)"
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [str(CARRIER_BIN), "serve", "--config", str(self.config_path), *self.args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while True:
            found = self.listen_re.findall(self.stdout_path.read_text(errors="replace"))
            if found:
                self.listeners = [(h, int(p), kind) for h, p, kind in found]
                self.host, self.port = self.listeners[0][0], self.listeners[0][1]
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before"
                                     f" listening; stderr:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} printed no 'listening on' line in {timeout}s;"
                                     f" stdout:\n{self.stdout_path.read_text()}")
            time.sleep(0.02)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"carrier did not exit within {timeout}s of SIGTERM")
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (crash simulation)."""
        assert self.proc is not None
        self.killed = True
        self.proc.kill()
        self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- logs ------------------------------------------------------------------------------
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    # -- mail ------------------------------------------------------------------------------
    def maildir(self, mailbox: str) -> Path:
        """<data_dir>/mail/MAILBOX/new"""
        return self.data_dir / "mail" / mailbox / "new"

    def message_files(self, mailbox: str) -> list[Path]:
        d = self.maildir(mailbox)
        return sorted(d.iterdir()) if d.is_dir() else []

    def messages(self, mailbox: str) -> list[bytes]:
        return [p.read_bytes() for p in self.message_files(mailbox)]

    def wait_messages(self, mailbox: str, n: int, timeout: float = 15.0) -> list[bytes]:
        """Waits until MAILBOX/new holds at least n files, then returns all of them."""
        wait_for(lambda: len(self.message_files(mailbox)) >= n, timeout,
                 what=f"{n} message(s) in {self.maildir(mailbox)}")
        return self.messages(mailbox)

    def queue_dir(self) -> Path:
        return self.data_dir / "spool" / "queue"

    def queue_files(self) -> list[Path]:
        d = self.queue_dir()
        return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []

    def wait_queue_empty(self, timeout: float = 15.0) -> None:
        wait_for(lambda: not self.queue_files(), timeout, what=f"{self.queue_dir()} to empty")

    # -- clients ---------------------------------------------------------------------------
    def session(self, **kw) -> RawSession:
        return RawSession(self.host, self.port, **kw)

    def smtp(self, timeout: float = 30.0, **kw) -> smtplib.SMTP:
        return smtplib.SMTP(self.host, self.port, local_hostname="client.example",
                            timeout=timeout, **kw)


@pytest.fixture
def carrier_factory(tmp_path, request):
    """Starts carrier servers: carrier_factory(server={...}, limits={...}, ...) merges the
    given sections into the default config. `data_dir=` reuses a data directory (restart);
    `args=[...]` adds command-line arguments; `start=False` only writes the config."""
    servers: list[Carrier] = []
    request.node.stash[SERVERS] = servers

    def start(data_dir: Path | None = None, args: list[str] | None = None, start: bool = True,
              **overrides) -> Carrier:
        name = f"carrier{len(servers)}"
        sections = default_sections(data_dir or tmp_path / f"{name}-var")
        merge(sections, overrides)
        c = Carrier(tmp_path, name, sections, args or [])
        servers.append(c)
        if start:
            c.start()
        return c

    yield start

    problems = []
    for c in servers:
        if c.proc is None or c.killed or c.stopped:
            continue
        if c.proc.poll() is not None:
            problems.append(f"{c.name} died during the test with status {c.proc.returncode}")
            continue
        rc = c.stop()
        if rc != 0:
            problems.append(f"{c.name} exited with status {rc} after SIGTERM (expected 0)")
    assert not problems, "; ".join(problems)


@pytest.fixture
def carrier(carrier_factory) -> Carrier:
    """A carrier with the default test configuration."""
    return carrier_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for c in item.stash.get(SERVERS, []):
            log = c.log()
            if len(log) > 20000:
                log = "...\n" + log[-20000:]
            rep.sections.append((f"{c.name} stderr ({c.stderr_path})", log))
            rep.sections.append((f"{c.name} stdout", c.stdout()))
