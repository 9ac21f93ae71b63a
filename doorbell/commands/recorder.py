"""`doorbell recorder`: the daemon that watches the door and writes encrypted clips."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.config import Config
from doorbell.datadir import DataDir
from doorbell.errors import StorageError

if TYPE_CHECKING:
    from doorbell.recorder.pipeline import Recorder

log = logging.getLogger("doorbell.recorder.pipeline")


@contextmanager
def recorder_from_config(
    config: Config,
    *,
    pin_factory: Any = None,
    camera_clock: Callable[[], float] = time.monotonic,
    camera_sleep: Callable[[float], None] = time.sleep,
    notify: Callable[[str], None] | None = None,
    live: bool = True,
    reload_config: Callable[[], Config] | None = None,
) -> Iterator[Recorder]:
    """Build a :class:`doorbell.recorder.pipeline.Recorder` and everything it needs from ``config``.

    Opens the index (reconciling it after a crash), the audit log with the device signing
    key, the owner's public recipients, the bell (GPIO) and the live publisher. Everything is
    closed when the block ends. Only public keys are loaded: nothing here can decrypt.
    ``reload_config`` (optional) rebuilds the configuration when the owner's settings file
    (``<data_dir>/settings.toml``, saved by the web UI) changes: the recorder applies it live.
    """
    from doorbell.audit.devicekey import load_device_signer
    from doorbell.audit.log import AuditLog
    from doorbell.bell import Bell
    from doorbell.camera import open_camera
    from doorbell.motion import MotionDetector
    from doorbell.pubkeys import load_owner_recipients
    from doorbell.recorder.events import (
        EventFanout,
        LiveEvents,
        RecorderEvents,
        RecordingLed,
        ServiceStatus,
    )
    from doorbell.recorder.pipeline import Recorder
    from doorbell.recorder.settings_watch import SettingsWatcher
    from doorbell.settingsfile import settings_path
    from doorbell.store import Store

    data_dir = config.data_dir
    if not DataDir(data_dir).keys.is_dir():
        raise StorageError(f"{data_dir}: no keys/ here; run `doorbell init --data-dir {data_dir}`")
    recipients = load_owner_recipients(data_dir)
    signer = load_device_signer(DataDir(data_dir).keys)
    camera = config.camera
    with ExitStack() as stack:
        audit = stack.enter_context(
            AuditLog.open(
                data_dir, signer=signer, checkpoint_interval_s=config.audit.checkpoint_interval_s
            )
        )
        store = stack.enter_context(Store.open(data_dir))
        report = store.reconcile()
        if report.clips_marked_interrupted or report.rows_without_file or report.files_without_row:
            audit.append(
                "recorder",
                "index.reconciled",
                details={
                    "interrupted": list(report.clips_marked_interrupted),
                    "rows_without_file": list(report.rows_without_file),
                    "files_without_row": list(report.files_without_row),
                    "temp_files_removed": report.temp_files_removed,
                },
            )
        sinks: list[RecorderEvents] = []
        if live:
            from doorbell.live import LivePublisher
            from doorbell.live.socketpath import prepare_live_socket_dir, resolve_live_socket

            place = resolve_live_socket(config)
            prepare_live_socket_dir(place)
            publisher = stack.enter_context(
                LivePublisher(place.path, group=config.live.socket_group or None)
            )
            sinks.append(LiveEvents(publisher, config))
        if notify is not None:
            sinks.append(ServiceStatus(notify))
        bell = stack.enter_context(Bell(config.gpio, pin_factory=pin_factory))
        sinks.append(RecordingLed(bell))
        detector = MotionDetector(config.motion, (camera.lores_width, camera.lores_height))
        recorder = Recorder(
            config,
            # the recorder sets the privacy masks in force on every camera it opens
            camera_factory=lambda: open_camera(
                camera,
                clock=camera_clock,
                sleep=camera_sleep,
                privacy_masks=config.privacy.masks,
                recording=config.recording,  # picamera2: its hardware encoder may encode
            ),
            detector=detector,
            store=store,
            audit=audit,
            recipients=recipients,
            events=EventFanout(*sinks),
            settings=(
                SettingsWatcher(settings_path(data_dir), reload_config) if reload_config else None
            ),
            detector_factory=lambda motion: MotionDetector(
                motion, (camera.lores_width, camera.lores_height)
            ),
        )
        bell.when_rung = lambda *_args: recorder.ring()
        # the chime's quiet hours as the recorder holds them (the owner may change them live)
        bell.quiet_hours = lambda: recorder.config.gpio.quiet_hours
        yield recorder


@click.command("recorder")
@config_options
@click.option(
    "--no-live", is_flag=True, help="Do not publish the live view socket (headless test runs)."
)
def recorder(config_path: Path | None, data_dir: Path | None, no_live: bool) -> None:
    """Run the recorder daemon: watch the camera, record encrypted clips on motion or a ring.

    It needs only the public half of your keys (keys/owner.recipients) and the device key
    that signs the audit log; it can never decrypt what it writes. Stop it with SIGTERM or
    Ctrl-C: the open clip is sealed first. SIGUSR1 simulates a doorbell press (for testing
    the chime and the UI's ring notification). With the file camera and realtime = false it
    processes the file as fast as it can and exits 0 at its end.
    """
    # A ring may come at any moment (the demo forwards Enter as SIGUSR1): catch it first,
    # before anything slow, and hold it until the recorder exists. The demo starts us with
    # SIGUSR1 blocked, so one sent even earlier waits here instead of killing the process.
    rings = _EarlyRings()
    previous_usr1 = signal.signal(signal.SIGUSR1, rings.handle)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    try:
        code, rec = _run_recorder(config_path, data_dir, no_live, rings)
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)
    clips = len(rec.sealed_clips)
    click.echo(f"recorder: stopped after {rec.frames_processed} frames, {clips} clip(s)")
    sys.exit(code)


class _EarlyRings:
    """SIGUSR1 before the recorder exists is remembered; afterwards it rings at once."""

    def __init__(self) -> None:
        self.pending = 0
        self.ring: Callable[[], None] | None = None

    def handle(self, _signum: int, _frame: object) -> None:
        if self.ring is None:
            self.pending += 1
        else:
            self.ring()

    def attach(self, ring: Callable[[], None]) -> None:
        self.ring = ring
        if self.pending:
            self.pending = 0
            ring()


def _run_recorder(
    config_path: Path | None, data_dir: Path | None, no_live: bool, rings: _EarlyRings
) -> tuple[int, Any]:
    from doorbell import service

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_cli_config(config_path, data_dir)
    watchdog = service.Watchdog(service.Notifier(), service.watchdog_interval())

    def notify(message: str) -> None:
        # the recorder says WATCHDOG=1 every frame; systemd needs it every half interval
        if message == "WATCHDOG=1":
            watchdog.kick()
        else:
            service.notify(message)

    def reload() -> Config:
        return load_cli_config(config_path, data_dir)

    with recorder_from_config(config, notify=notify, live=not no_live, reload_config=reload) as rec:
        previous = {
            sig: signal.signal(sig, lambda *_: rec.stop())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        rings.attach(rec.ring)
        try:
            code = rec.run()
        finally:
            rings.ring = None
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code, rec
