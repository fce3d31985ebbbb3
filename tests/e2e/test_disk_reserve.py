"""Free-space reserve at MAIL (issue 9; RFC 1870 6.1, RFC 3463 4.3.1): carrier refuses a
transaction up front with 452 4.3.1 when the spool's file system has less free space than
[limits] min_free_space plus the SIZE= the client announced, instead of receiving the whole
message and failing after DATA. Only the sizes change between the runs; the disk is real."""
from __future__ import annotations

import os
import smtplib


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_reserve_larger_than_the_disk_refuses_mail_with_452_4_3_1(carrier_factory):
    c = carrier_factory(limits={"min_free_space": 900_000 << 30})
    with smtplib.SMTP(c.host, c.port, timeout=10) as s:
        s.ehlo("client.test")
        code, msg = s.mail("sender@example.test")
        assert code == 452, msg
        assert msg.startswith(b"4.3.1"), msg
        # The session goes on: the next command is answered normally.
        assert s.noop()[0] == 250
    assert "refusing MAIL" in c.log()


def test_announced_size_that_does_not_fit_is_refused_one_that_fits_is_accepted(carrier_factory):
    c = carrier_factory(limits={"max_message_size": "60G"})
    free = free_bytes(c.data_dir)
    with smtplib.SMTP(c.host, c.port, timeout=10) as s:
        s.ehlo("client.test")
        too_big = free + (1 << 30)
        if too_big <= 60 << 30:  # a disk with less than 59 GiB free: SIZE= beyond it
            code, msg = s.mail("sender@example.test", [f"SIZE={too_big}"])
            assert (code, msg[:5]) == (452, b"4.3.1"), msg
        code, msg = s.mail("sender@example.test", ["SIZE=1000"])
        assert code == 250, msg
        s.rcpt("demo@localhost")
        code, msg = s.data(b"Subject: fits\r\n\r\nhello\r\n")
        assert code == 250, msg


def test_no_reserve_by_default_mail_is_accepted(carrier):
    with smtplib.SMTP(carrier.host, carrier.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("sender@example.test")[0] == 250
