"""The recorder: camera -> privacy masks -> motion -> event state machine -> H.264 -> age -> disk.

One straight line per frame, in :meth:`Recorder.process_frame`:

1. the camera delivers a :class:`~doorbell.camera.Frame` with privacy masks already burned
   into both images (so nothing downstream, pre-roll and live view included, sees them);
2. the main image is encoded to H.264 *continuously* (by libx264 here, or already by the
   camera's hardware encoder: then the frame carries its packets), and every packet enters
   the GOP-aligned pre-roll ring; encoded packets, never raw frames, are what is kept;
3. motion detection runs on the low-resolution grey image; rings come from the bell thread;
4. :class:`EventStateMachine` decides: start a clip (its first packets are the pre-roll,
   which already holds the trigger frame's packet), split a long clip at a keyframe without a
   gap, or seal the clip once ``post_roll_s`` passed without activity;
5. clip bytes stream through the age encryptor to ``clips/YYYY/MM/DD/<id>.mp4.age``; a
   thumbnail JPEG is encrypted the same way. Every sealed clip is an audit entry with the
   SHA-256 of its ciphertext, exactly once: one that a power cut left without it gets it at
   the next start, before ``recorder.start`` (:mod:`doorbell.recorder.sealaudit`).

The recorder holds only public keys: it can encrypt to the owner but never decrypt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from doorbell.age.recipients import Recipient
from doorbell.audit.sink import AuditSink
from doorbell.camera import Camera, Frame
from doorbell.config import Config, MotionConfig
from doorbell.datadir import DataDir
from doorbell.errors import CameraEnded, CameraError, ConfigError, DiskFullError, DoorbellError
from doorbell.media.video import EncodedPacket, H264Encoder, StreamInfo, encode_jpeg
from doorbell.motion import MotionResult, MotionSource
from doorbell.recorder.clipfile import EncryptedClipWriter, write_encrypted_file
from doorbell.recorder.clipstate import EventStateMachine
from doorbell.recorder.events import EventDetails, NoEvents, RecorderEvents
from doorbell.recorder.preroll import PacketRing
from doorbell.recorder.retention import (
    as_disk_full,
    footage_free_bytes,
    held_windows,
    retention_victims,
)
from doorbell.recorder.sealaudit import append_clip_sealed, recover_clip_sealed_entries
from doorbell.recorder.settings_watch import SettingsWatcher
from doorbell.store import Store, free_bytes, new_clip_id, thumb_relative_path

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 60.0
#: after a write failed for lack of space, delete oldest clips until this much is free (or
#: ``storage.min_free_gb``, if larger): room for a few clips before the next retention pass
EMERGENCY_FREE_BYTES = 2 << 20
GIB = 1 << 30


#: The thumbnail is the frame showing the largest moving object within this many seconds
#: of the clip's trigger: who came, not the empty doorstep of the first motion.
THUMBNAIL_WINDOW_S = 3.0


@dataclass
class _OpenClip:
    id: str
    event_id: str
    trigger: str
    writer: EncryptedClipWriter
    started_at: float
    last_sync_t: float
    zones: set[str]
    first_frame_t: float
    score: float = 0.0
    #: the thumbnail: the frame with the largest moving box in the first
    #: THUMBNAIL_WINDOW_S of the clip (held in memory only, written once when chosen)
    thumb_area: int = 0
    thumb_frame: Any = None
    thumb_written: bool = False


class Recorder:
    """Runs the pipeline until the camera ends or :meth:`stop` is called.

    Everything the recorder touches is injected: ``camera_factory`` opens a camera (called
    again after a fault; the recorder sets the privacy masks in force on each one),
    ``detector`` is a motion detector for the lores size, ``store`` and ``audit`` are the data
    dir's index and log, ``recipients`` the owner's public keys. ``events`` receives live
    frames, events, the recording state (the LED) and systemd status
    (:mod:`doorbell.recorder.events`).
    """

    def __init__(
        self,
        config: Config,
        *,
        camera_factory: Callable[[], Camera],
        detector: MotionSource,
        store: Store,
        audit: AuditSink,
        recipients: Sequence[Recipient],
        events: RecorderEvents | None = None,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        settings: SettingsWatcher | None = None,
        detector_factory: Callable[[MotionConfig], MotionSource] | None = None,
    ) -> None:
        self.config = config
        self._settings = settings
        self._detector_factory = detector_factory
        self._camera: Camera | None = None
        self._camera_factory = camera_factory
        self._detector = detector
        self._store = store
        self._audit = audit
        self._recipients = list(recipients)
        self._events: RecorderEvents = events if events is not None else NoEvents()
        self._wall_clock = wall_clock
        self._sleep = sleep
        #: the export registry whose pending/approved requests hold clips against retention
        #: (the requests tables; issue 16 moves them to their own database)
        self.registry_db = DataDir(store.data_dir).exports_index
        self._holds_unreadable = False
        rec = config.recording
        self._machine = EventStateMachine(post_roll_s=rec.post_roll_s, max_clip_s=rec.max_clip_s)
        self._ring = PacketRing(rec.pre_roll_s)
        self._encoder: H264Encoder | None = None
        self._stream_info: StreamInfo | None = None  # of the packets in the ring and clip
        self._camera_stream_info: StreamInfo | None = None  # what the camera says it encodes
        self._clip: _OpenClip | None = None
        self._rings: queue.SimpleQueue[float] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wall_offset: float | None = None
        self._last_live_t = -1e18
        self._last_retention_t = -1e18
        self._last_checkpoint_t = -1e18
        self._ready = False
        self._storage_alert = False
        self.sealed_clips: list[str] = []
        self.frames_processed = 0

    # --- control (thread-safe) ----------------------------------------------------------

    def ring(self) -> None:
        """The doorbell was pressed (called from the bell's thread)."""
        self._rings.put(self._wall_clock())

    def stop(self) -> None:
        """Ask the main loop to seal the open clip and return (signal handlers call this)."""
        self._stop.set()

    @property
    def is_recording(self) -> bool:
        return self._clip is not None

    # --- main loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Record until the camera ends (exit code 0) or stop() is called (0).

        First, sealed clips a power cut left without their ``clip.sealed`` entry get it
        (``recovered: true``), so ``recorder.start`` follows every entry owed.
        """
        recover_clip_sealed_entries(self._store, self._audit)
        self._audit.append(
            "recorder", "recorder.start", details={"camera": self.config.camera.backend}
        )
        self._apply_retention()
        backoff = 1.0
        outage_audited = False
        try:
            while not self._stop.is_set():
                try:
                    with self._camera_factory() as camera:
                        self._camera = camera
                        camera.set_privacy_masks(self.config.privacy.masks)
                        self._camera_stream_info = camera.encoded_stream_info
                        for frame in camera:
                            self.process_frame(frame)
                            if outage_audited:
                                self._audit.append("recorder", "camera.recovered")
                                self._emit("camera_ok", {})
                                outage_audited, backoff = False, 1.0
                            if self._stop.is_set():
                                break
                    break  # an iterator that simply ends: same as CameraEnded
                except CameraEnded:
                    break
                except CameraError as error:
                    self._camera_lost()
                    log.error("camera fault: %s; retrying in %.0f s", error, backoff)
                    self._events.service_status(f"STATUS=camera fault: {error}")
                    self._emit("camera_fault", {"error": str(error)[:200]})
                    if not outage_audited:
                        self._audit.append(
                            "recorder", "camera.fault", details={"error": str(error)[:200]}
                        )
                        outage_audited = True
                    if self._sleep is None:
                        self._stop.wait(backoff)  # wakes at once on stop()
                    else:
                        self._sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self._seal_or_abandon()
            if self._encoder is not None:
                self._encoder.close()
            self._audit.append(
                "recorder", "recorder.stop", details={"clips": len(self.sealed_clips)}
            )
            self._events.service_status("STOPPING=1")
        return 0

    def process_frame(self, frame: Frame) -> None:
        """One step of the pipeline for one frame (see the module docstring).

        Raises :class:`CameraError` for a frame that is not what the camera promised (wrong
        size or type, a timestamp that is not a number): a broken camera, handled like one.
        """
        self._check_frame(frame)
        if self._wall_offset is None:
            self._wall_offset = self._wall_clock() - frame.timestamp
        packets = self._encode(frame)
        for packet in packets:
            self._ring.append(packet)
        motion = self._detector.update(frame)
        rang = self._drain_rings()
        keyframe = bool(packets) and packets[0].is_keyframe
        decision = self._machine.step(
            frame.timestamp,
            motion=motion.is_active,
            ring=rang,
            keyframe=keyframe,
        )
        try:
            self._write_clip(frame, packets, decision, motion)
        except (OSError, sqlite3.OperationalError, DoorbellError) as error:
            full = as_disk_full(error)
            if full is None:
                raise
            self._storage_full(full)
        if rang:
            self._record_ring(frame)
        self._publish_live(frame)
        self._housekeeping(frame)
        self.frames_processed += 1

    # --- pieces -------------------------------------------------------------------------

    def _encode(self, frame: Frame) -> list[EncodedPacket]:
        """The frame's H.264 packets: the camera's own (hardware encoder) or libx264's."""
        own = frame.packets
        if own is not None:
            if self._encoder is not None:
                raise CameraError("camera switched from raw to encoded frames mid-stream")
            if self._stream_info is None:
                cam = self.config.camera
                self._stream_info = self._camera_stream_info or StreamInfo(
                    cam.width, cam.height, float(cam.fps)
                )
            return list(own)
        if self._encoder is None:
            if self._stream_info is not None:
                raise CameraError("camera switched from encoded to raw frames mid-stream")
            self._encoder = H264Encoder.from_config(self.config.camera, self.config.recording)
            self._stream_info = self._encoder.stream_info
        return self._encoder.encode(frame.main, frame.timestamp)

    def _write_clip(
        self, frame: Frame, packets: list[EncodedPacket], decision: str | None, motion: MotionResult
    ) -> None:
        if decision == "start":
            zones = tuple(sorted(motion.zones))  # for the notifier
            self._open_clip(frame, self._ring.take(), trigger=self._machine.trigger, zones=zones)
        elif decision == "split" and self._clip is not None:
            event_id = self._clip.event_id
            self._seal_open_clip(end_event=False)
            self._open_clip(frame, packets, trigger="continuation", event_id=event_id)
        elif self._clip is not None:
            for packet in packets:
                self._clip.writer.write(packet)
            if decision == "seal":
                self._seal_open_clip()
        if self._clip is not None:
            self._choose_thumbnail(self._clip, frame, motion)
            self._clip.zones.update(motion.zones)
            self._clip.score = max(self._clip.score, motion.score)
            if frame.timestamp - self._clip.last_sync_t >= self.config.recording.fsync_interval_s:
                self._clip.writer.sync()
                self._clip.last_sync_t = frame.timestamp

    def _seal_or_abandon(self) -> None:
        """Seal the open clip; if the disk is full, keep its prefix as an interrupted clip."""
        try:
            self._seal_open_clip()
        except (OSError, sqlite3.OperationalError, DoorbellError) as error:
            full = as_disk_full(error)
            if full is None:
                raise
            self._storage_full(full)

    def _storage_full(self, error: DiskFullError) -> None:
        """The disk is full: keep the prefix of the open clip, free space, tell the owner.

        The open clip is abandoned (its authenticated prefix stays, flagged interrupted, so
        nothing half-written is left unmarked), the oldest sealed clips are deleted until
        :data:`EMERGENCY_FREE_BYTES` (or ``storage.min_free_gb``, if larger) are free, and
        the first failure of an episode is an audit entry ``storage.full``, a live event
        ``storage_full`` and a systemd status line. The next sealed clip ends the episode
        (``storage.recovered``, ``storage_ok``). Nothing sealed is touched except by the
        retention rules, oldest first.
        """
        clip, self._clip = self._clip, None
        log.error("disk full while recording: %s", error)
        if clip is not None:
            with contextlib.suppress(OSError):
                clip.writer.abandon()
            self._machine.recording = False
            self._events.recording_changed(False)
        freed = self._apply_retention(
            min_free_bytes=max(int(self.config.storage.min_free_gb * GIB), EMERGENCY_FREE_BYTES)
        )
        interrupted = None
        if clip is not None:
            try:
                cut = self._store.mark_interrupted(clip.id, thumb_path=thumb_relative_path(clip.id))
                interrupted = clip.id
                if cut is not None:  # its clip.sealed entry; if the log cannot take it now,
                    append_clip_sealed(self._store, self._audit, cut)  # the next start will
                self._store.end_event(clip.event_id, ended_at=self._wall_clock())
            except (OSError, sqlite3.OperationalError) as again:
                log.error("cannot flag clip %s interrupted yet: %s", clip.id, again)
        if self._storage_alert:
            return
        self._storage_alert = True
        details = {"error": str(error)[:200], "clip": interrupted, "deleted": freed}
        self._events.service_status("STATUS=storage full: deleting oldest clips")
        self._emit("storage_full", details)
        try:
            self._audit.append("recorder", "storage.full", details=details)
        except (OSError, sqlite3.OperationalError) as again:
            self._storage_alert = False  # try to say it again next time
            log.error("cannot audit storage.full: %s", again)

    def _check_frame(self, frame: Any) -> None:
        camera = self.config.camera
        main, lores = getattr(frame, "main", None), getattr(frame, "lores", None)
        timestamp = getattr(frame, "timestamp", None)
        problem = ""
        if not isinstance(main, np.ndarray) or not isinstance(lores, np.ndarray):
            problem = f"not a frame: {type(frame).__name__}"
        elif main.shape != (camera.height, camera.width, 3) or main.dtype != np.uint8:
            problem = f"main image {main.shape} {main.dtype}"
        elif lores.shape != (camera.lores_height, camera.lores_width) or lores.dtype != np.uint8:
            problem = f"lores image {lores.shape} {lores.dtype}"
        elif not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
            problem = f"timestamp {timestamp!r}"
        if problem:
            raise CameraError(
                f"camera delivered a bad frame ({problem}); expected {camera.width}x"
                f"{camera.height} BGR and {camera.lores_width}x{camera.lores_height} grey uint8"
            )

    def _camera_lost(self) -> None:
        """Seal what was recorded and forget the old camera's timeline.

        Packets in the pre-roll ring come from before the outage: a clip started after the
        camera is back must not begin with them (they may even be in the clip just sealed),
        and the next camera's frames start a fresh H.264 stream at a keyframe.
        """
        self._seal_or_abandon()
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        self._stream_info = None
        self._ring = PacketRing(self.config.recording.pre_roll_s)
        self._machine.recording = False
        self._wall_offset = None
        self._last_live_t = self._last_retention_t = self._last_checkpoint_t = -1e18

    def _wall(self, t: float) -> float:
        return (self._wall_offset or 0.0) + t

    def _drain_rings(self) -> bool:
        rang = False
        while True:
            try:
                self._rings.get_nowait()
            except queue.Empty:
                return rang
            rang = True

    def _open_clip(
        self,
        frame: Frame,
        packets: list[EncodedPacket],
        *,
        trigger: str,
        event_id: str | None = None,
        zones: tuple[str, ...] = (),
    ) -> None:
        if not packets or not packets[0].is_keyframe:
            # Nothing decodable yet (the encoder's first frames): wait for the next keyframe.
            self._machine.recording = False
            return
        started_at = self._wall(packets[0].time_s)
        clip_id = new_clip_id(started_at)
        if event_id is None:
            event_id = self._store.add_event(
                "ring" if trigger == "ring" else "motion", started_at=self._wall(frame.timestamp)
            )
        path = self._store.begin_clip(
            clip_id, started_at=started_at, trigger=trigger, event_id=event_id
        )
        try:
            writer = EncryptedClipWriter(path, self._recipients, self._stream_info)  # type: ignore[arg-type]
        except BaseException:
            self._store.mark_interrupted(clip_id)  # never leave an unsealed row behind
            raise
        self._clip = _OpenClip(
            clip_id, event_id, trigger, writer, started_at, frame.timestamp, set(), frame.timestamp
        )
        for packet in packets:
            writer.write(packet)
        self._machine.clip_started(packets[0].time_s)
        self._write_thumbnail(clip_id, frame)
        self._events.recording_changed(True)
        self._emit("motion_start", {"clip": clip_id, "trigger": trigger, "zones": list(zones)})

    def _choose_thumbnail(self, clip: _OpenClip, frame: Frame, motion: MotionResult) -> None:
        """Keep the frame with the largest moving box of the first seconds; when they are
        over, replace the trigger-frame thumbnail with it (once). The frame is already
        privacy-masked by the camera, and the JPEG is encrypted like the first one."""
        if clip.thumb_written:
            return
        if frame.timestamp - clip.first_frame_t > THUMBNAIL_WINDOW_S:
            clip.thumb_written = True
            if clip.thumb_frame is not None:
                self._write_thumbnail(clip.id, clip.thumb_frame)
            clip.thumb_frame = None
            return
        area = max((int(box[2]) * int(box[3]) for box in motion.boxes), default=0)
        if area > clip.thumb_area:
            clip.thumb_area = area
            clip.thumb_frame = frame

    def _write_thumbnail(self, clip_id: str, frame: Frame) -> None:
        jpeg = encode_jpeg(frame.main, self.config.recording.thumbnail_width)
        relative = thumb_relative_path(clip_id)
        path = self._store.absolute(relative)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        write_encrypted_file(path, jpeg, self._recipients)

    def _seal_open_clip(self, *, end_event: bool = True) -> None:
        clip = self._clip
        if clip is None:
            return
        if not clip.thumb_written and clip.thumb_frame is not None:
            clip.thumb_written = True  # a clip shorter than the window: its best frame
            self._write_thumbnail(clip.id, clip.thumb_frame)
            clip.thumb_frame = None
        sealed = clip.writer.seal()
        ended_at = self._wall(sealed.last_time_s or 0.0)
        zones = tuple(sorted(clip.zones))
        row = self._store.seal_clip(
            clip.id,
            ended_at=ended_at,
            duration_s=sealed.duration_s,
            size_bytes=sealed.size_bytes,
            sha256=sealed.sha256,
            thumb_path=thumb_relative_path(clip.id),
            zones=zones,
            audit_pending_from=self._audit.size,  # owes clip.sealed until it is appended
        )
        self._clip = None  # only now: a failure above leaves it for _storage_full to flag
        if end_event:
            self._store.end_event(clip.event_id, ended_at=ended_at, score=clip.score, zones=zones)
            self._machine.recording = False
        append_clip_sealed(self._store, self._audit, row)
        self.sealed_clips.append(clip.id)
        if self._storage_alert:
            self._storage_alert = False
            self._audit.append("recorder", "storage.recovered", clip.id)
            self._emit("storage_ok", {"clip": clip.id})
        self._events.recording_changed(False)
        self._emit("clip_sealed", {"clip": clip.id, "duration_s": round(sealed.duration_s, 3)})
        if end_event:
            self._emit(
                "motion_stop", {"clip": clip.id, "event": clip.event_id, "zones": list(zones)}
            )

    def _record_ring(self, frame: Frame) -> None:
        clip_id = self._clip.id if self._clip is not None else None
        if clip_id is not None and self._clip is not None and self._clip.trigger == "ring":
            event_id = self._clip.event_id  # the ring itself started this clip's event
        else:
            event_id = self._store.add_event(
                "ring", started_at=self._wall(frame.timestamp), clip_id=clip_id
            )
        self._audit.append("recorder", "doorbell.ring", event_id, {"clip": clip_id})
        self._emit("ring", {"event": event_id, "clip": clip_id})

    def _emit(self, kind: str, details: EventDetails) -> None:
        try:
            self._events.event(kind, details)
        except (OSError, DoorbellError) as error:  # the live view must never stop recording
            log.warning("live publish failed: %s", error)

    def _publish_live(self, frame: Frame) -> None:
        live = self.config.live
        if not self._events.wants_frames or frame.timestamp - self._last_live_t < 1.0 / live.fps:
            return
        self._last_live_t = frame.timestamp
        jpeg = encode_jpeg(frame.main, live.width, live.jpeg_quality)
        try:
            self._events.live_frame(
                jpeg, time_s=self._wall(frame.timestamp), recording=self.is_recording
            )
        except (OSError, DoorbellError) as error:  # the live view must never stop recording
            log.warning("live publish failed: %s", error)

    def _housekeeping(self, frame: Frame) -> None:
        if not self._ready:
            self._ready = True
            self._events.service_status("READY=1")
            self._events.service_status(
                f"STATUS=recording from {self.config.camera.backend} camera"
            )
        self._events.service_status("WATCHDOG=1")
        if (
            self._audit.signer is not None
            and frame.timestamp - self._last_checkpoint_t >= self.config.audit.checkpoint_interval_s
        ):
            # The recorder holds the device key; the web process appends without signing, so
            # its entries get a signed checkpoint here within the configured interval.
            self._last_checkpoint_t = frame.timestamp
            self._audit.checkpoint()
        if self._settings is not None:
            self._poll_settings(frame.timestamp)
        if frame.timestamp - self._last_retention_t >= RETENTION_EVERY_S:
            self._last_retention_t = frame.timestamp
            self._apply_retention()

    def _poll_settings(self, now: float) -> None:
        try:
            new = self._settings.poll(now)  # type: ignore[union-attr]
        except ConfigError as error:
            log.error("owner settings not applied: %s", error)
            self._audit.append("recorder", "settings.rejected", details={"error": str(error)[:300]})
            return
        if new is not None:
            self.apply_settings(new)

    def apply_settings(self, new: Config) -> list[str]:
        """Apply what the owner may change while recording: motion, privacy masks, storage,
        the chime's quiet hours.

        Everything else (camera, recording, where the data lives) needs a restart. Returns the
        sections that changed; each application is an audit entry.
        """
        changed = [
            name
            for name in ("motion", "privacy", "storage")
            if getattr(new, name) != getattr(self.config, name)
        ]
        if new.gpio.quiet_hours != self.config.gpio.quiet_hours:  # the chime's (bell.py)
            gpio = dataclasses.replace(self.config.gpio, quiet_hours=new.gpio.quiet_hours)
            self.config = dataclasses.replace(self.config, gpio=gpio)
            changed.append("gpio.quiet_hours")
        if not changed:
            return changed
        storage = dataclasses.replace(new.storage, data_dir=self.config.storage.data_dir)
        self.config = dataclasses.replace(
            self.config, motion=new.motion, privacy=new.privacy, storage=storage
        )
        if "motion" in changed and self._detector_factory is not None:
            self._detector = self._detector_factory(new.motion)
        if "privacy" in changed and self._camera is not None:
            self._camera.set_privacy_masks(new.privacy.masks)
        if "storage" in changed:
            self._last_retention_t = -1e18  # apply the new retention at the next frame
        self._audit.append("recorder", "settings.applied", details={"sections": changed})
        return changed

    def _apply_retention(self, *, min_free_bytes: int | None = None) -> int:
        """Delete what the retention rules choose (oldest first, never a clip held by a
        pending or approved export request: :mod:`doorbell.recorder.retention`); return how
        many clips were deleted."""
        storage = self.config.storage
        keep = {self._clip.id} if self._clip is not None else set()
        if min_free_bytes is None:
            min_free_bytes = int(storage.min_free_gb * GIB)
        data_dir = self._store.data_dir
        holds = held_windows(self.registry_db)
        if holds is None and not self._holds_unreadable:
            self._holds_unreadable = True
            self._audit.append(
                "recorder",
                "storage.holds_unreadable",
                str(self.registry_db.name),
                {"effect": "no clip is deleted until export requests can be read"},
            )
        elif holds is not None:
            self._holds_unreadable = False
        victims = retention_victims(
            self._store,
            now=self._store.now(),
            retention_days=storage.retention_days,
            quota_bytes=int(storage.quota_gb * GIB),
            min_free_bytes=min_free_bytes,
            free_bytes=footage_free_bytes(data_dir, free_bytes(data_dir)),
            keep=keep,
            holds=holds,
        )
        for clip, reason in victims:
            self._store.delete_clip(clip.id)
            self._audit.append(
                "recorder",
                "clip.deleted",
                clip.id,
                {"reason": reason, "sha256": getattr(clip, "sha256", "") or ""},
            )
        return len(victims)
