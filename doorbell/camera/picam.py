"""The Raspberry Pi camera through picamera2: the only module that imports picamera2.

One video configuration with two streams, as the hardware ISP produces them at no CPU cost:
``main`` in "RGB888" (which, in memory, is B, G, R per pixel: exactly OpenCV's BGR) at
``camera.width`` x ``camera.height`` for recording, and ``lores`` in "YUV420" at
``camera.lores_width`` x ``camera.lores_height`` whose Y plane is the grey image motion
detection needs. Each read takes one *request*, so main and lores always come from the same
sensor frame, copies both out and releases the request at once (the camera's buffers are few).

Privacy masks are burned into the camera's own buffers by ``Picamera2.pre_callback``
(``MappedArray``, in place), which picamera2 runs on every request before handing it to the
application or to an encoder. With ``camera.hardware_encoder`` (and the recording settings,
which the recorder passes), picamera2's ``H264Encoder`` encodes the main stream on the GPU
(``repeat=True``: SPS/PPS before every keyframe; ``iperiod`` from the keyframe interval) and
a small ``Output`` queues each encoded frame; every :class:`~doorbell.camera.Frame` then
carries its packets (``Frame.packets``) and the recorder encodes nothing itself. A Pi 5 has
no hardware encoder (picamera2 then offers its libx264 ``LibavH264Encoder`` under the same
name): this backend then leaves encoding to the recorder's own libx264, as with
``hardware_encoder = false``.

picamera2 is imported when the camera opens, never at import time. What was verified only
against the fake module in ``tests/fake_picamera2.py`` and not on hardware is listed in
``docs/camera.md``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from doorbell.camera import BaseCamera, FrameTruth
from doorbell.errors import CameraError

if TYPE_CHECKING:
    from doorbell.config import CameraConfig, RecordingConfig
    from doorbell.masks import PolygonLike
    from doorbell.media.video import EncodedPacket, StreamInfo

log = logging.getLogger(__name__)

#: how long a read waits for the encoder's packet of the frame it captured (seconds)
ENCODER_TIMEOUT_S = 2.0


class PiCamera(BaseCamera):
    """A :class:`~doorbell.camera.Camera` on picamera2.

    ``picamera2_factory`` builds the ``Picamera2`` object (tests pass a fake; default: import
    ``picamera2.Picamera2``). With ``recording`` given and ``config.hardware_encoder`` true,
    the camera's hardware H.264 encoder runs and frames carry packets (see the module
    docstring); frame timestamps are then the sensor's timestamps, anchored to ``clock()``
    at the first frame, the same timeline as the packets'. Otherwise timestamps are
    ``clock()`` when each frame is handed over. ``encoder_timeout_s`` bounds the wait for a
    frame's packet. Raises :class:`CameraError` when picamera2 is missing or the camera
    cannot start, and from reads when the camera or its encoder stops delivering.
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        clock: Callable[[], float],
        privacy_masks: Iterable[PolygonLike] = (),
        picamera2_factory: Callable[[], Any] | None = None,
        recording: RecordingConfig | None = None,
        encoder_timeout_s: float = ENCODER_TIMEOUT_S,
    ) -> None:
        super().__init__(
            width=config.width, height=config.height, fps=config.fps, privacy_masks=privacy_masks
        )
        self._clock = clock
        self._lores_size = (config.lores_width, config.lores_height)
        self._encoder: Any = None
        self._encoder_timeout_s = encoder_timeout_s
        self._packets_in: queue.SimpleQueue[tuple[bytes, bool, int]] = queue.SimpleQueue()
        self._held: tuple[bytes, bool, int] | None = None  # a later frame's packet, read early
        self._taken: tuple[EncodedPacket, ...] | None = None
        self._assembler: Any = None
        self._first_sensor_us: int | None = None  # the first request's, as the encoder's
        self._first_lock = threading.Lock()
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
            self._camera.pre_callback = self._burn_in_masks  # before any request exists
            if config.hardware_encoder and recording is not None:
                self._start_encoder(recording)
            self._camera.start()
        except (RuntimeError, OSError, ValueError) as exc:
            self._stop_encoder()
            self._camera.close()
            raise CameraError(f"cannot start the Pi camera: {exc}") from exc

    @property
    def picamera2(self) -> Any:
        """The underlying Picamera2 object."""
        return self._camera

    @property
    def hardware_encoding(self) -> bool:
        """True when frames carry packets from the camera's hardware H.264 encoder."""
        return self._encoder is not None

    @property
    def encoded_stream_info(self) -> StreamInfo | None:
        if self._encoder is None:
            return None
        from doorbell.media.video import StreamInfo

        return StreamInfo(width=self.width, height=self.height, fps=self.fps)

    # --- the camera thread ----------------------------------------------------------------

    def _burn_in_masks(self, request: Any) -> None:
        """picamera2's pre_callback: black out the privacy masks in the request's own buffers.

        Runs in picamera2's thread on every request, before the application or an encoder
        sees it, so the hardware-encoded stream never holds a masked pixel. Also notes the
        first request's sensor timestamp, which is where the encoder's timestamps start.
        """
        if self._first_sensor_us is None and self._encoder is not None:
            with self._first_lock:
                if self._first_sensor_us is None:
                    self._first_sensor_us = _sensor_us(request)
        if not self._privacy:
            return
        from picamera2 import MappedArray

        from doorbell.masks import apply_privacy_masks

        width, height = self.width, self.height
        lores_width, lores_height = self._lores_size
        with MappedArray(request, "main") as mapped:
            apply_privacy_masks(mapped.array[:height, :width, :3], self._privacy, in_place=True)
        with MappedArray(request, "lores") as mapped:  # the Y plane; chroma is never used
            apply_privacy_masks(
                mapped.array[:lores_height, :lores_width], self._privacy, in_place=True
            )

    # --- the hardware encoder -------------------------------------------------------------

    def _start_encoder(self, recording: RecordingConfig) -> None:
        """Start picamera2's hardware H.264 encoder on main, or log why the recorder encodes."""
        try:
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output
        except ImportError as exc:
            log.warning("picamera2 has no H.264 encoder here (%s): encoding in software", exc)
            return
        if H264Encoder.__name__ != "H264Encoder":  # Pi 5: picamera2 aliases LibavH264Encoder
            log.info("no hardware H.264 encoder on this Pi: the recorder encodes with libx264")
            return
        from doorbell.camera.h264 import PacketAssembler

        iperiod = max(1, round(recording.keyframe_interval_s * self.fps))
        encoder = H264Encoder(bitrate=recording.bitrate_kbps * 1000, repeat=True, iperiod=iperiod)
        output = _packet_output(Output, self._packets_in.put)
        self._assembler = PacketAssembler(self.fps)
        self._encoder = encoder  # before start: the first request must see it
        try:
            self._camera.start_encoder(encoder, output, name="main")
        except (RuntimeError, OSError) as exc:
            self._encoder = self._assembler = None
            log.warning("cannot start the hardware H.264 encoder (%s): encoding in software", exc)

    def _stop_encoder(self) -> None:
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            try:
                self._camera.stop_encoder(encoder)
            except (RuntimeError, OSError) as exc:
                log.warning("stopping the H.264 encoder: %s", exc)

    def _collect_packets(self, upto_us: int) -> list[EncodedPacket]:
        """Packets up to encoder time ``upto_us`` (this frame's), waiting for the last one."""
        packets: list[EncodedPacket] = []
        while True:
            if self._held is not None:
                item, self._held = self._held, None
            else:
                try:
                    item = self._packets_in.get(timeout=self._encoder_timeout_s)
                except queue.Empty:
                    raise CameraError(
                        f"the hardware H.264 encoder delivered nothing for "
                        f"{self._encoder_timeout_s:g} s"
                    ) from None
            data, keyframe, timestamp_us = item
            if timestamp_us > upto_us:  # the encoder skipped our frame: it is the next one's
                self._held = item
                return packets
            packet = self._assembler.add(data, keyframe, timestamp_us)
            if packet is not None:
                packets.append(packet)
            if timestamp_us == upto_us and packet is not None:
                return packets

    # --- reading --------------------------------------------------------------------------

    def _capture(self) -> tuple[float, np.ndarray, np.ndarray, FrameTruth | None]:
        try:
            request = self._camera.capture_request()
        except (RuntimeError, OSError, TimeoutError) as exc:
            raise CameraError(f"the Pi camera stopped delivering frames: {exc}") from exc
        try:
            main = request.make_array("main")
            yuv = request.make_array("lores")
            sensor_us = _sensor_us(request) if self._encoder is not None else 0
        finally:
            request.release()
        if self._encoder is None:
            timestamp = self._clock()
        else:
            relative_us = sensor_us - (self._first_sensor_us or sensor_us)
            if not self._assembler.anchored:
                self._assembler.anchor(self._clock() - relative_us / 1_000_000)
            self._taken = tuple(self._collect_packets(relative_us))
            timestamp = self._assembler.time_of(relative_us)
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

    def _take_packets(self) -> tuple[EncodedPacket, ...] | None:
        packets, self._taken = self._taken, None
        return packets

    def _release(self) -> None:
        try:
            self._camera.stop()  # as Picamera2.stop_recording: the camera, then the encoder
            self._stop_encoder()
        finally:
            self._camera.close()


def _sensor_us(request: Any) -> int:
    """The request's sensor timestamp in microseconds, as picamera2's encoders compute it."""
    try:
        return int(request.get_metadata()["SensorTimestamp"] / 1000)
    except (KeyError, TypeError, ValueError) as exc:
        raise CameraError(f"the Pi camera gave a frame without a SensorTimestamp: {exc}") from exc


def _packet_output(output_class: type, put: Callable[[tuple[bytes, bool, int]], None]) -> Any:
    """A ``picamera2.outputs.Output`` that queues every encoded video frame for the reader.

    ``outputframe`` runs in the encoder's thread; it copies the bytes (the encoder reuses
    its buffer) and never blocks.
    """

    class PacketOutput(output_class):
        def outputframe(
            self,
            frame: Any,
            keyframe: bool = True,
            timestamp: int | None = None,
            packet: Any = None,
            audio: bool = False,
        ) -> None:
            if audio or frame is None or timestamp is None:
                return
            put((bytes(frame), bool(keyframe), int(timestamp)))

    return PacketOutput()
