"""Export requests as the notifier sees them: read-only queries on ``exports.sqlite3``.

Only the columns it needs (id, status, decide_by); never a requester's details. A missing
registry or table (no request ever made) reads as "no requests".
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

from doorbell.datadir import DataDir

log = logging.getLogger(__name__)


def _connect(data_dir: Path) -> sqlite3.Connection | None:
    path = DataDir(data_dir).exports_index
    if not path.exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as error:
        log.warning("cannot read %s: %s", path, error)
        return None


def is_pending(data_dir: Path, request_id: str) -> bool:
    """Whether export request ``request_id`` still waits for the owner's decision."""
    connection = _connect(data_dir)
    if connection is None:
        return False
    try:
        with contextlib.closing(connection):
            row = connection.execute(
                "SELECT status FROM export_requests WHERE id = ?", (request_id,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "pending"


def pending_due_by(data_dir: Path, horizon: float) -> list[str]:
    """Ids of undecided requests whose decide-by time is at or before ``horizon`` (POSIX s)."""
    connection = _connect(data_dir)
    if connection is None:
        return []
    try:
        with contextlib.closing(connection):
            rows = connection.execute(
                "SELECT id FROM export_requests WHERE status = 'pending' AND decide_by <= ?",
                (horizon,),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [str(request_id) for (request_id,) in rows]
