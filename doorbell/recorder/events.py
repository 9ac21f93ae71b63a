"""Where the recorder says what happens: one :class:`RecorderEvents` sink, and its adapters.

The recorder reports four things: live JPEG frames, events (``motion_start``, ``ring``,
``clip_sealed``, ``camera_fault``, ``storage_full``...), whether it is recording, and its
service status for systemd (``READY=1``, ``WATCHDOG=1``, ``STATUS=...``). Each consumer is an
adapter that implements the part it cares about on top of :class:`NoEvents`:

- :class:`LiveEvents`: frames and events to the live socket (:mod:`doorbell.live`);
- :class:`RecordingLed`: the recording LED of the :class:`~doorbell.bell.Bell`;
- :class:`ServiceStatus`: systemd notifications;

and :class:`EventFanout` hands every report to several of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from doorbell.bell import Bell
    from doorbell.config import Config
    from doorbell.live.publisher import LivePublisher

#: An event's details: JSON-ready values (str, int, float, bool, None, lists of those).
EventDetails = Mapping[str, object]


class RecorderEvents(Protocol):
    """What the recorder reports while it runs (called from the recorder's thread)."""

    @property
    def wants_frames(self) -> bool:
        """True: the recorder encodes live JPEG frames and passes them to :meth:`live_frame`."""
        ...

    def live_frame(self, jpeg: bytes, *, time_s: float, recording: bool) -> None:
        """A live view frame (JPEG) taken at wall-clock ``time_s`` (UTC epoch seconds)."""
        ...

    def event(self, kind: str, details: EventDetails) -> None:
        """Something happened: ``kind`` (e.g. ``"motion_start"``) and its details."""
        ...

    def recording_changed(self, recording: bool) -> None:
        """A clip opened (True) or was sealed or abandoned (False)."""
        ...

    def service_status(self, message: str) -> None:
        """A systemd notification: ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``, ``STOPPING=1``."""
        ...


class NoEvents:
    """A sink that ignores everything; adapters override what they use."""

    @property
    def wants_frames(self) -> bool:
        return False

    def live_frame(self, jpeg: bytes, *, time_s: float, recording: bool) -> None:
        return None

    def event(self, kind: str, details: EventDetails) -> None:
        return None

    def recording_changed(self, recording: bool) -> None:
        return None

    def service_status(self, message: str) -> None:
        return None


class EventFanout:
    """Every report goes to each of ``sinks``, in order."""

    def __init__(self, *sinks: RecorderEvents) -> None:
        self._sinks = sinks

    @property
    def wants_frames(self) -> bool:
        return any(sink.wants_frames for sink in self._sinks)

    def live_frame(self, jpeg: bytes, *, time_s: float, recording: bool) -> None:
        for sink in self._sinks:
            if sink.wants_frames:
                sink.live_frame(jpeg, time_s=time_s, recording=recording)

    def event(self, kind: str, details: EventDetails) -> None:
        for sink in self._sinks:
            sink.event(kind, details)

    def recording_changed(self, recording: bool) -> None:
        for sink in self._sinks:
            sink.recording_changed(recording)

    def service_status(self, message: str) -> None:
        for sink in self._sinks:
            sink.service_status(message)


class LiveEvents(NoEvents):
    """Frames and events to the live socket, frames scaled as ``config.live`` asks."""

    def __init__(
        self,
        publisher: LivePublisher,
        config: Config,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._publisher = publisher
        self._width = min(config.live.width, config.camera.width)
        self._height = round(config.camera.height * self._width / config.camera.width)
        self._wall_clock = wall_clock

    @property
    def wants_frames(self) -> bool:
        return True

    def live_frame(self, jpeg: bytes, *, time_s: float, recording: bool) -> None:
        self._publisher.publish_frame(jpeg, time_s=time_s, width=self._width, height=self._height)

    def event(self, kind: str, details: EventDetails) -> None:
        self._publisher.publish_event(kind, time_s=self._wall_clock(), **details)


class RecordingLed(NoEvents):
    """The bell's recording LED follows the recording state."""

    def __init__(self, bell: Bell) -> None:
        self._bell = bell

    def recording_changed(self, recording: bool) -> None:
        self._bell.set_recording(recording)


class ServiceStatus(NoEvents):
    """Status messages to systemd through ``notify`` (e.g. :func:`doorbell.service.notify`)."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify

    def service_status(self, message: str) -> None:
        self._notify(message)
