"""The recorder pipeline end to end: frames in, encrypted clips, index rows and audit out.

A camera that draws each frame's index into the picture lets the tests decode a clip and see
exactly which frames it holds: the trigger frame, the pre-roll, splits without gaps.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from recorder_helpers import (
    EventLog,
    IndexCamera,
    ScriptedMotion,
    clip_indexes,
    make_owner,
    plaintext_hits,
    recorder_config,
)

from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.motion import MotionDetector
from doorbell.recorder.pipeline import Recorder
from doorbell.store import Store, new_clip_id


def record(data_dir: Path, camera: IndexCamera, detector, config=None, **kwargs) -> Recorder:
    config = config or recorder_config(data_dir)
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: camera,
            detector=detector,
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            **kwargs,
        )
        assert recorder.run() == 0
    return recorder


def actions(data_dir: Path) -> list[str]:
    import json

    with AuditLog.open(data_dir) as audit:
        return [json.loads(entry)["action"] for _index, entry in audit.entries()]


def test_trigger_frame_and_pre_roll_are_in_the_clip(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    # motion on frames 50..59 at 10 fps; pre-roll 2 s, keyframes every 1 s, post-roll 2 s
    recorder = record(data_dir, IndexCamera(120), ScriptedMotion(set(range(50, 60))))
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
        (event,) = store.events()
    assert recorder.sealed_clips == [clip.id]
    assert clip.sealed and not clip.interrupted and clip.trigger == "motion"
    assert event.kind == "motion" and event.id == clip.event_id
    indexes = clip_indexes(data_dir / clip.path, identity)
    assert indexes == list(range(indexes[0], indexes[-1] + 1)), "no frame lost inside the clip"
    assert 50 in indexes, "the frame that triggered is in the clip"
    # pre-roll: at least pre_roll_s (20 frames) before the trigger, at most one GOP (10) more
    assert 50 - 30 <= indexes[0] <= 50 - 20
    # post-roll: motion ended after frame 59, the clip runs 2 s (20 frames) past it
    assert indexes[-1] >= 59 + 19
    assert clip.zones == ("door",)
    assert clip.thumb_path is not None and (data_dir / clip.thumb_path).exists()
    assert "clip.sealed" in actions(data_dir)


def test_real_detector_zone_names_are_stored_on_clip_and_event(data_dir: Path) -> None:
    """The real detector, not a fake: the block moving through the picture's middle band is
    seen in the zone named "lane" and never in "porch", and the clip and event say so."""
    make_owner(data_dir)
    zones = [
        {"name": "lane", "points": [[0, 0.35], [1, 0.35], [1, 0.65], [0, 0.65]]},
        {"name": "porch", "points": [[0, 0.7], [1, 0.7], [1, 1], [0, 1]]},
    ]
    config = recorder_config(data_dir, motion={"zones": zones})
    record(data_dir, IndexCamera(60), MotionDetector(config.motion, (160, 120)), config)
    with Store.open(data_dir) as store:
        (clip,) = store.clips()
        (event,) = store.events()
    assert clip.zones == ("lane",) and event.zones == ("lane",)


def test_long_event_splits_into_consecutive_clips_without_lost_frames(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    config = recorder_config(data_dir, recording={"max_clip_s": 5.0})
    record(data_dir, IndexCamera(200), ScriptedMotion(set(range(30, 150))), config)
    with Store.open(data_dir) as store:
        clips = store.clips(newest_first=False)
        events = store.events()
    assert len(clips) >= 3
    assert [c.trigger for c in clips] == ["motion"] + ["continuation"] * (len(clips) - 1)
    assert len({c.event_id for c in clips}) == 1 and len(events) == 1
    frames = [clip_indexes(data_dir / c.path, identity) for c in clips]
    joined = [i for clip_frames in frames for i in clip_frames]
    assert joined == list(range(joined[0], joined[-1] + 1)), "gapless and without duplicates"
    for clip_frames in frames[:-1]:
        assert len(clip_frames) <= 5 * 10 + 10  # max_clip_s plus at most one keyframe interval


def test_ring_without_motion_records_a_ring_clip(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    holder: list[Recorder] = []
    camera = IndexCamera(80, on_frame=lambda i: holder[0].ring() if i == 40 else None)
    config = recorder_config(data_dir)
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: camera,
            detector=ScriptedMotion(set()),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        )
        holder.append(recorder)
        recorder.run()
        (clip,) = store.clips()
        (event,) = store.events()
    assert clip.trigger == "ring" and event.kind == "ring" and event.id == clip.event_id
    assert 40 in clip_indexes(data_dir / clip.path, identity)
    assert "doorbell.ring" in actions(data_dir)


def test_led_follows_recording_and_live_gets_masked_frames(data_dir: Path) -> None:
    make_owner(data_dir)
    sink = EventLog()
    record(data_dir, IndexCamera(100), ScriptedMotion(set(range(30, 35))), events=sink)
    states, published = sink.recording, sink.kinds
    assert states == [True, False]
    assert "frame" in published and "clip_sealed" in published and "motion_start" in published


def test_no_plaintext_on_disk_during_and_after_recording(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scan the data dir, the temp dir every library would use, and /dev/shm, mid-recording
    and after: no JPEG, PNG, MP4 or H.264 anywhere."""
    import tempfile

    make_owner(data_dir)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    shm = Path("/dev/shm")
    shm_before = set(shm.iterdir()) if shm.is_dir() else set()
    during: list[str] = []

    def scan(index: int) -> None:
        if index in {45, 70, 95}:
            during.extend(plaintext_hits(data_dir, private_tmp))

    record(data_dir, IndexCamera(120, on_frame=scan), ScriptedMotion(set(range(40, 100))))
    with Store.open(data_dir) as store:
        assert len(store.clips()) == 1
    assert during == []
    assert plaintext_hits(data_dir, private_tmp) == []
    shm_new = (set(shm.iterdir()) if shm.is_dir() else set()) - shm_before
    assert plaintext_hits(*shm_new) == []


def test_scanner_would_catch_plaintext(data_dir: Path) -> None:
    import numpy as np

    from doorbell.media.video import encode_jpeg

    (data_dir / "leak.bin").write_bytes(b"xx" + encode_jpeg(np.zeros((48, 64, 3), np.uint8), 64))
    assert plaintext_hits(data_dir) != []


def test_retention_deletes_oldest_and_audits_it(data_dir: Path) -> None:
    make_owner(data_dir)
    with Store.open(data_dir) as store:
        old_id = new_clip_id(1_000_000_000.0)  # 2001
        path = store.begin_clip(old_id, started_at=1_000_000_000.0, trigger="motion")
        path.write_bytes(b"ciphertext")
        store.seal_clip(
            old_id, ended_at=1_000_000_010.0, duration_s=10, size_bytes=10, sha256="ab" * 32
        )
    config = recorder_config(data_dir, storage={"retention_days": 30})
    record(data_dir, IndexCamera(20), ScriptedMotion(set()), config)
    with Store.open(data_dir) as store:
        assert store.clips() == []
    assert not path.exists()
    assert "clip.deleted" in actions(data_dir)


def test_stop_from_another_thread_seals_the_open_clip(data_dir: Path) -> None:
    identity = make_owner(data_dir)
    holder: list[Recorder] = []
    stop_at = threading.Event()

    def on_frame(index: int) -> None:
        if index == 60:
            holder[0].stop()
            stop_at.set()

    config = recorder_config(data_dir)
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: IndexCamera(500, on_frame=on_frame),
            detector=ScriptedMotion(set(range(30, 500))),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        )
        holder.append(recorder)
        assert recorder.run() == 0
        (clip,) = store.clips()
    assert stop_at.is_set() and clip.sealed and not clip.interrupted
    assert clip_indexes(data_dir / clip.path, identity)[-1] == 60


@pytest.mark.parametrize("faults", [1, 2])
def test_camera_fault_reconnects_and_audits_once(data_dir: Path, faults: int) -> None:
    from doorbell.errors import CameraError

    make_owner(data_dir)
    opened: list[int] = []

    def factory():
        opened.append(1)
        if len(opened) <= faults:
            raise CameraError("mock camera unplugged")
        return IndexCamera(30)

    config = recorder_config(data_dir)
    sleeps: list[float] = []
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=factory,
            detector=ScriptedMotion(set()),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            sleep=sleeps.append,
        )
        recorder.run()
    assert len(opened) == faults + 1
    assert sleeps == [1.0, 2.0][:faults]
    logged = actions(data_dir)
    assert logged.count("camera.fault") == 1
    assert logged.count("camera.recovered") == 1


def test_recorder_signs_checkpoints_for_entries_other_processes_append(data_dir: Path) -> None:
    from doorbell.audit.devicekey import load_device_signer

    make_owner(data_dir)
    signer = load_device_signer(data_dir / "keys")
    AuditLog.open(data_dir, signer=signer).close()  # as `doorbell init` leaves it
    with AuditLog.open(data_dir) as web:  # the web process: appends, holds no device key
        web.append("owner", "login.ok")
    config = recorder_config(data_dir, audit={"checkpoint_interval_s": 1.0})
    clock = [0.0]
    with AuditLog.open(data_dir, signer=signer, clock=lambda: clock[0]) as audit:
        with AuditLog.open(data_dir) as web:
            camera = IndexCamera(
                40, on_frame=lambda i: web.append("owner", "clip.viewed") if i == 20 else None
            )
            with Store.open(data_dir) as store:
                Recorder(
                    config,
                    camera_factory=lambda: camera,
                    detector=ScriptedMotion(set()),
                    store=store,
                    audit=audit,
                    recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
                ).run()
        import sqlite3

        db = sqlite3.connect(data_dir / "audit.sqlite3")
        signed_sizes = [row[0] for row in db.execute("SELECT size FROM checkpoints ORDER BY size")]
        db.close()
    assert actions(data_dir)[:5] == [
        "audit.log_created",
        "login.ok",
        "recorder.start",
        "clip.viewed",
        "recorder.stop",
    ]
    # clip.viewed is entry 3: a checkpoint of size 4 covers it, signed by the recorder
    assert 4 in signed_sizes, (
        f"the web's clip.viewed got a checkpoint during recording: {signed_sizes}"
    )
