"""End-to-end: message submission (RFC 6409) with SMTP AUTH (RFC 4954; PLAIN RFC 4616, LOGIN)
over STARTTLS (RFC 3207) and implicit TLS (RFC 8314 3): AUTH only after TLS (538 5.7.11),
authentication required before MAIL (530 5.7.0), bad credentials 535 5.7.8 after the failure
delay, brute-force throttling per client IP (421 4.7.0), sender ownership (553 5.7.1),
relaying for authenticated users only, Message-ID:/Date: added when missing (RFC 6409 8.2,
8.3), Received: "with ESMTPSA" (RFC 3848 2), passwords never logged, `carrier passwd` hashes
used in the password file, password file reload and check-config diagnostics.
"""
from __future__ import annotations

import email.utils
import re
import signal
import subprocess
import time
import uuid
import warnings
from datetime import datetime, timezone

import pytest

from conftest import CARRIER_BIN, default_sections, render_config
from helpers import RawSession, as_stored, parse_delivered, wait_for
from relay_helpers import free_port
from tls_helpers import (auth_plain, b64, carrier_passwd, client_context, closed,
                         open_submission, pki, plain_response, send_message, starttls,
                         tls_overrides, wait_listeners,
                         write_password_file)

__all__ = ["pki"]  # the session fixture, imported so pytest finds it

ALICE, ALICE_PW = "alice@example.test", "Alice-s3cret pass!"      # no senders field
CAROL, CAROL_PW = "carol", "carol:colon:in:password"   # @corp.example, dave@x.example, *@star.example
ROOT, ROOT_PW = "root", "r00t-any-sender"                           # "*"
NEW, NEW_PW = "newbie@example.test", "added-on-reload"
USING_RE = re.compile(r"using (TLSv1\.[23]) with cipher (\S+) \((\d+)/(\d+) bits\)")


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    """`carrier passwd` hashes of the test users' passwords (the password on stdin)."""
    return {ALICE: carrier_passwd(ALICE_PW), CAROL: carrier_passwd(CAROL_PW),
            ROOT: carrier_passwd(ROOT_PW), NEW: carrier_passwd(NEW_PW)}


@pytest.fixture
def password_file(tmp_path, hashes):
    return write_password_file(tmp_path / "passwd", [
        (ALICE, hashes[ALICE], None),
        (CAROL, hashes[CAROL], "@corp.example,dave@x.example,*@star.example"),
        (ROOT, hashes[ROOT], "*"),
    ])


@pytest.fixture
def make_sub(carrier_factory, pki, password_file):
    """Starts a carrier with the three listeners and the test users; `auth=` / `server=`
    override [auth] / [server] keys."""
    def start(auth: dict | None = None, **over):
        c = carrier_factory(**tls_overrides(pki, password_file, auth=auth), **over)
        c.ports = wait_listeners(c, 3)
        return c
    return start


@pytest.fixture
def sub(make_sub):
    return make_sub()


def msg(subject: str, frm: str = ALICE, to: str = "demo@example.test",
        date: bool = True, msgid: bool = True) -> bytes:
    head = f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
    if date:
        head += "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
    if msgid:
        head += f"Message-ID: <{uuid.uuid4().hex}@client.example>\r\n"
    return (head + "\r\nSubmitted body.\r\n").encode()


def submission(c, pki, user=ALICE, password=ALICE_PW, implicit=False, **kw) -> RawSession:
    host, port = c.ports["submissions" if implicit else "submission"]
    return open_submission(host, port, client_context(pki), user, password, implicit=implicit,
                           **kw)


def plain_submission(c) -> RawSession:
    host, port = c.ports["submission"]
    s = RawSession(host, port)
    s.greeting()
    return s


# --- carrier passwd ---------------------------------------------------------------------------

def test_passwd_prints_a_yescrypt_hash_that_works(carrier_factory, pki, tmp_path):
    """`carrier passwd` reads one line from stdin (not a terminal) and prints a yescrypt hash
    ($y$): a new salt each time, the password nowhere in it, and the line works in a password
    file for AUTH PLAIN (RFC 4954 4, RFC 4616 2) while another password does not."""
    pw = "Zebra horse 42 battery"
    h1, h2 = carrier_passwd(pw), carrier_passwd(pw)
    assert h1.startswith("$y$") and h2.startswith("$y$"), (h1, h2)
    assert h1 != h2, "the same salt twice"
    assert pw not in h1 and ":" not in h1, h1
    pwfile = write_password_file(tmp_path / "pw", [("zed@example.test", h1, None)])
    c = carrier_factory(**tls_overrides(pki, pwfile))
    c.ports = wait_listeners(c, 3)
    with submission(c, pki, None, None) as s:
        auth_plain(s, "zed@example.test", pw + "x", 535, "5.7.8")
        auth_plain(s, "zed@example.test", pw)


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():  # the crypt module is deprecated (3.11), libxcrypt is not
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


def test_password_file_accepts_sha512_crypt_and_bcrypt(carrier_factory, pki, tmp_path):
    """Password file hashes may also be SHA-512-crypt ($6$, from `openssl passwd -6`) and
    bcrypt ($2b$, and the same hash spelled $2y$)."""
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input="sha-pass\n",
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and p.stdout.startswith("$6$"), p.stderr
    b = _bcrypt("bcrypt-pass")
    assert b.startswith("$2b$04$"), b
    pwfile = write_password_file(tmp_path / "pw", [
        ("sha@example.test", p.stdout.strip(), None),
        ("bf@example.test", b, None),
        ("bfy@example.test", "$2y$" + b[4:], None),
    ])
    c = carrier_factory(**tls_overrides(pki, pwfile))
    c.ports = wait_listeners(c, 3)
    for user, pw in (("sha@example.test", "sha-pass"), ("bf@example.test", "bcrypt-pass"),
                     ("bfy@example.test", "bcrypt-pass")):
        with submission(c, pki, None, None) as s:
            auth_plain(s, user, pw + "!", 535, "5.7.8")
            auth_plain(s, user, pw)
            s.cmd(f"MAIL FROM:<{user}>", 250)


# --- AUTH needs TLS; MAIL needs AUTH ------------------------------------------------------------

def test_plain_submission_offers_starttls_not_auth(sub):
    """RFC 4954 4 / 6: before TLS, AUTH is not advertised and is refused with 538 5.7.11
    (encryption required); RFC 6409 4.3: MAIL without authentication gets 530 5.7.0."""
    with plain_submission(sub) as s:
        kw = s.ehlo()
        assert "STARTTLS" in kw, kw
        assert "AUTH" not in kw, f"AUTH offered in clear: {kw}"
        r = s.cmd(f"AUTH PLAIN {plain_response(ALICE, ALICE_PW)}", 538, "5.7.11")
        assert r.text == "5.7.11 Encryption required for requested authentication mechanism"
        s.cmd("AUTH LOGIN", 538, "5.7.11")
        r = s.cmd(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
        assert "Authentication required" in r.text


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit"])
def test_auth_offered_after_tls_and_required_before_mail(sub, pki, implicit):
    """RFC 4954 3: after TLS (STARTTLS or RFC 8314 implicit TLS) EHLO advertises AUTH PLAIN
    LOGIN and no longer STARTTLS; RFC 6409 4.3: MAIL before AUTH is 530 5.7.0; after AUTH the
    transaction runs (235 2.7.0)."""
    with submission(sub, pki, None, None, implicit=implicit) as s:
        s.send("EHLO client.example")
        r = s.expect(250, enhanced_required=False)
        auth = [ln for ln in r.lines[1:] if ln.upper().startswith("AUTH ")]
        assert auth, f"no AUTH after TLS: {r}"
        assert {"PLAIN", "LOGIN"} <= set(auth[0].upper().split()[1:]), auth
        assert not any(ln.upper().startswith("STARTTLS") for ln in r.lines[1:]), r
        s.cmd(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
        r = auth_plain(s, ALICE, ALICE_PW)
        assert r.text == "2.7.0 Authentication successful"
        send_message(s, ALICE, ["demo@example.test"], msg("after auth"))
    sub.wait_messages("demo", 1)


def test_auth_pipelined_with_starttls_is_discarded(sub, pki):
    """RFC 3207 4.2 / RFC 2920 3.1: an AUTH (and MAIL) sent in the same write as STARTTLS is
    thrown away: after the handshake and EHLO the session is NOT authenticated (MAIL gets
    530 5.7.0), and no reply to the injected commands ever arrives."""
    host, port = sub.ports["submission"]
    with RawSession(host, port) as s:
        s.start()
        s.send_raw(b"STARTTLS\r\n" + f"AUTH PLAIN {plain_response(ALICE, ALICE_PW)}\r\n"
                   f"MAIL FROM:<{ALICE}>\r\n".encode())
        s.expect(220, "2.0.0")
        assert not s.reply_pending(0.3), f"a reply in clear after the 220: {s.buf!r}"
        s.sock = client_context(pki).wrap_socket(s.sock, server_hostname="127.0.0.1")
        s.send("EHLO client.example")
        ehlo = s.expect(250, enhanced_required=False)
        assert any(ln.upper().startswith("AUTH ") for ln in ehlo.lines[1:]), ehlo
        assert not s.reply_pending(0.3), f"an extra reply after EHLO: {s.buf!r}"
        s.cmd(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
        auth_plain(s, ALICE, ALICE_PW)  # a real AUTH inside TLS works: not a "second AUTH"
        s.cmd(f"MAIL FROM:<{ALICE}>", 250)


@pytest.mark.parametrize("mech", ["plain-initial", "plain-challenge", "login", "login-initial"])
def test_auth_mechanisms(sub, pki, mech):
    """RFC 4954 4: AUTH PLAIN with an initial response or after an empty 334 challenge
    (RFC 4616 2: authzid NUL authcid NUL passwd); AUTH LOGIN with the user name and password
    in two 334 rounds (or the user as initial response). Success is 235 2.7.0; a second AUTH
    in the session is 503 5.5.1. A password with colons works (CAROL)."""
    with submission(sub, pki, None, None) as s:
        if mech == "plain-initial":
            s.cmd(f"AUTH PLAIN {plain_response(CAROL, CAROL_PW)}", 235, "2.7.0")
        elif mech == "plain-challenge":
            r = s.cmd("AUTH PLAIN", 334, enhanced=None)
            assert r.lines == [""], f"PLAIN challenge must be empty (RFC 4954 4): {r}"
            s.cmd(plain_response(CAROL, CAROL_PW), 235, "2.7.0")
        elif mech == "login":
            s.cmd("AUTH LOGIN", 334)
            s.cmd(b64(CAROL), 334)
            s.cmd(b64(CAROL_PW), 235, "2.7.0")
        else:
            s.cmd(f"AUTH LOGIN {b64(CAROL)}", 334)
            s.cmd(b64(CAROL_PW), 235, "2.7.0")
        s.cmd(f"AUTH PLAIN {plain_response(CAROL, CAROL_PW)}", 503, "5.5.1")
        s.cmd("MAIL FROM:<someone@corp.example>", 250)


def test_auth_cancel_and_bad_base64(sub, pki):
    """RFC 4954 4: "*" cancels the exchange (501 5.0.0); a response that is not base64 is
    501 5.5.2. The session can still authenticate afterwards."""
    with submission(sub, pki, None, None) as s:
        s.cmd("AUTH PLAIN", 334)
        s.cmd("*", 501, "5.0.0")
        s.cmd("AUTH LOGIN", 334)
        s.cmd("*", 501, "5.0.0")
        s.cmd("AUTH PLAIN !!!not*base64!!!", 501, "5.5.2")
        s.cmd("AUTH LOGIN", 334)
        s.cmd("%%%", 501, "5.5.2")
        auth_plain(s, ALICE, ALICE_PW)


def test_wrong_password_is_535_after_the_failure_delay(make_sub, pki):
    """RFC 4954 6: invalid credentials are 535 5.7.8, given only after failure_delay (1s here),
    for a wrong password and for an unknown user alike; the right password then works."""
    c = make_sub(auth={"failure_delay": "1s"})
    with submission(c, pki, None, None) as s:
        for user, pw in ((ALICE, ALICE_PW + "x"), ("nobody@example.test", "whatever")):
            t0 = time.monotonic()
            r = auth_plain(s, user, pw, 535, "5.7.8")
            elapsed = time.monotonic() - t0
            assert r.text == "5.7.8 Authentication credentials invalid"
            assert elapsed >= 0.9, f"535 after {elapsed:.2f}s, failure_delay is 1s"
        s.cmd("AUTH LOGIN", 334)
        s.cmd(b64(ALICE), 334)
        s.cmd(b64("wrong"), 535, "5.7.8")
        auth_plain(s, ALICE, ALICE_PW)


def test_repeated_failures_are_throttled_per_client_ip(make_sub, pki):
    """After max_failures failed AUTHs from one IP within failure_window, AUTH gets 421 4.7.0
    and the connection is closed — also on a new connection from that IP, even with the right
    password; another IP (127.0.0.9) is not affected."""
    c = make_sub(auth={"max_failures": 2, "failure_window": "1m", "failure_delay": "0s"})
    with submission(c, pki, None, None) as s:
        auth_plain(s, ALICE, "bad-1", 535, "5.7.8")
        auth_plain(s, ALICE, "bad-2", 535, "5.7.8")
        r = auth_plain(s, ALICE, ALICE_PW, 421, "4.7.0")
        assert "too many failed authentications" in r.text, r
        assert closed(s), "connection left open after 421"
    with submission(c, pki, None, None) as s:
        r = auth_plain(s, ALICE, ALICE_PW, 421, "4.7.0")
        assert closed(s), "connection left open after 421"
    with submission(c, pki, None, None, source="127.0.0.9") as s:
        auth_plain(s, ALICE, ALICE_PW)


# --- who may send what, where -------------------------------------------------------------------

def test_sender_must_be_owned(sub, pki):
    """RFC 6409 6.1: an authenticated user may use only the senders of the password file
    (553 5.7.1 otherwise): a user named by an address owns that address; "@domain" any local
    part of the domain (domain case-insensitive), and so does "*@domain"; an exact address;
    "*" anything. The null
    sender is always allowed."""
    cases = [
        (ALICE, ALICE_PW, [ALICE, "alice@EXAMPLE.Test", ""],
         ["bob@example.test", "alice@other.example"]),
        (CAROL, CAROL_PW, ["x@corp.example", "Y@CORP.Example", "dave@x.example", "z@star.example", ""],
         ["eve@x.example", "carol@example.test", "x@sub.corp.example"]),
        (ROOT, ROOT_PW, ["anyone@anywhere.example", ""], []),
    ]
    for user, pw, allowed, refused in cases:
        with submission(sub, pki, user, pw) as s:
            for sender in refused:
                s.cmd(f"MAIL FROM:<{sender}>", 553, "5.7.1")
            for sender in allowed:
                s.cmd(f"MAIL FROM:<{sender}>", 250)
                s.cmd("RSET", 250)


def test_authenticated_user_relays_to_an_outside_domain(make_sub, pki):
    """RFC 6409 / RFC 4954 6: an authenticated client may relay to any domain: the message is
    accepted and queued for relay. Its next hop is a closed loopback port (a route, so no DNS
    lookup holds up the test): the relay attempt is deferred and the message stays queued."""
    closed_port = free_port(("127.0.0.1",))
    c = make_sub(route=[{"domain": "outside.example", "next_hop": f"[127.0.0.1]:{closed_port}"}])
    with submission(c, pki) as s:
        qid = send_message(s, ALICE, ["friend@outside.example"],
                           msg("to the world", to="friend@outside.example"))
        s.cmd("QUIT", 221)
    wait_for(lambda: re.search(rf"{qid}: to=<friend@outside.example> .*status=deferred",
                               c.log()), 10, what="the relay attempt to be deferred")
    assert qid in [p.name for p in c.queue_files()], "the relayed message is not queued"


def test_unauthenticated_client_cannot_relay(sub, pki):
    """RFC 5321 3.6.2 / 7.1: without AUTH there is no relaying: on the smtp listener (even
    over TLS) RCPT to an outside domain is 554 5.7.1 and AUTH is not offered there (502 5.5.1,
    RFC 4954 3); on submission MAIL already needs AUTH (530 5.7.0)."""
    host, port = sub.ports["smtp"]
    with RawSession(host, port) as s:
        s.start()
        starttls(s, client_context(pki))
        kw = s.ehlo()
        assert "AUTH" not in kw, kw
        s.cmd(f"AUTH PLAIN {plain_response(ALICE, ALICE_PW)}", 502, "5.5.1")
        s.cmd(f"MAIL FROM:<{ALICE}>", 250)
        s.cmd("RCPT TO:<friend@outside.example>", 554, "5.7.1")
    with submission(sub, pki, None, None) as s:
        s.cmd(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")


# --- what submission does to the message ---------------------------------------------------------

def header_values(content: bytes, name: str) -> list[str]:
    head = content.split(b"\n\n", 1)[0].decode()
    return [m.group(1).strip() for m in re.finditer(rf"(?im)^{name}:[ \t]*(.*)$", head)]


def test_message_id_and_date_added_when_missing(sub, pki):
    """RFC 6409 8.2 / 8.3: the submission server adds Message-ID: and Date: when missing (one
    each, well-formed, Date: close to now), and changes nothing when both are present. The
    smtp (relay) listener never adds them."""
    bare = msg("bare", date=False, msgid=False)
    full = msg("full")
    with submission(sub, pki) as s:
        send_message(s, ALICE, ["demo@example.test"], bare)
        send_message(s, ALICE, ["alice@example.test"], full)
    host, port = sub.ports["smtp"]
    with RawSession(host, port) as s:
        s.start()
        send_message(s, "x@client.example", ["postmaster@example.test"], bare)
    [d] = [parse_delivered(x) for x in sub.wait_messages("demo", 1)]
    ids, dates = header_values(d.content, "Message-ID"), header_values(d.content, "Date")
    assert len(ids) == 1 and re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", ids[0]), ids
    assert len(dates) == 1, dates
    when = email.utils.parsedate_to_datetime(dates[0])
    assert when.tzinfo is not None, dates[0]
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 300, dates[0]
    assert b"Subject: bare" in d.content and d.content.endswith(b"\n\nSubmitted body.\n")
    [f] = [parse_delivered(x) for x in sub.wait_messages("alice", 1)]
    assert f.content == as_stored(full), "a complete message was changed"
    [p] = [parse_delivered(x) for x in sub.wait_messages("postmaster", 1)]
    assert p.content == as_stored(bare), "the smtp listener added header fields"


@pytest.mark.parametrize("received_user", [False, True])
def test_received_says_esmtpsa_with_tls_details(make_sub, pki, received_user):
    """RFC 3848 2: Received: "with ESMTPSA" for an authenticated TLS session, with the
    negotiated version and cipher of this very session ("using TLSv1.3 with cipher NAME
    (N/N bits)"); "(Authenticated sender: USER)" only with [auth] received_user = true."""
    c = make_sub(auth={"received_user": received_user})
    with submission(c, pki, implicit=True) as s:
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        send_message(s, ALICE, ["demo@example.test"], msg("received"))
    d = parse_delivered(c.wait_messages("demo", 1)[0])
    received = d.received.decode()
    assert " with ESMTPSA " in received, received
    m = USING_RE.search(received)
    assert m and (m.group(1), m.group(2)) == (version, cipher), received
    assert ("(Authenticated sender: alice@example.test)" in received) == received_user, received


def test_password_never_in_the_log(make_sub, pki):
    """Neither the password nor its base64 forms (PLAIN response, LOGIN answer) reach the log,
    at debug level, for successful and failed AUTH alike."""
    c = make_sub(server={"log_level": "debug"})
    with submission(c, pki, None, None) as s:
        auth_plain(s, ALICE, ALICE_PW + "-wrong", 535, "5.7.8")
        s.cmd("AUTH LOGIN", 334)
        s.cmd(b64(ALICE), 334)
        s.cmd(b64(ALICE_PW), 235, "2.7.0")
        send_message(s, ALICE, ["demo@example.test"], msg("log check"))
    with submission(c, pki) as s:
        s.cmd("QUIT", 221)
    c.wait_messages("demo", 1)
    log = c.log() + c.stdout()
    assert "AUTH" in log or "auth" in log, "no trace of AUTH in the debug log at all"
    for secret in (ALICE_PW, b64(ALICE_PW), plain_response(ALICE, ALICE_PW),
                   plain_response(ALICE, ALICE_PW + "-wrong"), ALICE_PW + "-wrong"):
        assert secret not in log, f"{secret!r} is in the log"


def test_plaintext_auth_on_loopback_when_enabled(make_sub):
    """[auth] plaintext_on_loopback = true (tests): AUTH is advertised and works without TLS
    for a 127.0.0.0/8 client; the Received: field then says ESMTPA (RFC 3848 2)."""
    c = make_sub(auth={"plaintext_on_loopback": True})
    with plain_submission(c) as s:
        kw = s.ehlo()
        assert "AUTH" in kw, kw
        auth_plain(s, ALICE, ALICE_PW)
        send_message(s, ALICE, ["demo@example.test"], msg("in clear"))
    d = parse_delivered(c.wait_messages("demo", 1)[0])
    assert b" with ESMTPA " in d.received, d.received


def test_password_file_reloaded_on_sighup(make_sub, pki, password_file, hashes):
    """SIGHUP re-reads the password file: a user added to it can log in; a session
    authenticated before the reload completes its message."""
    c = make_sub(auth={"max_failures": 1000})
    old = submission(c, pki)
    old.cmd(f"MAIL FROM:<{ALICE}>", 250)
    with submission(c, pki, None, None) as s:
        auth_plain(s, NEW, NEW_PW, 535, "5.7.8")
    with open(password_file, "a") as f:
        f.write(f"{NEW}:{hashes[NEW]}\n")
    c.proc.send_signal(signal.SIGHUP)

    def new_user_works() -> bool:
        with submission(c, pki, None, None) as s:
            s.send(f"AUTH PLAIN {plain_response(NEW, NEW_PW)}")
            return s.read_reply().code == 235
    wait_for(new_user_works, 10, interval=0.2, what="the added user to log in after SIGHUP")
    with old:
        old.cmd("RCPT TO:<demo@example.test>", 250)
        old.cmd("DATA", 354)
        old.send_raw(msg("across reload") + b".\r\n")
        old.expect(250)
    c.wait_messages("demo", 1)


def test_check_config_reports_password_file_errors(tmp_path, hashes):
    """check-config reads [auth] password_file and reports each bad line as file:line: message
    — a weak legacy hash (MD5-crypt $1$) and a line without a hash — and accepts a good file."""
    def check(pw: str):
        pwfile = tmp_path / "passwd"
        pwfile.write_text(pw)
        sections = default_sections(tmp_path / "var")
        sections["auth"] = {"password_file": str(pwfile)}
        cfg = tmp_path / "c.toml"
        cfg.write_text(render_config(sections))
        p = subprocess.run([str(CARRIER_BIN), "check-config", str(cfg)], capture_output=True,
                           text=True, timeout=20, stdin=subprocess.DEVNULL)
        return p, pwfile

    p, _ = check(f"# users\n\n{ALICE}:{hashes[ALICE]}\n{CAROL}:{hashes[CAROL]}:@corp.example\n")
    assert p.returncode == 0, p.stderr
    p, pwfile = check(f"# users\n{ALICE}:{hashes[ALICE]}\n"
                      "old@example.test:$1$saltsalt$abcdefghijklmnopqrstuv\n"
                      "broken-line-without-hash\n")
    assert p.returncode != 0, "a bad password file passed check-config"
    at = rf"(?:^|\s){re.escape(str(pwfile))}"
    assert re.search(rf"{at}:3: \S", p.stderr, re.M), p.stderr
    assert re.search(rf"{at}:4: \S", p.stderr, re.M), p.stderr
    assert not re.search(rf"{at}:2:", p.stderr, re.M), p.stderr


# --- swaks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,mech", [("--tls", "PLAIN"), ("--tls-on-connect", "LOGIN")])
def test_swaks_auth(sub, pki, mode, mech):
    """RFC 4954 with a third client: swaks STARTTLS (or RFC 8314 implicit TLS) + AUTH, the
    certificate verified against the test root; the message arrives with ESMTPSA."""
    listener = "submission" if mode == "--tls" else "submissions"
    host, port = sub.ports[listener]
    p = subprocess.run(
        ["swaks", "--server", host, "--port", str(port), mode, "--tls-verify",
         "--tls-ca-path", str(pki.ca), "--auth", mech, "--auth-user", ALICE,
         "--auth-password", ALICE_PW, "--helo", "client.example", "--from", ALICE,
         "--to", "demo@example.test", "--header", f"Subject: swaks {mech}", "--timeout", "15"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "235 2.7.0 Authentication successful" in out, out
    d = parse_delivered(sub.wait_messages("demo", 1)[0])
    assert b" with ESMTPSA " in d.received, d.received
