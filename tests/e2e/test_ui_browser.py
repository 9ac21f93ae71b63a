"""End to end in Debian's chromium (Playwright): the owner's UI over real TLS.

1. ``doorbell web`` as a subprocess on a data dir with real keys (scrypt work factor 10),
   a real certificate and real encrypted clips: wrong passphrase refused and audited,
   unlock, see an event, play a clip (currentTime advances), seek.
2. The same server code (:func:`doorbell.commands.web.build_server`) in-process with an
   injected clock, to show the idle lock without waiting ``web.idle_lock_s`` (minimum 30 s)
   and the live view fed by a real :class:`doorbell.live.LivePublisher`: frames update and
   a ring arrives as a notification.

Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool
from ui_helpers import Clock, make_clip, owner_init

from doorbell.audit.devicekey import create_device_key
from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.config import load_config
from doorbell.keys import create_owner_keys, derive_owner_cosigning_key
from doorbell.store import Store
from doorbell.tls import create_self_signed_certificate
from doorbell.ui.vault import OwnerKeys

PASSPHRASE = "purple-otter canvas 7 migrate lantern"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A data dir like `doorbell init` makes, with three real encrypted clips."""
    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    data_dir.mkdir()
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    create_device_key(data_dir / "keys", "doorbell.test/e2e")
    owner_init(data_dir, OwnerKeys(identity, derive_owner_cosigning_key(identity)))
    create_self_signed_certificate(data_dir, ["localhost"], clock=time.time)
    now = time.time()
    with Store.open(data_dir) as store:
        make_clip(store, [identity.recipient], now - 7200, seconds=6, size=(320, 240), seed=3)
        make_clip(store, [identity.recipient], now - 3600, trigger="ring", seconds=4, seed=4)
    config_path = root / "doorbell.toml"
    config_path.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[web]\nport = {free_port()}\ntls = true\n'
        f'[live]\nsocket_path = "{root / "live.sock"}"\n'
    )
    return root, data_dir, config_path


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def audit_actions(data_dir: Path) -> list[dict]:
    with AuditLog.open(data_dir) as log:
        return [decode_entry(leaf) for _, leaf in log.entries(0)]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"doorbell web exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("doorbell web did not start listening")


def test_unlock_timeline_playback_and_seek_through_doorbell_web(site, browser, tmp_path) -> None:
    _, data_dir, config_path = site
    port = load_config(config_path).web.port
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "doorbell.cli", "web", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_port(port, process)
        base = f"https://127.0.0.1:{port}"
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1000, "height": 800}
        )
        page = context.new_page()
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

        page.goto(base + "/timeline")
        assert "/unlock" in page.url
        page.fill("#passphrase", "not the passphrase")
        page.click("button[type=submit]")
        page.wait_for_selector("#unlock-error")
        page.screenshot(path=str(tmp_path / "01-wrong-passphrase.png"))
        failures = [e for e in audit_actions(data_dir) if e["action"] == "web.unlock_failed"]
        assert len(failures) == 1

        time.sleep(1.2)  # the growing delay after one failure is 1 s
        page.fill("#passphrase", PASSPHRASE)
        page.click("button[type=submit]")
        page.wait_for_url("**/timeline")
        page.wait_for_selector(".event img")
        assert page.locator(".event").count() == 2
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.event img'))"
            ".every(i => i.naturalWidth > 0)"
        )
        page.screenshot(path=str(tmp_path / "02-timeline.png"), full_page=True)
        assert "web.unlocked" in [e["action"] for e in audit_actions(data_dir)]

        page.locator(".event.motion a").first.click()
        page.wait_for_selector("video#player")
        page.evaluate("document.getElementById('player').muted = true")
        page.evaluate("document.getElementById('player').play()")
        page.wait_for_function(
            "() => document.getElementById('player').currentTime > 0.5", timeout=15000
        )
        duration = page.evaluate("document.getElementById('player').duration")
        assert 5.0 <= duration <= 7.0
        page.evaluate("""() => { const v = document.getElementById('player');
                                 v.pause(); v.currentTime = 4.2; }""")
        page.wait_for_function(
            "() => { const v = document.getElementById('player');"
            " return !v.seeking && v.currentTime >= 4.1; }",
            timeout=15000,
        )
        page.evaluate("document.getElementById('player').play()")
        page.wait_for_function(
            "() => document.getElementById('player').currentTime > 4.5", timeout=15000
        )
        page.screenshot(path=str(tmp_path / "03-playback.png"))
        assert "clip.viewed" in [e["action"] for e in audit_actions(data_dir)]
        assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
        context.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"every session is locked" in output


def test_idle_lock_and_live_view_with_a_ring(site, browser, tmp_path) -> None:
    from doorbell.commands.web import build_server, serve
    from doorbell.live import LivePublisher
    from doorbell.media.video import encode_jpeg
    from doorbell.ui import close_app, create_app

    _, data_dir, config_path = site
    config = load_config(config_path)
    clock = Clock()
    app = create_app(config, clock=clock)
    port = free_port()
    server = build_server(app, config, data_dir, port=port)
    stop = threading.Event()
    serving = threading.Thread(target=serve, args=(server, stop), name="e2e-web")
    publisher = LivePublisher(config.live.socket_path)
    publisher.start()
    publishing = threading.Event()

    def publish() -> None:
        index = 0
        while not publishing.is_set():
            image = np.full((240, 320, 3), 60, dtype=np.uint8)
            image[80:160, (index * 9) % 280 : (index * 9) % 280 + 40] = (0, 200, 255)
            publisher.publish_frame(
                encode_jpeg(image, 320), time_s=index / 5, width=320, height=240
            )
            index += 1
            publishing.wait(0.2)

    feeder = threading.Thread(target=publish, name="e2e-frames")
    serving.start()
    feeder.start()
    try:
        base = f"https://127.0.0.1:{port}"
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 420, "height": 860}
        )
        context.grant_permissions(["notifications"], origin=base)
        page = context.new_page()
        page.goto(base + "/unlock")
        page.fill("#passphrase", PASSPHRASE)
        page.click("button[type=submit]")
        page.wait_for_url("**/timeline")

        page.goto(base + "/live")
        page.wait_for_function(
            "() => parseInt(document.getElementById('live-image').dataset.seq || '0') > 0"
        )
        first = int(page.evaluate("document.getElementById('live-image').dataset.seq"))
        page.wait_for_function(
            f"() => parseInt(document.getElementById('live-image').dataset.seq) > {first + 2}"
        )
        time.sleep(1.0)  # the page's event stream is connected by now
        publisher.publish_event("motion_start", time_s=1.0, clip="x", trigger="ring")
        publisher.publish_event("ring", time_s=1.0, event="e1", clip=None)
        page.wait_for_function("() => document.body.dataset.lastRing !== undefined", timeout=10000)
        page.wait_for_selector("#recording:not([hidden])")
        assert "rang" in page.inner_text("#live-events")
        page.screenshot(path=str(tmp_path / "04-live-phone.png"), full_page=True)

        clock.advance(config.web.idle_lock_s + 1)  # the owner walked away
        page.goto(base + "/timeline")  # any request now finds the session idle-locked
        assert "/unlock" in page.url
        page.screenshot(path=str(tmp_path / "05-idle-locked.png"))
        locks = [e for e in audit_actions(data_dir) if e["action"] == "web.locked"]
        assert locks and locks[-1]["details"] == {"reason": "idle"}
        context.close()
    finally:
        publishing.set()
        feeder.join()
        stop.set()
        serving.join()
        publisher.close()
        close_app(app)
