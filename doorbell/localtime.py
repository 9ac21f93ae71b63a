"""Times for people: the device's time zone, one 24-hour format, UTC kept inside.

Everything stored (the index, export requests, the audit log, manifests) stays in UTC epoch
seconds. Pages show :class:`LocalTime` renderings: ``2026-01-02 15:04`` in the zone of
``web.timezone`` (an IANA name like ``Europe/Berlin``; empty means the system zone), and the
zone is named once per page (the footer). Times typed into a page (``datetime-local``
fields) are read in the same zone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from doorbell.errors import ConfigError

_ZONEINFO_ROOTS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")
_INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def zone_by_name(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises :class:`ConfigError` naming ``web.timezone``."""
    try:
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"web.timezone: {name!r} is not a time zone; use an IANA name like "
            '"Europe/Berlin" or "America/New_York", or "" for the system zone'
        ) from None


def system_zone(localtime: Path = Path("/etc/localtime")) -> tzinfo:
    """The device's zone: ``$TZ``, else where ``/etc/localtime`` points, else its contents,
    else UTC. Named zones keep their daylight-saving rules (a fixed offset would not)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return zone_by_name(name)
        except ConfigError:
            pass
    try:
        target = str(localtime.resolve())
        for root in _ZONEINFO_ROOTS:
            if target.startswith(root):
                return zone_by_name(target[len(root) :])
        with localtime.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError, ConfigError):
        return UTC


#: What a page shows for a stored time no datetime can hold (an edited or absurd row).
OUT_OF_RANGE = "(time out of range)"


@dataclass(frozen=True)
class LocalTime:
    """Renders and reads times in one zone (``zone``)."""

    zone: tzinfo

    @classmethod
    def from_setting(cls, name: str) -> LocalTime:
        """``web.timezone``: an IANA name, or "" for :func:`system_zone`."""
        return cls(zone_by_name(name) if name else system_zone())

    @property
    def key(self) -> str:
        """The IANA name for browsers (``Intl``), or "" when the zone has none."""
        if self.zone is UTC:
            return "UTC"
        key = getattr(self.zone, "key", None)
        return key if isinstance(key, str) and key != "localtime" else ""

    def moment(self, timestamp: float) -> datetime:
        """``timestamp`` in this zone; :class:`ValueError` when no datetime can hold it (a
        stored or edited value far outside 1970..now: the platform's limits differ)."""
        try:
            return datetime.fromtimestamp(timestamp, UTC).astimezone(self.zone)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"{timestamp!r} is not a time this device can show") from exc

    def _render(self, timestamp: float | None, pattern: str) -> str:
        if timestamp is None:
            return ""
        try:
            return self.moment(timestamp).strftime(pattern)
        except ValueError:
            return OUT_OF_RANGE

    def format(self, timestamp: float | None, *, seconds: bool = False) -> str:
        """``2026-01-02 15:04`` (``:05`` with ``seconds``) in this zone; "" for None,
        :data:`OUT_OF_RANGE` for a time no datetime can hold."""
        return self._render(timestamp, "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def format_clock(self, timestamp: float | None) -> str:
        """``15:04:05`` in this zone; "" for None, :data:`OUT_OF_RANGE` when out of range."""
        return self._render(timestamp, "%H:%M:%S")

    def name(self, timestamp: float) -> str:
        """The zone once per page: ``Europe/Berlin (CET, UTC+01:00)``."""
        try:
            moment = self.moment(timestamp)
        except ValueError:
            return self.key or "local time"
        key = self.key or "local time"
        abbreviation = moment.tzname() or ""
        offset = moment.strftime("%z")
        offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
        if key == abbreviation or (abbreviation in ("", "UTC") and key == "UTC"):
            return f"{key} ({offset})"
        return f"{key} ({abbreviation}, {offset})"

    def to_input(self, timestamp: float | None) -> str:
        """The value of a ``datetime-local`` field showing ``timestamp`` in this zone ("" for
        None or a time out of range: the field then asks for a new one)."""
        if timestamp is None:
            return ""
        try:
            return self.moment(timestamp).strftime("%Y-%m-%dT%H:%M")
        except ValueError:
            return ""

    def parse_input(self, text: str) -> float | None:
        """Epoch seconds of a ``datetime-local`` value read in this zone; None if it is not
        one (the caller reports the field). A time that does not exist or exists twice on a
        daylight-saving change is read with the offset before the change (``fold=0``)."""
        text = (text or "").strip()
        if len(text) > 40:
            return None
        for pattern in _INPUT_FORMATS:
            try:
                naive = datetime.strptime(text, pattern)
            except ValueError:
                continue
            return naive.replace(tzinfo=self.zone).timestamp()
        return None
