"""What the notifier remembers across restarts: ``<data_dir>/notify-state.json``.

The audit index it has read up to (so what was logged while it was down is caught up), the
storage and camera states (so a repeated state is no news), since when the camera is lost
and whether that was announced, and which expiring requests were announced. Written
atomically (0600); an unreadable file means starting from the log's end, never a crash.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from doorbell.errors import DoorbellError
from doorbell.fsutil import write_file_atomic

log = logging.getLogger(__name__)

STATE_FILE = "notify-state.json"
#: at most this many announced expiring requests are remembered
MAX_EXPIRING = 1000


@dataclass
class NotifierState:
    """The notifier's memory. ``audit_cursor`` None: not started yet (begin at the log's end)."""

    audit_cursor: int | None = None
    states: dict[str, str] = field(default_factory=dict)
    camera_lost_since: float | None = None
    camera_down_sent: bool = False
    expiring_sent: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, data_dir: Path) -> NotifierState:
        """The saved state, or a fresh one (file missing or unreadable: logged)."""
        path = data_dir / STATE_FILE
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as error:
            log.warning("%s unreadable (%s): starting from the log's end", path, error)
            return cls()
        if not isinstance(saved, dict):
            return cls()
        state = cls()
        cursor = saved.get("audit_cursor")
        state.audit_cursor = cursor if isinstance(cursor, int) and cursor >= 0 else None
        states = saved.get("states")
        if isinstance(states, dict):
            state.states = {str(key): str(value) for key, value in states.items()}
        since = saved.get("camera_lost_since")
        state.camera_lost_since = float(since) if isinstance(since, int | float) else None
        state.camera_down_sent = bool(saved.get("camera_down_sent"))
        expiring = saved.get("expiring_sent")
        if isinstance(expiring, list):
            state.expiring_sent = {str(item) for item in expiring[-MAX_EXPIRING:]}
        return state

    def save(self, data_dir: Path) -> None:
        """Write the state atomically; a failure is logged (the next round tries again)."""
        if self.audit_cursor is None:
            return
        document = {
            "audit_cursor": self.audit_cursor,
            "states": self.states,
            "camera_lost_since": self.camera_lost_since,
            "camera_down_sent": self.camera_down_sent,
            "expiring_sent": sorted(self.expiring_sent)[-MAX_EXPIRING:],
        }
        path = data_dir / STATE_FILE
        try:
            write_file_atomic(path, json.dumps(document).encode(), mode=0o600)
        except (OSError, DoorbellError) as error:
            log.warning("cannot save %s: %s", path, error)
