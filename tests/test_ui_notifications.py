"""Settings > Notifications: channels, events, quiet hours, and the test button end to end
(web UI -> audit log -> notifier -> a real HTTP server standing in for ntfy -> the page)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import HttpRecorder
from ui_helpers import Clock, FakeVault, csrf_from, prepare_data_dir, unlock

from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.commands.options import load_cli_config
from doorbell.config import load_config
from doorbell.notify.build import enabled_channels
from doorbell.notify.service import Notifier
from doorbell.ui import close_app, create_app


@pytest.fixture
def ntfy_server() -> Iterator[HttpRecorder]:
    server = HttpRecorder()
    yield server
    server.close()


@pytest.fixture
def configured(data_dir: Path, tmp_path: Path, ntfy_server: HttpRecorder) -> Iterator[Any]:
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    config_path = tmp_path / "doorbell.toml"
    config_path.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\n[web]\ntls = false\n'
        f'[ntfy]\nurl = "http://127.0.0.1:{ntfy_server.port}/doorbell"\n'
    )
    app = create_app(load_config(config_path), vault=vault, clock=Clock())
    client = app.test_client()
    unlock(client)
    yield app, client, config_path
    close_app(app)


def _entries(app: Any) -> list[dict[str, Any]]:
    return [decode_entry(leaf) for _, leaf in app.extensions["doorbell"].audit.entries(0)]


def _form(client: Any, **values: str) -> dict[str, str]:
    page = client.get("/settings/notifications").data
    return {"csrf_token": csrf_from(page), **values}


def test_the_page_needs_an_unlocked_owner(configured: Any) -> None:
    app, _client, _path = configured
    locked = app.test_client()
    response = locked.get("/settings/notifications")
    assert response.status_code in (302, 303, 401, 403)


def test_turning_ntfy_on_with_events_and_quiet_hours(configured: Any) -> None:
    app, client, config_path = configured
    page = client.get("/settings/notifications").get_data(as_text=True)
    assert "Sends to <code>http://127.0.0.1:" in page
    assert "Not set up: add <code>[mqtt]</code>" in page
    response = client.post(
        "/settings/notifications",
        data=_form(
            client,
            ntfy_enabled="on",
            ntfy_ring="on",
            ntfy_storage_full="on",
            ntfy_quiet_hours="22:00-07:00, 12:30-13:00",
            chime_quiet_hours="23:00-06:30",
            email_export_request="on",
            mqtt_ring="on",
        ),
    )
    assert response.status_code == 302
    saved = load_cli_config(config_path, None)
    assert saved.ntfy.enabled
    assert saved.ntfy.events == ("ring", "storage_full")
    assert saved.ntfy.quiet_hours == ("22:00-07:00", "12:30-13:00")
    assert saved.gpio.quiet_hours == ("23:00-06:30",)
    assert saved.email.events == ("export_request",)
    [change] = [e for e in _entries(app) if e["action"] == "settings.changed"]
    assert change["details"]["ntfy.enabled"] == {"old": None, "new": True}
    assert change["details"]["ntfy.quiet_hours"]["new"] == ["22:00-07:00", "12:30-13:00"]


def test_bad_quiet_hours_and_an_unconfigured_channel_are_refused(configured: Any) -> None:
    app, client, _path = configured
    settings_file = app.extensions["doorbell"].data_dir / "settings.toml"
    response = client.post(
        "/settings/notifications", data=_form(client, ntfy_quiet_hours="late evening")
    )
    assert response.status_code == 400
    assert "HH:MM-HH:MM" in response.get_data(as_text=True)
    response = client.post("/settings/notifications", data=_form(client, mqtt_enabled="on"))
    assert response.status_code == 400
    assert "set up Home Assistant (MQTT) in the main configuration" in response.get_data(
        as_text=True
    )
    assert not settings_file.exists() or "mqtt" not in settings_file.read_text()


def test_the_test_button_reaches_the_notifier_and_the_result_shows(
    configured: Any, ntfy_server: HttpRecorder
) -> None:
    app, client, config_path = configured
    client.post("/settings/notifications", data=_form(client, ntfy_enabled="on", ntfy_ring="on"))
    config = load_cli_config(config_path, None)
    with (
        AuditLog.open(config.data_dir) as audit,
        Notifier(config, enabled_channels(config), audit, live=False) as notifier,
    ):
        time.sleep(0.3)
        response = client.post("/settings/notifications/test", data=_form(client, channel="ntfy"))
        assert response.status_code == 302
        assert notifier.wait_for_outcome("ntfy", "test", 10) == "sent"
    [request] = ntfy_server.requests
    assert request.headers["Title"] == "Doorbell test"
    requested = [e for e in _entries(app) if e["action"] == "notify.test_requested"]
    sent = [e for e in _entries(app) if e["action"] == "notify.sent"]
    assert sent[0]["details"]["request"] == str(requested[0]["index"])
    page = client.get("/settings/notifications").get_data(as_text=True)
    assert f"test on ntfy to 127.0.0.1:{ntfy_server.port}" in page
