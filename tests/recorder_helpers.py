"""Helpers for recorder tests: a camera whose frames carry their own index, scripted motion,
owner keys in a data dir, decrypting and decoding clips, and a plaintext scanner."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from doorbell.age.identities import X25519Identity
from doorbell.audit.devicekey import create_device_key
from doorbell.camera import Frame
from doorbell.config import Config, parse_config
from doorbell.errors import CameraEnded
from doorbell.media.video import StreamInfo, decode_frames
from doorbell.motion import MotionResult
from doorbell.recorder.events import EventDetails, NoEvents

WIDTH, HEIGHT = 320, 240
BITS = 12  # frame index encoded as 12 squares of 20x20 px along the top row
SQUARE = 20


def draw_index(image: np.ndarray, index: int) -> None:
    for bit in range(BITS):
        on = (index >> bit) & 1
        image[0:SQUARE, bit * SQUARE : (bit + 1) * SQUARE] = 255 if on else 0


def read_index(image: np.ndarray) -> int:
    index = 0
    for bit in range(BITS):
        block = image[4 : SQUARE - 4, bit * SQUARE + 4 : (bit + 1) * SQUARE - 4]
        if block.mean() > 127:
            index |= 1 << bit
    return index


class IndexCamera:
    """Frames at ``fps`` with their index drawn in; ends after ``count`` frames.

    ``on_frame`` (optional) is called with each index before the frame is returned.
    """

    def __init__(
        self,
        count: int,
        fps: int = 10,
        *,
        on_frame: Callable[[int], object] | None = None,
        start_index: int = 0,
    ) -> None:
        self.count, self.fps, self.on_frame = count, fps, on_frame
        self.start_index = start_index
        self.width, self.height = WIDTH, HEIGHT
        rng = np.random.default_rng(1)
        self._background = rng.integers(40, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        self.encoded_stream_info: StreamInfo | None = None  # libx264 encodes, not the camera
        self.privacy_masks: list[object] = []  # what the recorder set (these frames ignore it)

    def set_privacy_masks(self, privacy_masks: Iterable[object]) -> None:
        self.privacy_masks = list(privacy_masks)

    def __enter__(self) -> IndexCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.start_index, self.start_index + self.count):
            if self.on_frame is not None:
                self.on_frame(i)
            main = self._background.copy()
            main[100:140, (i * 3) % 280 : (i * 3) % 280 + 40] = (0, 0, 255)  # something moves
            draw_index(main, i)
            lores = main[::2, ::2, 1].copy()
            yield Frame(index=i, timestamp=1000.0 + i / self.fps, main=main, lores=lores)

    def read(self) -> Frame:  # pragma: no cover - the recorder iterates
        raise CameraEnded("use iteration")


class EventLog(NoEvents):
    """A :class:`~doorbell.recorder.events.RecorderEvents` sink that keeps what it is told.

    ``events``: (kind, details), live frames included as ``("frame", {...})``;
    ``recording``: each recording state change; ``statuses``: the systemd messages.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, EventDetails]] = []
        self.recording: list[bool] = []
        self.statuses: list[str] = []

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _details in self.events]

    @property
    def wants_frames(self) -> bool:
        return True

    def live_frame(self, jpeg: bytes, *, time_s: float, recording: bool) -> None:
        self.events.append(("frame", {"t": time_s, "recording": recording}))

    def event(self, kind: str, details: EventDetails) -> None:
        self.events.append((kind, details))

    def recording_changed(self, recording: bool) -> None:
        self.recording.append(recording)

    def service_status(self, message: str) -> None:
        self.statuses.append(message)


class ScriptedMotion:
    """Motion active on the given frame indexes (a set), whatever the picture shows; it
    implements the recorder's :class:`~doorbell.motion.MotionSource` protocol, like the real
    detector, and says it saw the object in the zone named "door"."""

    def __init__(self, active_frames: set[int]) -> None:
        self.active_frames = active_frames

    def update(self, frame: Frame) -> MotionResult:
        on = frame.index in self.active_frames
        return MotionResult(
            timestamp=frame.timestamp,
            score=1.0 if on else 0.0,
            boxes=((0, 0, 8, 8),) if on else (),
            in_zone=on,
            global_change=False,
            motion=on,
            is_active=on,
            zones=("door",) if on else (),
        )


def make_owner(data_dir: Path) -> X25519Identity:
    """Owner keys the quick way (no passphrase wrapping): recipients file and device key."""
    keys = data_dir / "keys"
    keys.mkdir(exist_ok=True)
    identity = X25519Identity.generate()
    (keys / "owner.recipients").write_text(f"{identity.recipient}\n")
    (keys / "owner.identity").write_text(f"{identity}\n")  # test-only: for the stock age CLI
    os.chmod(keys / "owner.identity", 0o600)
    create_device_key(keys, "doorbell.test/recorder")
    return identity


def recorder_config(data_dir: Path, **sections: dict) -> Config:
    document: dict = {
        "camera": {
            "width": WIDTH,
            "height": HEIGHT,
            "fps": 10,
            "lores_width": 160,
            "lores_height": 120,
            "realtime": False,
        },
        "recording": {
            "pre_roll_s": 2.0,
            "post_roll_s": 2.0,
            "max_clip_s": 30.0,
            "keyframe_interval_s": 1.0,
            "fsync_interval_s": 0.5,
        },
        "storage": {"data_dir": str(data_dir), "retention_days": 0, "min_free_gb": 0.0},
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    return parse_config(document)


def decrypt_bytes(path: Path, identity: X25519Identity, *, allow_truncated: bool = False) -> bytes:
    from doorbell.age.decrypt import decrypt

    with path.open("rb") as src:
        reader = decrypt(src, [identity], allow_truncated=allow_truncated)
        return reader.read()


def clip_indexes(path: Path, identity: X25519Identity, **kwargs: bool) -> list[int]:
    """The frame indexes drawn in a clip's frames, in order."""
    data = decrypt_bytes(path, identity, **kwargs)
    return [read_index(frame.image) for frame in decode_frames(io.BytesIO(data))]


#: Signatures long enough that random ciphertext never matches them by chance (>= 6 bytes),
#: searched anywhere in every file, plus the short magic numbers at the start of a file.
SIGNATURES_ANYWHERE = {
    "JPEG (JFIF)": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "JPEG (Exif)": b"\xff\xd8\xff\xe1",
    "PNG": b"\x89PNG\r\n\x1a\n",
    "MP4 ftyp": b"ftypisom",
    "MP4 moof": b"moof\x00\x00\x00\x10mfhd",
    "H.264 SPS": b"\x00\x00\x00\x01\x67\x64",
    "H.264 SPS (baseline)": b"\x00\x00\x00\x01\x67\x42",
    "H.264 SPS (main)": b"\x00\x00\x00\x01\x67\x4d",
}


def plaintext_hits(*roots: Path) -> list[str]:
    """Files (or files below directories) in ``roots`` holding an image or video signature."""
    files = [Path(root) for root in roots if Path(root).is_file()]
    for root in roots:
        files += [Path(d) / name for d, _dirs, names in os.walk(root) for name in names]
    hits = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits += [f"{path}: {kind}" for kind, sig in SIGNATURES_ANYWHERE.items() if sig in data]
        if data.startswith(b"\xff\xd8\xff") or data[4:8] == b"ftyp":
            hits.append(f"{path}: image or video header at offset 0")
    return hits
