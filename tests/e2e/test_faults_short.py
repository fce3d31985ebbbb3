"""Short versions of the fault-injection tests of tests/faults (run by `make test`; the full
ones by `make test-faults`): SIGKILL under load with 3 kills instead of 20 (RFC 5321 6.1: no
acknowledged message lost), the spool on a full 2 MiB tmpfs (452 4.3.1, RFC 3463 3.4),
SIGKILL while relaying a batch with 3 kills instead of 20 (nothing lost, duplicates counted),
the Maildir on a full tmpfs (deferred 4.2.2, delivered after `carrier queue retry`), and a
relay peer that stalls in DATA with [relay] command_timeout = "5s" (deferred, then delivered
once).
Handles no untrusted input (it is the client).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))

from test_disk_full import run_disk_full, spool_ns  # noqa: E402,F401  (spool_ns: a fixture)
from test_kill9 import run_kill9  # noqa: E402
from test_maildir_full import run_maildir_full  # noqa: E402
from test_relay_stall import run_relay_stall  # noqa: E402
from test_restart_delivery import run_restart_delivery  # noqa: E402


def test_kill9_short(carrier_factory):
    run_kill9(carrier_factory, rounds=3)


def test_disk_full_short(carrier_factory, spool_ns):  # noqa: F811
    run_disk_full(carrier_factory, spool_ns)


def test_restart_during_relay_short(carrier_factory):
    run_restart_delivery(carrier_factory, rounds=3)


def test_maildir_full_short(carrier_factory, spool_ns):  # noqa: F811
    run_maildir_full(carrier_factory, spool_ns)


def test_relay_stall_short(carrier_factory):
    run_relay_stall(carrier_factory, command_timeout=5)
