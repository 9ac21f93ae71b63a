"""Quiet hours, ring-burst deduplication and per-channel rate limits (pure, clock passed in)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, time

from doorbell.errors import ConfigError


class QuietHours:
    """Spans of local time like ``"22:00-07:00"`` (across midnight) in which to stay silent.

    A span's start is inside it, its end is not; ``"07:00-07:00"`` is the whole day.
    Raises :class:`ConfigError` for a span that is not ``HH:MM-HH:MM``.
    """

    def __init__(self, spans: tuple[str, ...]) -> None:
        self.spans = tuple(_parse_span(span) for span in spans)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def is_quiet(self, moment: datetime) -> bool:
        """Whether ``moment`` (local wall time) falls in any span."""
        now = moment.time().replace(second=0, microsecond=0, tzinfo=None)
        for start, end in self.spans:
            if start < end and start <= now < end:
                return True
            if start >= end and (now >= start or now < end):
                return True
        return False


def _parse_span(span: str) -> tuple[time, time]:
    try:
        start, end = span.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)
    except ValueError:
        raise ConfigError(f"quiet hours {span!r}: want HH:MM-HH:MM, like 22:00-07:00") from None


class RateLimit:
    """At most ``per_hour`` events in any sliding hour (monotonic seconds passed in)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._sent: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Count one event at ``now`` if the limit allows it; False (not counted) if not."""
        while self._sent and now - self._sent[0] >= 3600.0:
            self._sent.popleft()
        if len(self._sent) >= self.per_hour:
            return False
        self._sent.append(now)
        return True


class Deduplicator:
    """One alert per key, and one ring alert per burst.

    A key seen before (within ``memory`` keys) is a duplicate: the live socket and the audit
    log both report each ring. A ring within ``burst_s`` of the last ring let through is part
    of the same burst (someone pressing three times).
    """

    def __init__(self, burst_s: float, memory: int = 1024) -> None:
        self.burst_s = burst_s
        self._keys: dict[str, None] = {}
        self._memory = memory
        self._last_ring: float | None = None

    def first_time(self, key: str, kind: str, at: float) -> bool:
        """True if an alert with ``key`` of ``kind`` happening at ``at`` (seconds) is new."""
        if key in self._keys:
            return False
        self._keys[key] = None
        while len(self._keys) > self._memory:
            del self._keys[next(iter(self._keys))]
        if kind == "ring":
            if self._last_ring is not None and abs(at - self._last_ring) < self.burst_s:
                return False
            self._last_ring = at
        return True
