"""The picamera2 adapter against a fake ``picamera2`` package that follows its API.

The fake (``tests/fake_picamera2.py``) mirrors what the adapter relies on, including the
order picamera2 runs things in for every completed request: ``pre_callback``, the
application's capture, then the encoders. Real hardware may differ; docs/camera.md lists
what was verified where.
"""

from __future__ import annotations

import dataclasses
import sys

import av
import numpy as np
import pytest
from fake_picamera2 import FakePicamera2, H264Encoder, LibavH264Encoder, install, reset

from doorbell.camera import open_camera
from doorbell.camera.h264 import nal_units
from doorbell.camera.picam import PiCamera
from doorbell.config import CameraConfig, Polygon, RecordingConfig
from doorbell.errors import CameraError

CONFIG = CameraConfig(
    backend="picamera2", width=64, height=48, lores_width=32, lores_height=24, fps=15
)
RECORDING = RecordingConfig(keyframe_interval_s=1.0, bitrate_kbps=1500)
TOP = Polygon(points=((0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (0.0, 0.5)))


@pytest.fixture
def fake_picamera2(monkeypatch):
    reset()
    return install(monkeypatch)


def decode(packets) -> list[np.ndarray]:
    """BGR images of an Annex B packet sequence (a fresh decoder, like a clip's player)."""
    context = av.CodecContext.create("h264", "r")
    images = []
    for packet in packets:
        for frame in context.decode(av.Packet(packet.data)):
            images.append(frame.to_ndarray(format="bgr24"))
    for frame in context.decode(None):
        images.append(frame.to_ndarray(format="bgr24"))
    return images


# --- raw frames (no encoder) ------------------------------------------------------------------


def test_configures_main_rgb888_and_lores_yuv420(fake_picamera2):
    with open_camera(CONFIG, clock=lambda: 5.0) as camera:
        fake = FakePicamera2.instances[0]
        assert fake.configured["main"] == {"size": (64, 48), "format": "RGB888"}
        assert fake.configured["lores"] == {"size": (32, 24), "format": "YUV420"}
        assert fake.configured["controls"]["FrameRate"] == 15
        assert fake.started
        frame = camera.read()
        assert frame.packets is None and camera.encoded_stream_info is None
    assert fake.closed and not fake.started
    assert fake.outstanding == 0  # every request went back to the camera
    assert not H264Encoder.instances  # no recording settings: no encoder


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
    with open_camera(CONFIG, privacy_masks=[TOP]) as camera:
        frame = camera.read()
    assert not frame.main[:24].any()
    assert frame.main[30:, :, 2].min() == 200
    assert not frame.lores[:12].any() and frame.lores[13:].min() == 51


def test_pre_callback_burns_masks_into_the_cameras_own_buffers(fake_picamera2):
    seen = []

    with open_camera(CONFIG, privacy_masks=[TOP]) as camera:
        fake = FakePicamera2.instances[0]
        mine = fake.pre_callback
        fake.pre_callback = lambda request: (mine(request), seen.append(request))
        camera.read()
    (request,) = seen
    assert not request.buffers["main"][:24, :64].any()  # in place, before anyone copied it
    assert request.buffers["main"][30:, :64, 2].min() == 200
    assert not request.buffers["lores"][:12, :32].any()
    assert request.buffers["lores"][30:].min() == 128  # chroma planes untouched


def test_missing_picamera2_is_a_clear_camera_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(CameraError, match="python3-picamera2"):
        open_camera(CONFIG)


def test_failed_start_closes_the_camera(fake_picamera2):
    FakePicamera2.fail_on_start = True
    with pytest.raises(CameraError, match="cannot start"):
        open_camera(CONFIG, recording=RECORDING)
    assert FakePicamera2.instances[0].closed
    assert not H264Encoder.instances[0].running  # the encoder it had started is stopped


def test_fault_while_capturing_is_a_camera_error(fake_picamera2):
    camera = open_camera(dataclasses.replace(CONFIG))
    FakePicamera2.instances[0].started = False
    with pytest.raises(CameraError, match="stopped delivering"):
        camera.read()
    camera.close()


# --- the hardware H.264 encoder -----------------------------------------------------------------


def test_hardware_encoder_is_started_on_main_with_the_recording_settings(fake_picamera2):
    with open_camera(CONFIG, clock=lambda: 7.0, recording=RECORDING) as camera:
        fake = FakePicamera2.instances[0]
        (encoder,) = H264Encoder.instances
        assert type(encoder) is H264Encoder and encoder.running
        assert (encoder.bitrate, encoder.repeat, encoder.iperiod) == (1_500_000, True, 15)
        assert (encoder.width, encoder.height, encoder.format) == (64, 48, "RGB888")
        assert fake.encoders == [encoder]
        assert camera.hardware_encoding
        info = camera.encoded_stream_info
        assert (info.width, info.height, info.fps) == (64, 48, 15.0)
    assert not encoder.running and fake.encoders == [] and fake.closed
    assert fake.outstanding == 0


def test_frames_carry_their_own_packets_on_the_sensor_timeline(fake_picamera2):
    with open_camera(CONFIG, clock=lambda: 100.0, recording=RECORDING) as camera:
        frames = [camera.read() for _ in range(40)]
    packets = [packet for frame in frames for packet in frame.packets]
    assert [len(frame.packets) for frame in frames] == [1] * 40  # one packet per frame
    # sensor timestamps, anchored at the first frame: exactly 1/15 s apart, not read times
    assert frames[0].timestamp == 100.0
    assert frames[39].timestamp == pytest.approx(100.0 + 39 * 0.066_666_667, abs=1e-6)
    assert all(frame.packets[-1].time_s == frame.timestamp for frame in frames)
    assert [p.pts for p in packets] == sorted({p.pts for p in packets})  # strictly increasing
    assert all(p.dts == p.pts and p.duration == 6000 for p in packets)
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert keyframes[:3] == [0, 15, 30]  # iperiod = keyframe_interval_s * fps
    for i in keyframes:  # SPS and PPS in-band on every keyframe: any of them starts a clip
        assert {7, 8, 5} <= {kind for kind, _s, _e in nal_units(packets[i].data)}
    assert len(decode(packets[15:])) == 25


def test_masks_are_burned_in_before_the_hardware_encoder_sees_the_frame(fake_picamera2):
    with open_camera(CONFIG, privacy_masks=[TOP], recording=RECORDING) as camera:
        frames = [camera.read() for _ in range(5)]
    images = decode([packet for frame in frames for packet in frame.packets])
    assert len(images) == 5
    for image in images:
        assert image[:22].max() <= 16, "masked half is black in the encoded stream"
        assert image[28:, :, 2].mean() > 150  # the rest is still red
    assert all(not frame.main[:24].any() for frame in frames)


def test_a_frame_after_skipped_ones_carries_all_their_packets(fake_picamera2):
    FakePicamera2.frames_per_capture = 3  # the reader fell behind: picamera2 kept the newest
    with open_camera(CONFIG, clock=lambda: 0.0, recording=RECORDING) as camera:
        frames = [camera.read() for _ in range(4)]
    assert [len(frame.packets) for frame in frames] == [3, 3, 3, 3]
    assert frames[1].main[0, 0, 0] == 10 + 6  # the newest of sensor frames 4, 5, 6
    assert all(frame.packets[-1].time_s == frame.timestamp for frame in frames)
    assert len(decode([p for frame in frames for p in frame.packets])) == 12  # none lost


def test_pi5_without_hardware_encoder_leaves_encoding_to_the_recorder(fake_picamera2, monkeypatch):
    monkeypatch.setattr(fake_picamera2.encoders, "H264Encoder", LibavH264Encoder)
    with open_camera(CONFIG, recording=RECORDING) as camera:
        frame = camera.read()
        assert not camera.hardware_encoding and camera.encoded_stream_info is None
    assert frame.packets is None and not H264Encoder.instances


def test_hardware_encoder_off_in_the_config(fake_picamera2):
    config = dataclasses.replace(CONFIG, hardware_encoder=False)
    with open_camera(config, recording=RECORDING) as camera:
        assert camera.read().packets is None
    assert not H264Encoder.instances


def test_encoder_that_fails_to_start_falls_back_to_software(fake_picamera2, monkeypatch):
    def refuse(self):
        raise OSError(2, "No such file or directory: '/dev/video11'")

    monkeypatch.setattr(H264Encoder, "start", refuse)
    with open_camera(CONFIG, recording=RECORDING) as camera:
        assert camera.read().packets is None and not camera.hardware_encoding


def test_a_stalled_encoder_is_a_camera_error(fake_picamera2):
    FakePicamera2.encoder_stalls = True
    camera = PiCamera(CONFIG, clock=lambda: 0.0, recording=RECORDING, encoder_timeout_s=0.2)
    with pytest.raises(CameraError, match="encoder delivered nothing"):
        camera.read()
    camera.close()
    assert not H264Encoder.instances[0].running
