"""Settings: retention, quota, motion sensitivity, zones and masks, and the passphrase.

Saving writes ``<data_dir>/settings.toml`` (:mod:`doorbell.settingsfile`: laid over the
main configuration file, which belongs to root and is never written by the web UI),
validates the whole configuration again (:func:`doorbell.config.parse_config`), replaces
the file atomically (:mod:`doorbell.ui.configfile`; a file that cannot be written is a
clear 503, not a 500) and writes one
``settings.changed`` audit entry naming each changed key with its old and new value
(polygons by count). Only keys whose value differs from the running configuration are
written, so untouched defaults stay out of the file.

The recorder notices the new file within a few seconds and applies motion, mask and
storage settings without a restart (:mod:`doorbell.recorder.settings_watch`), writing its own
``settings.applied`` audit entry.
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from doorbell.datadir import OWNER_KEY_OBJECT
from doorbell.errors import ConfigError, KeyFileError, PassphraseError, StorageError
from doorbell.settingsfile import settings_path
from doorbell.ui.configfile import polygons_to_document, save_changes
from doorbell.ui.state import web_state

bp = Blueprint("settings", __name__)

#: form field -> (section, key, type)
FIELDS: dict[str, tuple[str, str, type]] = {
    "retention_days": ("storage", "retention_days", int),
    "quota_gb": ("storage", "quota_gb", float),
    "min_free_gb": ("storage", "min_free_gb", float),
    "motion_threshold": ("motion", "threshold", int),
    "motion_min_area_px": ("motion", "min_area_px", int),
}
POLYGON_FIELDS: dict[str, tuple[str, str]] = {
    "motion_zones": ("motion", "zones"),
    "motion_masks": ("motion", "masks"),
    "privacy_masks": ("privacy", "masks"),
}


def _current(section: str, key: str) -> Any:
    return getattr(getattr(web_state().config, section), key)


def _render(errors: list[str], status: int = 200) -> Any:
    config = web_state().config
    polygons = {
        field: json.dumps(polygons_to_document(_current(section, key)))
        for field, (section, key) in POLYGON_FIELDS.items()
    }
    page = render_template(
        "settings/settings.html",
        config=config,
        polygons=polygons,
        errors=errors,
        config_path=str(settings_path(web_state().data_dir)),
    )
    return page, status


@bp.get("/settings")
def settings_page() -> ResponseReturnValue:
    return _render([])


def _parse_polygons(text: str, where: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text or "[]")
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid polygon data ({exc})") from exc
    if not isinstance(value, list):
        raise ConfigError(f"{where}: want a list of polygons")
    result = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("points"), list):
            raise ConfigError(f"{where}: each polygon needs points")
        table: dict[str, Any] = {"points": item["points"]}
        if item.get("name"):
            name = str(item["name"])[:100]
            if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
                raise ConfigError(f"{where}: a polygon name holds a control character")
            table["name"] = name
        result.append(table)
    return result


def _form_changes() -> dict[tuple[str, str], Any]:
    changes: dict[tuple[str, str], Any] = {}
    for field, (section, key, kind) in FIELDS.items():
        raw = request.form.get(field, "").strip()
        if raw == "":
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{section}.{key}: {raw!r} is not a number") from None
        if value != _current(section, key):
            changes[(section, key)] = value
    enabled = request.form.get("motion_enabled") == "on"
    if enabled != _current("motion", "enabled"):
        changes[("motion", "enabled")] = enabled
    for field, (section, key) in POLYGON_FIELDS.items():
        if field not in request.form:
            continue
        tables = _parse_polygons(request.form[field], f"{section}.{key}")
        if tables != polygons_to_document(_current(section, key)):
            changes[(section, key)] = tables
    return changes


def _audit_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return {"polygons": len(value)}
    return value


@bp.post("/settings")
def settings_save() -> ResponseReturnValue:
    state = web_state()
    try:
        changes = _form_changes()
        if not changes:
            flash("Nothing changed.")
            return redirect(url_for("settings.settings_page"))
        with state.config_lock:
            config, changed = save_changes(state.config, changes)
            state.config = config
    except ConfigError as exc:
        return _render(list(exc.problems), 400)
    except StorageError as exc:
        return _render([str(exc)], 503)
    details = {
        key: {"old": _audit_value(old), "new": _audit_value(new)}
        for key, (old, new) in changed.items()
    }
    path = settings_path(state.data_dir)
    state.record("owner", "settings.changed", str(path), details)
    flash(f"Saved {len(changed)} change(s). The recorder applies them within a few seconds.")
    return redirect(url_for("settings.settings_page"))


@bp.get("/settings/passphrase")
def passphrase_page() -> ResponseReturnValue:
    return render_template("settings/passphrase.html", errors=[])


@bp.post("/settings/passphrase")
def passphrase_change() -> ResponseReturnValue:
    """Change the passphrase: the new one must be strong and new; the old one is checked
    through :mod:`doorbell.ui.stepup` (throttled, one at a time, audited) before rewrapping."""
    from doorbell.passphrase import require_strong
    from doorbell.ui.stepup import PassphraseRefused, check_passphrase

    state = web_state()
    old = request.form.get("old_passphrase", "")
    new = request.form.get("new_passphrase", "")
    confirm = request.form.get("confirm_passphrase", "")
    errors = []
    if new != confirm:
        errors.append("The new passphrase and its confirmation differ.")
    elif new == old:
        errors.append("The new passphrase must differ from the old one.")
    else:
        try:
            require_strong(new)
        except PassphraseError as exc:
            errors.append(f"Choose a stronger passphrase: {exc}")
    if errors:
        return render_template("settings/passphrase.html", errors=errors), 400
    client = request.remote_addr or "unknown"
    try:
        check_passphrase(
            state,
            old,
            client,
            actor="owner",
            failed_action="owner.passphrase_change_failed",
            refused_action="owner.passphrase_change_refused",
        )
        state.vault.change_passphrase(old, new)
    except PassphraseRefused as exc:
        return render_template("settings/passphrase.html", errors=[str(exc)]), 429
    except (PassphraseError, KeyFileError) as exc:
        return render_template("settings/passphrase.html", errors=[f"Not changed: {exc}"]), 400
    state.record("owner", "owner.passphrase_changed", OWNER_KEY_OBJECT, {})
    flash("Passphrase changed. Use the new one next time you unlock.")
    return redirect(url_for("settings.settings_page"))
