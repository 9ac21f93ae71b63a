"""The recorder on a picamera2 camera whose hardware encoder does the H.264 (fake picamera2).

The fake's "GPU" encodes each request's buffer after ``pre_callback`` ran, like the real
V4L2 encoder; the recorder must use those packets as they are (no libx264 of its own), and
its clips must still hold the pre-roll and the trigger frame, split without gaps and show
the privacy masks black.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fake_picamera2 import FakePicamera2, H264Encoder, install, reset
from recorder_helpers import (
    ScriptedMotion,
    clip_indexes,
    decrypt_bytes,
    draw_index,
    make_owner,
    plaintext_hits,
    recorder_config,
)

import doorbell.recorder.pipeline
from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.camera import open_camera
from doorbell.media.video import decode_frames
from doorbell.recorder.pipeline import Recorder
from doorbell.store import Store

#: the bottom quarter of the picture is a neighbour's window
WINDOW = {"name": "window", "points": [[0.0, 0.75], [1.0, 0.75], [1.0, 1.0], [0.0, 1.0]]}


def paint(n: int, image) -> None:
    """Sensor frame n (from 1) shows index n - 1 (= Frame.index) and a bright bottom band."""
    image[:] = 90
    image[100:140, (n * 3) % 280 : (n * 3) % 280 + 40] = (0, 0, 255)
    image[190:, :] = 230  # what the privacy mask must hide
    draw_index(image, n - 1)


class FirstFrames:
    """The first ``count`` frames of a camera, then the end (the recorder seals and exits)."""

    def __init__(self, camera, count: int) -> None:
        self.camera, self.count = camera, count
        self.encoded_stream_info = camera.encoded_stream_info
        self.width, self.height, self.fps = camera.width, camera.height, camera.fps

    def set_privacy_masks(self, masks) -> None:
        self.camera.set_privacy_masks(masks)

    def read(self):
        return self.camera.read()

    def close(self) -> None:
        self.camera.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.camera.close()

    def __iter__(self):
        for _ in range(self.count):
            yield self.camera.read()


@pytest.fixture(autouse=True)
def hw_camera(monkeypatch):
    reset()
    install(monkeypatch)
    FakePicamera2.painter = staticmethod(paint)
    FakePicamera2.frame_interval_ns = 100_000_000  # 10 fps, as recorder_config

    def refuse(*args, **kwargs):
        raise AssertionError("the recorder encoded a frame itself")

    monkeypatch.setattr(doorbell.recorder.pipeline.H264Encoder, "from_config", refuse)


def no_retry(_seconds: float) -> None:
    raise AssertionError("the camera failed (see the log): no reconnecting in this test")


def record(data_dir: Path, detector, count: int, **sections) -> Recorder:
    sections.setdefault("camera", {})["backend"] = "picamera2"
    config = recorder_config(data_dir, **sections)
    ticks = iter(1000.0 + i for i in range(10**6))
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: FirstFrames(
                open_camera(
                    config.camera,
                    clock=lambda: next(ticks),
                    privacy_masks=config.privacy.masks,
                    recording=config.recording,
                ),
                count,
            ),
            detector=detector,
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            sleep=no_retry,
        )
        assert recorder.run() == 0
    return recorder


def test_clip_from_hardware_packets_has_pre_roll_trigger_and_black_masks(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    recorder = record(
        data_dir, ScriptedMotion(set(range(50, 60))), 120, privacy={"masks": [WINDOW]}
    )
    (encoder,) = H264Encoder.instances
    assert encoder.encoded == 120 and encoder.iperiod == 10  # the camera encoded every frame
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    assert recorder.sealed_clips == [clip.id] and clip.sealed and not clip.interrupted
    indexes = clip_indexes(data_dir / clip.path, identity)
    assert indexes == list(range(indexes[0], indexes[-1] + 1)), "no frame lost inside the clip"
    assert 50 in indexes, "the frame that triggered is in the clip"
    assert 50 - 30 <= indexes[0] <= 50 - 20  # pre-roll 2 s, keyframes every 1 s
    assert indexes[-1] >= 59 + 19  # post-roll 2 s
    data = decrypt_bytes(data_dir / clip.path, identity)
    frames = list(decode_frames(io.BytesIO(data)))
    for frame in frames:
        assert frame.image[182:].max() <= 16, "the privacy mask is black in the clip"
        assert frame.image[150:170].mean() > 60  # the unmasked picture is there
    assert frames[0].time_s == 0.0 and frames[1].time_s == pytest.approx(0.1, abs=1e-3)
    assert plaintext_hits(data_dir) == []


def test_long_event_splits_at_hardware_keyframes_without_lost_frames(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    record(data_dir, ScriptedMotion(set(range(30, 150))), 200, recording={"max_clip_s": 5.0})
    with Store.open(data_dir) as store:
        clips = store.clips(newest_first=False)
    assert len(clips) >= 3
    runs = [clip_indexes(data_dir / clip.path, identity) for clip in clips]
    joined = [i for run in runs for i in run]
    assert joined == list(range(joined[0], joined[-1] + 1)), "consecutive clips, no gap"


def test_a_reader_that_falls_behind_loses_no_video(data_dir: Path) -> None:
    """picamera2 hands the reader only the newest request; the encoder saw them all."""
    identity = make_owner(data_dir)
    FakePicamera2.frames_per_capture = 2
    record(data_dir, ScriptedMotion(set(range(20, 30))), 60)
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    indexes = clip_indexes(data_dir / clip.path, identity)
    # sensor frame n shows n - 1; Frame k is sensor frame 2k + 2: frames 20..29 are 41..59
    assert indexes == list(range(indexes[0], indexes[-1] + 1))
    assert 41 in indexes and indexes[0] <= 41 - 20
