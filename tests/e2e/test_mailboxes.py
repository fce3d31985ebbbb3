"""Final delivery to mailboxes people read (issue 6): carrier hands mail to a real Dovecot over
LMTP (RFC 2033) or writes Dovecot's Maildirs itself, and the tests read every message back over
IMAP (imaplib) and POP3 (poplib), byte-exact apart from the trace fields at the top. Virtual
domains, unknown users at LMTP time (a bounce), Dovecot down then up (deferred, then
delivered). Everything on 127.0.0.1."""
from __future__ import annotations

import email
import subprocess
import re
import smtplib
import ssl
import time

import pytest

from dovecot_helpers import Dovecot, strip_trace
from helpers import wait_for

USERS = {"alice@example.org": "alice-pw", "bob@example.org": "bob-pw",
         "carol@example.net": "carol-pw", "demo@localhost": "demo-pw"}

MESSAGE = (b"From: Sender <sender@localhost>\r\n"
           b"To: alice@example.org\r\n"
           b"Subject: byte exact\r\n"
           b"Message-ID: <t1@client.example>\r\n"
           b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
           b"\r\n"
           b"line one\r\n"
           b".a line that starts with a dot\r\n"
           b"  indented, trailing space \r\n"
           b"\r\n"
           b"last line\r\n")


@pytest.fixture
def dovecot(tmp_path):
    d = Dovecot(tmp_path / "dovecot", USERS).start()
    yield d
    d.stop()


def mailbox_carrier(carrier_factory, dovecot, **over):
    """carrier with example.org delivered by LMTP to Dovecot and example.net written into
    Dovecot's Maildirs (owned by Dovecot's user); [local] localhost stays carrier's Maildir."""
    sections = dict(
        server={"retry_initial": "1s", "retry_max": "2s"},
        local={"domains": ["localhost"], "mailboxes": ["postmaster", "demo"],
               "aliases": {"team": ["demo"]}},
        virtual=[
            {"domain": "example.org", "mailboxes": ["alice", "bob", "ghost"],
             "delivery": "lmtp", "lmtp": f"127.0.0.1:{dovecot.lmtp}"},
            {"domain": "example.net", "mailboxes": ["carol"], "delivery": "maildir",
             "maildir_owner": "vmail"},
        ],
    )
    sections["local"]["mail_dir"] = str(dovecot.dir / "mail")
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(sections.get(k), dict):
            sections[k].update(v)
        else:
            sections[k] = v
    return carrier_factory(**sections)


def assert_same_apart_from_trace(got: bytes, sent: bytes) -> list[bytes]:
    names, rest = strip_trace(got)
    assert rest == sent, f"message changed:\n{got!r}"
    return names


def test_rfc2033_lmtp_to_dovecot_read_back_over_imap_and_pop3(carrier_factory, dovecot):
    c = mailbox_carrier(carrier_factory, dovecot)
    with c.smtp() as s:
        s.sendmail("sender@localhost", ["alice@example.org"], MESSAGE)
    wait_for(lambda: dovecot.new_files("alice@example.org"), 15, what="LMTP delivery")
    imap = dovecot.imap_messages("alice@example.org")
    assert len(imap) == 1
    names = assert_same_apart_from_trace(imap[0], MESSAGE)
    # Dovecot adds Return-Path and Delivered-To (one recipient); carrier did not add them too.
    assert names.count(b"return-path") == 1 and names.count(b"delivered-to") == 1, names
    assert names.count(b"received") == 2, names  # carrier's, then Dovecot's LMTP one
    assert b"Return-Path: <sender@localhost>\r\n" in imap[0]
    pop = dovecot.pop3_messages("alice@example.org")
    assert len(pop) == 1
    assert_same_apart_from_trace(pop[0], MESSAGE)
    c.wait_queue_empty()
    assert "status=delivered" in c.log()


def test_rfc2033_4_2_one_reply_per_recipient_unknown_one_bounces(carrier_factory, dovecot):
    """ghost@example.org is a carrier mailbox Dovecot does not know: LMTP answers 550 for it
    alone; alice and bob get the message; the sender gets a DSN naming ghost."""
    c = mailbox_carrier(carrier_factory, dovecot)
    with c.smtp() as s:
        s.sendmail("demo@localhost", ["alice@example.org", "ghost@example.org", "bob@example.org"],
                   MESSAGE)
    wait_for(lambda: dovecot.new_files("alice@example.org") and dovecot.new_files("bob@example.org"),
             15, what="LMTP deliveries")
    # [local] mailboxes live in the same mail_dir (the test points it at Dovecot's).
    demo_new = dovecot.dir / "mail" / "demo" / "new"
    wait_for(lambda: demo_new.is_dir() and any(demo_new.iterdir()), 15, what="the DSN for ghost")
    dsn = next(demo_new.iterdir()).read_bytes()
    report = email.message_from_bytes(dsn)
    assert report.get_content_type() == "multipart/report"
    text = dsn.decode(errors="replace")
    assert "Final-Recipient: rfc822; ghost@example.org" in text
    assert "Status: 5.1.1" in text
    assert text.count("Final-Recipient:") == 1, "only ghost failed"
    for u in ("alice@example.org", "bob@example.org"):
        (m,) = dovecot.imap_messages(u)
        names = assert_same_apart_from_trace(m, MESSAGE)
        # One recipient per LMTP transaction, so Dovecot writes Delivered-To for each.
        assert names.count(b"return-path") == 1 and names.count(b"delivered-to") == 1, names
        assert f"Delivered-To: {u}\r\n".encode() in m


def test_dovecot_down_then_up_message_deferred_then_delivered(carrier_factory, dovecot):
    c = mailbox_carrier(carrier_factory, dovecot)
    dovecot.stop()
    with c.smtp() as s:
        s.sendmail("sender@localhost", ["bob@example.org"], MESSAGE)
    wait_for(lambda: "status=deferred" in c.log(), 15, what="a deferral while Dovecot is down")
    assert c.queue_files(), "the message must stay queued"
    assert not dovecot.new_files("bob@example.org")
    dovecot.start()
    wait_for(lambda: dovecot.new_files("bob@example.org"), 30, what="delivery after Dovecot is back")
    (m,) = dovecot.imap_messages("bob@example.org")
    assert_same_apart_from_trace(m, MESSAGE)
    c.wait_queue_empty()


def test_maildir_delivery_into_dovecot_mailboxes_read_over_imap(carrier_factory, dovecot):
    """carrier writes the Maildir itself (Return-Path and Delivered-To added once, files owned
    by Dovecot's user) and Dovecot serves it."""
    c = mailbox_carrier(carrier_factory, dovecot)
    msg = MESSAGE.replace(b"To: alice@example.org", b"To: carol@example.net")
    with c.smtp() as s:
        s.sendmail("sender@localhost", ["carol@example.net"], msg)
    wait_for(lambda: dovecot.new_files("carol@example.net"), 15, what="Maildir delivery")
    f = dovecot.new_files("carol@example.net")[0]
    assert (f.stat().st_uid, f.stat().st_gid) == dovecot.owner
    (m,) = dovecot.imap_messages("carol@example.net")
    names = assert_same_apart_from_trace(m, msg)
    assert names == [b"return-path", b"delivered-to", b"received"], names
    (p,) = dovecot.pop3_messages("carol@example.net")
    assert_same_apart_from_trace(p, msg)


def test_virtual_domain_unknown_user_rejected_at_rcpt(carrier_factory, dovecot):
    c = mailbox_carrier(carrier_factory, dovecot)
    with c.smtp() as s:
        s.ehlo()
        s.mail("sender@localhost")
        code, text = s.rcpt("nobody@example.org")
        assert (code, text[:5]) == (550, b"5.1.1")
        code, _ = s.rcpt("alice@example.org")
        assert code == 250


def test_submission_then_lmtp_then_imap(carrier_factory, dovecot, tmp_path):
    """A mail client submits over STARTTLS with AUTH (RFC 6409); the message reaches Dovecot
    by LMTP and reads back with the Date:/Message-ID: carrier added."""
    import subprocess
    from conftest import CARRIER_BIN
    hashed = subprocess.run([str(CARRIER_BIN), "passwd", "alice@example.org"], input="s3cret\n",
                            capture_output=True, text=True, check=True).stdout
    pw = tmp_path / "passwd"
    pw.write_text(hashed)
    c = mailbox_carrier(carrier_factory, dovecot,
                        listener=[{"address": "127.0.0.1:0"},
                                  {"address": "127.0.0.1:0", "name": "submission", "submission": True}],
                        auth={"password_file": str(pw)})
    port = [p for h, p, n in c.listeners if n == "submission"][0]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    body = b"Subject: from my mail client\r\nTo: bob@example.org\r\n\r\nhello bob\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.starttls(context=ctx)
        s.login("alice@example.org", "s3cret")
        s.sendmail("alice@example.org", ["bob@example.org"], body)
    wait_for(lambda: dovecot.new_files("bob@example.org"), 15, what="delivery of the submission")
    (m,) = dovecot.imap_messages("bob@example.org")
    names, rest = strip_trace(m)
    assert rest.startswith(b"Subject: from my mail client\r\nTo: bob@example.org\r\n"), rest
    assert b"\r\nDate: " in rest and b"\r\nMessage-ID: <" in rest
    assert rest.endswith(b"\r\n\r\nhello bob\r\n")
    assert b"with ESMTPSA" in m


def test_pipe_delivery_exit_statuses_as_sysexits(carrier_factory, dovecot, tmp_path):
    """delivery = "pipe": the message (Return-Path and Delivered-To first, LF line ends) on the
    command's stdin; exit 0 delivered, 75 (EX_TEMPFAIL) deferred and retried, 67 (EX_NOUSER)
    bounced with the command's output in the DSN (as sendmail and Postfix's pipe(8) do)."""
    out = tmp_path / "pipe-out"
    out.mkdir()
    script = (f"cat > {out}/$USER.msg; case $USER in ok) exit 0;; temp) echo busy >&2; exit 75;; "
              f"*) echo \"no such user here: $USER\" >&2; exit 67;; esac")
    c = mailbox_carrier(carrier_factory, dovecot, virtual=[
        {"domain": "pipe.test", "mailboxes": ["ok", "temp", "nouser"], "delivery": "pipe",
         "pipe_command": ["/bin/sh", "-c", script], "pipe_timeout": "10s"}])
    with c.smtp() as s:
        s.sendmail("demo@localhost", ["ok@pipe.test", "temp@pipe.test", "nouser@pipe.test"],
                   MESSAGE)
    wait_for(lambda: (out / "ok.msg").exists() and (out / "nouser.msg").exists(), 15,
             what="the command to run for ok and nouser")
    got = (out / "ok.msg").read_bytes()
    assert got.startswith(b"Return-Path: <demo@localhost>\nDelivered-To: ok@pipe.test\nReceived: ")
    assert b"\r" not in got, "commands get LF line ends"
    assert got.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    demo_new = dovecot.dir / "mail" / "demo" / "new"
    wait_for(lambda: demo_new.is_dir() and any(demo_new.iterdir()), 15, what="the DSN for nouser")
    dsn = next(demo_new.iterdir()).read_bytes().decode(errors="replace")
    assert "Final-Recipient: rfc822; nouser@pipe.test" in dsn
    unfolded = re.sub(r"\r?\n[ \t]+", " ", dsn)
    assert re.search(r"exited 67 \(EX_NOUSER\): no such user +here: nouser", unfolded), unfolded
    assert "temp@pipe.test" not in dsn.split("Final-Recipient", 1)[1]
    wait_for(lambda: c.log().count("temp@pipe.test") >= 2, 15, what="temp deferred and retried")
    assert "status=deferred" in c.log()
    assert c.queue_files(), "the deferred recipient keeps the message queued"


def test_one_yescrypt_hash_logs_in_to_carrier_and_dovecot(carrier_factory, tmp_path):
    """docs/mailboxes.md: the hash `carrier passwd` makes works in carrier's password file and
    as {CRYPT} in Dovecot's passwd-file; the user submits to carrier and reads over IMAP."""
    import subprocess
    from conftest import CARRIER_BIN
    line = subprocess.run([str(CARRIER_BIN), "passwd", "alice@example.org"], input="one-pw\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    user, hashed = line.split(":", 1)
    d = Dovecot(tmp_path / "dovecot", {user: "{CRYPT}" + hashed})
    d.start()
    try:
        d.users = {user: "one-pw"}  # what the client types
        pw = tmp_path / "passwd"
        pw.write_text(line + "\n")
        c = mailbox_carrier(carrier_factory, d,
                            listener=[{"address": "127.0.0.1:0"},
                                      {"address": "127.0.0.1:0", "name": "submission",
                                       "submission": True}],
                            auth={"password_file": str(pw)},
                            virtual=[{"domain": "example.org", "mailboxes": ["alice"],
                                      "delivery": "lmtp", "lmtp": f"127.0.0.1:{d.lmtp}"}])
        port = [p for h, p, n in c.listeners if n == "submission"][0]
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.starttls(context=ctx)
            s.login(user, "one-pw")
            s.sendmail(user, [user], b"Subject: note to self\r\n\r\nsame password\r\n")
        wait_for(lambda: d.new_files(user), 15, what="delivery")
        (m,) = d.imap_messages(user)
        assert m.endswith(b"\r\n\r\nsame password\r\n")
    finally:
        d.stop()


def test_documented_configuration_is_valid(tmp_path):
    """The carrier configuration in docs/mailboxes.md passes `carrier check-config` (with its
    paths pointed at files that exist here)."""
    import re as _re
    import subprocess
    from conftest import CARRIER_BIN, REPO
    doc = (REPO / "docs" / "mailboxes.md").read_text()
    block = doc.split("### carrier", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=mx.example.org"], check=True, capture_output=True)
    pw = tmp_path / "passwd"
    pw.write_text("")
    block = (block.replace("/etc/letsencrypt/live/mx.example.org/fullchain.pem", str(cert))
                  .replace("/etc/letsencrypt/live/mx.example.org/privkey.pem", str(key))
                  .replace("/etc/carrier/passwd", str(pw))
                  .replace("/var/lib/carrier", str(tmp_path / "data"))
                  .replace('"/var/mail"', f'"{tmp_path / "mail"}"'))
    assert not _re.search(r'"/(etc|var)/', block), block
    f = tmp_path / "carrier.toml"
    f.write_text(block)
    r = subprocess.run([str(CARRIER_BIN), "check-config", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def sendmail(c, *args, stdin: bytes) -> subprocess.CompletedProcess:
    from conftest import CARRIER_BIN
    return subprocess.run([str(CARRIER_BIN), "sendmail", "-C", str(c.config_path), *args],
                          input=stdin, capture_output=True, timeout=30)


def test_sendmail_while_running_and_while_stopped_read_back_over_imap(carrier_factory, dovecot):
    """`carrier sendmail` hands the message to the daemon through the durable pickup directory:
    delivered at once while carrier runs; written and kept while it is stopped, delivered when
    it starts. -t takes the recipients from To/Cc/Bcc and removes Bcc:."""
    c = mailbox_carrier(carrier_factory, dovecot)
    body = (b"From: Sender <sender@localhost>\nTo: alice@example.org\nBcc: bob@example.org\n"
            b"Subject: via sendmail\n\n.line with a dot\nend\n")
    r = sendmail(c, "-t", "-i", "-f", "sender@localhost", stdin=body)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: dovecot.new_files("alice@example.org") and dovecot.new_files("bob@example.org"),
             15, what="sendmail -t delivery to alice and bob")
    for u in ("alice@example.org", "bob@example.org"):
        (m,) = dovecot.imap_messages(u)
        assert b"Bcc:" not in m, "Bcc: must be removed"
        assert b"Subject: via sendmail\r\n" in m
        assert m.endswith(b"\r\n\r\n.line with a dot\r\nend\r\n")
        assert b"(carrier sendmail, uid " in m
    # Stopped: the message waits in the pickup directory, then is delivered.
    assert c.stop() == 0
    r = sendmail(c, "carol@example.net", stdin=b"Subject: while down\n\nqueued\n")
    assert r.returncode == 0, r.stderr
    assert list((c.data_dir / "pickup").glob("[0-9]*")), "the message must be in pickup/"
    c3 = carrier_factory(data_dir=c.data_dir, **{k: v for k, v in c.sections.items() if k != "server"},
                         server=c.sections["server"])
    wait_for(lambda: dovecot.new_files("carol@example.net"), 15, what="delivery after the start")
    (m,) = dovecot.imap_messages("carol@example.net")
    assert b"Subject: while down\r\n" in m and m.endswith(b"\r\n\r\nqueued\r\n")
    assert not list((c.data_dir / "pickup").glob("[0-9]*")), "imported files are removed"
    # An unknown local recipient: accepted by sendmail, then bounced to the sender.
    r = sendmail(c3, "-f", "demo@localhost", "nobody@example.org", stdin=b"Subject: x\n\ny\n")
    assert r.returncode == 0
    demo_new = dovecot.dir / "mail" / "demo" / "new"
    wait_for(lambda: demo_new.is_dir() and any(demo_new.iterdir()), 15, what="the bounce")
    dsn = next(demo_new.iterdir()).read_bytes()
    assert b"nobody@example.org" in dsn and b"5.1.1" in dsn


def test_sendmail_exit_codes_and_bs(carrier_factory, dovecot):
    c = mailbox_carrier(carrier_factory, dovecot)
    assert sendmail(c, stdin=b"Subject: no recipients\n\nx\n").returncode == 64  # EX_USAGE
    assert sendmail(c, "not an address@", stdin=b"x\n").returncode in (64, 65, 67)
    bs = (b"HELO me\r\nMAIL FROM:<sender@localhost>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
          b"Subject: bs\r\n\r\nover -bs\r\n.\r\nQUIT\r\n")
    r = sendmail(c, "-bs", stdin=bs)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("220 ") and "\r\n250 " in out and "\r\n221 " in out, out
    wait_for(lambda: dovecot.new_files("bob@example.org"), 15, what="the -bs message")
    (m,) = dovecot.imap_messages("bob@example.org")
    assert m.endswith(b"\r\n\r\nover -bs\r\n")
