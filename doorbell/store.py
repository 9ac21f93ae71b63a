"""The index of clips and events: its schema, migrations and every query; reconciliation.

(Which clips retention deletes is :mod:`doorbell.recorder.retention`.)

This module owns ``index.sqlite3`` (paths: :class:`doorbell.datadir.DataDir`)::

    index.sqlite3                       this index (WAL), shared by recorder and web
    clips/YYYY/MM/DD/<id>.mp4.age       age-encrypted fragmented MP4
    thumbs/<id>.jpg.age                 age-encrypted JPEG thumbnail

:class:`Store` writes (one per process); :class:`IndexReader` is the web UI's read-only view
(the timeline's pages and charts). Both write through :func:`doorbell.sqlite.immediate_transaction`.

A clip is written straight to its final name (never a swept temp name) and its index row says
``sealed = 0`` until the recorder seals it, so a power cut leaves a row that start-up turns
into ``interrupted = 1``: the owner can still play its authenticated prefix. Everything here
handles ciphertext only; this module never imports decryption.

Schema versions (``PRAGMA user_version``): 1 the first; 2 adds ``clips.audit_pending_from``
(see :meth:`Store.seal_clip`). :meth:`Store.open` migrates an older index in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from doorbell.datadir import CLIPS_DIR, THUMBS_DIR, DataDir
from doorbell.errors import StorageError
from doorbell.fsutil import fsync_dir, sweep_temp_files
from doorbell.sqlite import LockedConnection, immediate_transaction

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
    return f"{THUMBS_DIR}/{clip_id}.jpg.age"


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


# --- the timeline (read-only) -------------------------------------------------------

TIMELINE_FILTERS = ("all", "motion", "ring", "interrupted")
TIMELINE_PAGE_SIZE = 48

# A non-correlated IN (subquery) is materialised once per query as a temporary index, so
# this stays cheap on deep pages (a correlated EXISTS scanned the events once per clip).
_RING = (
    "(c.trigger = 'ring' OR e.kind = 'ring' OR c.id IN "
    "(SELECT clip_id FROM events WHERE kind = 'ring' AND clip_id IS NOT NULL))"
)
_WHERE = {
    "all": "1",
    "motion": f"NOT {_RING}",
    "ring": _RING,
    "interrupted": "c.interrupted = 1",
}


@dataclass(frozen=True)
class TimelineItem:
    clip_id: str
    started_at: float
    duration_s: float
    size_bytes: int
    kind: str
    trigger: str
    interrupted: bool
    sealed: bool
    has_thumb: bool
    zones: tuple[str, ...]

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d")

    @property
    def time_of_day(self) -> str:
        return datetime.fromtimestamp(self.started_at, UTC).strftime("%H:%M:%S")


@dataclass(frozen=True)
class TimelinePage:
    items: tuple[TimelineItem, ...]
    total: int
    page: int
    pages: int
    kind: str
    #: the motion zone the page is filtered by (None: every clip)
    motion_zone: str | None = None

    def by_day(self, zone: tzinfo = UTC) -> list[tuple[str, list[TimelineItem]]]:
        """Items grouped by their calendar day in ``zone`` (the pages' time zone)."""
        days: list[tuple[str, list[TimelineItem]]] = []
        for item in self.items:
            day = datetime.fromtimestamp(item.started_at, zone).strftime("%Y-%m-%d")
            if not days or days[-1][0] != day:
                days.append((day, []))
            days[-1][1].append(item)
        return days


#: Timeline pages kept per index version, least recently used dropped first (48 rows each;
#: 256 pages measured ~1.5 MB of RSS).
PAGE_CACHE_SIZE = 256
#: The 24-hour chart may lag the clock by this much (seconds) while nothing new was indexed.
CHART_CACHE_S = 10.0


def _zones(stored: str | None) -> tuple[str, ...]:
    """A clip's motion zones from its JSON column; most clips have none (no parse then)."""
    if not stored or stored == "[]":
        return ()
    return tuple(json.loads(stored))


class IndexReader:
    """Read-only queries over ``<data_dir>/index.sqlite3`` for the timeline (thread-safe).

    Its own read-only connection joins clips and events (the :class:`Store` API answers one
    table at a time). Pages after the first start at a cached (started_at, id) key and walk
    the ``clips_started`` index (no OFFSET scan): under a millisecond at page 200 of 10,000
    clips. Built pages, counts and page keys are cached while the index is unchanged
    (``PRAGMA data_version``): 20 clients paging the same timeline repeat the same queries.
    """

    def __init__(self, data_dir: Path) -> None:
        path = DataDir(data_dir).index
        try:
            self._db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the index read-only: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._pages: OrderedDict[tuple[str, str, int, int], TimelinePage] = OrderedDict()
        self._numbers: dict[tuple[str, int], tuple[int, ...]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._starts: dict[tuple[str, str, int], list[tuple[float, str]]] = {}
        self._version = -1

    def _fresh(self) -> None:
        """Forget cached pages if any connection committed to the index since (lock held).

        ``PRAGMA data_version`` changes whenever another connection (the recorder, the web's
        own store) commits to the database file, so a cached page is never stale."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._pages.clear()
            self._numbers.clear()
            self._counts.clear()
            self._starts.clear()
            self._version = version
        while len(self._pages) > PAGE_CACHE_SIZE:
            self._pages.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def page(
        self,
        kind: str = "all",
        page: int = 1,
        page_size: int = TIMELINE_PAGE_SIZE,
        *,
        zone: str | None = None,
    ) -> TimelinePage:
        """Page ``page`` (1-based) of clips matching ``kind`` (one of :data:`TIMELINE_FILTERS`)
        and, if ``zone`` is given, in which motion was seen in the zone of that name."""
        if kind not in _WHERE:
            kind = "all"
        zone = zone or None
        requested = page
        where = _WHERE[kind]
        parameters: tuple[str, ...] = ()
        if zone:
            where += " AND EXISTS (SELECT 1 FROM json_each(c.zones) WHERE json_each.value = ?)"
            parameters = (zone,)
        selection = (kind, zone or "")
        base = f"FROM clips c LEFT JOIN events e ON e.id = c.event_id WHERE {where}"
        order = " ORDER BY c.started_at DESC, c.id DESC LIMIT ?"
        key = (kind, zone or "", page, page_size)
        with self._lock:
            self._fresh()
            cached = self._pages.get(key)
            if cached is not None:
                self._pages.move_to_end(key)
                return cached
            if page <= 1:
                total = self._count_locked(selection, base, parameters)
                pages = max(1, -(-total // page_size))
                page = 1
                rows = self._db.execute(
                    f"SELECT c.*, {_RING} AS is_ring {base}{order}", (*parameters, page_size)
                ).fetchall()
            else:
                starts = self._page_starts_locked(selection, base, parameters, page_size)
                total, pages = self._counts[selection], max(1, len(starts))
                page = min(page, pages)
                rows = []
                if starts:
                    # From the page's first clip down the started_at index: no OFFSET scan.
                    started_at, clip_id = starts[page - 1]
                    rows = self._db.execute(
                        f"SELECT c.*, {_RING} AS is_ring {base} AND c.started_at <= ?"
                        f" AND NOT (c.started_at = ? AND c.id > ?){order}",
                        (*parameters, started_at, started_at, clip_id, page_size),
                    ).fetchall()
        items = tuple(
            TimelineItem(
                clip_id=row["id"],
                started_at=row["started_at"],
                duration_s=row["duration_s"],
                size_bytes=row["size_bytes"],
                kind="ring" if row["is_ring"] else "motion",
                trigger=row["trigger"],
                interrupted=bool(row["interrupted"]),
                sealed=bool(row["sealed"]),
                has_thumb=bool(row["thumb_path"]),
                zones=_zones(row["zones"]),
            )
            for row in rows
        )
        built = TimelinePage(items, total, page, pages, kind, zone)
        with self._lock:
            if self._version == int(self._db.execute("PRAGMA data_version").fetchone()[0]):
                self._pages[(kind, zone or "", requested, page_size)] = built
        return built

    def _count_locked(
        self, selection: tuple[str, str], base: str, parameters: tuple[str, ...]
    ) -> int:
        """Clips matching ``selection`` (filter, zone), cached while the index is unchanged
        (lock held)."""
        total = self._counts.get(selection)
        if total is None:
            total = int(self._db.execute(f"SELECT count(*) {base}", parameters).fetchone()[0])
            self._counts[selection] = total
        return total

    def _page_starts_locked(
        self,
        selection: tuple[str, str],
        base: str,
        parameters: tuple[str, ...],
        page_size: int,
    ) -> list[tuple[float, str]]:
        """(started_at, id) of the first clip of every page, newest first (lock held).

        One pass over the selected clips per index version (10,000 clips: ~10 ms) instead of
        an OFFSET scan per page (page 200: ~5 ms each, under the lock every view waits for);
        it also counts them."""
        starts = self._starts.get((*selection, page_size))
        if starts is None:
            keys = self._db.execute(
                f"SELECT c.started_at, c.id {base} ORDER BY c.started_at DESC, c.id DESC",
                parameters,
            ).fetchall()
            starts = [(float(row[0]), str(row[1])) for row in keys[::page_size]]
            self._starts[(*selection, page_size)] = starts
            self._counts[selection] = len(keys)
        return starts

    def used_bytes(self) -> int:
        """Bytes of ciphertext the index accounts for (as :meth:`Store.used_bytes`), cached
        while the index is unchanged."""
        with self._lock:
            self._fresh()
            return self._used_bytes_cached()

    def per_hour(self, now: float, hours: int = 24) -> list[int]:
        """Clip starts per hour for the last ``hours`` hours, oldest hour first.

        Cached while the index is unchanged, for up to :data:`CHART_CACHE_S` of ``now``."""
        with self._lock:
            self._fresh()
            return self._per_hour_cached(now, hours)

    def overview(
        self, kind: str, page: int, now: float, hours: int = 24, *, zone: str | None = None
    ) -> tuple[TimelinePage, int, list[int]]:
        """:meth:`page`, :meth:`used_bytes` and :meth:`per_hour` at once: what a timeline
        view shows, with one index-version check instead of three while they are cached
        (issue 17, load: each check is a statement on the shared connection, under the lock
        every view waits for)."""
        with self._lock:
            self._fresh()
            used = self._used_bytes_cached()
            counts = self._per_hour_cached(now, hours)
            key = (kind if kind in _WHERE else "all", zone or "", page, TIMELINE_PAGE_SIZE)
            cached = self._pages.get(key)
            if cached is not None:
                self._pages.move_to_end(key)
                return cached, used, counts
        return self.page(kind, page, zone=zone), used, counts

    def _used_bytes_cached(self) -> int:
        cached = self._numbers.get(("used", 0))
        if cached is None:
            total = self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM clips")
            cached = (int(total.fetchone()[0]),)
            self._numbers[("used", 0)] = cached
        return cached[0]

    def _per_hour_cached(self, now: float, hours: int) -> list[int]:
        key = (f"hours-{hours}", int(now // CHART_CACHE_S))
        cached = self._numbers.get(key)
        if cached is None:
            cached = tuple(self._per_hour_locked(now, hours))
            for old in [k for k in self._numbers if k[0] == key[0]]:
                del self._numbers[old]  # one chart per size: the current time bucket
            self._numbers[key] = cached
        return list(cached)

    def _per_hour_locked(self, now: float, hours: int) -> list[int]:
        since = now - hours * 3600
        counts = [0] * hours
        rows = self._db.execute(
            "SELECT CAST((started_at - ?) / 3600 AS INTEGER) AS h, count(*) FROM clips"
            " WHERE started_at >= ? AND started_at < ? GROUP BY h",
            (since, since, now),
        ).fetchall()
        for hour, count in rows:
            if 0 <= hour < hours:
                counts[hour] = count
        return counts


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
        index = DataDir(root).index
        if not root.is_dir():
            raise StorageError(f"{root}: data directory does not exist; run `doorbell init` first")
        try:
            connection = sqlite3.connect(
                index, timeout=30, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{index}: index schema {version} is newer than this doorbell "
                    f"({SCHEMA_VERSION}); upgrade doorbell"
                )
            connection.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                _migrate(connection)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{index}: cannot open the index: {exc}") from exc
        return cls(root, connection, clock)

    # --- paths ---------------------------------------------------------------------------

    def clip_relative_path(self, clip_id: str, started_at: float) -> str:
        """Where a clip lives, relative to the data dir: clips/YYYY/MM/DD/<id>.mp4.age."""
        if not CLIP_ID_PATTERN.match(clip_id):
            raise StorageError(f"{clip_id!r}: not a clip id")
        day = datetime.fromtimestamp(started_at, UTC)
        return f"{CLIPS_DIR}/{day:%Y/%m/%d}/{clip_id}.mp4.age"

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
        digest = _file_sha256(path)
        with self._transaction() as db:
            # audit_pending_from = 0: the clip owes its clip.sealed entry (with the hash of
            # what is on disk), so even a cut clip's origin is on the signed record
            db.execute(
                "UPDATE clips SET sealed = 1, interrupted = 1, size_bytes = ?, ended_at = ?,"
                " duration_s = MAX(0, ? - started_at), thumb_path = COALESCE(?, thumb_path),"
                " sha256 = ?, audit_pending_from = COALESCE(audit_pending_from, 0) WHERE id = ?",
                (stat.st_size, stat.st_mtime, stat.st_mtime, thumb, digest, clip_id),
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

        Stray temp files (ciphertext: privacy invariant 1, docs/architecture.md) are removed;
        unsealed rows whose file exists become sealed-but-interrupted with the size found on
        disk; rows whose clip file is gone are dropped; clip files with no row are indexed as
        recovered clips.
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
        clips_root = DataDir(self.data_dir).clips
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
                        " trigger, sealed, interrupted, path, thumb_path, sha256,"
                        " audit_pending_from)"
                        " VALUES (?, ?, ?, ?, ?, 'recovered', 1, 1, ?, ?, ?, 0)",
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
                            _file_sha256(path),
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
        thumbs_root = DataDir(self.data_dir).thumbs
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
    with immediate_transaction(connection, threading.RLock()):
        columns = {row[1] for row in connection.execute("PRAGMA table_info(clips)")}
        if "audit_pending_from" not in columns:
            connection.execute("ALTER TABLE clips ADD COLUMN audit_pending_from INTEGER")
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes (ciphertext: nothing is decrypted)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes available to unprivileged writers on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
