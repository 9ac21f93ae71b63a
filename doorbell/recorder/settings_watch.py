"""Notice when the owner's settings file changes, so the recorder applies it without a restart.

The web UI saves owner settings (retention, quota, motion sensitivity, zones and masks,
privacy masks) atomically to ``<data_dir>/settings.toml`` (:mod:`doorbell.settingsfile`). The
recorder polls that file's identity (inode, size, modification time) every few seconds of
frame time, a cheap ``stat``, and reloads the whole configuration when it changed, with the
same strict validation as at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from doorbell.config import Config

#: how often (seconds of frame time) the file is looked at
CHECK_EVERY_S = 2.0


class SettingsWatcher:
    """``poll(now)`` returns the reloaded :class:`Config` once after each change, else None.

    ``load`` builds the configuration (the recorder passes the same loader it started with);
    it may raise :class:`doorbell.errors.ConfigError`, which :meth:`poll` lets through so the
    caller can report it; the broken version is not retried until the file changes again.
    """

    def __init__(self, path: Path, load: Callable[[], Config], *, every_s: float = CHECK_EVERY_S):
        self.path = Path(path)
        self._load = load
        self._every_s = every_s
        self._last_check: float | None = None
        self._signature = self._current_signature()

    def _current_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def poll(self, now: float) -> Config | None:
        """Reload if at least ``every_s`` passed since the last look and the file changed."""
        if self._last_check is not None and now - self._last_check < self._every_s:
            return None
        self._last_check = now
        signature = self._current_signature()
        if signature == self._signature:
            return None
        self._signature = signature
        return self._load()
