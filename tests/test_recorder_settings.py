"""Owner settings saved by the web UI reach the running recorder without a restart."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from recorder_helpers import ScriptedMotion, decrypt_bytes, make_owner, recorder_config

from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.camera import open_camera
from doorbell.media.video import decode_frames
from doorbell.recorder.pipeline import Recorder
from doorbell.recorder.settings_watch import SettingsWatcher
from doorbell.settingsfile import settings_path, with_owner_settings
from doorbell.store import Store

OWNER_SETTINGS = """
[motion]
threshold = 40
[storage]
retention_days = 5
[[privacy.masks]]
name = "left half"
points = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
"""


class HookedCamera:
    """A real mock camera that calls ``hook(index)`` before each frame and stops at ``count``."""

    def __init__(self, inner, count: int, hook) -> None:
        self.inner, self.count, self.hook = inner, count, hook

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()

    width = property(lambda self: self.inner.width)
    height = property(lambda self: self.inner.height)
    fps = property(lambda self: self.inner.fps)
    encoded_stream_info = property(lambda self: self.inner.encoded_stream_info)

    def read(self):
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()

    def set_privacy_masks(self, masks) -> None:
        self.inner.set_privacy_masks(masks)

    def __iter__(self):
        for index, frame in enumerate(self.inner):
            if index >= self.count:
                return
            self.hook(index)
            yield frame


def run(data_dir: Path, settings_text: str, count: int = 100) -> tuple[Recorder, list]:
    base = recorder_config(data_dir, camera={"scenario": "doorstep", "seed": 3})
    made: list = []

    def write_settings(index: int) -> None:
        if index == 30:
            settings_path(data_dir).write_text(settings_text)

    def detector_factory(motion):
        made.append(motion)
        return ScriptedMotion(set(range(count)))

    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            base,
            camera_factory=lambda: HookedCamera(open_camera(base.camera), count, write_settings),
            detector=ScriptedMotion(set(range(count))),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            settings=SettingsWatcher(settings_path(data_dir), lambda: with_owner_settings(base)),
            detector_factory=detector_factory,
        )
        assert recorder.run() == 0
    return recorder, made


def audit_entries(data_dir: Path) -> list[dict]:
    with AuditLog.open(data_dir) as audit:
        return [json.loads(entry) for _index, entry in audit.entries()]


def test_saved_settings_apply_while_recording(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    recorder, made = run(data_dir, OWNER_SETTINGS)
    assert recorder.config.motion.threshold == 40
    assert recorder.config.storage.retention_days == 5
    assert recorder.config.storage.data_dir == str(data_dir), "never moved by owner settings"
    assert [m.threshold for m in made] == [40], "a new detector with the new sensitivity"
    applied = [e for e in audit_entries(data_dir) if e["action"] == "settings.applied"]
    assert [e["details"]["sections"] for e in applied] == [["motion", "privacy", "storage"]]
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
    data = decrypt_bytes(data_dir / clip.path, identity)
    frames = [f.image for f in decode_frames(io.BytesIO(data))]
    left = lambda image: image[8:-8, 8 : image.shape[1] // 2 - 8]  # noqa: E731
    assert left(frames[0]).mean() > 30, "before the change the left half shows the doorstep"
    assert np.percentile(left(frames[-1]), 99) < 25, "after it, the new privacy mask is black"


def test_invalid_settings_are_rejected_and_the_old_ones_kept(data_dir: Path) -> None:
    make_owner(data_dir)
    recorder, made = run(data_dir, "[motion]\nthreshold = 0\n", count=60)
    assert recorder.config.motion.threshold == 25 and made == []
    rejected = [e for e in audit_entries(data_dir) if e["action"] == "settings.rejected"]
    assert len(rejected) == 1 and "motion.threshold" in rejected[0]["details"]["error"]


def test_chime_quiet_hours_apply_while_recording(data_dir: Path) -> None:
    make_owner(data_dir)
    recorder, _made = run(data_dir, '[gpio]\nquiet_hours = ["22:00-07:00"]\n', count=60)
    assert recorder.config.gpio.quiet_hours == ("22:00-07:00",)
    applied = [e for e in audit_entries(data_dir) if e["action"] == "settings.applied"]
    assert [e["details"]["sections"] for e in applied] == [["gpio.quiet_hours"]]
