"""Turning what the notifier hears into alerts: live-socket events and audit-log entries.

Both sources report the recorder's events (the live socket at once, the audit log durably);
an alert's ``key`` is the same from both, so one ring is one alert (see
:class:`doorbell.notify.schedule.Deduplicator`). State changes (storage, camera) carry
per-source keys and are deduplicated by the notifier's state tracking instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from doorbell.live.wire import LiveMessage
from doorbell.notify.alerts import TEST, Alert

#: live event kind -> alert kind
LIVE_KINDS = {
    "ring": "ring",
    "motion_start": "motion_start",
    "motion_stop": "motion_stop",
    "storage_full": "storage_full",
    "storage_ok": "storage_ok",
    "camera_fault": "camera_lost",
    "camera_ok": "camera_back",
}
#: audit action -> alert kind (recorder events; export requests; the owner's test button)
AUDIT_KINDS = {
    "doorbell.ring": "ring",
    "storage.full": "storage_full",
    "storage.recovered": "storage_ok",
    "camera.fault": "camera_lost",
    "camera.recovered": "camera_back",
    "export.request_submitted": "export_request",
    "notify.test_requested": TEST,
}
UNLOCK_FAILED = "web.unlock_failed"
#: the actor of the notifier's own audit entries (never read back as events)
ACTOR = "notifier"


def _zones(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(zone)[:64] for zone in value[:16] if isinstance(zone, str))


def alert_from_live(message: LiveMessage, *, received_at: float) -> Alert | None:
    """The alert for a live event (None for frames and other kinds).

    ``time`` is ``received_at`` (this host's wall clock): the message's own time is the
    recorder's, which is the same clock on the Pi, but a test may run them apart.
    """
    kind = LIVE_KINDS.get(message.kind)
    if kind is None:
        return None
    header = message.header
    if kind == "ring":
        key = f"ring:{header.get('event')}" if header.get("event") else f"ring:live:{message.seq}"
    elif kind.startswith("motion"):
        key = f"{kind}:{header.get('clip') or message.seq}"
    else:
        key = f"{kind}:live:{received_at:.3f}"
    return Alert(kind, received_at, key, zones=_zones(header.get("zones")))


def entry_time(entry: dict[str, Any]) -> float:
    """An audit entry's time (RFC 3339 UTC) as POSIX seconds."""
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


def alert_from_audit(index: int, entry: dict[str, Any]) -> Alert | None:
    """The alert for an audit entry (None for actions the notifier does not report)."""
    kind = AUDIT_KINDS.get(str(entry.get("action")))
    if kind is None or entry.get("actor") == ACTOR:
        return None
    when = entry_time(entry)
    target = str(entry.get("object", ""))
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    if kind == "ring":
        return Alert(kind, when, f"ring:{target}" if target else f"ring:audit:{index}")
    if kind == "export_request":
        if entry.get("actor") == "owner":
            return None  # the owner's own request (an export for themselves): no news
        request_id = target.removeprefix("request/")
        return Alert(kind, when, f"request:{request_id}", ref=request_id)
    if kind == TEST:
        channel = str(details.get("channel", "")) if details else ""
        return Alert(kind, when, f"test:{index}", ref=str(index), channel=channel)
    return Alert(kind, when, f"{kind}:audit:{index}")
