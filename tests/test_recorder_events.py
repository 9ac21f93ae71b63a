"""The recorder's one events sink and its adapters: fan-out, the LED, systemd status, live."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gpiozero.pins.mock import MockFactory
from recorder_helpers import EventLog, IndexCamera, ScriptedMotion, make_owner, recorder_config

from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.bell import Bell
from doorbell.config import GpioConfig
from doorbell.live.publisher import LivePublisher
from doorbell.live.subscriber import LiveSubscriber
from doorbell.live.wire import LiveMessage
from doorbell.recorder.events import (
    EventFanout,
    LiveEvents,
    NoEvents,
    RecordingLed,
    ServiceStatus,
)
from doorbell.recorder.pipeline import Recorder
from doorbell.store import Store


def test_fanout_reaches_every_sink_and_frames_only_those_that_want_them() -> None:
    first, second, silent = EventLog(), EventLog(), NoEvents()
    fanout = EventFanout(first, silent, second)
    assert fanout.wants_frames and not EventFanout(silent).wants_frames
    fanout.live_frame(b"jpeg", time_s=1.0, recording=True)
    fanout.event("ring", {"event": "e1"})
    fanout.recording_changed(True)
    fanout.service_status("READY=1")
    for log in (first, second):
        assert log.events == [("frame", {"t": 1.0, "recording": True}), ("ring", {"event": "e1"})]
        assert log.recording == [True] and log.statuses == ["READY=1"]


def test_led_and_status_adapters() -> None:
    factory = MockFactory()
    try:
        gpio = GpioConfig(enabled=True)
        with Bell(gpio, pin_factory=factory) as bell:
            notes: list[str] = []
            sink = EventFanout(RecordingLed(bell), ServiceStatus(notes.append))
            sink.recording_changed(True)
            assert bell.is_recording and factory.pin(gpio.led_pin).state == 1
            sink.service_status("WATCHDOG=1")
            sink.recording_changed(False)
            assert not bell.is_recording and notes == ["WATCHDOG=1"]
    finally:
        factory.reset()


def test_live_events_reach_a_real_subscriber(data_dir: Path, tmp_path: Path) -> None:
    config = recorder_config(data_dir)
    socket_path = tmp_path / "live.sock"
    received: list[LiveMessage] = []
    with LivePublisher(socket_path) as publisher:
        subscriber = LiveSubscriber(str(socket_path), when_message=received.append)
        subscriber.start()
        try:
            assert eventually(lambda: subscriber.connected and publisher.subscriber_count == 1)
            live = LiveEvents(publisher, config, wall_clock=lambda: 1234.0)
            live.event("ring", {"event": "e1", "clip": None})
            live.live_frame(b"\xff\xd8jpeg", time_s=99.0, recording=True)
            frame = subscriber.wait_for_frame(0, 5.0)
        finally:
            subscriber.close()
    assert frame is not None and frame.payload == b"\xff\xd8jpeg" and frame.time_s == 99.0
    assert any(m.kind == "ring" and m.time_s == 1234.0 for m in received)


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_the_recorder_sets_the_masks_in_force_on_the_camera(data_dir: Path) -> None:
    """No construction cycle: the recorder, not the camera factory, knows the current masks."""
    make_owner(data_dir)
    masks = {"privacy": {"masks": [{"name": "m", "points": [[0, 0], [1, 0], [1, 1]]}]}}
    config = recorder_config(data_dir, **masks)
    cameras: list[IndexCamera] = []

    def factory() -> IndexCamera:
        cameras.append(IndexCamera(5))
        return cameras[-1]

    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        Recorder(
            config,
            camera_factory=factory,
            detector=ScriptedMotion(set()),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        ).run()
    assert len(cameras) == 1
    assert cameras[0].privacy_masks == list(config.privacy.masks)
