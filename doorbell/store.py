"""The data directory: layout, the SQLite index of clips and events, reconciliation.

(Which clips retention deletes is :mod:`doorbell.recorder.retention`.)

Layout below the data dir (see docs/formats.md)::

    index.sqlite3                       this index (WAL), shared by recorder and web
    clips/YYYY/MM/DD/<id>.mp4.age       age-encrypted fragmented MP4
    thumbs/<id>.jpg.age                 age-encrypted JPEG thumbnail

A clip is written straight to its final name (never a swept temp name) and its index row says
``sealed = 0`` until the recorder seals it, so a power cut leaves a row that start-up turns
into ``interrupted = 1``: the owner can still play its authenticated prefix. Everything here
handles ciphertext only; this module never imports decryption.

Schema versions (``PRAGMA user_version``): 1 the first; 2 adds ``clips.audit_pending_from``
(see :meth:`Store.seal_clip`). :meth:`Store.open` migrates an older index in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from doorbell.errors import StorageError
from doorbell.fsutil import fsync_dir, sweep_temp_files
from doorbell.sqlite import LockedConnection

INDEX_NAME = "index.sqlite3"
SCHEMA_VERSION = 2
CLIP_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('motion', 'ring')),
    started_at REAL NOT NULL,
    ended_at REAL,
    score REAL NOT NULL DEFAULT 0,
    zones TEXT NOT NULL DEFAULT '[]',
    clip_id TEXT
);
CREATE INDEX IF NOT EXISTS events_started ON events (started_at);
CREATE TABLE IF NOT EXISTS clips (
    id TEXT PRIMARY KEY,
    event_id TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_s REAL NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    trigger TEXT NOT NULL CHECK (trigger IN ('motion', 'ring', 'continuation', 'recovered')),
    zones TEXT NOT NULL DEFAULT '[]',
    sealed INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    path TEXT NOT NULL UNIQUE,
    thumb_path TEXT,
    sha256 TEXT,
    audit_pending_from INTEGER
);
CREATE INDEX IF NOT EXISTS clips_started ON clips (started_at);
"""


@dataclass(frozen=True)
class Clip:
    """One row of the clips index. Times are UTC seconds since the epoch."""

    id: str
    event_id: str | None
    started_at: float
    ended_at: float | None
    duration_s: float
    size_bytes: int
    trigger: str
    zones: tuple[str, ...]
    sealed: bool
    interrupted: bool
    path: str
    thumb_path: str | None
    sha256: str | None
    #: None, or the row still owes its ``clip.sealed`` audit entry (:meth:`Store.seal_clip`)
    audit_pending_from: int | None = None


@dataclass(frozen=True)
class Event:
    """A motion event or a doorbell ring."""

    id: str
    kind: str
    started_at: float
    ended_at: float | None
    score: float
    zones: tuple[str, ...]
    clip_id: str | None


@dataclass(frozen=True)
class ReconcileReport:
    """What :meth:`Store.reconcile` found and did at start-up."""

    temp_files_removed: int
    clips_marked_interrupted: tuple[str, ...]
    rows_without_file: tuple[str, ...]
    files_without_row: tuple[str, ...]
    thumbnails_removed: int = 0


def thumb_relative_path(clip_id: str) -> str:
    """Where a clip's encrypted thumbnail lives, relative to the data dir."""
    return f"thumbs/{clip_id}.jpg.age"


def new_clip_id(started_at: float) -> str:
    """A sortable, unique clip or event id: UTC time of the start plus 32 random bits."""
    stamp = datetime.fromtimestamp(started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{os.urandom(4).hex()}"


def _clip_from_row(row: sqlite3.Row) -> Clip:
    return Clip(
        id=row["id"],
        event_id=row["event_id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=row["duration_s"],
        size_bytes=row["size_bytes"],
        trigger=row["trigger"],
        zones=tuple(json.loads(row["zones"])),
        sealed=bool(row["sealed"]),
        interrupted=bool(row["interrupted"]),
        path=row["path"],
        thumb_path=row["thumb_path"],
        sha256=row["sha256"],
        audit_pending_from=row["audit_pending_from"],
    )


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        kind=row["kind"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        score=row["score"],
        zones=tuple(json.loads(row["zones"])),
        clip_id=row["clip_id"],
    )


class Store(LockedConnection):
    """The index and files of one data directory. Thread-safe; one per process.

    Use :meth:`open` (a context manager). ``clock`` returns UTC epoch seconds.
    """

    def __init__(self, data_dir: Path, connection: sqlite3.Connection, clock: Callable[[], float]):
        self.data_dir = data_dir
        self._db = connection
        self._lock = threading.RLock()
        self._clock = clock

    @classmethod
    def open(
        cls, data_dir: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> Store:
        """Open (creating if needed) the index of ``data_dir``.

        Raises :class:`StorageError` when the directory is missing or the index is unusable.
        """
        root = Path(data_dir)
        if not root.is_dir():
            raise StorageError(f"{root}: data directory does not exist; run `doorbell init` first")
        try:
            connection = sqlite3.connect(
                root / INDEX_NAME, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{root / INDEX_NAME}: index schema {version} is newer than this doorbell "
                    f"({SCHEMA_VERSION}); upgrade doorbell"
                )
            connection.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                _migrate(connection)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{root / INDEX_NAME}: cannot open the index: {exc}") from exc
        return cls(root, connection, clock)

    # --- paths ---------------------------------------------------------------------------

    def clip_relative_path(self, clip_id: str, started_at: float) -> str:
        """Where a clip lives, relative to the data dir: clips/YYYY/MM/DD/<id>.mp4.age."""
        if not CLIP_ID_PATTERN.match(clip_id):
            raise StorageError(f"{clip_id!r}: not a clip id")
        day = datetime.fromtimestamp(started_at, UTC)
        return f"clips/{day:%Y/%m/%d}/{clip_id}.mp4.age"

    def absolute(self, relative: str) -> Path:
        """The absolute path of an index path, refusing anything that leaves the data dir."""
        path = (self.data_dir / relative).resolve()
        if not path.is_relative_to(self.data_dir.resolve()):
            raise StorageError(f"{relative!r}: outside the data directory")
        return path

    # --- clips ---------------------------------------------------------------------------

    def begin_clip(
        self,
        clip_id: str,
        *,
        started_at: float,
        trigger: str,
        event_id: str | None = None,
        zones: tuple[str, ...] = (),
    ) -> Path:
        """Record a clip that is about to be written; returns its absolute path.

        The row says unsealed until :meth:`seal_clip`. The directory is created if needed.
        """
        relative = self.clip_relative_path(clip_id, started_at)
        path = self.absolute(relative)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO clips (id, event_id, started_at, trigger, zones, path)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (clip_id, event_id, started_at, trigger, json.dumps(list(zones)), relative),
            )
        return path

    def seal_clip(
        self,
        clip_id: str,
        *,
        ended_at: float,
        duration_s: float,
        size_bytes: int,
        sha256: str,
        thumb_path: str | None = None,
        zones: tuple[str, ...] | None = None,
        audit_pending_from: int | None = None,
    ) -> Clip:
        """Mark a fully written, fsynced clip as sealed and return its row.

        ``audit_pending_from`` (the recorder passes it): the audit log's size just before
        this call. The row then owes its ``clip.sealed`` entry, in the same transaction as
        ``sealed = 1``, until :meth:`mark_audited`; if that entry was appended, its index is
        at least this number (see :mod:`doorbell.recorder.sealaudit`). None: nothing is owed.
        """
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE clips SET ended_at = ?, duration_s = ?, size_bytes = ?, sha256 = ?,"
                " thumb_path = COALESCE(?, thumb_path), zones = COALESCE(?, zones), sealed = 1,"
                " audit_pending_from = ? WHERE id = ?",
                (
                    ended_at,
                    duration_s,
                    size_bytes,
                    sha256,
                    thumb_path,
                    None if zones is None else json.dumps(list(zones)),
                    audit_pending_from,
                    clip_id,
                ),
            ).rowcount
        if updated != 1:
            raise StorageError(f"clip {clip_id}: not in the index; cannot seal it")
        return self.get_clip(clip_id)

    def mark_audited(self, clip_id: str) -> None:
        """Record that a sealed clip's ``clip.sealed`` entry is in the audit log."""
        with self._transaction() as db:
            db.execute("UPDATE clips SET audit_pending_from = NULL WHERE id = ?", (clip_id,))

    def clips_owing_audit(self) -> list[Clip]:
        """Sealed clips whose ``clip.sealed`` entry may be missing, in the order sealed.

        Normally empty: only a cut (or a failed append) between :meth:`seal_clip` and
        :meth:`mark_audited` leaves one. One pass over the clips table, nothing else.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM clips WHERE audit_pending_from IS NOT NULL"
                " ORDER BY audit_pending_from, started_at, id"
            ).fetchall()
        return [_clip_from_row(r) for r in rows]

    def mark_interrupted(self, clip_id: str, *, thumb_path: str | None = None) -> Clip | None:
        """Flag an unsealed clip the recorder had to abandon (disk full) as interrupted.

        Does what :meth:`reconcile` does for one row, without waiting for a restart: the row
        gets the size found on disk and ``interrupted = 1``; a row whose file was never
        created is dropped (returns None). ``thumb_path`` is recorded if that file exists.
        """
        clip = self.get_clip(clip_id)
        path = self.absolute(clip.path)
        if not path.exists():
            with self._transaction() as db:
                db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))
            return None
        stat = path.stat()
        thumb = thumb_path if thumb_path and self.absolute(thumb_path).exists() else None
        with self._transaction() as db:
            db.execute(
                "UPDATE clips SET sealed = 1, interrupted = 1, size_bytes = ?, ended_at = ?,"
                " duration_s = MAX(0, ? - started_at), thumb_path = COALESCE(?, thumb_path)"
                " WHERE id = ?",
                (stat.st_size, stat.st_mtime, stat.st_mtime, thumb, clip_id),
            )
        return self.get_clip(clip_id)

    def get_clip(self, clip_id: str) -> Clip:
        """The clip with this id; raises :class:`StorageError` if there is none."""
        with self._lock:
            row = self._db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()
        if row is None:
            raise StorageError(f"clip {clip_id}: no such clip")
        return _clip_from_row(row)

    def clips(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[Clip]:
        """Clips that started in [since, until), newest first by default."""
        query = "SELECT * FROM clips WHERE started_at >= ? AND started_at < ?"
        order = "DESC" if newest_first else "ASC"
        query += f" ORDER BY started_at {order}, id {order}"
        params: list[Any] = [
            since if since is not None else -1e18,
            until if until is not None else 1e18,
        ]
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return [_clip_from_row(r) for r in self._db.execute(query, params)]

    def delete_clip(self, clip_id: str) -> Clip:
        """Delete a clip's files and row (files first: a crash leaves a row without a file,
        which :meth:`reconcile` reports, never an unlisted file). Returns the deleted row."""
        clip = self.get_clip(clip_id)
        for relative in (clip.path, clip.thumb_path):
            if relative:
                path = self.absolute(relative)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    fsync_dir(path.parent)
        with self._transaction() as db:
            db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))
            db.execute("UPDATE events SET clip_id = NULL WHERE clip_id = ?", (clip_id,))
        return clip

    def used_bytes(self) -> int:
        """Bytes of ciphertext the index accounts for (clips and thumbnails)."""
        with self._lock:
            total = self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM clips").fetchone()[0]
        return int(total)

    # --- events --------------------------------------------------------------------------

    def add_event(
        self,
        kind: str,
        *,
        started_at: float,
        event_id: str | None = None,
        clip_id: str | None = None,
        score: float = 0.0,
        zones: tuple[str, ...] = (),
    ) -> str:
        """Record a motion event or a ring; returns its id."""
        event_id = event_id or new_clip_id(started_at)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO events (id, kind, started_at, clip_id, score, zones)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, kind, started_at, clip_id, score, json.dumps(list(zones))),
            )
        return event_id

    def end_event(
        self,
        event_id: str,
        *,
        ended_at: float,
        score: float | None = None,
        zones: tuple[str, ...] | None = None,
    ) -> None:
        """Close an event (its end time, and the peak score and zones seen)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE events SET ended_at = ?, score = MAX(score, COALESCE(?, score)),"
                " zones = COALESCE(?, zones) WHERE id = ?",
                (ended_at, score, None if zones is None else json.dumps(list(zones)), event_id),
            )

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kind: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Event]:
        """Events that started in [since, until), newest first."""
        query = "SELECT * FROM events WHERE started_at >= ? AND started_at < ?"
        params: list[Any] = [
            since if since is not None else -1e18,
            until if until is not None else 1e18,
        ]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        query += " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
        params += [limit if limit is not None else -1, offset]
        with self._lock:
            return [_event_from_row(r) for r in self._db.execute(query, params)]

    # --- start-up and retention ------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Make the index and the files agree after a crash; lose nothing.

        Stray temp files (ciphertext, by invariant 1) are removed; unsealed rows whose file
        exists become sealed-but-interrupted with the size found on disk; rows whose clip
        file is gone are dropped; clip files with no row are indexed as recovered clips.
        """
        removed = sweep_temp_files(self.data_dir)
        interrupted: list[str] = []
        missing: list[str] = []
        with self._lock:
            rows = list(self._db.execute("SELECT * FROM clips"))
        known_paths = set()
        for row in rows:
            clip = _clip_from_row(row)
            known_paths.add(clip.path)
            path = self.absolute(clip.path)
            if not path.exists():
                missing.append(clip.id)
                with self._transaction() as db:
                    db.execute("DELETE FROM clips WHERE id = ?", (clip.id,))
                continue
            if not clip.sealed:
                self.mark_interrupted(clip.id, thumb_path=thumb_relative_path(clip.id))
                interrupted.append(clip.id)
        orphans: list[str] = []
        clips_root = self.data_dir / "clips"
        if clips_root.is_dir():
            for path in sorted(clips_root.rglob("*.mp4.age")):
                relative = path.relative_to(self.data_dir).as_posix()
                clip_id = path.name.removesuffix(".mp4.age")
                if relative in known_paths or not CLIP_ID_PATTERN.match(clip_id):
                    continue
                started = datetime.strptime(clip_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                stat = path.stat()
                with self._transaction() as db:
                    db.execute(
                        "INSERT INTO clips (id, started_at, ended_at, duration_s, size_bytes,"
                        " trigger, sealed, interrupted, path, thumb_path)"
                        " VALUES (?, ?, ?, ?, ?, 'recovered', 1, 1, ?, ?)",
                        (
                            clip_id,
                            started.timestamp(),
                            stat.st_mtime,
                            max(0.0, stat.st_mtime - started.timestamp()),
                            stat.st_size,
                            relative,
                            thumb
                            if self.absolute(thumb := thumb_relative_path(clip_id)).exists()
                            else None,
                        ),
                    )
                orphans.append(clip_id)
        return ReconcileReport(
            len(removed),
            tuple(interrupted),
            tuple(missing),
            tuple(orphans),
            self._remove_thumbnails_without_clips(),
        )

    def _remove_thumbnails_without_clips(self) -> int:
        """Thumbnails are derived from clips: one whose clip is gone only wastes space."""
        thumbs_root = self.data_dir / "thumbs"
        if not thumbs_root.is_dir():
            return 0
        with self._lock:
            known = {row[0] for row in self._db.execute("SELECT id FROM clips")}
        removed = 0
        for path in thumbs_root.glob("*.jpg.age"):
            if path.name.removesuffix(".jpg.age") not in known:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            fsync_dir(thumbs_root)
        return removed

    def now(self) -> float:
        """This store's clock (UTC epoch seconds): what retention ages clips against."""
        return self._clock()


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring an index of an older schema to :data:`SCHEMA_VERSION`, in one write transaction.

    Version 1 -> 2: ``clips.audit_pending_from`` is added as NULL, so every existing sealed
    clip counts as audited (its ``clip.sealed`` entry was appended by the version that sealed
    it; the rare one a power cut left without it stays so). The column check runs under the
    write lock, so the recorder and the web process opening an old index at once migrate it
    once.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(clips)")}
        if "audit_pending_from" not in columns:
            connection.execute("ALTER TABLE clips ADD COLUMN audit_pending_from INTEGER")
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes available to unprivileged writers on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
