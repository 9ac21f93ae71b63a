"""Pre-roll: the last few seconds of *encoded* video, whole GOPs only, in memory.

A clip can only start at a keyframe, so the ring stores packets grouped by keyframe (GOPs)
and drops whole GOPs from the old end. It keeps the fewest GOPs that still cover
``max_seconds`` before the newest packet, so after :meth:`PacketRing.take` a clip starts at
least ``max_seconds`` before the newest frame (when that much video has been seen), and at
most one keyframe interval more. Raw frames never enter it; memory is bounded by time and,
as a guard against an encoder that stops sending keyframes, by ``max_bytes``.
"""

from __future__ import annotations

import logging
from collections import deque

from doorbell.media.video import EncodedPacket

log = logging.getLogger(__name__)

#: Default byte cap: ~100 s of 720p at 2 Mbit/s; normal use stays far below.
DEFAULT_MAX_BYTES = 24 << 20


class _Gop:
    __slots__ = ("nbytes", "packets")

    def __init__(self, first: EncodedPacket) -> None:
        self.packets = [first]
        self.nbytes = first.size


class PacketRing:
    """GOP-aligned ring of encoded packets for pre-roll.

    ``max_seconds`` (>= 0) is the span to keep before the newest packet; ``max_bytes`` caps
    memory. Packets that arrive before the first keyframe are dropped (nothing could decode
    them). Not thread-safe: one recorder loop owns it.
    """

    def __init__(self, max_seconds: float, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_seconds < 0 or max_bytes <= 0:
            raise ValueError(f"max_seconds ({max_seconds}) must be >= 0 and max_bytes > 0")
        self.max_seconds = float(max_seconds)
        self.max_bytes = int(max_bytes)
        self._gops: deque[_Gop] = deque()
        self._nbytes = 0
        self._count = 0
        self._over_cap_logged = False

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of packet payload held."""
        return self._nbytes

    @property
    def start_time_s(self) -> float | None:
        """``time_s`` of the oldest packet held (always a keyframe), or None when empty."""
        return self._gops[0].packets[0].time_s if self._gops else None

    @property
    def duration_s(self) -> float:
        """Seconds from the oldest to the newest packet held (0 when fewer than two)."""
        if not self._gops:
            return 0.0
        return self._gops[-1].packets[-1].time_s - self._gops[0].packets[0].time_s

    def append(self, packet: EncodedPacket) -> None:
        """Add the encoder's next packet, then drop GOPs no longer needed."""
        if packet.is_keyframe:
            self._gops.append(_Gop(packet))
        elif self._gops:
            gop = self._gops[-1]
            gop.packets.append(packet)
            gop.nbytes += packet.size
        else:
            return  # no keyframe yet: undecodable, not worth keeping
        self._nbytes += packet.size
        self._count += 1
        self._trim(packet.time_s)

    def packets(self) -> list[EncodedPacket]:
        """A copy of the packets held, oldest first (starts with a keyframe)."""
        return [packet for gop in self._gops for packet in gop.packets]

    def take(self) -> list[EncodedPacket]:
        """The packets held, oldest first, and empty the ring (start a clip with these)."""
        packets = self.packets()
        self.clear()
        return packets

    def clear(self) -> None:
        """Forget everything held."""
        self._gops.clear()
        self._nbytes = 0
        self._count = 0

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self._nbytes -= gop.nbytes
        self._count -= len(gop.packets)

    def _trim(self, newest_time_s: float) -> None:
        # Drop the oldest GOP while the next one alone still reaches max_seconds back.
        while (
            len(self._gops) > 1
            and newest_time_s - self._gops[1].packets[0].time_s >= self.max_seconds
        ):
            self._drop_oldest()
        while self._nbytes > self.max_bytes and self._gops:
            if not self._over_cap_logged:
                log.warning(
                    "pre-roll ring over %d bytes: dropping old video (too few keyframes?)",
                    self.max_bytes,
                )
                self._over_cap_logged = True
            self._drop_oldest()
