"""Settings > Notifications: channels on or off, which events, quiet hours, a test button.

Where alerts go (broker, ntfy URL, SMTP server) and their secrets stay in the main
configuration file, which root owns; here the owner chooses, per channel configured there,
whether it is on, which event kinds it carries and its quiet hours, plus the chime's quiet
hours. Saving goes through :func:`doorbell.ui.configfile.save_changes` (validated, atomic,
``settings.changed`` audit entry); ``doorbell notify`` picks the change up within seconds.

The test button appends ``notify.test_requested`` (channel) to the audit log. The notifier,
which tails the log, sends a test alert on that channel and appends ``notify.sent`` or
``notify.failed`` naming the request; this page lists those results. The web process itself
never connects to a notification server.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from doorbell.config import NOTIFY_EVENT_KINDS, Config
from doorbell.errors import ConfigError, StorageError
from doorbell.settingsfile import settings_path
from doorbell.ui.configfile import save_changes

bp = Blueprint("notifications", __name__)

CHANNELS = ("mqtt", "ntfy", "email")
CHANNEL_LABELS = {"mqtt": "Home Assistant (MQTT)", "ntfy": "ntfy (phone)", "email": "E-mail"}
#: how many of the latest notify.* audit entries the page shows
RECENT = 20


def _state() -> Any:
    return current_app.extensions["doorbell"]


def destination(config: Config, channel: str) -> str:
    """Where ``channel`` goes, as configured in the main file ("" when not set up there)."""
    if channel == "mqtt":
        return f"{config.mqtt.host}:{config.mqtt.port}" if config.mqtt.host else ""
    if channel == "ntfy":
        return config.ntfy.url
    return f"{config.email.host}:{config.email.port}" if config.email.host else ""


def _recent_results() -> list[dict[str, Any]]:
    from doorbell.audit.entries import decode_entry

    audit = _state().audit
    start = max(0, audit.size - 500)
    found = []
    for _index, leaf in audit.entries(start):
        entry = decode_entry(leaf)
        if str(entry.get("action", "")).startswith("notify."):
            found.append(entry)
    return found[-RECENT:][::-1]


def _render(errors: list[str], status: int = 200) -> Any:
    config = _state().config
    channels = [
        {
            "name": name,
            "label": CHANNEL_LABELS[name],
            "destination": destination(config, name),
            "settings": getattr(config, name),
        }
        for name in CHANNELS
    ]
    page = render_template(
        "notifications/notifications.html",
        channels=channels,
        kinds=NOTIFY_EVENT_KINDS,
        chime_quiet_hours=", ".join(config.gpio.quiet_hours),
        results=_recent_results(),
        errors=errors,
    )
    return page, status


@bp.get("/settings/notifications")
def notifications_page() -> Any:
    return _render([])


def _spans(raw: str) -> list[str]:
    return [span.strip() for span in raw.replace(";", ",").split(",") if span.strip()]


def _form_changes(config: Config) -> dict[tuple[str, str], Any]:
    changes: dict[tuple[str, str], Any] = {}
    for name in CHANNELS:
        current = getattr(config, name)
        enabled = request.form.get(f"{name}_enabled") == "on"
        if enabled and not destination(config, name):
            raise ConfigError(
                f"{name}.enabled: set up {CHANNEL_LABELS[name]} in the main configuration "
                "file first (where alerts go and how to log in)"
            )
        events = [kind for kind in NOTIFY_EVENT_KINDS if request.form.get(f"{name}_{kind}") == "on"]
        quiet = _spans(request.form.get(f"{name}_quiet_hours", ""))
        for key, value, old in (
            ("enabled", enabled, current.enabled),
            ("events", events, list(current.events)),
            ("quiet_hours", quiet, list(current.quiet_hours)),
        ):
            if value != old:
                changes[(name, key)] = value
    chime = _spans(request.form.get("chime_quiet_hours", ""))
    if chime != list(config.gpio.quiet_hours):
        changes[("gpio", "quiet_hours")] = chime
    return changes


@bp.post("/settings/notifications")
def notifications_save() -> Any:
    state = _state()
    try:
        changes = _form_changes(state.config)
        if not changes:
            flash("Nothing changed.")
            return redirect(url_for("notifications.notifications_page"))
        with state.config_lock:
            config, changed = save_changes(state.config, changes)
            state.config = config
    except ConfigError as exc:
        return _render(list(exc.problems) or [str(exc)], 400)
    except StorageError as exc:
        return _render([str(exc)], 503)
    details = {key: {"old": old, "new": new} for key, (old, new) in changed.items()}
    state.record("owner", "settings.changed", str(settings_path(state.data_dir)), details)
    flash(f"Saved {len(changed)} change(s). The notifier applies them within a few seconds.")
    return redirect(url_for("notifications.notifications_page"))


@bp.post("/settings/notifications/test")
def notifications_test() -> Any:
    channel = request.form.get("channel", "")
    if channel not in CHANNELS:
        return _render([f"{channel!r} is not a channel"], 400)
    if not getattr(_state().config, channel).enabled:
        return _render([f"{CHANNEL_LABELS[channel]} is off: turn it on and save first"], 400)
    _state().record("owner", "notify.test_requested", "", {"channel": channel})
    flash(
        f"Test alert requested on {CHANNEL_LABELS[channel]}. Its result appears below within "
        "a few seconds (reload the page)."
    )
    return redirect(url_for("notifications.notifications_page"))


def describe_result(entry: dict[str, Any]) -> str:
    """One line for a notify.* audit entry: what, where, and the error if any."""
    details = entry.get("details") or {}
    if entry.get("action") == "notify.test_requested":
        return f"test requested on {details.get('channel', '?')}"
    text = (
        f"{details.get('kind', '?')} on {details.get('channel', '?')} to {details.get('host', '?')}"
    )
    if details.get("error"):
        text += f": {details['error']}"
    return text


bp.add_app_template_filter(describe_result, "notify_result")
