"""Turn a camera encoder's output buffers into the recorder's :class:`EncodedPacket` stream.

picamera2's encoders hand each encoded frame to an ``Output`` as ``(bytes, keyframe,
timestamp_us)``, the timestamp in microseconds since the encoder's first frame. The recorder
needs more (contract of :class:`doorbell.media.video.EncodedPacket`): 90 kHz pts/dts that always
increase, ``time_s`` on the camera's clock, a nominal duration, and SPS/PPS in-band on every
keyframe so that any keyframe can start a clip. :class:`PacketAssembler` does that and
guards against two things a hardware encoder may do that libx264 does not (neither seen
here: both are unverified on a Pi, see docs/camera.md):

* hand over SPS/PPS as a buffer of their own (no picture in it): they are held and put in
  front of the next picture;
* send a keyframe without SPS/PPS in front: the last ones seen are put in front of it.

No picamera2 here: this module is pure bytes and numbers, tested directly.
"""

from __future__ import annotations

from doorbell.media.video import TIME_BASE, EncodedPacket

#: NAL unit types (H.264 table 7-1) that carry a picture (coded slices, IDR or not)
_VCL_TYPES = frozenset(range(1, 6))
_SPS, _PPS, _IDR = 7, 8, 5
_START = b"\x00\x00\x01"


def nal_units(data: bytes) -> list[tuple[int, int, int]]:
    """The NAL units of an Annex B buffer: (type, start of the start code, end), in order.

    The start code is 3 or 4 bytes (``00 00 01`` / ``00 00 00 01``); a unit ends where the
    next start code begins. Bytes before the first start code are ignored.
    """
    starts: list[tuple[int, int]] = []  # (start-code offset, payload offset)
    position = data.find(_START)
    while position >= 0:
        code_at = position - 1 if position > 0 and data[position - 1] == 0 else position
        starts.append((code_at, position + 3))
        position = data.find(_START, position + 3)
    units = []
    for i, (code_at, payload_at) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(data)
        if payload_at < end:
            units.append((data[payload_at] & 0x1F, code_at, end))
    return units


class PacketAssembler:
    """Encoder buffers in, :class:`EncodedPacket` objects out (one per picture).

    ``fps`` sets the nominal duration; ``anchor_s`` (settable later through :meth:`anchor`)
    is the camera-clock time of encoder timestamp 0, so ``time_s = anchor_s + timestamp_us
    / 1e6``. Not thread-safe: the frame reader owns it.
    """

    def __init__(self, fps: float) -> None:
        self._duration = max(1, round(1 / (fps * TIME_BASE)))
        self._anchor_s: float | None = None
        self._last_pts = -1
        self._pending_headers = b""
        self._headers = b""  # the last SPS+PPS seen, Annex B

    @property
    def anchored(self) -> bool:
        return self._anchor_s is not None

    def anchor(self, anchor_s: float) -> None:
        """Set the camera-clock time (seconds) of encoder timestamp 0 (once)."""
        if self._anchor_s is None:
            self._anchor_s = float(anchor_s)

    def time_of(self, timestamp_us: int) -> float:
        """Camera-clock seconds of an encoder timestamp (anchor 0 until anchored)."""
        return (self._anchor_s or 0.0) + timestamp_us / 1_000_000

    def add(self, data: bytes, keyframe: bool, timestamp_us: int) -> EncodedPacket | None:
        """One encoder buffer; returns its packet, or None for a buffer of headers only."""
        data = bytes(data)
        units = nal_units(data)
        types = {unit[0] for unit in units}
        if units and not types & _VCL_TYPES:  # SPS/PPS/SEI alone: keep for the next picture
            self._remember_headers(data, units)
            self._pending_headers += data
            return None
        if _SPS in types and _PPS in types:
            self._remember_headers(data, units)
        data, self._pending_headers = self._pending_headers + data, b""
        keyframe = bool(keyframe) or _IDR in types
        if keyframe and _SPS not in {unit[0] for unit in nal_units(data)} and self._headers:
            data = self._headers + data
        pts = max(round(timestamp_us / 1_000_000 / TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        return EncodedPacket(
            data=data,
            pts=pts,
            dts=pts,  # no B-frames: decode order is display order
            time_s=self.time_of(timestamp_us),
            is_keyframe=keyframe,
            duration=self._duration,
        )

    def _remember_headers(self, data: bytes, units: list[tuple[int, int, int]]) -> None:
        headers = b"".join(data[start:end] for kind, start, end in units if kind in (_SPS, _PPS))
        if headers:
            self._headers = headers
