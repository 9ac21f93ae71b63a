"""What the timeline page shows: pages of clips with their event kind, and two small SVGs.

The timeline lists *clips* (what the owner can play), newest first, each with the kind of
the event it belongs to: ``ring`` when a ring started it or happened during it, else
``motion``. Filters: ``motion``, ``ring``, ``interrupted`` (clips cut short by a power
loss or crash, which play their authenticated prefix), and, combined with any of them, a
motion zone: clips in which the detector saw something move in the zone of that name.

The queries live with the rest of the index in :class:`doorbell.store.IndexReader` (a
read-only connection joining clips and events); this module draws what they return.

The charts are server-rendered SVG strings (no script, no external library): events per
hour over the last 24 hours, and how full the storage is.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from html import escape

from doorbell.store import TIMELINE_FILTERS as FILTERS
from doorbell.store import TimelinePage

__all__ = ["FILTERS", "RenderedDays", "hourly_chart_svg", "human_size", "storage_gauge_svg"]

#: Rendered clip grids kept, least recently used dropped first: as many as the index reader
#: keeps pages (``doorbell.store.PAGE_CACHE_SIZE``); 21-25 KB each for 48 clips, ~6 MB in all.
RENDERED_DAYS_SIZE = 256


@dataclass(frozen=True)
class _Rendered:
    page: TimelinePage
    zone: object
    held: tuple[tuple[str, str], ...]
    script_root: str
    html: str


class RenderedDays:
    """The rendered clip grid of recent timeline pages, reused while nothing it shows changed.

    Rendering 48 clips (links, local times, badges) was most of a timeline view's CPU time
    under load (issue 17: 20 clients). An entry is reused only for the very same
    :class:`TimelinePage` object (:class:`doorbell.store.IndexReader` returns a new one once
    the index changes), the same local-time object, the same held badges and the same script
    root; anything else renders afresh. Thread-safe.
    """

    def __init__(self, size: int = RENDERED_DAYS_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, int], _Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        page: TimelinePage,
        zone: object,
        held: Mapping[str, str],
        script_root: str,
        render: Callable[[], str],
    ) -> str:
        """The grid of ``page`` as shown with ``zone`` and ``held``: cached, or ``render()``."""
        key = (page.kind, page.motion_zone or "", page.page)
        wanted = tuple(sorted(held.items()))
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is not None
                and entry.page is page
                and entry.zone is zone
                and entry.held == wanted
                and entry.script_root == script_root
            ):
                self._entries.move_to_end(key)
                return entry.html
        html = render()  # outside the lock: two first views of one page may both render
        with self._lock:
            self._entries[key] = _Rendered(page, zone, wanted, script_root, html)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return html


def hourly_chart_svg(counts: list[int], now: float, zone: tzinfo = UTC) -> str:
    """Bars of events per hour (oldest left, hours of ``zone``); labelled for screen readers."""
    return _hourly_chart_svg(tuple(counts), datetime.fromtimestamp(now, zone).hour)


@functools.lru_cache(maxsize=16)
def _hourly_chart_svg(counts: tuple[int, ...], end_hour: int) -> str:
    # Drawn once per distinct chart: every timeline view shows it (issue 17, load).
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
    for index, count in enumerate(counts):
        h = (height - 2 * pad) * count / peak
        x = pad + index * bar
        hour = (end_hour - (len(counts) - 1 - index)) % 24
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{height - pad - h:.1f}" '
            f'width="{max(1.0, bar - 2):.1f}" height="{h:.1f}">'
            f"<title>{hour:02d}:00: {count} event(s)</title></rect>"
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
