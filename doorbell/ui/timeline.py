"""What the timeline page shows: pages of clips with their event kind, and two small SVGs.

The timeline lists *clips* (what the owner can play), newest first, each with the kind of
the event it belongs to: ``ring`` when a ring started it or happened during it, else
``motion``. Filters: ``motion``, ``ring``, ``interrupted`` (clips cut short by a power
loss or crash, which play their authenticated prefix), and, combined with any of them, a
motion zone: clips in which the detector saw something move in the zone of that name.

Queries go to the index through a read-only SQLite connection of its own, joining clips and
events (the store's API answers one table at a time). With the ``clips_started`` index a
page of 10,000 clips costs a few milliseconds.

The charts are server-rendered SVG strings (no script, no external library): events per
hour over the last 24 hours, and how full the storage is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from doorbell.errors import StorageError

FILTERS = ("all", "motion", "ring", "interrupted")
PAGE_SIZE = 48

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
    zone: str | None = None

    def by_day(self) -> list[tuple[str, list[TimelineItem]]]:
        days: list[tuple[str, list[TimelineItem]]] = []
        for item in self.items:
            if not days or days[-1][0] != item.day:
                days.append((item.day, []))
            days[-1][1].append(item)
        return days


class TimelineIndex:
    """Read-only queries over ``<data_dir>/index.sqlite3`` (thread-safe)."""

    def __init__(self, data_dir: Path) -> None:
        path = Path(data_dir) / "index.sqlite3"
        try:
            self._db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the index read-only: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def page(
        self,
        kind: str = "all",
        page: int = 1,
        page_size: int = PAGE_SIZE,
        *,
        zone: str | None = None,
    ) -> TimelinePage:
        """Page ``page`` (1-based) of clips matching filter ``kind`` (one of :data:`FILTERS`)
        and, if ``zone`` is given, in which motion was seen in the zone of that name."""
        if kind not in _WHERE:
            kind = "all"
        where = _WHERE[kind]
        parameters: tuple[str, ...] = ()
        if zone:
            where += " AND EXISTS (SELECT 1 FROM json_each(c.zones) WHERE json_each.value = ?)"
            parameters = (zone,)
        base = f"FROM clips c LEFT JOIN events e ON e.id = c.event_id WHERE {where}"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) {base}", parameters).fetchone()[0]
            pages = max(1, -(-total // page_size))
            page = min(max(1, page), pages)
            rows = self._db.execute(
                f"SELECT c.*, {_RING} AS is_ring {base}"
                " ORDER BY c.started_at DESC, c.id DESC LIMIT ? OFFSET ?",
                (*parameters, page_size, (page - 1) * page_size),
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
                zones=tuple(json.loads(row["zones"] or "[]")),
            )
            for row in rows
        )
        return TimelinePage(items, total, page, pages, kind, zone or None)

    def per_hour(self, now: float, hours: int = 24) -> list[int]:
        """Clip starts per hour for the last ``hours`` hours, oldest hour first."""
        since = now - hours * 3600
        counts = [0] * hours
        with self._lock:
            rows = self._db.execute(
                "SELECT CAST((started_at - ?) / 3600 AS INTEGER) AS h, count(*) FROM clips"
                " WHERE started_at >= ? AND started_at < ? GROUP BY h",
                (since, since, now),
            ).fetchall()
        for hour, count in rows:
            if 0 <= hour < hours:
                counts[hour] = count
        return counts


def hourly_chart_svg(counts: list[int], now: float) -> str:
    """Bars of events per hour (oldest left); labelled for screen readers."""
    width, height, pad = 480, 120, 18
    peak = max(counts) if counts and max(counts) > 0 else 1
    bar = (width - 2 * pad) / max(1, len(counts))
    total = sum(counts)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{total} events in the last {len(counts)} hours">',
        f"<title>{total} events in the last {len(counts)} hours</title>",
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
        f'y2="{height - pad}"/>',
    ]
    end_hour = datetime.fromtimestamp(now, UTC).hour
    for index, count in enumerate(counts):
        h = (height - 2 * pad) * count / peak
        x = pad + index * bar
        hour = (end_hour - (len(counts) - 1 - index)) % 24
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{height - pad - h:.1f}" '
            f'width="{max(1.0, bar - 2):.1f}" height="{h:.1f}">'
            f"<title>{hour:02d}:00 UTC: {count} event(s)</title></rect>"
        )
        if index % 6 == 0:
            parts.append(f'<text class="label" x="{x:.1f}" y="{height - 4}">{hour:02d}h</text>')
    parts.append(f'<text class="label" x="{pad}" y="12">max {peak}/h</text>')
    parts.append("</svg>")
    return "".join(parts)


def storage_gauge_svg(used_bytes: int, limit_bytes: int, label: str) -> str:
    """A horizontal gauge of ``used_bytes`` out of ``limit_bytes``."""
    width, height = 480, 44
    share = 0.0 if limit_bytes <= 0 else min(1.0, used_bytes / limit_bytes)
    level = "high" if share > 0.9 else "mid" if share > 0.7 else "low"
    text = escape(f"{_human(used_bytes)} of {_human(limit_bytes)} {label} ({share:.0%})")
    return (
        f'<svg class="gauge" viewBox="0 0 {width} {height}" role="img" aria-label="{text}">'
        f"<title>{text}</title>"
        f'<rect class="track" x="0" y="4" width="{width}" height="18" rx="4"/>'
        f'<rect class="fill {level}" x="0" y="4" width="{width * share:.1f}" height="18" rx="4"/>'
        f'<text class="label" x="0" y="40">{text}</text></svg>'
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


human_size = _human
