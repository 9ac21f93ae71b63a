"""Fixtures for export tests: a data dir with real encrypted clips, the audit log, a registry."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ui_helpers import T0, make_clip

from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.identities import X25519Identity
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.log import AuditLog
from doorbell.config import ExportsConfig
from doorbell.exports.registry import ExportRegistry
from doorbell.keys import OWNER_COSIGNER_NAME, derive_owner_cosigning_key
from doorbell.recorder.sealaudit import append_clip_sealed
from doorbell.store import Store

NOW = T0 + 86400.0


class WallClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    data_dir: Path
    clock: WallClock
    store: Store
    audit: AuditLog
    registry: ExportRegistry
    owner: X25519Identity
    cosigning_key: Ed25519PrivateKey
    clip_ids: list[str]

    def raw_request(self, **changes: Any) -> dict[str, Any]:
        requester = X25519Identity.generate()
        raw = {
            "requester": "PC Jane Smith",
            "organisation": "Example Police",
            "contact": "jane.smith@police.example",
            "kind": "police",
            "legal_basis": "warrant",
            "legal_reference": "W-2026/0042",
            "window_start": "2026-01-01T00:00",
            "window_end": "2026-01-01T01:00",
            "reason": "Burglary reported at number 12 on that night.",
            "delivery": "recipient",
            "recipient": str(requester.recipient),
        }
        raw.update(changes)
        self.last_requester = requester
        return raw


def log_sealed_clips(
    data_dir: Path, store: Store, clip_ids: list[str], *, at: float = T0 + 3600
) -> None:
    """Append each clip's ``clip.sealed`` entry, as the recorder does when it seals one
    (timed ``at``, by default an hour after T0: before any request the tests submit)."""
    with AuditLog.open(data_dir, clock=lambda: at) as log:
        for clip_id in clip_ids:
            append_clip_sealed(store, log, store.get_clip(clip_id))


def make_world(data_dir: Path, *, clips: int = 3, signer: bool = True) -> Iterator[World]:
    (data_dir / "keys").mkdir(exist_ok=True)
    create_device_key(data_dir / "keys", "doorbell.test/exports")
    clock = WallClock()
    owner = X25519Identity.generate()
    # what `doorbell init` writes: the registry keeps the owner's copy of each status link
    (data_dir / "keys" / "owner.recipients").write_text(f"{owner.recipient}\n")
    store = Store.open(data_dir, clock=clock)
    ids = [
        make_clip(store, [owner.recipient], T0 + 60 * (i + 1), seconds=1.0, seed=i)
        for i in range(clips)
    ]
    with AuditLog.open(
        data_dir, signer=load_device_signer(data_dir / "keys"), clock=lambda: T0 + 3600
    ) as setup:
        for clip_id in ids:  # what the recorder does when it seals a clip
            append_clip_sealed(store, setup, store.get_clip(clip_id))
        # what `doorbell init` does: the owner's first cosignature
        setup.cosign(derive_owner_cosigning_key(owner), OWNER_COSIGNER_NAME, first=True)
    audit = AuditLog.open(
        data_dir,
        signer=load_device_signer(data_dir / "keys") if signer else None,
        clock=clock,
        checkpoint_interval_s=0.1,
    )
    registry = ExportRegistry.open(
        data_dir,
        audit,
        clock=clock,
        config=ExportsConfig(checkpoint_wait_s=2.0, passphrase_work_factor=10),
    )
    world = World(
        data_dir, clock, store, audit, registry, owner, derive_owner_cosigning_key(owner), ids
    )
    try:
        yield world
    finally:
        registry.close()
        audit.close()
        store.close()


def bundle_members(path: Path, identity: Any) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Decrypt a bundle in memory (tests only) and list its members with their bytes."""
    with open(path, "rb") as handle:
        data = decrypt(handle, [identity]).read()
    members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            extracted = tar.extractfile(member)
            members.append((member, extracted.read() if extracted else b""))
    return members


def rewrite_bundle(path: Path, identity: Any, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """Re-encrypt ``members`` as the bundle at ``path`` (to ``identity``'s recipient)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as handle, encrypt(handle, [identity.recipient]) as writer:
        writer.write(buffer.getvalue())


def decoded_frames(mp4: bytes) -> list[Any]:
    """Every frame of an MP4 (bytes, in memory) as BGR arrays, decoded with PyAV."""
    import av

    with av.open(io.BytesIO(mp4), "r") as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(container.streams.video[0])]


def bundle_clips(path: Path, identity: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the clip files (name -> MP4 bytes) of a bundle, decrypted in memory."""
    import json

    members = dict((info.name, data) for info, data in bundle_members(path, identity))
    clips = {name: data for name, data in members.items() if name.startswith("clips/")}
    return json.loads(members["manifest.json"]), clips
