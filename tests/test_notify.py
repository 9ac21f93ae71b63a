"""The notifier's policy and sources: quiet hours, dedupe, rate limit, catch-up from the audit
log, the owner's test button, export requests, failed unlocks, camera down; and the ntfy
channel against a real HTTP server on loopback that records what it is sent."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import HttpRecorder, make_tls

from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.config import Config, parse_config
from doorbell.errors import ConfigError, NotifyError
from doorbell.live.publisher import LivePublisher
from doorbell.live.subscriber import LiveSubscriber
from doorbell.notify.alerts import TEST, Alert
from doorbell.notify.ntfy import NtfyChannel
from doorbell.notify.schedule import Deduplicator, QuietHours, RateLimit
from doorbell.notify.service import Notifier
from doorbell.notify.state import STATE_FILE

TOKEN = "tk_live_owner_token"


def test_quiet_hours_across_midnight_and_within_a_day() -> None:
    night = QuietHours(("22:00-07:00",))
    assert night.is_quiet(datetime(2026, 1, 1, 23, 30))
    assert night.is_quiet(datetime(2026, 1, 1, 6, 59))
    assert not night.is_quiet(datetime(2026, 1, 1, 7, 0))
    assert not night.is_quiet(datetime(2026, 1, 1, 21, 59))
    lunch = QuietHours(("12:30-14:00",))
    assert lunch.is_quiet(datetime(2026, 1, 1, 13, 0)) and not lunch.is_quiet(
        datetime(2026, 1, 1, 14, 0)
    )
    assert not QuietHours(()).is_quiet(datetime(2026, 1, 1, 3, 0))
    with pytest.raises(ConfigError, match="HH:MM-HH:MM"):
        QuietHours(("late",))


def test_config_rejects_bad_quiet_hours_and_unknown_event_kinds() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"ntfy": {"quiet_hours": ["24:00-07:00"], "events": ["ring", "doorknock"]}},
        )
    text = str(caught.value)
    assert "ntfy.quiet_hours[0]" in text and "ntfy.events[1]: 'doorknock'" in text


def test_rate_limit_is_a_sliding_hour() -> None:
    limit = RateLimit(2)
    assert limit.allow(0.0) and limit.allow(10.0)
    assert not limit.allow(20.0)
    assert limit.allow(3600.0)


def test_one_ring_burst_one_alert_and_one_key_one_alert() -> None:
    dedupe = Deduplicator(burst_s=30.0)
    assert dedupe.first_time("ring:a", "ring", 100.0)
    assert not dedupe.first_time("ring:a", "ring", 100.5), "same ring from the audit log"
    assert not dedupe.first_time("ring:b", "ring", 110.0), "pressed again: same burst"
    assert dedupe.first_time("ring:c", "ring", 131.0)
    assert dedupe.first_time("motion_start:x", "motion_start", 131.0)


# --- ntfy against a recording HTTP server --------------------------------------------------


@pytest.fixture
def ntfy_server() -> Iterator[HttpRecorder]:
    server = HttpRecorder()
    yield server
    server.close()


def _config(tmp_path: Path, server: HttpRecorder, **sections: Any) -> Config:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    token = tmp_path / "ntfy-token"
    token.write_text(TOKEN + "\n")
    ntfy = {
        "enabled": True,
        "url": f"http://127.0.0.1:{server.port}/doorbell",
        "token_file": str(token),
        **sections.pop("ntfy", {}),
    }
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "live": {"socket_path": str(tmp_path / "live.sock")},
            "notify": {"ui_url": "https://doorbell.lan:8443/", **sections.pop("notify", {})},
            "ntfy": ntfy,
            **sections,
        }
    )


def _notify_entries(data_dir: Path) -> list[dict[str, Any]]:
    with AuditLog.open(data_dir) as audit:
        entries = [decode_entry(leaf) for _i, leaf in audit.entries()]
    return [entry for entry in entries if entry["action"].startswith("notify.")]


def test_ntfy_request_has_title_priority_tags_click_and_token(
    tmp_path: Path, ntfy_server: HttpRecorder
) -> None:
    config = _config(tmp_path, ntfy_server)
    channel = NtfyChannel(config.ntfy, ui_url=config.notify.ui_url)
    channel.send(Alert("ring", time.time(), "ring:1"), 5.0)
    channel.send(Alert("motion_start", time.time(), "m:1", zones=("porch", "path")), 5.0)
    ring, motion = ntfy_server.wait_for(2)
    assert (ring.method, ring.path) == ("POST", "/doorbell")
    assert ring.headers["Title"] == "Doorbell"
    assert ring.headers["Priority"] == "5"
    assert ring.headers["Tags"] == "bell"
    assert ring.headers["Click"] == "https://doorbell.lan:8443/"
    assert ring.headers["Authorization"] == f"Bearer {TOKEN}"
    assert ring.body == b"Someone rang the doorbell."
    assert motion.body == b"Motion at the door. Zones: porch, path."
    assert channel.destination == f"127.0.0.1:{ntfy_server.port}"


def test_ntfy_refusal_is_a_clear_error(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    ntfy_server.status = 403
    channel = NtfyChannel(_config(tmp_path, ntfy_server).ntfy)
    with pytest.raises(NotifyError, match=r"answered 403"):
        channel.send(Alert("ring", time.time(), "ring:1"), 5.0)


def test_ntfy_over_https_checks_the_servers_certificate(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    server = HttpRecorder(tls=tls)
    try:
        url = f"https://127.0.0.1:{server.port}/doorbell"
        good = parse_config({"ntfy": {"enabled": True, "url": url, "ca_file": str(tls.ca)}})
        NtfyChannel(good.ntfy).send(Alert("ring", time.time(), "ring:tls"), 5.0)
        assert [r.path for r in server.requests] == ["/doorbell"]
        other = make_tls(tmp_path / "other")
        bad = parse_config({"ntfy": {"enabled": True, "url": url, "ca_file": str(other.ca)}})
        with pytest.raises(NotifyError, match="CERTIFICATE_VERIFY_FAILED"):
            NtfyChannel(bad.ntfy).send(Alert("ring", time.time(), "ring:mitm"), 5.0)
    finally:
        server.close()
    assert len(server.requests) == 1


def test_ntfy_never_follows_a_redirect(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    ntfy_server.status, ntfy_server.location = 303, "http://192.0.2.1/elsewhere"
    channel = NtfyChannel(_config(tmp_path, ntfy_server).ntfy)
    with pytest.raises(NotifyError, match="answered 303"):
        channel.send(Alert("ring", time.time(), "ring:redirect"), 5.0)
    assert len(ntfy_server.requests) == 1


def test_ntfy_url_must_be_https_off_loopback() -> None:
    with pytest.raises(ConfigError, match="plain http to another host"):
        parse_config({"ntfy": {"enabled": True, "url": "http://ntfy.lan/doorbell"}})
    parse_config({"ntfy": {"enabled": True, "url": "https://ntfy.lan/doorbell"}})


def test_live_ring_burst_is_one_ntfy_alert_and_audited(
    tmp_path: Path, ntfy_server: HttpRecorder
) -> None:
    config = _config(tmp_path, ntfy_server)
    with (
        LivePublisher(config.live.socket_path) as recorder_side,
        AuditLog.open(config.data_dir) as audit,
    ):
        channel = NtfyChannel(config.ntfy, ui_url=config.notify.ui_url)
        with Notifier(config, [channel], audit) as notifier:
            deadline = time.monotonic() + 5
            while recorder_side.subscriber_count == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            for index in range(3):
                recorder_side.publish_event("ring", time_s=time.time(), event=f"ev-{index}")
            # the recorder's own audit entry for the first ring: same ring, same key
            audit.append("recorder", "doorbell.ring", "ev-0", {"clip": None})
            assert notifier.wait_for_outcome("ntfy", "ring", 5) == "sent"
            time.sleep(1.5)  # a watcher round reads the audit entry
    assert len(ntfy_server.requests) == 1
    entries = _notify_entries(config.data_dir)
    assert [e["action"] for e in entries] == ["notify.sent"]
    assert entries[0]["details"] == {
        "channel": "ntfy",
        "kind": "ring",
        "host": f"127.0.0.1:{ntfy_server.port}",
        "attempts": 1,
    }
    assert TOKEN not in str(entries)


def test_events_only_subscriber_never_receives_frames(tmp_path: Path) -> None:
    received: list[str] = []
    with LivePublisher(tmp_path / "live.sock") as publisher:
        subscriber = LiveSubscriber(
            tmp_path / "live.sock", when_message=lambda m: received.append(m.kind), events_only=True
        )
        with subscriber:
            deadline = time.monotonic() + 5
            while publisher.subscriber_count == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # the events-only request reaches the publisher
            for _ in range(5):
                publisher.publish_frame(b"\xff\xd8jpeg", time_s=1.0, width=2, height=2)
            publisher.publish_event("ring", time_s=1.0)
            while "ring" not in received and time.monotonic() < deadline:
                time.sleep(0.02)
    assert received == ["ring"]
    assert subscriber.latest_frame is None


def test_quiet_hours_hold_back_a_channel(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    config = _config(tmp_path, ntfy_server, ntfy={"quiet_hours": ["22:00-07:00"]})
    clock = {"local": datetime(2026, 1, 1, 23, 0)}
    with AuditLog.open(config.data_dir) as audit:
        channel = NtfyChannel(config.ntfy)
        notifier = Notifier(config, [channel], audit, live=False, local_now=lambda: clock["local"])
        with notifier:
            assert notifier.submit(Alert("ring", time.time(), "ring:night")) == []
            clock["local"] = datetime(2026, 1, 1, 8, 0)
            assert notifier.submit(Alert("ring", time.time() + 60, "ring:day")) == ["ntfy"]
            assert notifier.wait_for_outcome("ntfy", "ring", 5) == "sent"
    assert len(ntfy_server.requests) == 1


def test_rate_limit_per_channel(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    config = _config(
        tmp_path,
        ntfy_server,
        notify={"rate_limit_per_hour": 2},
        ntfy={"events": ["motion_start"]},
    )
    with AuditLog.open(config.data_dir) as audit:
        notifier = Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False)
        with notifier:
            queued = [
                notifier.submit(Alert("motion_start", time.time(), f"m:{i}")) for i in range(4)
            ]
            ntfy_server.wait_for(2)
            time.sleep(0.3)
    assert queued == [["ntfy"], ["ntfy"], [], []]
    assert len(ntfy_server.requests) == 2


def test_catch_up_after_downtime_sends_only_what_is_still_relevant(
    tmp_path: Path, ntfy_server: HttpRecorder
) -> None:
    config = _config(tmp_path, ntfy_server, ntfy={"events": ["ring", "storage_full"]})
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False),
    ):
        time.sleep(0.3)  # one watcher round: the cursor is the log's end
    assert (config.data_dir / STATE_FILE).exists()
    # while the notifier is down: an old ring and an old storage alert, then a fresh ring
    old = time.time() - 3600
    with AuditLog.open(config.data_dir, clock=lambda: old) as past:
        past.append("recorder", "doorbell.ring", "ev-old", {"clip": None})
        past.append("recorder", "storage.full", details={"error": "x", "clip": None, "deleted": 0})
    with AuditLog.open(config.data_dir) as audit:
        audit.append("recorder", "doorbell.ring", "ev-new", {"clip": None})
        with Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False) as notifier:
            assert notifier.wait_for_outcome("ntfy", "ring", 5) == "sent"
            time.sleep(0.5)
    assert [r.headers["Title"] for r in ntfy_server.requests] == ["Doorbell"]
    # and what was logged before the first start is never replayed
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False),
    ):
        time.sleep(0.5)
    assert len(ntfy_server.requests) == 1


def test_the_settings_test_button_sends_a_test_alert_and_audits_the_result(
    tmp_path: Path, ntfy_server: HttpRecorder
) -> None:
    config = _config(tmp_path, ntfy_server, ntfy={"events": []})
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False) as notifier,
    ):
        time.sleep(0.2)
        request = audit.append("owner", "notify.test_requested", "", {"channel": "ntfy"})
        assert notifier.wait_for_outcome("ntfy", TEST, 5) == "sent"
    assert ntfy_server.requests[0].headers["Title"] == "Doorbell test"
    sent = _notify_entries(config.data_dir)[-1]
    assert sent["action"] == "notify.sent"
    assert sent["details"]["request"] == str(request)


def _index_with_requests(data_dir: Path, *requests: tuple[str, float]) -> None:
    """Pending requests and their decide-by, in the export registry's real schema and file."""
    from doorbell.exports.registry import _SCHEMA, DATABASE_NAME

    with sqlite3.connect(data_dir / DATABASE_NAME) as connection:
        connection.executescript(_SCHEMA)
        connection.executemany(
            "INSERT INTO export_requests (id, created_at, source, status, requester,"
            " organisation, contact, kind, legal_basis, legal_reference, window_start,"
            " window_end, reason, delivery, decide_by)"
            " VALUES (?, 0, 'portal', 'pending', 'r', 'o', 'c', 'police', 'warrant', 'w1',"
            " 0, 1, 'why', 'recipient', ?)",
            requests,
        )
    connection.close()


def test_export_request_waiting_and_about_to_expire(
    tmp_path: Path, ntfy_server: HttpRecorder
) -> None:
    config = _config(tmp_path, ntfy_server, ntfy={"events": ["export_request", "export_expiring"]})
    _index_with_requests(
        config.data_dir, ("r1", time.time() + 3 * 3600), ("own", time.time() + 10 * 86400)
    )
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False) as notifier,
    ):
        time.sleep(0.2)
        audit.append("owner", "export.request_submitted", "request/own", {})  # no news
        audit.append("requester:r1", "export.request_submitted", "request/r1", {})
        assert notifier.wait_for_outcome("ntfy", "export_request", 5) == "sent"
        assert notifier.wait_for_outcome("ntfy", "export_expiring", 5) == "sent"
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False),
    ):
        time.sleep(1.5)  # restarted: the expiring request was announced already
    titles = sorted(r.headers["Title"] for r in ntfy_server.requests)
    assert titles == ["Export request", "Request expiring"]


def test_a_burst_of_failed_unlocks_is_one_alert(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    config = _config(tmp_path, ntfy_server, ntfy={"events": ["unlock_failures"]})
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, [NtfyChannel(config.ntfy)], audit, live=False) as notifier,
    ):
        time.sleep(0.2)
        for _ in range(2):
            audit.append("unknown", "web.unlock_failed", "", {"client": "192.168.1.9"})
        time.sleep(1.5)
        assert ntfy_server.requests == []
        for _ in range(4):
            audit.append("unknown", "web.unlock_failed", "", {"client": "192.168.1.9"})
        assert notifier.wait_for_outcome("ntfy", "unlock_failures", 5) == "sent"
        time.sleep(1.2)
    assert len(ntfy_server.requests) == 1


def test_camera_down_for_n_minutes(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    config = _config(
        tmp_path,
        ntfy_server,
        notify={"camera_down_min": 10.0},
        ntfy={"events": ["camera_lost", "camera_down"]},
    )
    now = {"t": time.time()}
    with AuditLog.open(config.data_dir) as audit:
        notifier = Notifier(
            config, [NtfyChannel(config.ntfy)], audit, live=False, wall_clock=lambda: now["t"]
        )
        with notifier:
            notifier.submit(Alert("camera_lost", now["t"], "camera_lost:1"))
            notifier.submit(Alert("camera_lost", now["t"], "camera_lost:2"))  # same state
            assert notifier.wait_for_outcome("ntfy", "camera_lost", 5) == "sent"
            notifier.poll()
            now["t"] += 9 * 60
            notifier.poll()
            now["t"] += 61
            notifier.poll()
            assert notifier.wait_for_outcome("ntfy", "camera_down", 5) == "sent"
            notifier.poll()
    titles = [r.headers["Title"] for r in ntfy_server.requests]
    assert titles == ["Camera lost", "Camera down"]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from doorbell.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _config_file(tmp_path: Path, server: HttpRecorder, token_file: str) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    path = tmp_path / "doorbell.toml"
    path.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[ntfy]\nenabled = true\n'
        f'url = "http://127.0.0.1:{server.port}/doorbell"\ntoken_file = "{token_file}"\n'
    )
    return path


def test_cli_test_alert(tmp_path: Path, ntfy_server: HttpRecorder) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    result = _cli(
        "notify", "--config", str(_config_file(tmp_path, ntfy_server, str(token))), "--test", "ntfy"
    )
    assert result.returncode == 0, result.stderr
    assert f"test alert sent on ntfy to 127.0.0.1:{ntfy_server.port}" in result.stdout
    assert ntfy_server.requests[0].headers["Title"] == "Doorbell test"
    ntfy_server.status = 500
    result = _cli(
        "notify", "--config", str(_config_file(tmp_path, ntfy_server, str(token))), "--test", "ntfy"
    )
    assert result.returncode == 1
    assert "answered 500" in result.stderr


def test_cli_unreadable_secret_is_a_configuration_error(
    tmp_path: Path, ntfy_server: HttpRecorder
) -> None:
    config = _config_file(tmp_path, ntfy_server, str(tmp_path / "no-such-token"))
    result = _cli("notify", "--config", str(config))
    assert result.returncode == 2
    assert "ntfy.token_file: cannot read" in result.stderr
    assert ntfy_server.requests == []
