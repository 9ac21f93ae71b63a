"""Live feed between processes: the recorder publishes, the web UI subscribes (unix socket).

What flows: masked live JPEG frames (a few per second, small) and events (``motion_start``,
``motion_stop``, ``ring``, ``clip_sealed``, ``camera_fault``, ``camera_ok``). Never keys,
never anything the web process could not see on screen anyway. Memory only: nothing here
writes a file except the socket itself.

Messages are length-prefixed: a small JSON header (``kind``, ``time``; a frame adds
``width``/``height``) and an optional payload (a frame's JPEG); see :mod:`doorbell.live.wire`.

Access: the socket file gets mode 0660 and, if ``group`` is given, that group. Deploy with a
group both the recorder and web users belong to (as deployed: ``/run/doorbell`` is 0750
``doorbell-rec:doorbell`` from tmpfiles.d, both service users are in group ``doorbell``, and
the recorder passes ``group="doorbell"``); nobody else can connect.

A subscriber says at most one thing: :data:`~doorbell.live.wire.EVENTS_ONLY_REQUEST` right
after connecting (the notifier), and from then on it gets events and never a frame.

A slow or dead subscriber never blocks the publisher: :meth:`LivePublisher.publish_frame`
and :meth:`~LivePublisher.publish_event` only append to a small per-subscriber queue; one I/O
thread sends without blocking. Old frames are dropped for a subscriber that lags (events are
kept), and a subscriber that makes no progress for ``stall_timeout_s`` or whose backlog grows
past the limits is disconnected. The subscriber reconnects with exponential backoff.

Modules: :mod:`doorbell.live.wire` (message format), :mod:`doorbell.live.publisher`
(recorder side), :mod:`doorbell.live.subscriber` (web side). All public names are here too.
"""

from __future__ import annotations

from doorbell.live.publisher import LivePublisher
from doorbell.live.subscriber import LiveSubscriber
from doorbell.live.wire import (
    EVENT_KINDS,
    FRAME,
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    LiveError,
    LiveMessage,
    encode_message,
)

__all__ = [
    "EVENT_KINDS",
    "FRAME",
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "LiveError",
    "LiveMessage",
    "LivePublisher",
    "LiveSubscriber",
    "encode_message",
]
