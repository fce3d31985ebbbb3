"""Fault injection: the spool on a full filesystem (RFC 5321 4.2.2 / RFC 3463 3.4: 452 4.3.1
"insufficient system storage"; RFC 5321 6.1: never acknowledge what could not be stored).

A holder process (`unshare --mount --propagation private`) mounts a 2 MiB tmpfs on the spool
directory inside its own private mount namespace, so nothing leaks to the host if the test
dies; carrier runs inside that namespace (`nsenter --mount`) with `[server] spool_dir` on the
tmpfs. Messages (~160 KiB each) go to a relayed recipient, which stays queued (DNS lookups go
to a closed loopback port), so the spool fills until carrier answers 452 4.3.1 after DATA.
The test checks: every message that got 250 is in the spool and no refused message is; carrier
killed with SIGKILL restarts cleanly on the full spool (nothing moved to corrupt/, every
acknowledged message still queued); after the tmpfs is enlarged (`mount -o remount,size=64m`
inside the namespace) carrier accepts again. Handles no untrusted input (it is the client).
"""
from __future__ import annotations

import re
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

try:
    import carrier_e2e_conftest as e2e  # loaded by tests/faults/conftest.py
except ImportError:
    import conftest as e2e  # collected from tests/e2e (the short version in `make test`)
from helpers import wait_for

SIZE = "2m"
MSG_KIB = 160


class NamespaceCarrier(e2e.Carrier):
    """A carrier started inside the mount namespace of `holder_pid` (same PID as Popen's)."""
    holder_pid = 0
    spool = Path()

    def start(self, timeout: float = 20.0) -> "NamespaceCarrier":
        real_bin = e2e.CARRIER_BIN
        assert real_bin.exists(), f"carrier binary not found at {real_bin} (set CARRIER_BIN)"
        # nsenter setns()es into the holder's mount namespace and execs carrier in place.
        deadline = time.monotonic() + timeout
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                ["nsenter", f"--target={self.holder_pid}", "--mount", str(real_bin), "serve",
                 "--config", str(self.config_path), *self.args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir)
        while True:
            found = self.listen_re.findall(self.stdout_path.read_text(errors="replace"))
            if len(found) > self.seen_listen:
                h, p, _ = found[-1]
                self.seen_listen = len(found)
                self.host, self.port = h, int(p)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"carrier exited with {self.proc.returncode};"
                                     f" stderr:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("carrier printed no 'listening on' line")
            time.sleep(0.02)

    def ns_path(self, p: Path) -> Path:
        """p as seen inside the namespace (through the holder's /proc/PID/root)."""
        return Path(f"/proc/{self.holder_pid}/root") / str(p).lstrip("/")

    def queue_dir(self) -> Path:
        return self.ns_path(self.spool / "queue")


@pytest.fixture
def spool_ns(tmp_path):
    """A private mount namespace holding a SIZE tmpfs on tmp_path/spoolfs; yields
    (holder_pid, mountpoint). Killing the holder at the end frees the tmpfs."""
    mnt = tmp_path / "spoolfs"
    mnt.mkdir()
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount -t tmpfs -o size={SIZE},mode=0700 tmpfs "{mnt}" && echo mounted && exec sleep 600'],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = holder.stdout.readline()
    assert line.strip() == b"mounted", "could not mount a tmpfs in a private mount namespace"
    try:
        yield holder.pid, mnt
    finally:
        holder.kill()
        holder.wait()


def message(i: int) -> bytes:
    line = f"filler line of message {i} ".ljust(76, "x") + "\r\n"
    body = line * (MSG_KIB * 1024 // len(line))
    return (f"From: a@client.example\r\nTo: u@other.test\r\nSubject: diskfull {i}\r\n"
            f"Message-ID: <diskfull-{i}@client.example>\r\n\r\n{body}").encode()


def queued_ids(c: NamespaceCarrier) -> list[str]:
    ids = []
    for p in c.queue_files():
        m = re.search(rb"Message-ID: <(diskfull-\d+@client\.example)>", p.read_bytes())
        assert m, f"{p}: a queue file without our Message-ID"
        ids.append(m.group(1).decode())
    return ids


def send(c: NamespaceCarrier, i: int) -> tuple[int, bytes]:
    with smtplib.SMTP(c.host, c.port, local_hostname="client.example", timeout=30) as s:
        try:
            s.sendmail("a@client.example", ["u@other.test"], message(i))
            return 250, b""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        except smtplib.SMTPResponseException as e:  # refused earlier (MAIL/RCPT)
            return e.smtp_code, e.smtp_error


def run_disk_full(carrier_factory, spool_ns, max_messages: int = 40) -> dict:
    holder_pid, mnt = spool_ns
    started = time.monotonic()
    overrides = {"server": {"spool_dir": str(mnt)},
                 "relay": {"trusted_networks": ["127.0.0.0/8"]}}

    def start(data_dir=None) -> NamespaceCarrier:
        c = carrier_factory(data_dir=data_dir, start=False, **overrides)
        c.__class__ = NamespaceCarrier
        c.holder_pid, c.spool, c.seen_listen = holder_pid, mnt, 0
        return c.start()

    c = start()
    acked: list[str] = []
    refused: list[tuple[str, int, bytes]] = []
    i = 0
    while i < max_messages and len(refused) < 3:
        code, text = send(c, i)
        mid = f"diskfull-{i}@client.example"
        if code == 250:
            acked.append(mid)
        else:
            refused.append((mid, code, text))
        i += 1
    assert acked, "nothing was accepted on an empty 2 MiB spool"
    assert refused, f"{max_messages} messages of {MSG_KIB} KiB all accepted on a {SIZE} spool"
    for mid, code, text in refused:
        assert code == 452 and text.startswith(b"4.3.1"), (
            f"{mid}: expected 452 4.3.1 (RFC 3463 3.4), got {code} {text!r}")
    # Nothing refused was queued; everything acknowledged is queued (RFC 5321 6.1).
    q = queued_ids(c)
    assert sorted(q) == sorted(acked), f"queue {sorted(q)} != acknowledged {sorted(acked)}"
    tmp = c.ns_path(mnt / "tmp")
    assert not (tmp.is_dir() and any(tmp.iterdir())), "a refused message left a file in tmp/"

    # SIGKILL and restart on the full spool: it starts, nothing is corrupt, nothing is lost.
    c.kill()
    c = start(data_dir=c.data_dir)
    corrupt = c.ns_path(mnt / "corrupt")
    assert not (corrupt.is_dir() and any(corrupt.iterdir())), "spool files moved to corrupt/"
    assert sorted(queued_ids(c)) == sorted(acked), "acknowledged messages lost across restart"

    # Space comes back: carrier accepts again.
    subprocess.run(["nsenter", f"--target={holder_pid}", "--mount", "mount", "-o",
                    "remount,size=64m", str(mnt)], check=True)
    code, text = send(c, 1000)
    assert code == 250, f"after freeing space: {code} {text!r}"
    acked.append("diskfull-1000@client.example")
    wait_for(lambda: sorted(queued_ids(c)) == sorted(acked), timeout=10,
             what="the new message in the queue")
    figures = {"acknowledged": len(acked), "refused_452": len(refused), "queued": len(acked),
               "lost": 0, "seconds": round(time.monotonic() - started, 1)}
    print("disk-full figures: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


def test_spool_full_452_nothing_lost_accepts_again(carrier_factory, spool_ns):
    run_disk_full(carrier_factory, spool_ns)
