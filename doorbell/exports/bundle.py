"""Build an export bundle: a streamed tar, age-encrypted to the requester, written atomically.

The bundle ``exports/<request>.tar.age`` is an age file (to the requester's ``age1...``
recipient, or to the passphrase the owner set at approval) whose plaintext is a tar of::

    clips/<clip id>.mp4    the approved clips (redacted where the owner chose; a clip cut by
                           a power loss or full disk as its playable prefix: whole fragments
                           of the authenticated plaintext, ``interrupted_prefix`` in the
                           manifest)
    manifest.json          request, decision, per-clip SHA-256 (delivered file and on-device
                           ciphertext), time range, redactions, device verifier key
    audit/entries.jsonl    this request's audit entries (exact RFC 6962 leaves), including
                           ``export.bundle_sealed`` which records the SHA-256 of manifest.json
    audit/checkpoint.note  a checkpoint signed by the device AND cosigned by the owner
    audit/proofs.json      an RFC 6962 inclusion proof of every entry in that checkpoint
    audit/device.vkey, audit/cosigner.vkey   the verifier keys
    VERIFY.txt             how to check all of it with the stock age tool and the specs

Plaintext exists only inside the stream: clips are decrypted chunk by chunk straight into
``tarfile`` (stream mode ``w|``), whose output goes straight into the age encryptor, whose
ciphertext goes to a temporary file in ``exports/`` that is fsynced and renamed into place.
A redacted clip's size is unknown until it is encoded, and a tar header needs it first, so it
is spooled through a temporary file encrypted to a one-time key held only in memory (still
ciphertext on disk), then streamed into the tar.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from doorbell.errors import DoorbellError, RequestError
from doorbell.exports.core import ExportRequest
from doorbell.exports.manifest import JSON
from doorbell.exports.record import LoggedEntry, RequestRecord
from doorbell.fsutil import fsync_dir, temp_path_for

if TYPE_CHECKING:  # types only: importing them at run time would load what is not needed
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from doorbell.age.identities import X25519Identity
    from doorbell.age.recipients import Recipient
    from doorbell.audit.log import AuditLog
    from doorbell.exports.registry import ExportRegistry
    from doorbell.store import Clip, Store

BUNDLE_FORMAT = "doorbell-export/1"
BUNDLE_MODE = 0o640
#: ``progress(stage, done_bytes, total_bytes)``; stages: clips, redacting, audit, sealing,
#: done (a redacted clip counts its source bytes in proportion to the frames done).
ProgressCallback = Callable[[str, int, int], None]


class BundleError(DoorbellError, RuntimeError):
    """A bundle could not be built (clip missing or altered, no checkpoint in time, ...)."""


@dataclass(frozen=True)
class BundleResult:
    path: Path
    size: int
    sha256: str
    manifest_sha256: str
    clips: int


class _HashingSink:
    """Write-only: counts and hashes the ciphertext on its way to the file."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._handle.write(data)
        return len(data)

    def flush(self) -> None:
        self._handle.flush()


class _HashingReader:
    """Read-only view of a plaintext reader that hashes and reports what passes."""

    def __init__(self, source: Any, on_bytes: Callable[[int], None]) -> None:
        self._source = source
        self._on_bytes = on_bytes
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._source.read(size)
        self.sha256.update(data)
        self.size += len(data)
        self._on_bytes(len(data))
        return data


class _Bounded:
    """A seekable read-only view of the first ``size`` bytes of a seekable reader."""

    def __init__(self, source: Any, size: int) -> None:
        self._source = source
        self.size = size
        self._position = 0
        source.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, size: int = -1) -> bytes:
        left = max(0, self.size - self._position)
        wanted = left if size is None or size < 0 else min(size, left)
        if not wanted:
            return b""
        self._source.seek(self._position)
        data: bytes = self._source.read(wanted)
        self._position += len(data)
        return data


def playable_prefix(plain: Any, clip_id: str) -> _Bounded:
    """The playable prefix of an interrupted clip's authenticated plaintext (whole fragments),
    as a seekable reader with a ``size``. ``plain`` must be seekable with a ``size``.

    Raises :class:`BundleError` when not even the MP4 header survived.
    """
    from doorbell.media.fmp4 import playable_prefix_length

    length = playable_prefix_length(plain, plain.size)
    if length <= 0:
        raise BundleError(f"clip {clip_id}: interrupted before any playable video was written")
    return _Bounded(plain, length)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def verify_guide() -> bytes:
    """The VERIFY.txt shipped in every bundle."""
    return resources.files("doorbell.exports").joinpath("VERIFY.txt").read_bytes()


def _recipients(
    request: ExportRequest, passphrase: str | None, work_factor: int
) -> list[Recipient]:
    from doorbell.age.recipients import ScryptRecipient, parse_recipient

    if request.fields.delivery == "recipient":
        return [parse_recipient(request.fields.recipient or "")]
    if not passphrase:
        raise RequestError("this request is delivered with a passphrase: set one to approve it")
    return [ScryptRecipient(passphrase, work_factor=work_factor)]


@contextlib.contextmanager
def _redacted_spool(
    directory: Path,
    source: Any,
    spec: Any,
    progress: Callable[[int, int | None], None] | None = None,
) -> Any:
    """Redact ``source`` into a one-time-key ciphertext spool; yield (reader, size, result)."""
    from doorbell.age.decrypt import decrypt
    from doorbell.age.encrypt import encrypt
    from doorbell.age.identities import X25519Identity
    from doorbell.redact import redact_clip

    key = X25519Identity.generate()
    spool = temp_path_for(directory / "redacted.spool")
    fd = os.open(spool, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w+b") as handle:
            with encrypt(handle, [key.recipient]) as sink:
                result = redact_clip(source, cast(BinaryIO, sink), spec, progress=progress)
            handle.flush()
            handle.seek(0)
            reader = decrypt(handle, [key])
            yield reader, reader.size, result
    finally:
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _signed_decision(
    request: ExportRequest, record: RequestRecord
) -> tuple[LoggedEntry, LoggedEntry]:
    """The submission and the owner-signed approval entries of ``request``; raises
    :class:`BundleError` when one is missing or the row's decision (clips, redaction,
    expiry, limit) differs from the signed approval: the row is a cache, the log is the
    record."""
    submitted, approved = record.submitted, record.approved
    if submitted is None or approved is None or approved.index < submitted.index:
        raise BundleError(
            f"request {request.id}: its submission entry and an approval entry signed by the "
            "owner are not both in the audit log; nothing is exported"
        )
    details = approved.details
    stated = {
        "clips": sorted(request.clip_ids),
        "redaction": request.redaction,
        "download_limit": request.download_limit,
        "bundle_expires_at": request.bundle_expires_at,
    }
    differing = [key for key, value in stated.items() if details.get(key) != value]
    if differing:
        raise BundleError(
            f"request {request.id}: the registry's decision differs from the signed approval "
            f"in {', '.join(differing)}; someone edited the database. Nothing is exported"
        )
    return submitted, approved


def build_bundle(
    *,
    registry: ExportRegistry,
    store: Store,
    audit: AuditLog,
    request_id: str,
    identity: X25519Identity,
    cosigning_key: Ed25519PrivateKey,
    passphrase: str | None = None,
    work_factor: int = 18,
    progress: ProgressCallback | None = None,
    checkpoint_wait_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> BundleResult:
    """Build the bundle of an approved request (bundle state ``building``) and mark it ready.

    ``identity`` decrypts the owner's clips (and derives the owner anchor key: the checkpoint
    is cosigned through the anchor, see :mod:`.proofs`); ``cosigning_key`` cosigns it;
    ``passphrase`` (delivery "passphrase" only) encrypts the bundle with scrypt at
    ``work_factor``. Without the device key in this process, waits up to
    ``checkpoint_wait_s`` for the recorder to sign a checkpoint covering the manifest entry.
    On any failure the temporary file is removed, the request's bundle is marked failed
    (audited) and the error re-raised (:class:`BundleError`, RequestError, AgeError ...).
    """
    from doorbell.age.encrypt import encrypt

    request = registry.get(request_id)
    if request.status != "approved" or request.bundle_state != "building":
        raise RequestError(f"request {request_id}: not approved and awaiting its bundle")
    report = progress or (lambda _stage, _done, _total: None)
    target = registry.bundle_path(request_id)
    tmp = temp_path_for(target)
    try:
        # the signed submission names the recipient; a row edited since approval is refused
        request = registry.signed_request(request_id, refusing="export.bundle_refused")
        recipients = _recipients(request, passphrase, work_factor)
        clips = [store.get_clip(clip_id) for clip_id in request.clip_ids]
        total = sum(max(c.size_bytes, 1) for c in clips)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BUNDLE_MODE)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), BUNDLE_MODE)
            sink = _HashingSink(handle)
            with encrypt(cast(BinaryIO, sink), recipients) as writer:
                # closed explicitly below: only a clean close may finish the tar
                # plain ustar: the only shape verify's strict reader accepts (tarfile refuses
                # here, at build time, anything ustar cannot hold)
                tar = tarfile.open(  # noqa: SIM115
                    fileobj=cast(BinaryIO, writer), mode="w|", format=tarfile.USTAR_FORMAT
                )
                try:
                    manifest_sha256 = _write_contents(
                        tar,
                        registry,
                        store,
                        audit,
                        request,
                        clips,
                        identity,
                        cosigning_key,
                        report,
                        total,
                        checkpoint_wait_s,
                        sleep,
                    )
                except BaseException:
                    # Abandon the tar stream: left open, its __del__ would write the end of
                    # the archive into the closed age writer (an "Exception ignored" trace).
                    _abandon_stream(tar)
                    raise
                tar.close()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with contextlib.suppress(Exception):
            registry.bundle_failed(request_id, f"{type(exc).__name__}: {exc}")
        raise
    result = BundleResult(target, sink.size, sink.sha256.hexdigest(), manifest_sha256, len(clips))
    registry.bundle_ready(
        request_id, size=result.size, sha256=result.sha256, manifest_sha256=manifest_sha256
    )
    report("done", total, total)
    return result


def _abandon_stream(tar: tarfile.TarFile) -> None:
    stream = tar.fileobj
    if stream is not None and hasattr(stream, "closed"):
        stream.closed = True  # tarfile._Stream: close() and __del__ then write nothing


def _write_contents(
    tar: tarfile.TarFile,
    registry: ExportRegistry,
    store: Store,
    audit: AuditLog,
    request: ExportRequest,
    clips: list[Clip],
    identity: X25519Identity,
    cosigning_key: Ed25519PrivateKey,
    report: ProgressCallback,
    total: int,
    checkpoint_wait_s: float,
    sleep: Callable[[float], None],
) -> str:
    from doorbell.age.decrypt import decrypt

    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report("clips", min(done, total), total)

    spec = None
    if request.redaction:
        from doorbell.redact import RedactionSpec

        spec = RedactionSpec.from_dict(request.redaction)
    from doorbell.exports.manifest import (
        Manifest,
        ManifestClip,
        ManifestDecision,
        ManifestRequest,
    )
    from doorbell.exports.record import read_record

    # only an approval the owner signed counts (a device-key entry alone proves nothing)
    owner_key = cosigning_key.public_key().public_bytes_raw()
    record = read_record(audit, request.id, [clip.id for clip in clips], owner_key=owner_key)
    submitted, approved = _signed_decision(request, record)
    includes_later = approved.details.get("include_later_footage") is True
    entries: list[ManifestClip] = []
    for clip in sorted(clips, key=lambda c: (c.started_at, c.id)):
        path = store.absolute(clip.path)
        source_sha256 = _file_sha256(path)
        if clip.sha256 and clip.sha256 != source_sha256:
            raise BundleError(f"clip {clip.id}: the file on disk does not match its index hash")
        sealed = record.clips.get(clip.id)
        if sealed is None or sealed.details.get("sha256") != source_sha256:
            raise BundleError(
                f"clip {clip.id}: no clip.sealed entry in the audit log with the SHA-256 of "
                "its file; its origin cannot be proven, so it is not exported"
            )
        after_request = sealed.time >= submitted.time
        if after_request and not includes_later:
            raise BundleError(
                f"clip {clip.id}: sealed after the request was submitted, and the approval "
                "did not include later footage"
            )
        name = f"clips/{clip.id}.mp4"
        with open(path, "rb") as raw:
            plain = decrypt(raw, [identity], allow_truncated=clip.interrupted)
            delivered = playable_prefix(plain, clip.id) if clip.interrupted else plain
            redaction = None
            if spec is not None and not spec.is_empty:
                spool_dir = registry.bundle_path(request.id).parent
                weight, base = max(clip.size_bytes, 1), done

                def frames(
                    count: int, frames_total: int | None, weight: int = weight, base: int = base
                ) -> None:
                    if frames_total:  # redaction progress, in this clip's share of the bytes
                        share = weight * min(count, frames_total) // frames_total
                        report("redacting", min(base + share, total), total)

                with _redacted_spool(spool_dir, delivered, spec, frames) as (
                    reader,
                    size,
                    result,
                ):
                    hashing = _HashingReader(reader, lambda _n: None)
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = size, int(clip.started_at), 0o644
                    tar.addfile(info, cast(BinaryIO, hashing))
                    redaction = result.manifest()
                advance(weight)
            else:
                hashing = _HashingReader(delivered, advance)
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = delivered.size, int(clip.started_at), 0o644
                tar.addfile(info, cast(BinaryIO, hashing))
            prefix: dict[str, JSON] | None = None
            if clip.interrupted:
                prefix = {"authenticated_bytes": plain.size, "playable_bytes": delivered.size}
        entries.append(
            ManifestClip(
                id=clip.id,
                file=name,
                sha256=hashing.sha256.hexdigest(),
                size=hashing.size,
                started_at=clip.started_at,
                ended_at=clip.ended_at,
                duration_s=clip.duration_s,
                interrupted=clip.interrupted,
                trigger=clip.trigger,
                source_sha256=source_sha256,
                source_size=path.stat().st_size,
                sealed_index=sealed.index,
                sealed_at=sealed.time,
                after_request=after_request,
                redaction=redaction,
                interrupted_prefix=prefix,
            )
        )
    report("audit", total, total)
    fields = request.fields
    manifest = Manifest(
        request=ManifestRequest(
            id=request.id,
            submitted_at=submitted.time,
            submission_index=submitted.index,
            source=request.source,
            invitation=_text_or_none(submitted.details.get("invitation")),
            requester=fields.requester,
            organisation=fields.organisation,
            contact=fields.contact,
            kind=fields.kind,
            legal_basis=fields.legal_basis,
            legal_reference=fields.legal_reference,
            window_start=fields.window_start,
            window_end=fields.window_end,
            reason=fields.reason,
            delivery=fields.delivery,
            recipient=fields.recipient,
        ),
        decision=ManifestDecision(
            decided_at=approved.time,
            approval_index=approved.index,
            clips=tuple(request.clip_ids),
            bundle_expires_at=float(request.bundle_expires_at or 0.0),
            download_limit=request.download_limit,
            redaction=request.redaction,
            includes_later_footage=includes_later,
        ),
        clips=tuple(entries),
        time_start=min(e.started_at for e in entries),
        time_end=max((e.ended_at or e.started_at) for e in entries),
        device_vkey=audit.device_verifier().vkey,
        verify_txt_sha256=hashlib.sha256(verify_guide()).hexdigest(),
    )
    manifest_bytes = manifest.to_bytes()
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    now = registry._clock()
    _add_bytes(tar, "manifest.json", manifest_bytes, now)
    sealed_index = registry.record(
        "system",
        "export.bundle_sealed",
        request.id,
        {
            "manifest_sha256": manifest_sha256,
            "clips": len(entries),
        },
    )
    from doorbell.exports.proofs import audit_files
    from doorbell.keys import derive_owner_anchor_key

    for name, data in audit_files(
        audit,
        [*registry.audit_indexes(request.id), *(e.sealed_index for e in entries)],
        sealed_index,
        cosigning_key,
        checkpoint_wait_s,
        sleep,
        anchor_key=derive_owner_anchor_key(identity),
    ):
        _add_bytes(tar, name, data, now)
    report("sealing", total, total)
    _add_bytes(tar, "VERIFY.txt", verify_guide(), now)
    return manifest_sha256
