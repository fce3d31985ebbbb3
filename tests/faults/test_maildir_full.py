"""Fault injection: the Maildir target on a full filesystem (RFC 5321 6.1: an acknowledged
message is never lost; RFC 3463 3.3: 4.2.2 "mailbox full" is a temporary condition, so the
message is deferred, not bounced).

As in test_disk_full.py, a holder process mounts a 2 MiB tmpfs in its own private mount
namespace and carrier runs inside that namespace, here with `[local] mail_dir` on the tmpfs
(the spool stays on the normal disk). Ten messages of ~300 KiB to demo@localhost are all
acknowledged; the Maildir fills up after a few. Asserted:
- every acknowledged message is in exactly one place: demo's Maildir new/ or the queue;
- the ones that did not fit are deferred with "4.2.2 ... No space left on device", and no
  notice (DSN) was generated; nothing half-written stays in the Maildir's tmp/;
- after `mount -o remount,size=64m` inside the namespace, `carrier queue retry --all` (over
  the admin socket) delivers them: the queue drains and each message is in new/ exactly once.
Handles no untrusted input (it is the client).
"""
from __future__ import annotations

import json
import re
import smtplib
import subprocess
import time
from pathlib import Path

from helpers import wait_for
from test_disk_full import NamespaceCarrier, e2e, spool_ns  # noqa: F401  (spool_ns: a fixture)

MESSAGES = 10
MSG_KIB = 300


class MaildirNsCarrier(NamespaceCarrier):
    """carrier in the holder's mount namespace with its Maildirs on the tmpfs `mail_root`."""
    mail_root = Path()

    def maildir(self, mailbox: str) -> Path:
        return self.ns_path(self.mail_root / mailbox / "new")

    def queue_dir(self) -> Path:
        return self.data_dir / "spool" / "queue"


def message(i: int) -> bytes:
    line = f"filler line of message {i} ".ljust(76, "x") + "\r\n"
    body = line * (MSG_KIB * 1024 // len(line))
    return (f"From: a@client.example\r\nTo: demo@localhost\r\nSubject: maildir full {i}\r\n"
            f"Message-ID: <mdfull-{i}@client.example>\r\n\r\n{body}").encode()


def ids_in(files: list[Path]) -> list[str]:
    out = []
    for p in files:
        m = re.search(rb"^Message-ID: <(mdfull-\d+@client\.example)>\r?$", p.read_bytes(), re.M)
        assert m, f"{p}: a file without our Message-ID"
        out.append(m.group(1).decode())
    return out


def queue_cli(c, *args) -> subprocess.CompletedProcess:
    r = subprocess.run([str(e2e.CARRIER_BIN), "queue", "--config", str(c.config_path), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"carrier queue {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r


def run_maildir_full(carrier_factory, spool_ns) -> dict:
    holder_pid, mnt = spool_ns
    started = time.monotonic()
    c = carrier_factory(start=False, server={"retry_initial": "1h", "retry_max": "1h"},
                        local={"mail_dir": str(mnt)})
    c.__class__ = MaildirNsCarrier
    c.holder_pid, c.spool, c.seen_listen, c.mail_root = holder_pid, c.data_dir / "spool", 0, mnt
    c.start()

    acked = []
    for i in range(MESSAGES):
        with smtplib.SMTP(c.host, c.port, local_hostname="client.example", timeout=30) as s:
            s.sendmail("a@client.example", ["demo@localhost"], message(i))
        acked.append(f"mdfull-{i}@client.example")

    def settled() -> bool:  # every message delivered or deferred (none in progress)
        listed = json.loads(queue_cli(c, "--json", "list").stdout)
        return (listed["total"] == len(c.queue_files())
                and all(m["state"] == "deferred" for m in listed["messages"])
                and len(c.message_files("demo")) + listed["total"] == MESSAGES)

    wait_for(settled, 30, what="every message delivered or deferred")
    listed = json.loads(queue_cli(c, "--json", "list").stdout)
    delivered = ids_in(c.message_files("demo"))
    queued = ids_in(c.queue_files())
    assert delivered, "nothing fitted in an empty 2 MiB Maildir"
    assert queued, f"{MESSAGES} messages of {MSG_KIB} KiB all fitted in a 2 MiB Maildir"
    assert sorted(delivered + queued) == sorted(acked), (
        f"delivered {sorted(delivered)} + queued {sorted(queued)} != acknowledged")
    for m in listed["messages"]:
        assert m["last_error"].startswith("4.2.2 ") and "No space left on device" in m["last_error"], m
        assert m["sender"] == "a@client.example", f"a notice was generated: {m}"
    tmp = c.ns_path(mnt / "demo" / "tmp")
    assert not (tmp.is_dir() and any(tmp.iterdir())), f"half-written files left in {tmp}"
    deferred = len(queued)

    # Space comes back: the operator retries, everything is delivered once.
    subprocess.run(["nsenter", f"--target={holder_pid}", "--mount", "mount", "-o",
                    "remount,size=64m", str(mnt)], check=True)
    queue_cli(c, "retry", "--all")
    c.wait_queue_empty(timeout=30)
    final = ids_in(c.message_files("demo"))
    assert sorted(final) == sorted(acked), "after retry: each message exactly once in new/"
    figures = {"acknowledged": len(acked), "delivered_before_full": len(delivered),
               "deferred_4.2.2": deferred, "delivered_after_retry": len(final) - len(delivered),
               "lost": 0, "seconds": round(time.monotonic() - started, 1)}
    print("maildir-full figures: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


def test_maildir_full_defers_then_delivers(carrier_factory, spool_ns):
    run_maildir_full(carrier_factory, spool_ns)
