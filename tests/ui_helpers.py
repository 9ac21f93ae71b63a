"""Helpers for web UI tests: a data dir of real encrypted clips, a fake vault, an app, unlock.

Clips are made the way the recorder makes them: H.264 from
:class:`doorbell.media.video.H264Encoder` muxed into fragmented MP4 and age-encrypted by
:class:`doorbell.recorder.clipfile.EncryptedClipWriter`, thumbnails by
:func:`doorbell.recorder.clipfile.write_encrypted_file`.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.age.decrypt import decrypt
from doorbell.age.identities import X25519Identity
from doorbell.audit.anchor import anchor_from_cosignature, write_anchor
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.entries import decode_entry
from doorbell.audit.log import AuditLog
from doorbell.config import Config, parse_config
from doorbell.errors import PassphraseError
from doorbell.keys import OWNER_COSIGNER_NAME, derive_owner_anchor_key
from doorbell.media.video import H264Encoder, encode_jpeg
from doorbell.recorder.clipfile import EncryptedClipWriter, write_encrypted_file
from doorbell.store import Store, new_clip_id
from doorbell.ui.vault import OwnerKeys

PASSPHRASE = "correct horse battery staple"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass
class FakeVault:
    """A vault with a fixed passphrase and a fresh identity (no scrypt: fast tests)."""

    identity: X25519Identity = field(default_factory=X25519Identity.generate)
    cosigning_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    passphrase: str = PASSPHRASE
    unlocks: int = 0

    def unlock(self, passphrase: str) -> OwnerKeys:
        if passphrase != self.passphrase:
            raise PassphraseError("wrong passphrase")
        self.unlocks += 1
        return OwnerKeys(self.identity, self.cosigning_key)

    def change_passphrase(self, old: str, new: str) -> None:
        if old != self.passphrase:
            raise PassphraseError("wrong passphrase")
        self.passphrase = new


class Clock:
    """A settable monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_clip(
    store: Store,
    recipients: list[Any],
    started_at: float,
    *,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    trigger: str = "motion",
    interrupted: bool = False,
    bitrate_kbps: int = 500,
    seed: int = 0,
) -> str:
    """Write one real encrypted clip (and thumbnail) into ``store``; return its id."""
    width, height = size
    rng = np.random.default_rng(seed)
    kind = "ring" if trigger == "ring" else "motion"
    event_id = store.add_event(kind, started_at=started_at)
    clip_id = new_clip_id(started_at)
    path = store.begin_clip(clip_id, started_at=started_at, trigger=trigger, event_id=event_id)
    with H264Encoder(width, height, fps, bitrate_kbps=bitrate_kbps) as encoder:
        writer = EncryptedClipWriter(path, recipients, encoder.stream_info)
        first = None
        for index in range(int(seconds * fps)):
            image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            image[:, : (index * 7) % width] = 40
            if first is None:
                first = image
            for packet in encoder.encode(image, index / fps):
                writer.write(packet)
        for packet in encoder.flush():
            writer.write(packet)
        if interrupted:
            writer.abandon()
            store.reconcile()
            return clip_id
        sealed = writer.seal()
    thumb = f"thumbs/{clip_id}.jpg.age"
    store.absolute(thumb).parent.mkdir(parents=True, exist_ok=True)
    assert first is not None, "a clip of at least one frame"
    write_encrypted_file(store.absolute(thumb), encode_jpeg(first, 160), recipients)
    store.seal_clip(
        clip_id,
        ended_at=started_at + seconds,
        duration_s=sealed.duration_s,
        size_bytes=sealed.size_bytes,
        sha256=sealed.sha256,
        thumb_path=thumb,
    )
    store.end_event(event_id, ended_at=started_at + seconds)
    return clip_id


def plaintext_of(
    store: Store, clip_id: str, identity: Any, *, allow_truncated: bool = False
) -> bytes:
    path = store.absolute(store.get_clip(clip_id).path)
    with open(path, "rb") as handle:
        return decrypt(handle, [identity], allow_truncated=allow_truncated).read()


def ui_config(data_dir: Path, config_path: Path | None = None, **web: Any) -> Config:
    document = {"storage": {"data_dir": str(data_dir)}, "web": {"tls": False, **web}}
    return parse_config(document, source=config_path)


def prepare_data_dir(data_dir: Path, vault: FakeVault | None = None) -> None:
    """Device key; with ``vault``, also what `doorbell init` does for the owner: the first
    cosignature and the owner anchor."""
    (data_dir / "keys").mkdir(exist_ok=True)
    create_device_key(data_dir / "keys", "doorbell.test/ui")
    if vault is not None:
        owner_init(data_dir, vault)


def owner_init(data_dir: Path, vault: FakeVault | OwnerKeys) -> None:
    """The owner's part of `doorbell init`: cosign the log and write the owner anchor."""
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys")) as log:
        log.append("owner", "keys.created", "keys", {"owner_anchor": True})
        note = log.cosign(vault.cosigning_key, OWNER_COSIGNER_NAME, first=True)
    key = derive_owner_anchor_key(vault.identity)
    write_anchor(data_dir, anchor_from_cosignature(note), key)


def rewrite_log(data_dir: Path) -> None:
    """Review finding 1 (the attack the owner anchor stops): rebuild the log with the device
    key read off the SD card, drop the clip entries and every owner cosignature."""
    with AuditLog.open(data_dir) as log:
        old = [decode_entry(leaf) for _, leaf in log.entries()]
    scratch = Path(tempfile.mkdtemp(dir=data_dir.parent))
    shutil.copytree(data_dir / "keys", scratch / "keys")
    with AuditLog.open(scratch, signer=load_device_signer(scratch / "keys")) as log:
        for entry in old[1:]:
            if not entry["action"].startswith("clip."):
                log.append(entry["actor"], entry["action"], entry["object"], entry["details"])
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"audit.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copy(scratch / "audit.sqlite3", data_dir / "audit.sqlite3")


def csrf_from(html: str | bytes) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    if match is None:
        raise AssertionError("no CSRF token in the page")
    return match.group(1)


def unlock(client: Any, passphrase: str = PASSPHRASE) -> Any:
    page = client.get("/unlock")
    token = csrf_from(page.data)
    return client.post("/unlock", data={"csrf_token": token, "passphrase": passphrase})


def page_token(client: Any, path: str = "/settings") -> str:
    return csrf_from(client.get(path).data)


def read_all(response: Any) -> bytes:
    buffer = io.BytesIO()
    for piece in response.response:
        buffer.write(piece)
    return buffer.getvalue()
