"""What an alert is, and what each kind says: title, priority and tags, never content."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from doorbell.config import NOTIFY_EVENT_KINDS

#: The owner's "send a test alert" button: always allowed, never quiet.
TEST = "test"
ALERT_KINDS = (*NOTIFY_EVENT_KINDS, TEST)


@dataclass(frozen=True)
class Alert:
    """One thing to tell the owner.

    ``time`` is when it happened (POSIX seconds, wall clock); ``key`` identifies it across
    sources (the live socket and the audit log report the same ring: one key, one alert);
    ``zones`` are motion zone names; ``ref`` is a non-content reference (an event or request
    id, or for a test alert the audit index of the owner's request). ``channel`` restricts a
    test alert to one channel.
    """

    kind: str
    time: float
    key: str
    zones: tuple[str, ...] = ()
    ref: str = ""
    channel: str = ""


@dataclass(frozen=True)
class Wording:
    """How a channel presents a kind: ntfy priority 1..5 and tags (emoji short codes)."""

    title: str
    message: str
    priority: int
    tags: tuple[str, ...]


WORDING: dict[str, Wording] = {
    "ring": Wording("Doorbell", "Someone rang the doorbell.", 5, ("bell",)),
    "motion_start": Wording("Motion", "Motion at the door.", 3, ("walking",)),
    "motion_stop": Wording("Motion ended", "Motion at the door has ended.", 2, ("walking",)),
    "storage_full": Wording(
        "Storage full", "The doorbell's storage is full; oldest clips are deleted.", 4, ("warning",)
    ),
    "storage_ok": Wording("Storage recovered", "The doorbell records normally again.", 2, ("ok",)),
    "camera_lost": Wording("Camera lost", "The doorbell's camera stopped.", 4, ("warning",)),
    "camera_back": Wording("Camera back", "The doorbell's camera works again.", 2, ("ok",)),
    "camera_down": Wording(
        "Camera down", "The doorbell's camera has been down for a while.", 4, ("rotating_light",)
    ),
    "export_request": Wording(
        "Export request", "Someone asks for footage; it waits for your decision.", 4, ("inbox",)
    ),
    "export_expiring": Wording(
        "Request expiring",
        "An export request you have not decided expires soon (as a denial).",
        4,
        ("hourglass",),
    ),
    "unlock_failures": Wording(
        "Failed unlocks", "Several wrong passphrases were tried on the web UI.", 5, ("lock",)
    ),
    TEST: Wording("Doorbell test", "A test alert from your doorbell.", 3, ("white_check_mark",)),
}


def describe(alert: Alert) -> Wording:
    """The wording of ``alert``'s kind, with motion zone names added to the message."""
    wording = WORDING[alert.kind]
    if alert.zones:
        zones = ", ".join(alert.zones)
        return dataclasses.replace(wording, message=f"{wording.message} Zones: {zones}.")
    return wording
