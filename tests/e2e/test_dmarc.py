"""DMARC (RFC 7489; docs/defence.md "DMARC") against a real Unbound serving the test domains'
SPF, DKIM and DMARC records; the client connects from 127.0.0.1. carrier's own SPF and DKIM
stages produce the results DMARC aligns with the From: domain; DKIM signatures are made by an
independent signer (Python's dkim, python3-dkim) with a key from `carrier dkim keygen`.
  - aligned SPF pass, or aligned DKIM pass with SPF failing: dmarc=pass;
  - neither aligned, p=reject: 550 5.7.1 under action "enforce", nothing delivered; only
    dmarc=fail in Authentication-Results: under "tag";
  - a subdomain of a domain with sp=quarantine (record found at the organizational domain):
    accepted with 250 and held in the queue (`carrier queue list`), not delivered;
  - no record: dmarc=none; several records: dmarc=none.
"""
from __future__ import annotations

import json
import re
import smtplib
import subprocess

import dkim
import pytest

from conftest import CARRIER_BIN
from helpers import wait_for
from relay_helpers import Unbound
from test_dkim import keygen


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("dmarckeys")
    k, txt = keygen(d, "signed.test", "s1", "rsa")
    trad = d / "s1.trad"  # dkimpy signs with a traditional RSA key
    subprocess.run(["openssl", "rsa", "-in", str(k), "-traditional", "-out", str(trad)],
                   check=True, capture_output=True, timeout=60)
    return trad.read_bytes(), txt.decode()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, key):
    txt = key[1]
    zone = "\n".join([
        'pass.test. 300 TXT "v=spf1 ip4:127.0.0.1 -all"',
        '_dmarc.pass.test. 300 TXT "v=DMARC1; p=reject"',
        'bank.test. 300 TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.bank.test. 300 TXT "v=DMARC1; p=reject; rua=mailto:d@bank.test"',
        '_dmarc.quar.test. 300 TXT "v=DMARC1; p=reject; sp=quarantine"',
        'fail.test. 300 TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc.signed.test. 300 TXT "v=DMARC1; p=reject; adkim=s"',
        's1._domainkey.signed.test. 300 TXT ' + " ".join(f'"{txt[i:i + 200]}"' for i in range(0, len(txt), 200)),
        'nopolicy.test. 300 TXT "v=spf1 ip4:127.0.0.1 -all"',
        '_dmarc.twice.test. 300 TXT "v=DMARC1; p=reject"',
        '_dmarc.twice.test. 300 TXT "v=DMARC1; p=none"',
    ]) + "\n"
    u = Unbound(tmp_path_factory.mktemp("unbound"), zone).start()
    yield u
    u.stop()


def dmarc_carrier(carrier_factory, dns, action):
    return carrier_factory(dns={"upstream": dns.upstream},
                           spf={"enabled": True, "action": "tag"},
                           dkim={"verify": True},
                           dmarc={"enabled": True, "action": action})


def message(frm: str, subject: str) -> bytes:
    return (f"From: {frm}\r\nTo: demo@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n\r\nhello\r\n").encode()


def send(c, mail_from: str, msg: bytes):
    """(code, text) of the reply to the end of the data."""
    s = smtplib.SMTP(c.host, c.port, timeout=30, source_address=("127.0.0.1", 0))
    try:
        s.ehlo("client.test")
        assert s.mail(mail_from)[0] == 250
        assert s.rcpt("demo@localhost")[0] == 250
        try:
            return s.data(msg)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
    finally:
        s.quit()


def delivered(c, count):
    box = c.data_dir / "mail" / "demo" / "new"
    wait_for(lambda: box.exists() and len(list(box.iterdir())) >= count, timeout=15)
    return [p.read_bytes() for p in sorted(box.iterdir())]


def auth_results(stored: bytes) -> str:
    m = re.search(rb"^Authentication-Results: (.*?)\n(?![ \t])", stored, re.S | re.M)
    assert m, stored[:600]
    return re.sub(r"\s+", " ", m.group(1).decode())


def by_subject(msgs, subject: str) -> str:
    hits = [m for m in msgs if f"Subject: {subject}\n".encode() in m]
    assert len(hits) == 1, (subject, [m[:300] for m in msgs])
    return auth_results(hits[0])


def test_results_under_tag(carrier_factory, dns, key):
    c = dmarc_carrier(carrier_factory, dns, "tag")
    signed = dkim.sign(message("ceo@signed.test", "dkim aligned"), b"s1", b"signed.test", key[0],
                       include_headers=[b"from", b"to", b"subject"]) + \
        message("ceo@signed.test", "dkim aligned")
    cases = [("bob@pass.test", message("Bob <bob@pass.test>", "spf aligned")),
             ("bob@fail.test", signed),
             ("bob@pass.test", message("ceo@bank.test", "not aligned")),
             ("bob@pass.test", message("x@news.quar.test", "subdomain")),
             ("bob@pass.test", message("x@nopolicy.test", "no record")),
             ("bob@pass.test", message("x@twice.test", "two records"))]
    for mail_from, msg in cases:
        code, text = send(c, mail_from, msg)
        assert code == 250, (mail_from, text)
    msgs = delivered(c, len(cases))
    ar = by_subject(msgs, "spf aligned")
    assert "spf=pass smtp.mailfrom=pass.test" in ar and "dmarc=pass header.from=pass.test" in ar, ar
    ar = by_subject(msgs, "dkim aligned")
    assert "spf=fail" in ar and "dkim=pass" in ar and "header.d=signed.test" in ar, ar
    assert "dmarc=pass header.from=signed.test" in ar, ar
    ar = by_subject(msgs, "not aligned")
    assert "spf=pass smtp.mailfrom=pass.test" in ar and "dmarc=fail header.from=bank.test" in ar, ar
    assert "dmarc=fail header.from=news.quar.test" in by_subject(msgs, "subdomain")
    assert "dmarc=none header.from=nopolicy.test" in by_subject(msgs, "no record")
    assert "dmarc=none header.from=twice.test" in by_subject(msgs, "two records")
    log = c.log()
    assert "dmarc=fail header.from=bank.test (no aligned SPF or DKIM pass; policy reject)" in log, log[-3000:]
    assert "several DMARC records at _dmarc.twice.test" in log


def test_enforce_rejects_and_quarantines(carrier_factory, dns):
    c = dmarc_carrier(carrier_factory, dns, "enforce")
    code, text = send(c, "bob@pass.test", message("ceo@bank.test", "forged"))
    assert code == 550 and text.startswith(b"5.7.1 Email rejected per DMARC policy for bank.test"), text
    code, text = send(c, "bob@pass.test", message("x@news.quar.test", "quarantined"))
    assert code == 250, text
    code, text = send(c, "bob@pass.test", message("Bob <bob@pass.test>", "fine"))
    assert code == 250, text
    msgs = delivered(c, 1)
    wait_for(lambda: len(c.queue_files()) == 1, 15, what="the held message to stay queued")
    assert len(msgs) == 1 and b"Subject: fine\n" in msgs[0], msgs
    r = subprocess.run([str(CARRIER_BIN), "queue", "--config", str(c.config_path), "--json", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert listed["total"] == 1 and listed["messages"][0]["state"] == "held", listed
    assert "dmarc=fail p=quarantine header.from=news.quar.test" in c.log()


def test_missing_public_suffix_list_is_a_config_error(carrier_factory, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dmarc]\nenabled = true\npublic_suffix_list = "/nonexistent/psl.dat"\n')
    r = subprocess.run([str(CARRIER_BIN), "check-config", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert "c.toml:3" in r.stdout + r.stderr and "no such file: /nonexistent/psl.dat" in r.stdout + r.stderr
