"""Cameras: where frames come from (the mock scene, a video file, or the Pi camera).

Every backend gives the same thing, a :class:`Frame` per read: a monotonic timestamp, the
**main** image (BGR, recorded) and a **lores** grey image (motion analysis), as picamera2's
main and lores streams do. Privacy masks are applied to both before a frame leaves the camera
layer, so nothing downstream (encoder, pre-roll, live view, thumbnails, motion) ever sees the
masked regions.

Usage::

    with open_camera(config.camera, privacy_masks=config.privacy.masks) as camera:
        for frame in camera:          # ends cleanly when a finite source ends
            detector.update(frame)

Backends are imported only when :func:`open_camera` picks them; importing this package does
nothing else (no hardware probe, no file access).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from doorbell.errors import CameraEnded, CameraError, ConfigError

if TYPE_CHECKING:
    from doorbell.config import CameraConfig, RecordingConfig
    from doorbell.masks import PolygonLike
    from doorbell.media.video import EncodedPacket, StreamInfo

#: A box in pixels of the image it belongs to: (x, y, width, height).
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class FrameTruth:
    """What the mock scene really contains in one frame (ground truth for tests and benches).

    ``boxes`` are in **main** image pixels, ``labels`` name each box ("person", "car"), and
    ``event_active`` is true while something the owner wants recorded (a person) is in view.
    ``conditions`` name the scene-wide effects present ("night", "porch_light", "cloud",
    "rain", "snow", "exposure", "wind", "dusk").
    """

    boxes: tuple[Box, ...] = ()
    event_active: bool = False
    labels: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Frame:
    """One frame from a camera.

    ``index`` counts from 0 without gaps; ``timestamp`` is monotonic seconds; ``main`` is an
    H x W x 3 uint8 BGR image (OpenCV order, what picamera2 calls "RGB888"); ``lores`` an
    h x w uint8 grey image for analysis; ``truth`` is set by the mock backend only.

    ``packets`` is None unless the camera encodes H.264 itself (picamera2's hardware
    encoder): then it holds, in decode order, every packet the encoder produced since the
    previous frame up to and including this frame's own (more than one when the consumer
    fell behind and the camera skipped frames; the encoder never skips). They follow
    :class:`~doorbell.media.video.EncodedPacket`'s contract: Annex B, SPS/PPS in-band on every
    keyframe, increasing pts/dts, no B-frames, ``time_s`` on this frame's clock, and
    :attr:`BaseCamera.encoded_stream_info` describes them.
    """

    index: int
    timestamp: float
    main: np.ndarray = field(repr=False)
    lores: np.ndarray = field(repr=False)
    truth: FrameTruth | None = None
    packets: tuple[EncodedPacket, ...] | None = field(default=None, repr=False)


@runtime_checkable
class Camera(Protocol):
    """What every backend offers. Context-managed; ``close()`` is idempotent."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> float: ...

    @property
    def encoded_stream_info(self) -> StreamInfo | None:
        """What the camera's own H.264 packets are (``Frame.packets``); None: it sends none."""
        ...

    def set_privacy_masks(self, privacy_masks: Iterable[PolygonLike]) -> None:
        """Replace the privacy masks (relative polygons); frames read from now on carry them."""
        ...

    def read(self) -> Frame:
        """The next frame (blocking). Raises CameraEnded at the end, CameraError on a fault."""
        ...

    def __iter__(self) -> Iterator[Frame]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Camera: ...
    def __exit__(self, *exc_info: object) -> None: ...


class BaseCamera:
    """Shared plumbing: frame numbering, privacy masks, iteration and lifecycle.

    A backend implements :meth:`_capture` returning (timestamp, main, lores, truth) and, if it
    holds resources, :meth:`_release`.
    """

    def __init__(
        self, *, width: int, height: int, fps: float, privacy_masks: Iterable[PolygonLike] = ()
    ) -> None:
        from doorbell.masks import normalise_polygons

        self._width = int(width)
        self._height = int(height)
        self._fps = float(fps)
        self._privacy = normalise_polygons(privacy_masks)
        self._index = 0
        self._closed = False

    def set_privacy_masks(self, privacy_masks: Iterable[PolygonLike]) -> None:
        """Replace the privacy masks; frames read from now on carry the new ones."""
        from doorbell.masks import normalise_polygons

        self._privacy = normalise_polygons(privacy_masks)

    @property
    def width(self) -> int:
        """Main image width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Main image height in pixels."""
        return self._height

    @property
    def fps(self) -> float:
        """Nominal frames per second."""
        return self._fps

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def encoded_stream_info(self) -> StreamInfo | None:
        """What the camera's own H.264 packets are (``Frame.packets``); None: it sends none."""
        return None

    def read(self) -> Frame:
        """The next frame, privacy masks applied to main and lores.

        Raises :class:`CameraEnded` at the end of a finite source, :class:`CameraError` when
        the camera is closed or fails.
        """
        if self._closed:
            raise CameraError("camera is closed")
        timestamp, main, lores, truth = self._capture()
        if self._privacy:
            from doorbell.masks import apply_privacy_masks

            main = apply_privacy_masks(main, self._privacy, in_place=main.flags.writeable)
            lores = apply_privacy_masks(lores, self._privacy, in_place=lores.flags.writeable)
        frame = Frame(self._index, timestamp, main, lores, truth, self._take_packets())
        self._index += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source ends (CameraEnded stops the iteration quietly)."""
        while True:
            try:
                yield self.read()
            except CameraEnded:
                return

    def close(self) -> None:
        """Release the source; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> BaseCamera:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _capture(self) -> tuple[float, np.ndarray, np.ndarray, FrameTruth | None]:
        raise NotImplementedError  # pragma: no cover

    def _take_packets(self) -> tuple[EncodedPacket, ...] | None:
        """The encoded packets for the frame just captured (None: the camera encodes nothing)."""
        return None

    def _release(self) -> None:
        """Free backend resources (nothing by default)."""


class Pacer:
    """Sleeps so frame ``n`` is delivered ``n / fps`` seconds after the first (when realtime)."""

    def __init__(
        self,
        fps: float,
        *,
        realtime: bool,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._interval = 1.0 / fps
        self._realtime = realtime
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None

    def wait(self, offset_s: float) -> float:
        """Wait until ``offset_s`` after the first call; return the timestamp for that frame.

        Not realtime: no sleeping; timestamps are the start time plus the offset, so a fast
        run still sees the source's own timing (debounce and cool-down keep their meaning).
        """
        if self._start is None:
            self._start = self._clock()
        due = self._start + offset_s
        if self._realtime:
            delay = due - self._clock()
            if delay > 0:
                self._sleep(delay)
        return due


def open_camera(
    camera_config: CameraConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    privacy_masks: Iterable[PolygonLike] = (),
    recording: RecordingConfig | None = None,
) -> BaseCamera:
    """Open the backend ``camera_config.backend`` names: "mock", "file" or "picamera2".

    ``clock`` (monotonic seconds) and ``sleep`` are injected so tests run faster than real
    time. ``privacy_masks`` (relative polygons) are blacked out in main and lores.
    ``recording`` (the recorder passes it) lets the picamera2 backend start the camera's
    hardware H.264 encoder with the recording's bitrate and keyframe interval
    (``camera.hardware_encoder``); without it no camera encodes anything.
    Raises :class:`ConfigError` for an unknown backend, :class:`CameraError` when the source
    cannot be opened.
    """
    backend = camera_config.backend
    if backend == "mock":
        from doorbell.camera.mock import MockCamera

        return MockCamera(camera_config, clock=clock, sleep=sleep, privacy_masks=privacy_masks)
    if backend == "file":
        from doorbell.camera.file import FileCamera

        return FileCamera(camera_config, clock=clock, sleep=sleep, privacy_masks=privacy_masks)
    if backend == "picamera2":
        from doorbell.camera.picam import PiCamera

        return PiCamera(
            camera_config, clock=clock, privacy_masks=privacy_masks, recording=recording
        )
    raise ConfigError(f"camera.backend: {backend!r} is not one of 'mock', 'file', 'picamera2'")


__all__ = [
    "BaseCamera",
    "Box",
    "Camera",
    "CameraEnded",
    "CameraError",
    "Frame",
    "FrameTruth",
    "Pacer",
    "open_camera",
]
