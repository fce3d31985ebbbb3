"""End-to-end: `carrier dkim keygen` and `carrier dkim sign`, checked with an independent
verifier (dkimpy, Debian python3-dkim) that is given the TXT record keygen printed as its DNS
answer. RSA and Ed25519 keys, folded header fields, trailing whitespace and empty lines in the
body, a changed body that must fail, key-file and name errors.
"""
from __future__ import annotations

import base64
import re
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import CARRIER_BIN

dkim = pytest.importorskip("dkim")

DOMAIN = "example.com"

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>,\r\n"
    b"\tCarol <carol@example.org>\r\n"
    b"Subject: a folded\r\n"
    b"   subject line\t \r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <dkim-e2e-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Hello Bob,   \r\n"
    b"\r\n"
    b"  indented line with trailing tabs\t\t\r\n"
    b"   \r\n"
    b"\r\n"
    b"\r\n"
)


def run(*args: str, cwd: Path | None = None, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([str(CARRIER_BIN), *args], input=stdin, capture_output=True,
                          timeout=60, cwd=cwd)


def keygen(tmp_path: Path, selector: str, algorithm: str) -> tuple[Path, str, bytes]:
    """Runs keygen in tmp_path with the default file name; returns (key file, record, TXT data)."""
    p = run("dkim", "keygen", DOMAIN, selector, "--algorithm", algorithm, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    record = p.stdout.decode().strip()
    m = re.fullmatch(rf"{re.escape(selector)}\._domainkey\.{re.escape(DOMAIN)}\. IN TXT ((?:\"[^\"]*\" ?)+)",
                     record)
    assert m, record
    chunks = re.findall(r"\"([^\"]*)\"", m.group(1))
    assert all(len(c) <= 255 for c in chunks), chunks
    key = tmp_path / f"{selector}.{DOMAIN}.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    return key, record, "".join(chunks).encode()


def dns_for(selector: str, txt: bytes):
    def lookup(name, timeout=5):
        assert name in (f"{selector}._domainkey.{DOMAIN}.".encode(), f"{selector}._domainkey.{DOMAIN}".encode()), name
        return txt
    return lookup


def sign(key: Path, selector: str, message: bytes, *extra: str) -> bytes:
    p = run("dkim", "sign", "--domain", DOMAIN, "--selector", selector, "--key", str(key), *extra,
            stdin=message)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b"DKIM-Signature: v=1; "), p.stdout[:200]
    return p.stdout


@pytest.mark.parametrize("algorithm,k", [("rsa", b"rsa"), ("ed25519", b"ed25519")])
def test_keygen_sign_verify(tmp_path: Path, algorithm: str, k: bytes):
    selector = f"s{algorithm}"
    key, record, txt = keygen(tmp_path, selector, algorithm)
    assert txt.startswith(b"v=DKIM1; k=" + k + b"; p="), txt
    if algorithm == "rsa":
        assert record.count('"') == 4  # 2048-bit key: the p= value needs two strings
    signed = sign(key, selector, MESSAGE)
    assert signed.endswith(MESSAGE)  # the message itself is unchanged
    field = signed[: len(signed) - len(MESSAGE)]
    assert all(len(line) <= 78 for line in field.split(b"\r\n")), field
    assert f"a={algorithm}-sha256;".encode() in field
    assert b"h=from:from:to:subject:date:message-id:mime-version:content-type;" in field.replace(b"\r\n\t", b"")
    assert dkim.verify(signed, dnsfunc=dns_for(selector, txt)), field.decode()

    # A changed body must not verify (and a verifier with the right record is what says so).
    tampered = signed.replace(b"Hello Bob,", b"Hello Rob,")
    assert not dkim.verify(tampered, dnsfunc=dns_for(selector, txt))
    # Nor an added From: (From is oversigned).
    assert not dkim.verify(b"From: mallory@example.net\r\n" + signed, dnsfunc=dns_for(selector, txt))


def test_unix_line_ends_and_empty_body(tmp_path: Path):
    key, _, txt = keygen(tmp_path, "lf", "ed25519")
    unix = MESSAGE.replace(b"\r\n", b"\n")
    signed = sign(key, "lf", unix, "--timestamp", "1700000000")
    assert b"\r\n" + MESSAGE[:20] in signed  # output uses CRLF
    assert b"t=1700000000;" in signed
    assert dkim.verify(signed, dnsfunc=dns_for("lf", txt))
    empty_body = b"From: a@example.com\r\nSubject: nothing\r\n\r\n"
    assert dkim.verify(sign(key, "lf", empty_body), dnsfunc=dns_for("lf", txt))


def test_keygen_out_refuses_to_overwrite(tmp_path: Path):
    out = tmp_path / "keys" / "k.pem"
    out.parent.mkdir()
    p = run("dkim", "keygen", DOMAIN, "sel", "--algorithm", "ed25519", "--out", str(out))
    assert p.returncode == 0, p.stderr
    before = out.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    p = run("dkim", "keygen", DOMAIN, "sel", "--algorithm", "ed25519", "--out", str(out))
    assert p.returncode == 1
    assert b"already exists" in p.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize("domain,selector,word", [
    ("bad domain", "sel", b"domain"), ("example.com.", "sel", b"domain"),
    ("example.com", "sel_1", b"selector"), ("example.com", "", b"selector"),
])
def test_bad_names(tmp_path: Path, domain: str, selector: str, word: bytes):
    p = run("dkim", "keygen", domain, selector, cwd=tmp_path)
    assert p.returncode == 1, p.stdout
    assert word in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == []  # no key written


def test_sign_errors(tmp_path: Path):
    key, _, _ = keygen(tmp_path, "e", "ed25519")
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    bad.chmod(0o600)
    cases = [
        (["--key", str(tmp_path / "missing.key")], b"cannot read"),
        (["--key", str(bad)], b"not a PEM private key"),
        (["--key", str(tmp_path)], b"not a regular file"),
    ]
    for args, want in cases:
        p = run("dkim", "sign", "--domain", DOMAIN, "--selector", "e", *args, stdin=MESSAGE)
        assert p.returncode == 1 and want in p.stderr, (args, p.stderr)
        assert p.stdout == b""
    p = run("dkim", "sign", "--domain", "exa mple.com", "--selector", "e", "--key", str(key), stdin=MESSAGE)
    assert p.returncode == 1 and b"domain" in p.stderr, p.stderr
    p = run("dkim", "sign", "--domain", DOMAIN, "--selector", "e", "--key", str(key),
            stdin=b"Subject: no from\r\n\r\nbody\r\n")
    assert p.returncode == 1 and b"no From" in p.stderr, p.stderr
    # A group-readable key still signs, with a warning.
    key.chmod(0o640)
    p = run("dkim", "sign", "--domain", DOMAIN, "--selector", "e", "--key", str(key), stdin=MESSAGE)
    assert p.returncode == 0 and b"chmod 600" in p.stderr, p.stderr


def test_openssl_traditional_rsa_key(tmp_path: Path):
    """A key made by openssl itself ("BEGIN RSA PRIVATE KEY", as opendkim-genkey writes), its
    record derived by openssl too: carrier's signature verifies against it."""
    key = tmp_path / "trad.key"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True,
                   capture_output=True, timeout=60)
    key.chmod(0o600)
    assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True, timeout=60).stdout
    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    signed = sign(key, "trad", MESSAGE)
    assert dkim.verify(signed, dnsfunc=dns_for("trad", txt))
