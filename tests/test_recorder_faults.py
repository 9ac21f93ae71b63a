"""Camera faults under the recorder: garbage frames, faults mid-clip, long outages, a hang.

The recorder must treat anything odd from the camera as a camera fault (seal the open clip,
audit the outage once, reconnect with backoff), never crash on it and never write it; and a
camera that hangs must stop the systemd watchdog pings so that systemd restarts the process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from recorder_helpers import (
    HEIGHT,
    WIDTH,
    IndexCamera,
    ScriptedMotion,
    clip_indexes,
    make_owner,
    recorder_config,
)
from test_recorder import actions

from doorbell import service
from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.camera import Frame
from doorbell.errors import CameraError
from doorbell.recorder.events import ServiceStatus
from doorbell.recorder.pipeline import Recorder
from doorbell.store import Store


class GarbageAfter(IndexCamera):
    """An :class:`IndexCamera` whose frame ``at`` is replaced by ``garbage(frame)``."""

    def __init__(self, count: int, at: int, garbage, **kwargs) -> None:
        super().__init__(count, **kwargs)
        self.at, self.garbage = at, garbage

    def __iter__(self) -> Iterator[Frame]:
        for frame in super().__iter__():
            yield self.garbage(frame) if frame.index == self.at else frame


def _with(frame: Frame, **changes) -> Frame:
    values = {
        "index": frame.index,
        "timestamp": frame.timestamp,
        "main": frame.main,
        "lores": frame.lores,
        **changes,
    }
    return Frame(**values)


GARBAGE = {
    "main too small": lambda f: _with(f, main=f.main[: HEIGHT // 2]),
    "main grey": lambda f: _with(f, main=f.main[:, :, 0].copy()),
    "main float": lambda f: _with(f, main=f.main.astype(np.float64)),
    "main 4 channels": lambda f: _with(f, main=np.zeros((HEIGHT, WIDTH, 4), np.uint8)),
    "lores wrong size": lambda f: _with(f, lores=np.zeros((10, 10), np.uint8)),
    "lores colour": lambda f: _with(f, lores=np.zeros((120, 160, 3), np.uint8)),
    "timestamp NaN": lambda f: _with(f, timestamp=float("nan")),
    "not a frame": lambda f: b"\x00" * 64,
}


def run_recorder(data_dir: Path, factory, detector, sleeps: list[float], **kwargs) -> Recorder:
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            recorder_config(data_dir),
            camera_factory=factory,
            detector=detector,
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            sleep=sleeps.append,
            **kwargs,
        )
        assert recorder.run() == 0
    return recorder


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_frame_mid_clip_is_a_camera_fault_not_a_crash(data_dir: Path, kind: str) -> None:
    identity = make_owner(data_dir)
    cameras = [GarbageAfter(80, 40, GARBAGE[kind]), IndexCamera(30, start_index=200)]
    sleeps: list[float] = []
    recorder = run_recorder(
        data_dir, lambda: cameras.pop(0), ScriptedMotion(set(range(20, 300))), sleeps
    )
    assert sleeps == [1.0]
    logged = actions(data_dir)
    assert logged.count("camera.fault") == 1 and logged.count("camera.recovered") == 1
    with Store.open(data_dir) as store:
        clips = store.clips()
    assert len(clips) == 2 and all(c.sealed and not c.interrupted for c in clips)
    first, second = sorted(clip_indexes(data_dir / c.path, identity) for c in clips)
    assert first[-1] == 39, "the clip open at the fault is sealed with every good frame"
    assert second == list(range(200, 230)), "the bad frame is never written"
    assert recorder.frames_processed == 40 + 30


def test_long_outage_backs_off_and_is_audited_once(data_dir: Path) -> None:
    make_owner(data_dir)
    opened: list[int] = []

    def factory():
        opened.append(1)
        if len(opened) == 1:
            return IndexCamera(30)
        if len(opened) <= 8:
            raise CameraError("camera cable out")
        return IndexCamera(20, start_index=100)

    sleeps: list[float] = []
    run_recorder(data_dir, factory, ScriptedMotion(set()), sleeps)
    # the first camera simply ended: the recorder stops there (a finite source)
    assert len(opened) == 1
    opened.clear()
    opened.append(1)  # start the next run past the good camera: faults first
    sleeps.clear()
    run_recorder(data_dir, factory, ScriptedMotion(set()), sleeps)
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    logged = actions(data_dir)
    assert logged.count("camera.fault") == 1, "seven failed reconnects, one audit entry"
    assert logged.count("camera.recovered") == 1


def test_fault_mid_clip_seals_it_and_the_next_camera_records_again(data_dir: Path) -> None:
    identity = make_owner(data_dir)

    class Unplugged(IndexCamera):
        def __iter__(self) -> Iterator[Frame]:
            for frame in super().__iter__():
                if frame.index == 50:
                    raise CameraError("frame timeout")
                yield frame

    cameras = [Unplugged(100), IndexCamera(40, start_index=500)]
    sleeps: list[float] = []
    run_recorder(data_dir, lambda: cameras.pop(0), ScriptedMotion(set(range(30, 1000))), sleeps)
    with Store.open(data_dir) as store:
        clips = store.clips()
    assert [c.sealed and not c.interrupted for c in clips] == [True, True]
    first, second = sorted(clip_indexes(data_dir / c.path, identity) for c in clips)
    assert first[-1] == 49, "the clip open at the fault keeps every frame before it"
    # after the reconnect nothing from before the outage is replayed as pre-roll
    assert second == list(range(500, 540))


def test_real_backoff_reconnects_within_seconds(data_dir: Path) -> None:
    """No injected sleep: the recorder waits on its stop event and is back in ~1 s."""
    make_owner(data_dir)
    opened: list[float] = []

    def factory():
        opened.append(time.monotonic())
        if len(opened) == 1:
            raise CameraError("no camera yet")
        return IndexCamera(10)

    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        Recorder(
            recorder_config(data_dir),
            camera_factory=factory,
            detector=ScriptedMotion(set()),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        ).run()
    assert len(opened) == 2 and 0.9 <= opened[1] - opened[0] < 3.0


class HangingCamera(IndexCamera):
    """Delivers ``count`` frames, then blocks in the driver until ``release`` is set."""

    def __init__(self, count: int, release: threading.Event) -> None:
        super().__init__(count + 20)
        self.hang_at, self.release = count, release
        self.hanging = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        for frame in super().__iter__():
            if frame.index == self.hang_at:
                self.hanging.set()
                self.release.wait(30)
            yield frame
            time.sleep(0.005)  # a camera delivers frames over time, not all at once


def test_a_hung_camera_stops_the_watchdog_pings(data_dir: Path, tmp_path: Path) -> None:
    """With a real NOTIFY_SOCKET: WATCHDOG=1 flows, stops during the hang, resumes after."""
    make_owner(data_dir)
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(0.05)
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "100000"}  # ping every 50 ms
    watchdog = service.Watchdog(service.Notifier(env), service.watchdog_interval(env))
    notifier = service.Notifier(env)

    def notify(message: str) -> None:
        if message == "WATCHDOG=1":
            watchdog.kick()
        elif message.startswith("STATUS="):
            notifier.status(message.removeprefix("STATUS="))

    release = threading.Event()
    camera = HangingCamera(60, release)
    received: list[tuple[float, str]] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                data = listener.recv(4096)
            except TimeoutError:
                continue
            received.append((time.monotonic(), data.decode()))

    thread = threading.Thread(target=listen, name="notify-listener")
    thread.start()
    try:
        recorder_thread = threading.Thread(
            target=run_recorder,
            args=(data_dir, lambda: camera, ScriptedMotion(set()), []),
            kwargs={"events": ServiceStatus(notify)},
            name="recorder",
        )
        recorder_thread.start()
        assert camera.hanging.wait(30)
        hang_started = time.monotonic()
        time.sleep(1.0)  # twenty watchdog intervals
        hang_ended = time.monotonic()
        release.set()
        recorder_thread.join(60)
        time.sleep(0.1)
    finally:
        release.set()
        done.set()
        thread.join()
        listener.close()
    pings = [t for t, message in received if message == "WATCHDOG=1"]
    before = [t for t in pings if t < hang_started]
    during = [t for t in pings if hang_started + 0.06 < t < hang_ended]
    after = [t for t in pings if t > hang_ended]
    assert len(before) >= 3, f"pings flow while frames flow: {received}"
    assert during == [], "a hung camera loop must not keep the watchdog happy"
    assert after, "pings resume when frames come back"
