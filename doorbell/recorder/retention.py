"""Which clips retention deletes, and what "the disk is full" means.

Rules (:func:`retention_victims`), oldest sealed clip first: older than
``storage.retention_days``; over ``storage.quota_gb``; fewer than ``storage.min_free_gb``
free *for footage*. Never chosen: the clip being recorded, and clips **held** by an export
request that is pending or approved (their time window overlaps the clip, issue 17
finding 6: a police request's review page used to say "No clips in this window" after
retention). If the request registry cannot be read, no clip is deleted at all (any could
be held) and the caller is told so.

Free space for footage (:func:`footage_free_bytes`) leaves the audit log a reserve,
:data:`AUDIT_RESERVE_BYTES`, and does not count what the log itself uses: the log growing
never makes footage look short of space, so a full disk can never make the recorder delete
clips to make room for log entries (issue 17, finding 1). The log is kept small by the web
UI (failed unlocks are summarised per burst, :mod:`doorbell.ui.unlockgate`).

Disk full is recognised by errno (ENOSPC, EDQUOT) and SQLite's own result code
(``SQLITE_FULL``), anywhere in an error's cause chain, and turned into
:class:`doorbell.errors.DiskFullError` by :func:`as_disk_full`.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from doorbell.datadir import AUDIT_DB_FILE
from doorbell.errors import DiskFullError

log = logging.getLogger(__name__)

#: Space kept free for the audit log that footage retention never counts as free.
AUDIT_RESERVE_BYTES = 16 << 20
#: The audit log's files in the data dir.
AUDIT_FILES = (AUDIT_DB_FILE, f"{AUDIT_DB_FILE}-wal", f"{AUDIT_DB_FILE}-shm")
#: Request states whose window holds clips against retention.
HOLDING_STATUSES = ("pending", "approved")


class ClipLike(Protocol):
    """What retention reads of a clip (:class:`doorbell.store.Clip`)."""

    @property
    def id(self) -> str: ...

    @property
    def started_at(self) -> float: ...

    @property
    def ended_at(self) -> float | None: ...

    @property
    def sealed(self) -> bool: ...

    @property
    def size_bytes(self) -> int: ...


class ClipSource(Protocol):
    """What retention reads of the index (:class:`doorbell.store.Store`)."""

    def clips(self, *, newest_first: bool = ...) -> Sequence[ClipLike]: ...

    def used_bytes(self) -> int: ...


def as_disk_full(error: BaseException) -> DiskFullError | None:
    """A :class:`DiskFullError` (caused by ``error``) if ``error`` or anything in its cause
    chain says the disk or quota is full; None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return current
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            break
        if (
            isinstance(current, sqlite3.OperationalError)
            and getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        ):
            break
        current = current.__cause__ or current.__context__
    else:
        return None
    full = DiskFullError(f"no space left for the data dir: {error}")
    full.__cause__ = error
    return full


def is_disk_full(error: BaseException) -> bool:
    """True for "no space left" (ENOSPC, EDQUOT, SQLITE_FULL) anywhere in the cause chain."""
    return as_disk_full(error) is not None


def audit_log_bytes(data_dir: Path) -> int:
    """Bytes the audit log's files take in ``data_dir``."""
    total = 0
    for name in AUDIT_FILES:
        try:
            total += (Path(data_dir) / name).stat().st_size
        except FileNotFoundError:
            continue
    return total


def footage_free_bytes(data_dir: Path, free: int, *, reserve_bytes: int | None = None) -> int:
    """Free space as footage retention sees it: ``free`` (bytes free on the filesystem) plus
    what the audit log uses, minus the log's reserve (default :data:`AUDIT_RESERVE_BYTES`).
    Log growth leaves it unchanged."""
    reserve = AUDIT_RESERVE_BYTES if reserve_bytes is None else reserve_bytes
    return free + audit_log_bytes(data_dir) - reserve


def held_windows(registry_db: Path) -> list[tuple[float, float]] | None:
    """Time windows ``(start, end)`` (epoch s) of pending and approved export requests in
    the registry database at ``registry_db``, opened read-only.

    An absent database or table holds nothing (``[]``); a database that cannot be read
    returns None: the caller must then delete nothing that could be held.
    """
    path = Path(registry_db)
    if not path.exists():
        return []
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        log.error("retention: cannot open %s to find held clips: %s", path, exc)
        return None
    try:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'export_requests'"
        ).fetchone()
        if found is None:
            return []
        rows = connection.execute(
            "SELECT window_start, window_end FROM export_requests WHERE status IN (?, ?)",
            HOLDING_STATUSES,
        ).fetchall()
    except sqlite3.Error as exc:
        log.error("retention: cannot read export requests in %s: %s", path, exc)
        return None
    finally:
        connection.close()
    return [(float(start), float(end)) for start, end in rows]


def is_held(clip: ClipLike, windows: Iterable[tuple[float, float]]) -> bool:
    """True if ``clip`` overlaps any of ``windows``."""
    end = clip.ended_at if clip.ended_at is not None else clip.started_at
    return any(clip.started_at <= w_end and end >= w_start for w_start, w_end in windows)


def retention_victims(
    store: ClipSource,
    *,
    now: float,
    retention_days: int,
    quota_bytes: int,
    min_free_bytes: int,
    free_bytes: int,
    keep: set[str] | frozenset[str] = frozenset(),
    holds: Sequence[tuple[float, float]] | None = (),
    on_held: Callable[[ClipLike], None] | None = None,
) -> list[tuple[ClipLike, str]]:
    """Sealed clips to delete, oldest first, each with the rule that chose it.

    Rules: older than ``retention_days`` (0: no age limit); over ``quota_bytes`` of clips
    (0: no quota); fewer than ``min_free_bytes`` free (``free_bytes``, as footage sees it:
    :func:`footage_free_bytes`). Clips in ``keep`` and clips overlapping a window in
    ``holds`` are never chosen (``on_held`` is told about each such clip a rule would have
    chosen); ``holds=None`` means the holds are unknown: nothing is chosen.
    """
    if holds is None:
        return []
    victims: list[tuple[ClipLike, str]] = []
    used = store.used_bytes()
    free = free_bytes
    for clip in store.clips(newest_first=False):
        if not clip.sealed or clip.id in keep:
            continue
        if retention_days and clip.started_at < now - retention_days * 86400:
            reason = f"older than {retention_days} days"
        elif quota_bytes and used > quota_bytes:
            reason = f"over the quota of {quota_bytes} bytes"
        elif min_free_bytes and free < min_free_bytes:
            reason = f"less than {min_free_bytes} bytes free"
        else:
            break
        if is_held(clip, holds):
            if on_held is not None:
                on_held(clip)
            continue
        victims.append((clip, reason))
        used -= clip.size_bytes
        free += clip.size_bytes
    return victims
