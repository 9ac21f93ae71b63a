"""The picamera2 adapter against a fake ``picamera2`` module that follows its API.

The fake mirrors what the adapter relies on: ``Picamera2()``, ``create_video_configuration``
with main/lores dicts, ``configure``, ``start``, ``capture_request`` returning a request with
``make_array(name)`` and ``release()``, ``stop``, ``close``; "RGB888" arrays are H x W x 3 in
B, G, R order and "YUV420" arrays are (h * 3 / 2) x stride with the Y plane on top. Real
hardware may differ; docs/camera.md lists what was verified where.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import ClassVar

import numpy as np
import pytest

from doorbell.camera import open_camera
from doorbell.config import CameraConfig, Polygon
from doorbell.errors import CameraError

CONFIG = CameraConfig(backend="picamera2", width=64, height=48, lores_width=32, lores_height=24,
                      fps=15)  # fmt: skip


class FakeRequest:
    def __init__(self, camera: FakePicamera2) -> None:
        self.camera = camera
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        if self.released:
            raise RuntimeError("request already released")
        stream = self.camera.configured[name]
        width, height = stream["size"]
        n = self.camera.frame_number
        if name == "main":
            if stream["format"] != "RGB888":
                raise ValueError(stream["format"])
            image = np.zeros((height, width + 8, 3), np.uint8)  # row padding like a stride
            image[:, :, 0] = 10 + n  # blue
            image[:, :, 2] = 200  # red
            return image
        if stream["format"] != "YUV420":
            raise ValueError(stream["format"])
        yuv = np.full((height * 3 // 2, width + 16), 128, np.uint8)
        yuv[:height, :width] = 50 + n  # Y plane
        return yuv

    def release(self) -> None:
        self.released = True
        self.camera.outstanding -= 1


class FakePicamera2:
    instances: ClassVar[list[FakePicamera2]] = []
    fail_on_start = False

    def __init__(self, camera_num: int = 0) -> None:
        self.started = self.closed = False
        self.configured: dict = {}
        self.frame_number = 0
        self.outstanding = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, controls=None, buffer_count=6,
                                   **kwargs):  # fmt: skip
        return {"main": dict(main), "lores": dict(lores), "controls": dict(controls or {}),
                "buffer_count": buffer_count}  # fmt: skip

    def configure(self, config) -> None:
        self.configured = config

    def start(self) -> None:
        if FakePicamera2.fail_on_start:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.started = True

    def capture_request(self) -> FakeRequest:
        if not self.started:
            raise RuntimeError("camera not started")
        self.frame_number += 1
        self.outstanding += 1
        return FakeRequest(self)

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


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    FakePicamera2.fail_on_start = False
    return module


def test_configures_main_rgb888_and_lores_yuv420(fake_picamera2):
    with open_camera(CONFIG, clock=lambda: 5.0) as camera:
        fake = FakePicamera2.instances[0]
        assert fake.configured["main"] == {"size": (64, 48), "format": "RGB888"}
        assert fake.configured["lores"] == {"size": (32, 24), "format": "YUV420"}
        assert fake.configured["controls"]["FrameRate"] == 15
        assert fake.started
        camera.read()
    assert fake.closed and not fake.started
    assert fake.outstanding == 0  # every request went back to the camera


def test_frames_are_bgr_main_and_grey_lores_from_the_same_request(fake_picamera2):
    ticks = iter([1.0, 1.25])
    with open_camera(CONFIG, clock=lambda: next(ticks)) as camera:
        first, second = camera.read(), camera.read()
    assert first.main.shape == (48, 64, 3) and first.main.flags.c_contiguous
    assert first.main[0, 0].tolist() == [11, 0, 200]  # B, G, R as OpenCV expects
    assert first.lores.shape == (24, 32) and (first.lores == 51).all()
    assert (second.lores == 52).all() and second.main[0, 0, 0] == 12
    assert (first.index, second.index) == (0, 1)
    assert (first.timestamp, second.timestamp) == (1.0, 1.25)
    assert first.main.flags.writeable and first.lores.flags.writeable


def test_privacy_masks_black_on_main_and_lores(fake_picamera2):
    top = Polygon(points=((0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (0.0, 0.5)))
    with open_camera(CONFIG, privacy_masks=[top]) as camera:
        frame = camera.read()
    assert not frame.main[:24].any()
    assert frame.main[30:, :, 2].min() == 200
    assert not frame.lores[:12].any() and frame.lores[13:].min() == 51


def test_missing_picamera2_is_a_clear_camera_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(CameraError, match="python3-picamera2"):
        open_camera(CONFIG)


def test_failed_start_closes_the_camera(fake_picamera2):
    FakePicamera2.fail_on_start = True
    with pytest.raises(CameraError, match="cannot start"):
        open_camera(CONFIG)
    assert FakePicamera2.instances[0].closed


def test_fault_while_capturing_is_a_camera_error(fake_picamera2):
    camera = open_camera(dataclasses.replace(CONFIG))
    FakePicamera2.instances[0].started = False
    with pytest.raises(CameraError, match="stopped delivering"):
        camera.read()
    camera.close()
