"""Nothing phones home: the demo (recorder + web) connects only to loopback and unix sockets,
no page or module names another host, and nothing it leaves behind is plaintext media."""

from __future__ import annotations

import ast
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notify_helpers import HttpRecorder, Mosquitto, free_port, make_tls, server_context
from recorder_helpers import plaintext_hits

from doorbell.audit.log import AuditLog

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"""(?:https?:)?//([A-Za-z0-9.\-]+\.[A-Za-z]{2,}|\[[0-9a-fA-F:]+\]|[0-9.]+)""")
#: spec references in docstrings and verification notes (never fetched), and the SVG namespace
#: (an identifier in the DOM API, never fetched)
ALLOWED_HOSTS = {
    "doorbell": {"age-encryption.org", "c2sp.org"},
    "web": {"www.w3.org"},
}
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _urls(root: Path) -> list[tuple[Path, str]]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix in {".pyc", ".png", ".ico", ".woff2"}:
            continue
        text = path.read_text(errors="replace")
        for match in URL.finditer(text):
            start = match.start()
            if text[max(0, start - 1)] in "/:" and not match.group(0).startswith("//"):
                continue
            found.append((path, match.group(1).lower()))
    return found


def test_no_url_to_another_host_in_web_or_package() -> None:
    offenders = []
    for top, allowed in ALLOWED_HOSTS.items():
        for path, host in _urls(ROOT / top):
            if host not in allowed and host not in LOOPBACK and not host.startswith("127."):
                offenders.append(f"{path.relative_to(ROOT)}: {host}")
    assert offenders == [], "no CDN, no telemetry, no third-party host"


def test_the_url_scan_would_catch_a_cdn(tmp_path: Path) -> None:
    (tmp_path / "base.html").write_text(
        '<script src="https://cdn.example.com/x.js"></script>'
        '<link href="//fonts.example.net/a.css">'
    )
    assert {host for _p, host in _urls(tmp_path)} == {"cdn.example.com", "fonts.example.net"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_local(record: dict) -> bool:
    if record.get("family") == socket.AF_UNIX:
        return True
    host = record.get("host", "")
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def test_demo_connects_only_to_loopback_and_leaves_no_plaintext(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "demo", tmp_path / "connects.jsonl"
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    port = _free_port()
    hooks = os.pathsep.join([str(ROOT / "tests" / "phonehome"), str(ROOT)])
    env = {
        **os.environ,
        "DOORBELL_CONNECT_LOG": str(log),
        "TMPDIR": str(private_tmp),
        "PYTHONPATH": hooks,
    }
    demo = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            "demo",
            "--data-dir",
            str(data_dir),
            "--seconds",
            "25",
            "--port",
            str(port),
            "--width",
            "320",
            "--height",
            "240",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    answered = 0
    deadline = time.monotonic() + 60
    paths = ["/", "/unlock", "/live/state", "/timeline", "/transparency/public", "/audit"]
    while time.monotonic() < deadline and demo.poll() is None and answered < 30:
        for path in paths:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}{path}", context=context, timeout=5
                ) as response:
                    response.read()
                answered += 1
            except urllib.error.HTTPError:
                answered += 1
            except OSError:
                time.sleep(0.5)
    out, err = demo.communicate(timeout=120)
    assert demo.returncode == 0, err
    assert "demo: stopped cleanly" in out
    assert answered >= 6, f"the web UI answered while the demo ran ({answered})"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    watched = {r["pid"] for r in records if r["event"] == "hook.installed"}
    assert len(watched) >= 4, "demo, init, recorder and web all ran with the hook"
    connects = [r for r in records if r["event"] not in ("hook.installed", "socket.bind")]
    assert connects, "the hook saw the processes' own sockets (the live socket)"
    outside = [r for r in connects if not _is_local(r)]
    assert outside == [], "only loopback and unix sockets"
    assert plaintext_hits(data_dir, private_tmp) == []


def test_the_hook_would_catch_an_outbound_connect(tmp_path: Path) -> None:
    log = tmp_path / "connects.jsonl"
    env = {
        **os.environ,
        "DOORBELL_CONNECT_LOG": str(log),
        "PYTHONPATH": str(ROOT / "tests" / "phonehome"),
    }
    # a UDP connect sends no packet: it only sets the peer (TEST-NET-1, never routed)
    code = (
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('192.0.2.1', 9))"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["host"] for r in records if not _is_local(r)] == ["192.0.2.1"]


# --- the notifier: nothing but the destinations the owner configured ----------------------


def _run_notifier(
    tmp_path: Path, config_text: str, during: Callable[[Path], None]
) -> list[dict[str, Any]]:
    """Run `doorbell notify` with the connect hook, call ``during(data_dir)``, stop it."""
    data_dir, log = tmp_path / "data", tmp_path / "connects.jsonl"
    data_dir.mkdir()
    AuditLog.open(data_dir).close()
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[live]\nsocket_path = "{tmp_path / "live.sock"}"\n'
        + config_text
    )
    env = {
        **os.environ,
        "DOORBELL_CONNECT_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "phonehome"), str(ROOT)]),
    }
    notifier = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            "notify",
            "--config",
            str(config),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "notify-state.json").exists() and time.monotonic() < deadline:
            if notifier.poll() is not None:
                break
            time.sleep(0.1)
        during(data_dir)
    finally:
        notifier.terminate()
        out, err = notifier.communicate(timeout=60)
    assert notifier.returncode == 0, err
    assert "notify: stopped" in out
    return [json.loads(line) for line in log.read_text().splitlines()]


def _inet(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Internet-family connects and lookups, less connects to the process's own listener
    (paho-mqtt's wake-up socket pair on 127.0.0.1), which the hook marks."""
    return [
        r
        for r in records
        if r["event"] not in ("hook.installed", "socket.bind")
        and r.get("family") != socket.AF_UNIX
        and not r.get("own_listener")
    ]


def test_notifier_without_channels_makes_no_connection_at_all(tmp_path: Path) -> None:
    def ring(data_dir: Path) -> None:
        with AuditLog.open(data_dir) as audit:
            audit.append("recorder", "doorbell.ring", "ev-1", {"clip": None})
        time.sleep(2.0)

    records = _run_notifier(tmp_path, "", ring)
    assert any(r["event"] == "hook.installed" for r in records)
    assert _inet(records) == [], "no channel configured: zero outbound connections"


def test_notifier_connects_only_to_the_configured_destinations(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    tls = make_tls(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "broker", tls, {"doorbell": "mqtt-pass"})
    broker.start()
    ntfy = HttpRecorder()
    mails: list[bytes] = []

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(envelope.content)
            return "250 OK"

    smtp_port = free_port()
    smtp = Controller(
        Mailbox(), hostname="127.0.0.1", port=smtp_port, tls_context=server_context(tls)
    )
    smtp.start()
    (tmp_path / "mqtt-password").write_text("mqtt-pass\n")
    config = f"""
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
ca_file = "{tls.ca}"
username = "doorbell"
password_file = "{tmp_path / "mqtt-password"}"
[ntfy]
enabled = true
url = "http://127.0.0.1:{ntfy.port}/doorbell"
[email]
enabled = true
host = "127.0.0.1"
port = {smtp_port}
ca_file = "{tls.ca}"
sender = "doorbell@home.example"
to = ["owner@home.example"]
"""

    def ring_and_test(data_dir: Path) -> None:
        with AuditLog.open(data_dir) as audit:
            audit.append("recorder", "doorbell.ring", "ev-1", {"clip": None})
            audit.append("owner", "notify.test_requested", "", {"channel": "email"})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                actions = [json.loads(leaf)["action"] for _i, leaf in audit.entries()]
                if actions.count("notify.sent") >= 3:
                    break
                time.sleep(0.2)
            assert actions.count("notify.sent") >= 3, actions

    try:
        records = _run_notifier(tmp_path, config, ring_and_test)
    finally:
        smtp.stop()
        ntfy.close()
        broker.stop()
    assert len(ntfy.requests) == 1 and len(mails) == 1
    allowed = {("127.0.0.1", broker.port), ("127.0.0.1", ntfy.port), ("127.0.0.1", smtp_port)}
    seen = set()
    for record in _inet(records):
        if record["event"] == "socket.getaddrinfo":
            assert record["host"] == "127.0.0.1", record
            continue
        address = ast.literal_eval(record["address"])
        seen.add((str(address[0]), int(address[1])))
    assert seen == allowed, "every configured destination, and nothing else"
