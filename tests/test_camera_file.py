"""The file backend on a clip the test writes itself with PyAV."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from doorbell.camera import open_camera
from doorbell.config import CameraConfig, Polygon
from doorbell.errors import CameraEnded, CameraError

FRAMES = 12


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for i in range(FRAMES):
            image = np.zeros((96, 128, 3), np.uint8)
            image[:, : 10 * (i + 1)] = 200  # a bar growing frame by frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def config_for(path: Path, **changes) -> CameraConfig:
    base = CameraConfig(
        backend="file",
        path=str(path),
        width=128,
        height=96,
        lores_width=64,
        lores_height=48,
        realtime=False,
    )
    return dataclasses.replace(base, **changes)


def test_plays_every_frame_then_ends_cleanly(clip):
    with open_camera(config_for(clip), clock=lambda: 10.0) as camera:
        assert camera.fps == pytest.approx(10)
        shot = list(camera)
        with pytest.raises(CameraEnded):
            camera.read()
    assert len(shot) == FRAMES
    assert [f.index for f in shot] == list(range(FRAMES))
    assert [f.timestamp for f in shot] == pytest.approx([10.0 + i / 10 for i in range(FRAMES)])
    assert shot[0].main.shape == (96, 128, 3) and shot[0].lores.shape == (48, 64)
    bright = [int((f.lores > 100).sum()) for f in shot]
    assert bright == sorted(bright) and bright[0] < bright[-1]  # frames in order


def test_loop_keeps_going_with_increasing_timestamps(clip):
    with open_camera(config_for(clip, loop=True)) as camera:
        shot = [camera.read() for _ in range(FRAMES * 2 + 3)]
    stamps = [f.timestamp for f in shot]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert np.array_equal(shot[0].lores, shot[FRAMES].lores)


def test_realtime_sleeps_between_frames(clip):
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with open_camera(config_for(clip, realtime=True), clock=lambda: now[0], sleep=sleep) as camera:
        for _ in range(5):
            camera.read()
    assert sum(slept) == pytest.approx(0.4)


def test_resizes_and_applies_privacy_masks(clip):
    right_half = Polygon(points=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
    config = config_for(clip, width=64, height=48, lores_width=32, lores_height=24)
    with open_camera(config, privacy_masks=[right_half]) as camera:
        frame = [camera.read() for _ in range(FRAMES)][-1]
    assert frame.main.shape == (48, 64, 3)
    assert not frame.main[:, 32:].any() and not frame.lores[:, 16:].any()
    assert frame.main[:, :30].any()


def test_missing_or_bad_file_is_a_camera_error(tmp_path):
    with pytest.raises(CameraError):
        open_camera(config_for(tmp_path / "nope.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(CameraError):
        open_camera(config_for(junk))
