"""DNSBL/DNSWL of client IPs (issue 10, RFC 5782; docs/defence.md "DNSBL") against a real
authoritative Unbound (../shared/peers/unbound.sh) serving test lists. Clients connect from
different 127.0.0.x source addresses, which the lists name. A listed client gets 554 5.7.1
with the list's TXT text at RCPT; an allow list cancels a listing; a broken list (SERVFAIL,
answers outside 127/8) never blocks mail; tag mode adds X-Carrier-DNSBL: to the message."""
from __future__ import annotations

import smtplib

import pytest

from helpers import wait_for
from relay_helpers import Unbound

ZONE = """
2.0.0.127.bl.test. 300 A 127.0.0.2
2.0.0.127.bl.test. 300 TXT "127.0.0.2 is listed for testing, see http://bl.test/"
3.0.0.127.bl.test. 300 A 127.0.0.2
3.0.0.127.wl.test. 300 A 127.0.0.2
4.0.0.127.bl.test. 300 A 10.0.0.1
5.0.0.127.bl.test. 300 A 127.0.0.4
broken.test. SERVFAIL
spammy.example.dbl.test. 300 A 127.0.1.2
spammy.example.dbl.test. 300 TXT "spammy.example is a listed domain"
bad-helo.example.dbl.test. 300 A 127.0.1.2
"""


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONE).start()
    yield u
    u.stop()


def dnsbl_carrier(carrier_factory, dns, action="reject", **lists):
    return carrier_factory(
        dns={"upstream": dns.upstream},
        dnsbl={"action": action, "threshold": 1.0,
               "list": lists.get("lists", [{"zone": "bl.test", "returns": ["127.0.0.2"]},
                                           {"zone": "wl.test", "weight": -5},
                                           {"zone": "broken.test"}])})


def attempt(c, source):
    """RCPT reply for a client at `source`, and the DATA reply when RCPT was accepted."""
    s = smtplib.SMTP(c.host, c.port, timeout=20, source_address=(source, 0))
    try:
        s.ehlo("client.test")
        assert s.mail("someone@example.test")[0] == 250
        code, msg = s.rcpt("demo@localhost")
        if code != 250:
            return code, msg, None
        return code, msg, s.data(b"Subject: dnsbl\r\n\r\nhello\r\n")
    finally:
        s.quit()


def test_listed_client_refused_at_rcpt_with_the_lists_text(carrier_factory, dns):
    c = dnsbl_carrier(carrier_factory, dns)
    code, msg, _ = attempt(c, "127.0.0.2")
    assert code == 554, msg
    assert msg.startswith(b"5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test"), msg
    assert b"listed for testing" in msg  # the TXT record
    assert "dnsbl: [127.0.0.2] listed: bl.test=127.0.0.2" in c.log()


def test_unlisted_allowlisted_and_broken_answers_pass(carrier_factory, dns):
    c = dnsbl_carrier(carrier_factory, dns)
    for source in ("127.0.0.1",   # not on any list; broken.test SERVFAILs: not listed
                   "127.0.0.3",   # listed, but the allow list weighs -5
                   "127.0.0.4",   # answer outside 127/8: a broken list, ignored (RFC 5782 2.1)
                   "127.0.0.5"):  # 127.0.0.4 is not among the list's return codes
        code, msg, data = attempt(c, source)
        assert code == 250, (source, msg)
        assert data[0] == 250, (source, data)


def test_authenticated_and_trusted_clients_are_not_refused(carrier_factory, dns):
    c = carrier_factory(dns={"upstream": dns.upstream},
                        relay={"trusted_networks": ["127.0.0.2/32"]},
                        dnsbl={"list": [{"zone": "bl.test"}]})
    code, msg, data = attempt(c, "127.0.0.2")
    assert code == 250 and data[0] == 250, msg


def test_tag_mode_accepts_and_adds_a_header(carrier_factory, dns):
    c = dnsbl_carrier(carrier_factory, dns, action="tag")
    code, msg, data = attempt(c, "127.0.0.2")
    assert code == 250 and data[0] == 250, msg
    box = c.data_dir / "mail" / "demo" / "new"
    wait_for(lambda: any(box.iterdir()) if box.exists() else False, timeout=10)
    text = next(box.iterdir()).read_bytes()
    assert b"X-Carrier-DNSBL: bl.test=127.0.0.2; score=1\n" in text, text[:600]


def test_dns_server_down_does_not_block_mail(carrier_factory, tmp_path):
    # Nothing listens on this port: every lookup times out or is refused.
    c = carrier_factory(dns={"upstream": "127.0.0.1@9"}, dnsbl={"list": [{"zone": "bl.test"}]})
    code, msg, data = attempt(c, "127.0.0.2")
    assert code == 250 and data[0] == 250, msg


# ---- domain lists (RHSBL, RFC 5782 2.3): the HELO name and the sender domain ----------------

def rhsbl_send(c, helo, sender):
    """(code, text) of the reply to the end of the data (the domain lists are checked there)."""
    s = smtplib.SMTP(c.host, c.port, timeout=20, source_address=("127.0.0.1", 0))
    try:
        s.ehlo(helo)
        assert s.mail(sender)[0] == 250
        assert s.rcpt("demo@localhost")[0] == 250
        try:
            return s.data(b"Subject: rhsbl\r\n\r\nhello\r\n")
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
    finally:
        s.quit()


def test_domain_lists_check_sender_domain_and_helo(carrier_factory, dns):
    c = carrier_factory(dns={"upstream": dns.upstream},
                        dnsbl={"domain_list": [{"zone": "dbl.test"}]})
    code, text = rhsbl_send(c, "client.test", "bob@spammy.example")
    assert code == 554, text
    assert text.startswith(b"5.7.1 Service unavailable; sender domain spammy.example blocked "
                           b"using dbl.test: spammy.example is a listed domain"), text
    code, text = rhsbl_send(c, "bad-helo.example", "bob@fine.example")
    assert code == 554 and b"HELO name bad-helo.example blocked using dbl.test" in text, text
    # Not listed; the null sender has no domain; an address literal HELO is not looked up.
    for helo, sender in (("client.test", "bob@fine.example"), ("client.test", ""),
                         ("[127.0.0.1]", "bob@fine.example")):
        code, text = rhsbl_send(c, helo, sender)
        assert code == 250, (helo, sender, text)
    log = c.log()
    assert "rhsbl: listed: sender domain spammy.example in dbl.test=127.0.1.2" in log, log[-2000:]


def test_domain_list_check_choice_and_tag_mode(carrier_factory, dns):
    c = carrier_factory(dns={"upstream": dns.upstream},
                        dnsbl={"action": "tag", "domain_list": [{"zone": "dbl.test", "check": ["helo"]}]})
    code, text = rhsbl_send(c, "client.test", "bob@spammy.example")  # sender not checked
    assert code == 250, text
    code, text = rhsbl_send(c, "bad-helo.example", "bob@fine.example")
    assert code == 250, text
    box = c.data_dir / "mail" / "demo" / "new"
    wait_for(lambda: box.exists() and len(list(box.iterdir())) == 2, timeout=15)
    heads = [p.read_bytes().split(b"\n\n", 1)[0] for p in sorted(box.iterdir())]
    tagged = [h for h in heads if b"X-Carrier-DNSBL:" in h]
    assert len(tagged) == 1, heads
    assert b"X-Carrier-DNSBL: HELO name bad-helo.example in dbl.test=127.0.1.2; score=1" in tagged[0]


def test_domain_list_check_values_are_checked(carrier_factory, tmp_path):
    import subprocess
    from conftest import CARRIER_BIN
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[dnsbl.domain_list]]\nzone = "dbl.test"\ncheck = ["helo", "rcpt"]\n')
    r = subprocess.run([str(CARRIER_BIN), "check-config", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert 'must be "helo" or "sender", got "rcpt"' in r.stdout + r.stderr
