"""The Raspberry Pi camera through picamera2: the only module that imports picamera2.

One video configuration with two streams, as the hardware ISP produces them at no CPU cost:
``main`` in "RGB888" (which, in memory, is B, G, R per pixel: exactly OpenCV's BGR) at
``camera.width`` x ``camera.height`` for recording, and ``lores`` in "YUV420" at
``camera.lores_width`` x ``camera.lores_height`` whose Y plane is the grey image motion
detection needs. Each read takes one *request*, so main and lores always come from the same
sensor frame, copies both out and releases the request at once (the camera's buffers are few).

picamera2 is imported when the camera opens, never at import time. What was verified only
against the fake module in ``tests/test_camera_picam.py`` and not on hardware is listed in
``docs/camera.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from doorbell.camera import BaseCamera, FrameTruth
from doorbell.errors import CameraError

if TYPE_CHECKING:
    from doorbell.config import CameraConfig


class PiCamera(BaseCamera):
    """A :class:`~doorbell.camera.Camera` on picamera2.

    ``picamera2_factory`` builds the ``Picamera2`` object (tests pass a fake; default: import
    ``picamera2.Picamera2``). Timestamps are ``clock()`` when each frame is handed over.
    Raises :class:`CameraError` when picamera2 is missing or the camera cannot start.
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        clock: Callable[[], float],
        privacy_masks: Iterable[Any] = (),
        picamera2_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(
            width=config.width, height=config.height, fps=config.fps, privacy_masks=privacy_masks
        )
        self._clock = clock
        self._lores_size = (config.lores_width, config.lores_height)
        if picamera2_factory is None:
            try:
                from picamera2 import Picamera2
            except ImportError as exc:
                raise CameraError(
                    "camera.backend = 'picamera2' but picamera2 is not importable: install "
                    "python3-picamera2 with apt and create the venv with --system-site-packages"
                ) from exc
            picamera2_factory = Picamera2
        try:
            self._camera = picamera2_factory()
        except (RuntimeError, OSError, IndexError) as exc:  # no camera attached / busy
            raise CameraError(f"cannot open the Pi camera: {exc}") from exc
        try:
            video_config = self._camera.create_video_configuration(
                main={"size": (config.width, config.height), "format": "RGB888"},
                lores={"size": self._lores_size, "format": "YUV420"},
                controls={"FrameRate": float(config.fps)},
                buffer_count=6,
            )
            self._camera.configure(video_config)
            self._camera.start()
        except (RuntimeError, OSError, ValueError) as exc:
            self._camera.close()
            raise CameraError(f"cannot start the Pi camera: {exc}") from exc

    @property
    def picamera2(self) -> Any:
        """The underlying Picamera2 object (for the H.264 encoder on the Pi)."""
        return self._camera

    def _capture(self) -> tuple[float, np.ndarray, np.ndarray, FrameTruth | None]:
        try:
            request = self._camera.capture_request()
        except (RuntimeError, OSError, TimeoutError) as exc:
            raise CameraError(f"the Pi camera stopped delivering frames: {exc}") from exc
        try:
            main = request.make_array("main")
            yuv = request.make_array("lores")
        finally:
            request.release()
        timestamp = self._clock()
        width, height = self.width, self.height
        lores_width, lores_height = self._lores_size
        if main.ndim != 3 or main.shape[0] < height or main.shape[1] < width:
            raise CameraError(f"main stream gave {main.shape}, expected {height}x{width}x3")
        if yuv.ndim != 2 or yuv.shape[0] < lores_height or yuv.shape[1] < lores_width:
            raise CameraError(
                f"lores stream gave {yuv.shape}, expected YUV420 {lores_width}x{lores_height}"
            )
        # own, writable copies: strides may pad rows, and the buffers went back to the camera
        main = np.array(main[:height, :width, :3], dtype=np.uint8, order="C", copy=True)
        lores = np.array(yuv[:lores_height, :lores_width], dtype=np.uint8, order="C", copy=True)
        return timestamp, main, lores, None

    def _release(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()
