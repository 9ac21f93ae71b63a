"""End to end in Debian's chromium: an export request from invitation to verified bundle.

A requester (their own browser context, no owner cookies) opens an invitation link and
submits a request; the owner approves two of three clips with a download limit of 1 (the
passphrase asked again); the requester downloads once, the second download is refused;
`doorbell verify-bundle` passes on what they got; the transparency page counts it.
Against `doorbell web` as a real subprocess over TLS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from exports_helpers import log_sealed_clips
from test_ui_browser import (  # the e2e helpers: real keys, real TLS, chromium
    PASSPHRASE,
    audit_actions,
    free_port,
    wait_for_port,
)
from test_ui_browser import browser as chromium_browser  # noqa: F401 - the chromium fixture
from ui_helpers import make_clip

from doorbell.age.identities import X25519Identity
from doorbell.keys import unlock_owner_identity
from doorbell.store import Store

CLI = [sys.executable, "-c", "import sys; from doorbell.cli import main; sys.exit(main())"]


@pytest.fixture
def export_site(tmp_path: Path):
    data_dir = tmp_path / "data"
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    subprocess.run(
        [
            *CLI,
            "init",
            "--data-dir",
            str(data_dir),
            "--passphrase-file",
            str(passphrase_file),
            "--owner-key-work-factor",
            "10",
            "--hostname",
            "localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    identity = unlock_owner_identity(data_dir, PASSPHRASE)
    start = time.time() - 3 * 3600
    with Store.open(data_dir) as store:
        clips = [
            make_clip(store, [identity.recipient], start + 600 * i, seconds=2, seed=i)
            for i in range(3)
        ]
        log_sealed_clips(data_dir, store, clips, at=time.time())  # what the recorder logs
    port = free_port()
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[web]\nport = {port}\ntls = true\n'
        f'[live]\nsocket_path = "{tmp_path / "live.sock"}"\n'
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen(
        [*CLI, "web", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_port(port, process)
        yield {
            "base": f"https://127.0.0.1:{port}",
            "data_dir": data_dir,
            "clips": clips,
            "window": (start - 60, start + 1800),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output.decode(errors="replace")


def bundle_ready(page) -> bool:
    state = page.locator("#bundle-state")
    return state.count() == 1 and state.inner_text().strip() == "ready"


def local_time(epoch: float) -> str:
    """A datetime-local value: the server reads it in the device's zone (this machine's)."""
    return time.strftime("%Y-%m-%dT%H:%M", time.localtime(epoch))


def test_invitation_approval_one_download_verify_and_transparency(
    export_site,
    chromium_browser,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    browser = chromium_browser
    base, data_dir, clips = export_site["base"], export_site["data_dir"], export_site["clips"]
    owner = browser.new_context(ignore_https_errors=True).new_page()
    owner.goto(base + "/unlock")
    owner.fill("#passphrase", PASSPHRASE)
    owner.click("button[type=submit]")
    owner.wait_for_url("**/timeline")

    # The owner creates an invitation link and hands it over out of band.
    owner.goto(base + "/exports")
    owner.fill("#label", "PC Smith")
    owner.click("#create-invitation")
    link = owner.inner_text("#invitation-link").strip()
    assert "/requests/invite/" in link

    # The requester, in a browser that has never seen the owner, submits the request.
    requester_key = X25519Identity.generate()
    requester_context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
    requester = requester_context.new_page()
    requester.goto(base + link[link.index("/requests/invite/") :])
    requester.fill("#requester", "PC Jane Smith")
    requester.fill("#organisation", "Example Police")
    requester.fill("#contact", "jane@police.example")
    requester.select_option("#kind", "police")
    requester.select_option("#legal_basis", "warrant")
    requester.fill("#legal_reference", "W-2026-77")
    window_start, window_end = export_site["window"]
    requester.fill("#window_start", local_time(window_start))
    requester.fill("#window_end", local_time(window_end))
    requester.fill("#reason", "A parcel was stolen from the porch that afternoon.")
    requester.check("input[name=delivery][value=recipient]")
    requester.fill("#recipient", str(requester_key.recipient))
    requester.click("#submit-request")
    status_path = requester.get_attribute("#status-link", "href")
    assert status_path and "/requests/status/" in status_path
    requester.goto(base + status_path if status_path.startswith("/") else status_path)
    assert requester.get_attribute("#request-status", "data-status") == "pending"
    assert not any(clip in requester.content() for clip in clips), "no footage hints"
    requester.screenshot(path=str(tmp_path / "01-requester-pending.png"))

    # The owner reviews it beside the clips and approves two of three, limit 1.
    owner.goto(base + "/exports")
    owner.locator("table a").first.click()
    owner.wait_for_selector("#approve-form")
    boxes = owner.locator("input[name=clip]")
    assert boxes.count() == 3
    assert owner.locator("input[name=clip]:checked").count() == 0  # nothing shared by default
    boxes.nth(0).check()
    boxes.nth(1).check()
    # Redaction: one box typed (keyboard path), one dragged on the frame, then a preview.
    console_errors: list[str] = []
    owner.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    for field, value in (
        ("#box_x0", "0.1"),
        ("#box_y0", "0.1"),
        ("#box_x1", "0.3"),
        ("#box_y1", "0.4"),
    ):
        owner.fill(field, value)
    owner.click("#box-add")
    owner.locator("#redact-canvas").scroll_into_view_if_needed()
    canvas = owner.locator("#redact-canvas").bounding_box()
    assert canvas is not None
    owner.mouse.move(canvas["x"] + canvas["width"] * 0.6, canvas["y"] + canvas["height"] * 0.5)
    owner.mouse.down()
    owner.mouse.move(canvas["x"] + canvas["width"] * 0.9, canvas["y"] + canvas["height"] * 0.9)
    owner.mouse.up()
    assert "Redacted areas: 2" in owner.inner_text("#redact-summary")
    owner.select_option("#redact_method", "fill")
    owner.click("#redact-preview")
    deadline = time.monotonic() + 30  # wait_for_function would need 'unsafe-eval' (CSP)
    while time.monotonic() < deadline and not owner.inner_text("#redact-preview-status").startswith(
        "Preview shows"
    ):
        time.sleep(0.2)
    assert owner.inner_text("#redact-preview-status").startswith("Preview shows")
    assert owner.locator("#redact-frame").evaluate("img => img.naturalWidth") > 0
    assert not console_errors, console_errors
    owner.fill("#download_limit", "1")
    owner.fill("#passphrase", PASSPHRASE)
    owner.screenshot(path=str(tmp_path / "02-owner-review.png"), full_page=True)
    owner.click("#approve")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not bundle_ready(owner):
        time.sleep(0.5)
        owner.reload()
    assert bundle_ready(owner), owner.inner_text("main")

    # One download; the second is refused.
    requester.reload()
    with requester.expect_download() as download_info:
        requester.click("#download")
    bundle = tmp_path / "bundle.tar.age"
    download_info.value.save_as(bundle)
    second = requester_context.request.get(base + status_path + "/bundle")
    assert second.status == 403
    requester.reload()
    requester.screenshot(path=str(tmp_path / "03-requester-after.png"))

    # The requester checks what they got with nothing but the bundle and their key.
    identity_file = tmp_path / "requester.key"
    identity_file.write_text(f"{requester_key}\n")
    identity_file.chmod(0o600)
    # the two public keys the owner hands over by another channel (`doorbell keys show`)
    shown = subprocess.run(
        [*CLI, "keys", "show", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    device_vkey = shown.split("device key:", 1)[1].split()[0]
    cosigner_vkey = shown.split("owner cosigner:", 1)[1].split()[0]
    extracted = tmp_path / "verified"
    verified = subprocess.run(
        [
            *CLI,
            "verify-bundle",
            str(bundle),
            "-i",
            str(identity_file),
            "--device-vkey",
            device_vkey,
            "--cosigner-vkey",
            cosigner_vkey,
            "--extract",
            str(extracted),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK: ") and "  clips: 2 (" in verified.stdout
    assert len(list((extracted / "clips").iterdir())) == 2
    assert verified.stdout.count("redacted: 2 region(s); method 'fill'") == 2, verified.stdout

    # The owner's transparency page counts it.
    owner.goto(base + "/transparency")
    counts = owner.content()
    assert "police" in counts and "approved" in counts
    owner.screenshot(path=str(tmp_path / "04-transparency.png"), full_page=True)
    actions = [e["action"] for e in audit_actions(data_dir)]
    for action in ("export.request_submitted", "export.request_approved", "export.downloaded"):
        assert action in actions, (action, actions)
