"""Web UI: settings saved atomically and audited, passphrase change, the audit page."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from ui_helpers import (
    PASSPHRASE,
    Clock,
    FakeVault,
    csrf_from,
    owner_init,
    prepare_data_dir,
    ui_config,
    unlock,
)

from doorbell.audit.entries import decode_entry
from doorbell.commands.options import load_cli_config
from doorbell.config import load_config
from doorbell.keys import create_owner_keys, derive_owner_cosigning_key, unlock_owner_identity
from doorbell.ui import close_app, create_app
from doorbell.ui.configfile import to_toml
from doorbell.ui.vault import KeyFileVault, OwnerKeys

ZONE = [{"name": "path", "points": [[0.1, 0.2], [0.5, 0.2], [0.5, 0.9]]}]


@pytest.fixture
def configured(data_dir: Path, tmp_path: Path):
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    config_path = tmp_path / "doorbell.toml"
    config_path.write_text(
        f'# mine\n[storage]\ndata_dir = "{data_dir}"\n[web]\ntls = false\n'
        '[[privacy.masks]]\nname = "street"\npoints = [[0, 0], [1, 0], [1, 0.1]]\n'
    )
    app = create_app(load_config(config_path), vault=vault, clock=Clock())
    client = app.test_client()
    unlock(client)
    yield app, client, config_path, vault
    close_app(app)


def entries(app) -> list[dict]:
    return [decode_entry(leaf) for _, leaf in app.extensions["doorbell"].audit.entries(0)]


def form(client, **values) -> dict:
    page = client.get("/settings").data
    return {"csrf_token": csrf_from(page), "motion_enabled": "on", **values}


def test_settings_change_is_saved_validated_and_audited(configured) -> None:
    app, client, config_path, _ = configured
    before = config_path.read_bytes()
    response = client.post(
        "/settings",
        data=form(client, retention_days="7", motion_threshold="30", motion_zones=json.dumps(ZONE)),
    )
    assert response.status_code == 302
    assert config_path.read_bytes() == before  # the main file is root's: never written
    saved = load_cli_config(config_path, None)  # main file + <data_dir>/settings.toml
    assert saved.storage.retention_days == 7
    assert saved.motion.threshold == 30
    assert saved.motion.zones[0].points == ((0.1, 0.2), (0.5, 0.2), (0.5, 0.9))
    assert saved.privacy.masks[0].name == "street"  # untouched keys are kept
    assert saved.web.tls is False
    assert app.extensions["doorbell"].config.storage.retention_days == 7
    [change] = [e for e in entries(app) if e["action"] == "settings.changed"]
    assert change["details"]["storage.retention_days"] == {"old": None, "new": 7}
    assert change["details"]["motion.zones"] == {"old": None, "new": {"polygons": 1}}
    data_dir = app.extensions["doorbell"].data_dir
    assert list(data_dir.glob(".*tmp-doorbell*")) == []
    assert "retention_days = 7" in (data_dir / "settings.toml").read_text()


def test_invalid_settings_are_refused_and_the_file_is_untouched(configured) -> None:
    app, client, config_path, _ = configured
    before = config_path.read_bytes()
    bad_zone = json.dumps([{"points": [[0.1, 0.2], [2.0, 0.2], [0.5, 0.9]]}])
    response = client.post("/settings", data=form(client, motion_zones=bad_zone))
    assert response.status_code == 400
    assert b"outside 0..1" in response.data
    response = client.post("/settings", data=form(client, motion_threshold="0"))
    assert response.status_code == 400 and b"below 1" in response.data
    response = client.post("/settings", data=form(client, quota_gb="lots"))
    assert response.status_code == 400
    assert config_path.read_bytes() == before
    assert not [e for e in entries(app) if e["action"] == "settings.changed"]


def test_toml_writer_round_trips_every_value_type() -> None:
    document = {
        "camera": {"backend": "file", "path": 'a "quoted" \\ path\n', "realtime": False},
        "storage": {"quota_gb": 1e-05, "retention_days": 0},
        "privacy": {"masks": [{"name": "é", "points": [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]}]},
    }
    assert tomllib.loads(to_toml(document)) == document


def test_passphrase_change_with_the_real_key_file(data_dir: Path) -> None:
    prepare_data_dir(data_dir)
    identity = create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    owner_init(data_dir, OwnerKeys(identity, derive_owner_cosigning_key(identity)))
    clock = Clock()
    app = create_app(ui_config(data_dir), vault=KeyFileVault(data_dir), clock=clock)
    try:
        client = app.test_client()
        assert unlock(client).status_code == 302
        new = "a completely different passphrase 42"
        token = csrf_from(client.get("/settings/passphrase").data)
        wrong = client.post(
            "/settings/passphrase",
            data={
                "csrf_token": token,
                "old_passphrase": "nope",
                "new_passphrase": new,
                "confirm_passphrase": new,
            },
        )
        assert wrong.status_code == 400
        clock.advance(2)  # past the delay after a wrong passphrase
        mismatch = client.post(
            "/settings/passphrase",
            data={
                "csrf_token": token,
                "old_passphrase": PASSPHRASE,
                "new_passphrase": new,
                "confirm_passphrase": new + "x",
            },
        )
        assert mismatch.status_code == 400
        response = client.post(
            "/settings/passphrase",
            data={
                "csrf_token": token,
                "old_passphrase": PASSPHRASE,
                "new_passphrase": new,
                "confirm_passphrase": new,
            },
        )
        assert response.status_code == 302
        unlock_owner_identity(data_dir, new)
        actions = [e["action"] for e in entries(app)]
        assert "owner.passphrase_changed" in actions
        assert "owner.passphrase_change_failed" in actions
    finally:
        close_app(app)


def test_audit_page_shows_entries_verdict_and_checkpoint(configured) -> None:
    _, client, _, _ = configured
    page = client.get("/audit")
    assert page.status_code == 200
    assert b"web.unlocked" in page.data
    assert b"The log verifies" in page.data
    assert b"doorbell.test/ui" in page.data  # the checkpoint's origin line
    assert b"doorbell-owner" in page.data  # the owner's cosignature
    filtered = client.get("/audit?action=web.unlocked").data
    assert b"web.unlocked" in filtered and b"audit.log_created" not in filtered


def test_settings_without_a_config_file_save_to_the_data_dir(data_dir: Path) -> None:
    vault = FakeVault()
    prepare_data_dir(data_dir, vault)
    app = create_app(ui_config(data_dir), vault=vault, clock=Clock())
    try:
        client = app.test_client()
        unlock(client)
        response = client.post("/settings", data=form(client, retention_days="3"))
        assert response.status_code == 302
    finally:
        close_app(app)
    restarted = create_app(ui_config(data_dir), vault=vault, clock=Clock())
    try:  # the next start (web, or recorder through load_cli_config) sees the saved value
        assert restarted.extensions["doorbell"].config.storage.retention_days == 3
    finally:
        close_app(restarted)


def test_unwritable_settings_file_is_a_clear_error_not_a_500(configured, monkeypatch) -> None:
    """Review finding 7: PermissionError on the root-owned config file was a 500."""
    from doorbell.ui import configfile

    app, client, _, _ = configured

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(configfile, "write_file_atomic", denied)
    response = client.post("/settings", data=form(client, retention_days="9"))
    assert response.status_code == 503
    assert b"cannot be written" in response.data and b"tmpfiles" in response.data
    assert app.extensions["doorbell"].config.storage.retention_days != 9


def test_settings_file_may_hold_owner_settings_only(data_dir: Path, tmp_path: Path) -> None:
    from doorbell.errors import ConfigError

    config_path = tmp_path / "doorbell.toml"
    config_path.write_text(f'[storage]\ndata_dir = "{data_dir}"\n[web]\nport = 8443\n')
    (data_dir / "settings.toml").write_text("[storage]\nretention_days = 5\n")
    config = load_cli_config(config_path, None)
    assert config.storage.retention_days == 5 and config.web.port == 8443
    (data_dir / "settings.toml").write_text("[web]\nport = 80\n")
    with pytest.raises(ConfigError, match="not an owner setting"):
        load_cli_config(config_path, None)
    (data_dir / "settings.toml").write_text("[motion]\nthreshold = 0\n")
    with pytest.raises(ConfigError, match="below 1"):
        load_cli_config(config_path, None)


def _change(client, old: str, new: str, confirm: str | None = None):
    token = csrf_from(client.get("/settings/passphrase").data)
    return client.post(
        "/settings/passphrase",
        data={
            "csrf_token": token,
            "old_passphrase": old,
            "new_passphrase": new,
            "confirm_passphrase": new if confirm is None else confirm,
        },
    )


def test_passphrase_change_applies_the_strength_policy_and_refuses_the_same(configured) -> None:
    """Review finding 4: "doorbell" was accepted as the new passphrase."""
    _, client, _, vault = configured
    weak = _change(client, PASSPHRASE, "doorbell")
    assert weak.status_code == 400 and vault.passphrase == PASSPHRASE
    same = _change(client, PASSPHRASE, PASSPHRASE)
    assert same.status_code == 400 and b"differ" in same.data


def test_wrong_old_passphrase_is_throttled(configured) -> None:
    app, client, _, vault = configured
    new = "a completely different passphrase 42"
    assert _change(client, "wrong", new).status_code == 400
    again = _change(client, PASSPHRASE, new)  # right, but too soon after a wrong one
    assert again.status_code == 429 and vault.passphrase == PASSPHRASE
    app.extensions["doorbell"].failure_ledger.flush(everything=True)  # the burst's summary
    summary = [e for e in entries(app) if e["action"] == "owner.passphrase_change_failed"]
    assert summary[-1]["details"]["reasons"] == {"throttled": 1, "wrong": 1}


def test_change_owner_passphrase_itself_refuses_a_weak_one(data_dir: Path) -> None:
    from doorbell.errors import PassphraseError
    from doorbell.keys import change_owner_passphrase

    create_owner_keys(data_dir, PASSPHRASE, work_factor=10)
    with pytest.raises(PassphraseError, match="rejected"):
        change_owner_passphrase(data_dir, PASSPHRASE, "doorbell", work_factor=10)
    unlock_owner_identity(data_dir, PASSPHRASE)


def test_non_bmp_polygon_name_saves_and_reads_back(configured) -> None:
    """Review finding 7: json.dumps wrote a surrogate pair escape that TOML forbids (500)."""
    app, client, _, _ = configured
    masks = json.dumps([{"name": "door 🚪\x7f", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}])
    response = client.post("/settings", data=form(client, privacy_masks=masks))
    assert response.status_code == 400  # DEL is a control character in a name
    masks = json.dumps([{"name": "door 🚪", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}])
    response = client.post("/settings", data=form(client, privacy_masks=masks))
    assert response.status_code == 302
    assert app.extensions["doorbell"].config.privacy.masks[0].name == "door 🚪"
    document = {"camera": {"path": "🚪\x7f"}}
    assert tomllib.loads(to_toml(document)) == document


def test_control_characters_in_names_are_refused(configured) -> None:
    _, client, _, _ = configured
    masks = json.dumps([{"name": "a\x07b", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}])
    assert client.post("/settings", data=form(client, privacy_masks=masks)).status_code == 400
