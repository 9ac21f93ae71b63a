"""A fake ``picamera2`` package that follows the library's documented API (0.3.x), for tests.

What it models, and how the real library does it (raspberrypi/picamera2):

- ``Picamera2()``, ``create_video_configuration(main=, lores=, controls=, buffer_count=)``,
  ``configure``, ``start``, ``stop``, ``close``; ``capture_request()`` returns a request with
  ``make_array(name)`` (a copy), ``get_metadata()`` (``SensorTimestamp`` in ns) and
  ``release()``. "RGB888" is B, G, R in memory, rows padded to a stride; "YUV420" is
  (h * 3 / 2) x stride with the Y plane on top.
- The camera runs on its own: each ``capture_request`` first lets ``frames_per_capture`` new
  sensor frames complete (more than one: the application fell behind). For each completed
  request, in picamera2's ``process_requests`` order: ``pre_callback(request)``, then the
  application's capture (only the newest request is kept for it), then every running
  encoder's ``encode("main", request)``.
- ``MappedArray(request, "main")`` is a writable view of the request's own buffer (shaped
  h x stride/3 x 3, padding on the right; YUV420 h*3/2 x stride), so what ``pre_callback``
  writes is what the encoder reads.
- ``picamera2.encoders.H264Encoder(bitrate, repeat, iperiod, ...)`` is the V4L2 hardware
  encoder: ``start_encoder(encoder, output, name="main")`` sets its size, stride and format
  from the configuration; ``encode`` takes the buffer *after* pre_callback, and a thread
  delivers ``output.outputframe(bytes, keyframe, timestamp_us)``, the timestamp relative to
  the first encoded request's ``SensorTimestamp`` (``Encoder._timestamp``). Here the "GPU" is
  PyAV's libx264: no B-frames, SPS/PPS repeated when ``repeat``, a keyframe every
  ``iperiod`` frames. With ``FakePicamera2.hardware_encoder = False`` the package offers
  ``LibavH264Encoder`` under the name ``H264Encoder``, as picamera2 does on a Pi 5.
- ``picamera2.outputs.Output``: ``outputframe(frame, keyframe=True, timestamp=None,
  packet=None, audio=False)``, ``start``, ``stop``, ``_add_stream``.

Knobs for fault tests: ``fail_on_start``, ``encoder_stalls`` (no output at all),
``frames_per_capture``, ``painter`` (draws each main frame), ``frame_interval_ns``.
"""

from __future__ import annotations

import queue
import sys
import threading
import types
from fractions import Fraction
from typing import Any, ClassVar

import av
import numpy as np

MAIN_PAD = 8  # pixels of row padding on main (stride > width * 3)
LORES_PAD = 16


def default_painter(n: int, image: np.ndarray) -> None:
    image[:, :, 0] = (10 + n) % 256  # blue
    image[:, :, 1] = 0
    image[:, :, 2] = 200  # red


class FakeRequest:
    def __init__(self, camera: FakePicamera2, n: int) -> None:
        self.camera = camera
        self.config = camera.configured
        self.n = n
        self.uses = 1
        main, lores = camera.configured["main"], camera.configured["lores"]
        width, height = main["size"]
        self.buffers: dict[str, np.ndarray] = {
            "main": np.zeros((height, width + MAIN_PAD, 3), np.uint8),
        }
        camera.painter(n, self.buffers["main"][:, :width])
        lw, lh = lores["size"]
        yuv = np.full((lh * 3 // 2, lw + LORES_PAD), 128, np.uint8)
        yuv[:lh, :lw] = (50 + n) % 256  # Y plane
        self.buffers["lores"] = yuv
        self.metadata = {"SensorTimestamp": camera.sensor_ns, "ExposureTime": 10_000}

    @property
    def released(self) -> bool:
        return self.uses <= 0

    def acquire(self) -> None:
        self.uses += 1

    def make_array(self, name: str) -> np.ndarray:
        if self.released:
            raise RuntimeError("request already released")
        stream = self.camera.configured[name]
        expected = {"main": "RGB888", "lores": "YUV420"}[name]
        if stream["format"] != expected:
            raise ValueError(stream["format"])
        return self.buffers[name].copy()

    def get_metadata(self) -> dict:
        return dict(self.metadata)

    def release(self) -> None:
        self.uses -= 1
        if self.uses == 0:
            self.camera.outstanding -= 1


class MappedArray:
    """A writable view of the request's own buffer (picamera2.MappedArray, reshape=True)."""

    def __init__(
        self, request: FakeRequest, stream: str, reshape: bool = True, write: bool = True
    ) -> None:
        self._request, self._stream = request, stream
        self.array: np.ndarray | None = None

    def __enter__(self) -> MappedArray:
        if self._request.released:
            raise RuntimeError("request already released")
        self.array = self._request.buffers[self._stream]
        return self

    def __exit__(self, *exc: object) -> None:
        self.array = None


class Output:
    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(
        self,
        frame: Any,
        keyframe: bool = True,
        timestamp: Any = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        pass

    def _add_stream(self, *args: Any, **kwargs: Any) -> None:
        pass


class Encoder:
    def encode(self, stream: str, request: FakeRequest) -> None:
        raise NotImplementedError  # the two encoders below encode

    def __init__(self) -> None:
        self.width = self.height = self.stride = 0
        self.format: str | None = None
        self._output: list[Output] = []
        self.firsttimestamp: int | None = None
        self.running = False

    @property
    def output(self) -> Any:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(out, Output) for out in values):
            raise RuntimeError("Must pass Output")
        self._output = values

    def _timestamp(self, request: FakeRequest) -> int:
        ts = int(request.metadata["SensorTimestamp"] / 1000)
        if self.firsttimestamp is None:
            self.firsttimestamp = ts
        return ts - self.firsttimestamp

    def outputframe(self, frame: Any, keyframe: bool = True, timestamp: Any = None) -> None:
        for out in self._output:
            out.outputframe(frame, keyframe, timestamp, None, False)


class H264Encoder(Encoder):
    """The V4L2 hardware encoder, played by libx264 in a thread."""

    instances: ClassVar[list[H264Encoder]] = []

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int | None = None,
        framerate: float | None = None,
        enable_sps_framerate: bool = False,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__()
        self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
        self.framerate = framerate
        self.frames_in: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()
        self.encoded = 0
        H264Encoder.instances.append(self)

    def start(self) -> None:
        if self.running:
            raise RuntimeError("Encoder already running")
        if self.format != "RGB888":
            raise RuntimeError(f"fake encoder takes RGB888, got {self.format}")
        context: Any = av.CodecContext.create("libx264", "w")
        context.width, context.height, context.pix_fmt = self.width, self.height, "yuv420p"
        context.time_base = Fraction(1, 1_000_000)
        # x264's rate control budgets bits per frame from the frame rate (the GPU's from the
        # sensor's pace); without it the 1 us time base would starve every frame
        context.framerate = Fraction(self.framerate or 30).limit_denominator(1001)
        context.bit_rate = self.bitrate or 2_000_000
        context.gop_size = self.iperiod or 60
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": "bframes=0:scenecut=0",
        }
        if not self.repeat:  # as picamera2's LibavH264Encoder: SPS/PPS once, out of band
            context.flags |= av.codec.context.Flags.global_header
        context.open()
        self._context = context
        self.firsttimestamp = None
        self.running = True
        for out in self._output:
            out.start()
        self._thread = threading.Thread(target=self._run, name="fake-v4l2", daemon=True)
        self._thread.start()

    def encode(self, stream: str, request: FakeRequest) -> None:
        timestamp_us = self._timestamp(request)
        with MappedArray(request, stream) as mapped:  # after pre_callback, like the GPU DMA
            assert mapped.array is not None
            image = np.ascontiguousarray(mapped.array[:, : self.width])
        self.frames_in.put((image, timestamp_us))

    def stop(self) -> None:
        if not self.running:
            raise RuntimeError("Encoder already stopped")
        self.running = False
        self.frames_in.put(None)
        self._thread.join(timeout=10)
        for out in self._output:
            out.stop()

    def _run(self) -> None:
        while (item := self.frames_in.get()) is not None:
            image, timestamp_us = item
            if FakePicamera2.encoder_stalls:
                continue
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = timestamp_us
            frame.time_base = self._context.time_base
            for packet in self._context.encode(frame.reformat(format="yuv420p")):
                self.encoded += 1
                self.outputframe(bytes(packet), packet.is_keyframe, packet.pts)


class LibavH264Encoder(H264Encoder):
    """What ``H264Encoder`` is on a Pi 5 (software); the adapter must not use it."""


class FakePicamera2:
    instances: ClassVar[list[FakePicamera2]] = []
    fail_on_start = False
    hardware_encoder = True
    encoder_stalls = False
    frames_per_capture = 1
    frame_interval_ns = 66_666_667  # 15 fps
    painter = staticmethod(default_painter)

    def __init__(self, camera_num: int = 0) -> None:
        self.started = self.closed = False
        self.configured: dict = {}
        self.frame_number = 0
        self.sensor_ns = 5_000_000_000_000
        self.outstanding = 0
        self.pre_callback: Any = None
        self.post_callback: Any = None
        self.encoders: list[Encoder] = []
        self.pre_callback_calls = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(
        self, main=None, lores=None, controls=None, buffer_count=6, **kwargs
    ):
        return {
            "main": dict(main),
            "lores": dict(lores),
            "controls": dict(controls or {}),
            "buffer_count": buffer_count,
        }

    def configure(self, config) -> None:
        self.configured = config

    def start_encoder(self, encoder=None, output=None, pts=None, quality=None, name=None):
        if encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            encoder.output = output
        stream = self.configured[name or "main"]
        encoder.width, encoder.height = stream["size"]
        encoder.stride = (stream["size"][0] + MAIN_PAD) * 3
        encoder.format = stream["format"]
        if getattr(encoder, "framerate", None) is None:
            encoder.framerate = self.configured["controls"].get("FrameRate")
        encoder.start()
        self.encoders.append(encoder)

    def stop_encoder(self, encoders=None) -> None:
        chosen = (
            self.encoders
            if encoders is None
            else (encoders if isinstance(encoders, list) else [encoders])
        )
        for encoder in list(chosen):
            encoder.stop()
            self.encoders.remove(encoder)

    def start(self) -> None:
        if FakePicamera2.fail_on_start:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.started = True

    def _complete_one(self) -> FakeRequest:
        """One sensor frame completes: pre_callback, then (by the caller) capture, encode."""
        self.frame_number += 1
        self.sensor_ns += FakePicamera2.frame_interval_ns
        self.outstanding += 1
        request = FakeRequest(self, self.frame_number)
        if self.pre_callback is not None:
            self.pre_callback_calls += 1
            self.pre_callback(request)
        return request

    def capture_request(self) -> FakeRequest:
        if not self.started:
            raise RuntimeError("camera not started")
        completed = [self._complete_one() for _ in range(FakePicamera2.frames_per_capture)]
        captured = completed[-1]
        captured.acquire()  # the application's use; older ones were dropped for it
        for request in completed:
            for encoder in self.encoders:
                encoder.encode("main", request)
            request.release()
        return captured

    def capture_array(self, name: str = "main") -> np.ndarray:
        request = self.capture_request()
        try:
            return request.make_array(name)
        finally:
            request.release()

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def install(monkeypatch: Any) -> types.ModuleType:
    """Put the fake ``picamera2`` (and its ``encoders``/``outputs``) into sys.modules."""
    module = types.ModuleType("picamera2")
    encoders = types.ModuleType("picamera2.encoders")
    outputs = types.ModuleType("picamera2.outputs")
    module.__dict__.update(
        Picamera2=FakePicamera2, MappedArray=MappedArray, encoders=encoders, outputs=outputs
    )
    encoders.__dict__.update(
        Encoder=Encoder,
        LibavH264Encoder=LibavH264Encoder,
        H264Encoder=H264Encoder if FakePicamera2.hardware_encoder else LibavH264Encoder,
    )
    outputs.__dict__.update(Output=Output)
    for name, value in (
        ("picamera2", module),
        ("picamera2.encoders", encoders),
        ("picamera2.outputs", outputs),
    ):
        monkeypatch.setitem(sys.modules, name, value)
    return module


def reset() -> None:
    """Default knobs and no instances (call before each test)."""
    FakePicamera2.instances = []
    H264Encoder.instances = []
    FakePicamera2.fail_on_start = False
    FakePicamera2.hardware_encoder = True
    FakePicamera2.encoder_stalls = False
    FakePicamera2.frames_per_capture = 1
    FakePicamera2.frame_interval_ns = 66_666_667
    FakePicamera2.painter = staticmethod(default_painter)
