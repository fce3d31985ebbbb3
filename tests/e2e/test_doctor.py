"""End-to-end: `carrier doctor` against a real Unbound on 127.0.0.1 (../shared/peers/unbound.sh)
serving a test zone with one good and one broken domain, including a reverse zone
(1.0.0.127.in-addr.arpa PTR), and a real carrier answering on the configured listener.

Checks: host name A record and forward-confirmed reverse DNS (RFC 1912 2.1); MX pointing here,
elsewhere, null MX (RFC 7505), missing domain (RFC 5321 5.1); SPF pass / fail / none (RFC 7208,
ip4 with CIDR, -all); the TLS certificate (signed by a test CA and naming the host, or the
self-signed one carrier makes); listeners (a 220 greeting from the running carrier, a port held
by something silent); the spool (missing / writable) and disk space; exit status 0 only when
every check passed. Network traffic stays on 127.0.0.0/8.
"""
from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import CARRIER_BIN
from relay_helpers import Unbound, free_port
from tls_helpers import CertPair, _issue, _new_key, _openssl

HOST = "mx.good.test"

ZONE = """\
; the good domain: MX -> this host, A 127.0.0.1 with a PTR back, SPF covering 127.0.0.0/8
good.test. MX 10 mx.good.test.
mx.good.test. A 127.0.0.1
1.0.0.127.in-addr.arpa. PTR mx.good.test.
good.test. TXT "v=spf1 ip4:127.0.0.0/8 -all"
; the broken domain: MX elsewhere, SPF that allows nobody
bad.test. MX 10 mx.elsewhere.test.
mx.elsewhere.test. A 127.0.0.9
bad.test. TXT "v=spf1 -all"
; RFC 7505 null MX, no SPF
nullmx.test. MX 0 .
; a host whose address has no PTR
mx.noptr.test. A 127.0.0.2
gone.test. NXDOMAIN
"""


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONE).start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> CertPair:
    """A certificate for mx.good.test signed by a test root (so not self-signed)."""
    d = tmp_path_factory.mktemp("doctor-pki")
    ca_key = _new_key(d, "root")
    ca = d / "root.crt"
    _openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=carrier doctor test root",
             "-days", "30", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", "-out", str(ca), cwd=d)
    # _issue makes 3-day certificates: too close to expiry for doctor's 14-day window, so
    # re-sign the leaf for 90 days with the same request and extensions.
    leaf, key = _issue(d, "mx", HOST, [f"DNS:{HOST}"], ca, ca_key, 7)
    _openssl("x509", "-req", "-in", str(d / "mx.csr"), "-CA", str(ca), "-CAkey", str(ca_key),
             "-set_serial", "8", "-days", "90", "-sha256", "-extfile", str(d / "mx.ext"),
             "-out", str(leaf), cwd=d)
    return CertPair(leaf, key)


def doctor(config: Path, *domains: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CARRIER_BIN), "doctor", "--config", str(config), *domains],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def lines(out: str) -> list[str]:
    return out.splitlines()


def line_of(out: str, prefix: str) -> str:
    found = [ln for ln in lines(out) if ln.startswith(prefix)]
    assert len(found) == 1, f"one line starting {prefix!r} expected in:\n{out}"
    return found[0]


def fix_after(out: str, prefix: str) -> str:
    ls = lines(out)
    i = ls.index(line_of(out, prefix))
    assert i + 1 < len(ls) and ls[i + 1].startswith("    fix: "), f"no fix under {prefix!r}:\n{out}"
    return ls[i + 1][len("    fix: "):]


def good_config(tmp_path, unbound: Unbound, cert: CertPair, port: int, **extra) -> dict:
    sections = {
        "server": {"hostname": HOST, "data_dir": str(tmp_path / "var")},
        "listener": [{"address": f"127.0.0.1:{port}"}],
        "local": {"domains": ["localhost", "good.test"]},
        "dns": {"upstream": unbound.upstream, "ipv6": False},
        "tls": {"cert_file": str(cert.cert), "key_file": str(cert.key)},
    }
    for k, v in extra.items():
        sections[k] = v
    return sections


def test_good_domain_all_checks_pass(carrier_factory, tmp_path, unbound, cert):
    port = free_port()
    c = carrier_factory(**good_config(tmp_path, unbound, cert, port))
    assert c.port == port
    r = doctor(c.config_path, "good.test")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "\u2717" not in out
    assert line_of(out, f"\u2713 host name {HOST}:") == f"\u2713 host name {HOST}: A/AAAA 127.0.0.1"
    # forward-confirmed reverse DNS through the real reverse zone
    assert line_of(out, "\u2713 reverse DNS 127.0.0.1:").startswith(
        f"\u2713 reverse DNS 127.0.0.1: PTR {HOST}, forward-confirmed")
    assert "1.0.0.127.in-addr.arpa. PTR IN" in unbound.log()
    assert line_of(out, "\u2713 MX good.test:") == \
        "\u2713 MX good.test: 10 mx.good.test (127.0.0.1) is this host"
    assert line_of(out, "\u2713 SPF good.test:") == \
        "\u2713 SPF good.test: pass for 127.0.0.1 (ip4:127.0.0.0/8)"
    assert line_of(out, f"\u2713 TLS certificate {cert.cert}:") == \
        f"\u2713 TLS certificate {cert.cert}: loads, and {cert.key} is its key"
    assert re.search(r"valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC \((89|90) days\)$",
                     line_of(out, "\u2713 TLS certificate validity:"))
    assert line_of(out, "\u2713 TLS certificate issuer:") == \
        "\u2713 TLS certificate issuer: not self-signed"
    assert line_of(out, "\u2713 TLS certificate name:") == f"\u2713 TLS certificate name: names {HOST}"
    # the running carrier greets on the configured listener (RFC 5321 4.2: 220)
    listener = line_of(out, f"\u2713 listener smtp 127.0.0.1:{port}:")
    assert f'greets "220 {HOST}' in listener, listener
    assert line_of(out, f"\u2713 spool {tmp_path / 'var' / 'spool'}:").endswith("writable")
    assert line_of(out, "\u2713 disk space for ")
    assert lines(out)[-1] == "all 11 checks passed"

    # Without DOMAIN arguments: the configured local domains except localhost.
    r = doctor(c.config_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert line_of(r.stdout, "\u2713 MX good.test:")
    assert "localhost" not in r.stdout


def test_broken_domain_fails_with_fixes(carrier_factory, tmp_path, unbound, cert):
    port = free_port()
    c = carrier_factory(**good_config(tmp_path, unbound, cert, port))
    r = doctor(c.config_path, "bad.test", "nullmx.test", "gone.test")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    # the host itself is fine
    assert line_of(out, f"\u2713 host name {HOST}:")
    assert line_of(out, "\u2713 reverse DNS 127.0.0.1:")
    # MX elsewhere
    assert line_of(out, "\u2717 MX bad.test:") == (
        "\u2717 MX bad.test: points elsewhere: 10 mx.elsewhere.test (127.0.0.9); "
        f"none is {HOST} or has its addresses")
    assert fix_after(out, "\u2717 MX bad.test:") == \
        'replace the MX records: publish "bad.test. MX 10 mx.good.test."'
    # SPF -all: fail (RFC 7208 4.6.2)
    assert line_of(out, "\u2717 SPF bad.test:") == "\u2717 SPF bad.test: fail for 127.0.0.1 (-all)"
    assert fix_after(out, "\u2717 SPF bad.test:") == (
        f'add "ip4:127.0.0.1" (or "a:{HOST}") before the "all" of bad.test\'s SPF record '
        '"v=spf1 -all"')
    # null MX (RFC 7505) and no SPF record
    assert "null MX" in line_of(out, "\u2717 MX nullmx.test:")
    assert fix_after(out, "\u2717 MX nullmx.test:").startswith("remove the null MX")
    assert line_of(out, "\u2717 SPF nullmx.test:").startswith("\u2717 SPF nullmx.test: none for 127.0.0.1")
    assert fix_after(out, "\u2717 SPF nullmx.test:") == \
        f'publish "nullmx.test. TXT \\"v=spf1 a:{HOST} -all\\""'
    # a domain that does not exist
    assert "NXDOMAIN" in line_of(out, "\u2717 MX gone.test:")
    assert lines(out)[-1] == "6 of 15 checks failed"


def test_broken_host_setup(tmp_path, unbound):
    """No PTR, the self-signed certificate, a listener port taken by something silent, a
    missing spool: each a ✗ with its fix, exit status 1."""
    from conftest import render_config
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        data = tmp_path / "nothing-here"
        config = tmp_path / "broken.toml"
        config.write_text(render_config({
            "server": {"hostname": "mx.noptr.test", "data_dir": str(data)},
            "listener": [{"address": f"127.0.0.1:{port}"}],
            "local": {"domains": ["good.test"]},
            "dns": {"upstream": unbound.upstream, "ipv6": False},
        }))
        r = doctor(config)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert line_of(out, "\u2713 host name mx.noptr.test:") == \
        "\u2713 host name mx.noptr.test: A/AAAA 127.0.0.2"
    assert "no PTR record" in line_of(out, "\u2717 reverse DNS 127.0.0.2:")
    assert "PTR record to mx.noptr.test" in fix_after(out, "\u2717 reverse DNS 127.0.0.2:")
    # good.test's MX is not this host (mx.good.test is 127.0.0.1, this host is 127.0.0.2)
    assert line_of(out, "\u2717 MX good.test:")
    # SPF of good.test covers 127.0.0.0/8, so 127.0.0.2 passes
    assert line_of(out, "\u2713 SPF good.test:") == \
        "\u2713 SPF good.test: pass for 127.0.0.2 (ip4:127.0.0.0/8)"
    # no [tls] cert_file and carrier never ran: the self-signed one does not exist yet
    assert fix_after(out, "\u2717 TLS certificate:") == \
        "get a certificate (e.g. Let's Encrypt) and set [tls] cert_file"
    assert "does not greet with 220" in line_of(out, f"\u2717 listener smtp 127.0.0.1:{port}:")
    assert line_of(out, f"\u2717 spool {data / 'spool'}:").endswith("does not exist")
    assert fix_after(out, f"\u2717 spool {data / 'spool'}:").startswith(f"create it: mkdir -p {data / 'spool'}")


def test_self_signed_certificate_is_a_failure(carrier_factory, tmp_path, unbound):
    """carrier serve without [tls] cert_file makes a self-signed certificate: doctor says ✗."""
    port = free_port()
    sections = {
        "server": {"hostname": HOST, "data_dir": str(tmp_path / "var")},
        "listener": [{"address": f"127.0.0.1:{port}"}],
        "local": {"domains": ["good.test"]},
        "dns": {"upstream": unbound.upstream, "ipv6": False},
    }
    c = carrier_factory(**sections)
    r = doctor(c.config_path, "good.test")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    issuer = line_of(out, "\u2717 TLS certificate issuer:")
    assert "self-signed" in issuer
    assert fix_after(out, "\u2717 TLS certificate issuer:") == \
        "get a certificate (e.g. Let's Encrypt) and set [tls] cert_file"
    assert line_of(out, "\u2713 TLS certificate name:")  # carrier made it for the host name
    assert [ln for ln in lines(out) if ln.startswith("\u2717")] == [issuer]
    assert lines(out)[-1] == "1 of 11 checks failed"


def test_broken_configuration(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nhostname = 5\n')
    r = doctor(bad)
    assert r.returncode == 1
    assert "bad.toml:2" in r.stderr, r.stderr
    assert "carrier doctor: the configuration is not valid" in r.stderr
