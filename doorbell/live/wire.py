"""The live socket's message format: length-prefixed JSON header plus optional payload.

::

    uint32 header_length | uint32 payload_length | header (UTF-8 JSON object) | payload

Big-endian lengths. The header always has ``kind`` (``"frame"`` or one of
:data:`EVENT_KINDS`) and ``time`` (seconds on the recorder's clock); a frame's header also
has ``width`` and ``height`` and its payload is the JPEG.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from doorbell.errors import DoorbellError

EVENT_KINDS = (
    "motion_start",
    "motion_stop",
    "ring",
    "clip_sealed",
    "camera_fault",
    "camera_ok",
    "storage_full",
    "storage_ok",
)
FRAME = "frame"
PREFIX = struct.Struct(">II")
MAX_HEADER_BYTES = 16 << 10
MAX_PAYLOAD_BYTES = 4 << 20
#: The one thing a subscriber may say: "send me events, never frames" (the notifier).
EVENTS_ONLY_REQUEST = b"E"


class LiveError(DoorbellError, OSError):
    """The live socket cannot be created, or a message is malformed."""


@dataclass(frozen=True)
class LiveMessage:
    """One message: ``kind`` is ``"frame"`` or an event kind; ``payload`` is a frame's JPEG."""

    kind: str
    time_s: float
    header: dict[str, Any]
    payload: bytes = b""
    seq: int = field(default=0, compare=False)

    @property
    def is_frame(self) -> bool:
        return self.kind == FRAME


def encode_message(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """The wire bytes of one message (see the module docstring)."""
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if len(raw) > MAX_HEADER_BYTES or len(payload) > MAX_PAYLOAD_BYTES:
        raise LiveError(f"live message too large ({len(raw)} + {len(payload)} bytes)")
    return PREFIX.pack(len(raw), len(payload)) + raw + payload
