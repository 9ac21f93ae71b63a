"""A video file as the camera: anything PyAV (FFmpeg) can decode.

Frames are scaled to ``camera.width`` x ``camera.height`` (main, BGR) and
``camera.lores_width`` x ``camera.lores_height`` (lores, grey). Timestamps follow the file's
own presentation times, offset to the clock at the first read, so debounce and cool-down keep
their meaning even when ``camera.realtime = false`` plays the file as fast as it decodes.
With ``camera.loop`` the file starts again at the end (timestamps keep increasing); without
it, the read after the last frame raises :class:`~doorbell.errors.CameraEnded`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from doorbell.camera import BaseCamera, FrameTruth, Pacer
from doorbell.errors import CameraEnded, CameraError

if TYPE_CHECKING:
    from doorbell.config import CameraConfig
    from doorbell.masks import PolygonLike


class FileCamera(BaseCamera):
    """Plays ``camera.path`` as a :class:`~doorbell.camera.Camera`.

    Raises :class:`CameraError` when the file is missing, not a video, or has no video stream.
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        privacy_masks: Iterable[PolygonLike] = (),
    ) -> None:
        import av  # imported here: only the file backend needs FFmpeg at capture time

        self._path = Path(config.path)
        try:
            self._container = av.open(str(self._path))
        except (OSError, av.FFmpegError) as exc:
            raise CameraError(f"camera.path {self._path}: cannot open as video: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"camera.path {self._path}: has no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else float(config.fps)
        super().__init__(
            width=config.width, height=config.height, fps=fps, privacy_masks=privacy_masks
        )
        self._lores_size = (config.lores_width, config.lores_height)
        self._loop = config.loop
        self._pacer = Pacer(fps, realtime=config.realtime, clock=clock, sleep=sleep)
        self._frames: Iterator[Any] = self._container.decode(stream)
        self._stream = stream
        self._loop_offset = 0.0  # seconds added to pts after each loop
        self._last_time = -1.0 / fps
        self._first_pts: float | None = None

    def _next_video_frame(self) -> Any:
        import av

        try:
            return next(self._frames)
        except StopIteration:
            pass
        except av.FFmpegError as exc:
            raise CameraError(f"camera.path {self._path}: decoding failed: {exc}") from exc
        if not self._loop:
            raise CameraEnded(f"camera.path {self._path}: end of file")
        self._loop_offset = self._last_time + 1.0 / self.fps
        self._first_pts = None
        try:
            self._container.seek(0)
            self._frames = self._container.decode(self._stream)
            return next(self._frames)
        except (StopIteration, av.FFmpegError) as exc:
            raise CameraError(f"camera.path {self._path}: cannot loop: {exc}") from exc

    def _capture(self) -> tuple[float, np.ndarray, np.ndarray, FrameTruth | None]:
        video_frame = self._next_video_frame()
        pts = float(video_frame.time) if video_frame.time is not None else None
        if pts is None:
            offset = self._last_time + 1.0 / self.fps
        else:
            if self._first_pts is None:
                self._first_pts = pts
            offset = self._loop_offset + pts - self._first_pts
        offset = max(offset, self._last_time + 1e-6)  # strictly increasing
        self._last_time = offset
        image = video_frame.to_ndarray(format="bgr24")
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        small = cv2.resize(image, self._lores_size, interpolation=cv2.INTER_AREA)
        lores = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        timestamp = self._pacer.wait(offset)
        return timestamp, image, lores, None

    def _release(self) -> None:
        self._container.close()
