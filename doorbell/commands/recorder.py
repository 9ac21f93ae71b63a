"""`doorbell recorder`: the daemon that watches the door and writes encrypted clips."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.config import Config
from doorbell.datadir import DataDir
from doorbell.errors import StorageError

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
) -> Iterator[Any]:
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
        publisher = None
        if live:
            from doorbell.live import LivePublisher

            publisher = stack.enter_context(
                LivePublisher(Path(config.live.socket_path), group=config.live.socket_group or None)
            )
        detector = MotionDetector(config.motion, (camera.lores_width, camera.lores_height))
        recorder_box: list[Recorder] = []
        bell = stack.enter_context(
            Bell(
                config.gpio,
                pin_factory=pin_factory,
                when_rung=lambda *_args: recorder_box[0].ring() if recorder_box else None,
            )
        )
        recorder = Recorder(
            config,
            camera_factory=lambda: open_camera(
                camera,
                clock=camera_clock,
                sleep=camera_sleep,
                # after a reconnect, the masks in force now (the owner may have changed them)
                privacy_masks=recorder_box[0].config.privacy.masks,
                recording=config.recording,  # picamera2: its hardware encoder may encode
            ),
            detector=detector,
            store=store,
            audit=audit,
            recipients=recipients,
            publish=_live_adapter(publisher, config) if publisher is not None else None,
            notify=notify,
            on_recording=bell.set_recording,
            settings=(
                SettingsWatcher(settings_path(data_dir), reload_config) if reload_config else None
            ),
            detector_factory=lambda motion: MotionDetector(
                motion, (camera.lores_width, camera.lores_height)
            ),
        )
        recorder_box.append(recorder)
        yield recorder


Publish = Callable[[str, dict[str, Any], bytes | None], None]


def _live_adapter(publisher: Any, config: Config) -> Publish:
    """Turn the recorder's (kind, details, payload) callbacks into live-socket messages."""
    width = min(config.live.width, config.camera.width)
    height = round(config.camera.height * width / config.camera.width)

    def publish(kind: str, details: dict[str, Any], payload: bytes | None) -> None:
        if kind == "frame":
            if payload is not None:
                publisher.publish_frame(payload, time_s=details["t"], width=width, height=height)
            return
        publisher.publish_event(kind, time_s=time.time(), **details)

    return publish


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
        signal.signal(signal.SIGUSR1, lambda *_: rec.ring())
        try:
            code = rec.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    clips = len(rec.sealed_clips)
    click.echo(f"recorder: stopped after {rec.frames_processed} frames, {clips} clip(s)")
    sys.exit(code)
