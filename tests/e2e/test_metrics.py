"""Observability (issue 7): GET /metrics in the Prometheus text format on a loopback address,
scraped and parsed while mail flows (the counters move), and /healthz for load balancers."""
from __future__ import annotations

import re
import smtplib
import ssl
import urllib.request

from helpers import wait_for

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out: dict[str, float] = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3).replace("+Inf", "inf"))
    for name in out:
        base = re.sub(r"(_bucket|_sum|_count)$", "", name.split("{")[0])
        assert base in types or name.split("{")[0] in types, f"no # TYPE for {name}"
    return out


def metrics_port(c) -> int:
    # The line comes once the metrics listener is up, which may be just after "ready" (a CI
    # run read stdout in between): wait for it.
    pat = re.compile(r"^carrier: metrics on 127\.0\.0\.1:(\d+)$", re.M)
    wait_for(lambda: pat.search(c.stdout()) is not None, 10, what="the metrics listener line")
    return int(pat.search(c.stdout()).group(1))


def test_metrics_move_as_mail_flows_and_healthz(carrier_factory):
    c = carrier_factory(metrics={"listen": "127.0.0.1:0"})
    port = metrics_port(c)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        assert r.status == 200 and r.read() == b"ok\n"
    before = scrape(port)
    n = 3
    with c.smtp() as s:
        for i in range(n):
            s.sendmail("a@example.net", ["demo@example.test"], f"Subject: {i}\r\n\r\nx\r\n".encode())
    c.wait_messages("demo", n)
    # an unknown recipient and a TLS session: they show up too
    with c.smtp() as s:
        s.ehlo()
        s.mail("a@example.net")
        assert s.rcpt("nobody@example.test")[0] == 550
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(c.host, c.port, timeout=10) as s:
        s.starttls(context=ssl._create_unverified_context())
        s.noop()

    def moved() -> bool:
        after = scrape(port)
        key = 'carrier_deliveries_total{transport="local",outcome="delivered",domain="example.test"}'
        return (after.get("carrier_messages_received_total", 0) - before.get("carrier_messages_received_total", 0) == n
                and after.get(key, 0) - before.get(key, 0) == n)
    wait_for(moved, 10, what="received and delivered counters to move by 3")
    after = scrape(port)
    assert after["carrier_time_to_250_seconds_count"] - before.get("carrier_time_to_250_seconds_count", 0) == n
    assert after["carrier_time_to_250_seconds_bucket{le=\"+Inf\"}"] == after["carrier_time_to_250_seconds_count"]
    assert after["carrier_time_to_delivery_seconds_count"] >= n
    assert after['carrier_connections_total{result="accepted"}'] >= 3
    assert any(k.startswith('carrier_tls_handshakes_total{result="ok",version="TLSv1.') for k in after)
    assert after['carrier_queue_messages{state="deferred"}'] == 0
    assert "carrier_spool_bytes" in after


def test_metrics_listen_must_be_loopback(tmp_path):
    import subprocess
    from conftest import CARRIER_BIN, default_sections, render_config
    sections = default_sections(tmp_path / "var")
    sections["metrics"] = {"listen": "0.0.0.0:9925"}
    cfg = tmp_path / "c.toml"
    cfg.write_text(render_config(sections))
    r = subprocess.run([str(CARRIER_BIN), "check-config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1 and "[metrics] listen: must be a loopback address" in r.stderr, r.stderr
