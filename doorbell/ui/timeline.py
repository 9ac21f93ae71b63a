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

from datetime import UTC, datetime, tzinfo
from html import escape

from doorbell.store import TIMELINE_FILTERS as FILTERS

__all__ = ["FILTERS", "hourly_chart_svg", "human_size", "storage_gauge_svg"]


def hourly_chart_svg(counts: list[int], now: float, zone: tzinfo = UTC) -> str:
    """Bars of events per hour (oldest left, hours of ``zone``); labelled for screen readers."""
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
    end_hour = datetime.fromtimestamp(now, zone).hour
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
