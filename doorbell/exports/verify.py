"""Check an export bundle: decrypt, hash every clip, signatures, cosignature, proofs, origins.

:func:`verify_bundle` streams the age file through a strict tar reader
(:mod:`.tarstream`: what is verified is exactly what ``tar -x`` extracts, and nothing may
follow the end of the archive). Clips are hashed as they pass; with ``extract_to`` they are
also written there, and kept only if everything verifies. It raises
:class:`BundleVerifyError` naming the first thing that does not hold (``what``: the file or
check), or returns a :class:`BundleReport`. ``docs/formats.md`` lists every check; the same
steps, by hand, are in ``VERIFY.txt``.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from doorbell.audit import merkle
from doorbell.audit.entries import EntryError, decode_entry, stated_index
from doorbell.audit.note import NoteError, Verifier, open_note, parse_checkpoint
from doorbell.errors import AuditError, DoorbellError, StorageError
from doorbell.exports.decision import decision_problem
from doorbell.exports.manifest import Manifest, ManifestClip, ManifestError
from doorbell.exports.tarstream import Member, StrictTarReader, TarFormatError

#: Non-clip members are read into memory; none may be larger than this.
MAX_SMALL_MEMBER = 16 << 20
_CLIP_NAME = re.compile(r"clips/[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\.mp4")
_SMALL = {
    "manifest.json",
    "VERIFY.txt",
    "audit/entries.jsonl",
    "audit/checkpoint.note",
    "audit/proofs.json",
    "audit/device.vkey",
    "audit/cosigner.vkey",
}


class BundleVerifyError(DoorbellError, ValueError):
    """The bundle does not verify. ``what`` names the file or check that failed."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what


@dataclass
class BundleReport:
    """What a bundle proved. ``keys_pinned``: both verifier keys were given by the caller
    (else the bundle proved only that it is self-consistent under its own keys)."""

    manifest: Manifest
    clip_bytes: int
    tree_size: int
    entries: int
    device_key: str
    cosigner_key: str
    keys_pinned: bool
    extracted_to: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.manifest.request.id

    @property
    def clips(self) -> tuple[ManifestClip, ...]:
        return self.manifest.clips

    def summary(self, *, trusted: bool = False) -> str:
        """What was proven, most important first. ``trusted``: the caller accepted the
        bundle's own keys on purpose (``--trust-bundle-keys``)."""
        from doorbell.exports.model import format_time

        request, decision = self.manifest.request, self.manifest.decision
        if self.keys_pinned:
            head = [f"OK: bundle for request {request.id} verifies against the keys you gave"]
        elif trusted:
            head = [
                f"OK (bundle keys trusted on purpose): bundle for request {request.id} is "
                "self-consistent under the device and owner keys it carries; that is all it "
                "proves unless those keys are the owner's (compare them: `doorbell keys show`)"
            ]
        else:
            head = [
                f"NOT PROVEN: bundle for request {request.id} is only self-consistent: it was "
                "checked with the device and owner keys it carries, which anyone can make.",
                "  Get the device key and the owner's cosigner key from the owner by another "
                "channel (`doorbell keys show` on the device) and pass --device-vkey and "
                "--cosigner-vkey.",
            ]
        lines = [
            *head,
            f"  requester: {request.requester!r} ({request.organisation or '-'!r}), "
            f"{request.kind}, legal basis {request.legal_basis} {request.legal_reference!r}",
            f"  submitted {request.submitted_at} (audit entry {request.submission_index}); "
            f"approved {decision.decided_at} (entry {decision.approval_index})",
            f"  clips: {len(self.clips)} ({self.clip_bytes} bytes), "
            f"{format_time(self.manifest.time_start)} to {format_time(self.manifest.time_end)}",
            "  every clip SHA-256 matches manifest.json; manifest SHA-256 is in audit entry "
            "export.bundle_sealed; the manifest's request is the signed submission; the "
            "decision is signed by the owner",
            "  every clip's encrypted original was logged by the device (clip.sealed) "
            + (
                "before the request"
                if not decision.includes_later_footage
                else "(the owner included footage sealed after the request)"
            ),
            f"  {self.entries} audit entries included in checkpoint of size {self.tree_size}, "
            f"signed by device {self.device_key} and cosigned by owner {self.cosigner_key}",
        ]
        lines += [f"  {line}" for clip in self.clips for line in clip_lines(clip)]
        if self.extracted_to is not None:
            lines.append(f"  extracted exactly these files to {self.extracted_to}")
        return "\n".join(lines + [f"  note: {w}" for w in self.warnings])


def clip_lines(entry: ManifestClip) -> list[str]:
    """What the manifest says about one clip: origin, redaction (what, method, detector,
    frame counts) and whether it is the playable prefix of an interrupted clip. Untrusted
    text from the manifest is shown with ``repr`` so it cannot forge lines."""
    lines = [
        f"clip {entry.id!r}: {entry.size} bytes; sealed on the device {entry.sealed_at!r} "
        f"(audit entry {entry.sealed_index})"
        + (" AFTER the request was submitted" if entry.after_request else "")
    ]
    prefix = entry.interrupted_prefix
    if entry.interrupted:
        detail = ""
        if isinstance(prefix, dict):
            detail = (
                f" ({prefix.get('playable_bytes')!r} playable of "
                f"{prefix.get('authenticated_bytes')!r} authenticated bytes)"
            )
        lines.append(f"  INTERRUPTED: the recording was cut; this is its playable prefix{detail}")
    redaction = entry.redaction
    if not isinstance(redaction, dict):
        lines.append("  not redacted")
        return lines
    what = _object(redaction.get("what"))
    method = _object(redaction.get("method"))
    faces = _object(redaction.get("faces"))
    result = _object(redaction.get("result"))
    regions, keep = what.get("regions"), what.get("keep")
    parts = [f"{len(regions) if isinstance(regions, list) else 0} region(s)"]
    if isinstance(keep, list) and keep:
        parts.append(f"everything outside {len(keep)} kept region(s)")
    if what.get("faces"):
        parts.append(f"faces by {faces.get('detector')!r} {faces.get('detector_version')!r}")
    lines.append(f"  redacted: {', '.join(parts)}; method {method.get('name')!r}")
    lines.append(
        f"  frames: {result.get('frames')!r}, with faces: {result.get('frames_with_faces')!r}"
    )
    return lines


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


class _Sink:
    """Where verified-to-be files go while reading: nowhere, or a private staging dir that
    becomes the extraction only when every check passed (:meth:`commit`).

    The staging dir is made inside the target so that committing is a hard link on the same
    file system: ``link`` never replaces an existing name (dangling symlinks included), unlike
    ``rename``. Everything is looked up relative to directory descriptors opened without
    following symlinks, so a planted ``clips`` or ``audit`` link cannot send files elsewhere.
    """

    def __init__(self, target: Path | None) -> None:
        self._target = target
        self._staging: Path | None = None
        if target is not None:
            import tempfile

            try:
                target.mkdir(parents=True, exist_ok=True)
                self._staging = Path(tempfile.mkdtemp(prefix=".verify-", dir=target))
            except OSError as exc:
                raise StorageError(
                    f"{target}: cannot extract there ({exc.strerror}); nothing was extracted"
                ) from exc

    def open(self, name: str) -> BinaryIO | None:
        if self._staging is None:
            return None
        path = self._staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "xb")

    def commit(self, names: list[str]) -> None:
        """Move the staged ``names`` into the target, all or nothing; never replaces a name.

        Raises :class:`StorageError` naming the first obstacle (a symlinked or non-directory
        ``clips``/``audit``, a name that already exists); the target is then as it was."""
        if self._staging is None or self._target is None:
            return
        target = self._target
        directories = sorted({name.rpartition("/")[0] for name in names} - {""})
        top = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        made_dirs: list[str] = []
        linked: list[tuple[int, str, os.stat_result]] = []
        fds: dict[str, int] = {"": top}
        try:
            self._check(top, directories, names)
            for directory in directories:
                try:
                    os.mkdir(directory, 0o755, dir_fd=top)
                    made_dirs.append(directory)
                except FileExistsError:
                    pass
                fds[directory] = _open_directory(top, directory, target)
            for name in names:
                parent, _, leaf = name.rpartition("/")
                try:
                    placed = _place(self._staging / name, fds[parent], leaf)
                except FileExistsError:
                    raise StorageError(
                        f"{target / name}: already exists (appeared while extracting); "
                        "nothing was extracted"
                    ) from None
                except OSError as exc:
                    raise StorageError(
                        f"{target / name}: cannot write ({exc.strerror}); nothing was extracted"
                    ) from exc
                linked.append((fds[parent], leaf, placed))
            linked.clear()
            made_dirs.clear()
        finally:
            for fd, leaf, staged_stat in reversed(linked):  # undo: only what is still ours
                with contextlib.suppress(OSError):
                    now = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
                    if (now.st_dev, now.st_ino) == (staged_stat.st_dev, staged_stat.st_ino):
                        os.unlink(leaf, dir_fd=fd)
            for directory in reversed(made_dirs):
                with contextlib.suppress(OSError):
                    os.rmdir(directory, dir_fd=top)
            for fd in fds.values():
                os.close(fd)
        self.discard()

    def _check(self, top: int, directories: list[str], names: list[str]) -> None:
        """Everything that would stop the commit, before anything is written."""
        target = self._target
        for directory in directories:
            try:
                found = os.stat(directory, dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(found.st_mode):
                raise StorageError(
                    f"{target}/{directory}: is a symbolic link; nothing was extracted "
                    "(extract into an empty directory)"
                )
            if not stat.S_ISDIR(found.st_mode):
                raise StorageError(
                    f"{target}/{directory}: exists and is not a directory; nothing was "
                    "extracted (extract into an empty directory)"
                )
        clashes = []
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.stat(name, dir_fd=top, follow_symlinks=False)
                clashes.append(name)
        if clashes:
            raise StorageError(
                f"{target}/{', '.join(clashes)[:200]}: already exists; nothing was extracted "
                "(an existing file is never overwritten: extract elsewhere)"
            )

    def discard(self) -> None:
        if self._staging is not None:
            import shutil

            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


#: ``link`` errors of file systems without hard links (FAT, some FUSE): copy instead.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def _place(staged: Path, directory: int, leaf: str) -> os.stat_result:
    """Put ``staged`` at ``leaf`` in ``directory`` without ever replacing a name: a hard link,
    or where the file system has none, a copy into a file created with ``O_EXCL``. Raises
    :class:`FileExistsError` when the name exists; returns the placed file's stat."""
    try:
        os.link(staged, leaf, dst_dir_fd=directory, follow_symlinks=False)
        return os.stat(staged)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(leaf, flags, 0o644, dir_fd=directory)
    with os.fdopen(fd, "wb") as out, open(staged, "rb") as source:
        while chunk := source.read(1 << 20):
            out.write(chunk)
        out.flush()
        return os.fstat(out.fileno())


def _open_directory(top: int, directory: str, target: Path) -> int:
    """``directory`` under ``top``, refusing a symlink or non-directory put there meanwhile."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    except OSError as exc:
        raise StorageError(
            f"{target}/{directory}: is not a plain directory ({exc.strerror}); nothing was "
            "extracted"
        ) from exc


def _copy_member(
    reader: StrictTarReader, member: Member, sink: _Sink
) -> tuple[bytes | None, str, int]:
    """Read one member: (its bytes if it is small, its SHA-256, its size)."""
    small = member.name in _SMALL
    if small and member.size > MAX_SMALL_MEMBER:
        raise BundleVerifyError(member.name, "too large")
    digest, size, kept = hashlib.sha256(), 0, bytearray()
    out = sink.open(member.name)
    try:
        while chunk := reader.read_data():
            digest.update(chunk)
            size += len(chunk)
            if small:
                kept += chunk
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return (bytes(kept) if small else None), digest.hexdigest(), size


def read_bundle(
    stream: Any, sink: _Sink | None = None
) -> tuple[dict[str, bytes], dict[str, tuple[str, int]]]:
    """Read the whole decrypted stream once: small files in memory, clips as (sha256, size).

    Anything :mod:`.tarstream` refuses (a header it cannot parse, a bad checksum, a
    non-regular member, data after the end of the archive), a duplicate or an unexpected
    name is an error."""
    sink = sink or _Sink(None)
    small: dict[str, bytes] = {}
    clips: dict[str, tuple[str, int]] = {}
    reader = StrictTarReader(stream)
    try:
        for member in reader:
            name = member.name
            if name in small or name in clips:
                raise BundleVerifyError(name, "appears twice in the bundle")
            if name not in _SMALL and not _CLIP_NAME.fullmatch(name):
                raise BundleVerifyError(name, "unexpected file in the bundle")
            data, sha256, size = _copy_member(reader, member, sink)
            if data is not None:
                small[name] = data
            else:
                clips[name] = (sha256, size)
    except TarFormatError as exc:
        raise BundleVerifyError("tar", f"the bundle is not a valid bundle tar ({exc})") from exc
    for name in sorted(_SMALL):
        if name not in small:
            raise BundleVerifyError(name, "missing from the bundle")
    return small, clips


def _json(small: dict[str, bytes], name: str) -> Any:
    try:
        return json.loads(small[name].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleVerifyError(name, f"not valid JSON ({exc})") from exc


def _verifier(small: dict[str, bytes], name: str, pinned: str | None) -> Verifier:
    text = small[name].decode("utf-8", "replace").strip()
    if pinned is not None and text != pinned.strip():
        raise BundleVerifyError(name, "is not the key you trust (given on the command line)")
    try:
        return Verifier.from_vkey(text)
    except NoteError as exc:
        raise BundleVerifyError(name, str(exc)) from exc


@dataclass(frozen=True)
class _Entry:
    index: int
    time: str
    actor: str
    action: str
    object: str
    details: dict[str, Any]
    leaf_hash: bytes


def _proven_entries(
    small: dict[str, bytes], tree_size: int, root: bytes, by_index: dict[int, list[bytes]]
) -> dict[int, _Entry]:
    """Every line of ``audit/entries.jsonl``, each with a valid inclusion proof, by index."""
    found: dict[int, _Entry] = {}
    lines = small["audit/entries.jsonl"].split(b"\n")
    if lines[-1] != b"":
        raise BundleVerifyError("audit/entries.jsonl", "does not end with a newline")
    for number, leaf in enumerate(lines[:-1], start=1):
        where = f"audit/entries.jsonl line {number}"
        index = stated_index(leaf)
        try:
            entry = decode_entry(leaf)
        except EntryError as exc:
            raise BundleVerifyError(where, str(exc)) from exc
        if index is None or index != entry["index"] or index not in by_index:
            raise BundleVerifyError(where, "no inclusion proof for this entry's index")
        if index in found:
            raise BundleVerifyError(where, "the same entry appears twice")
        try:
            merkle.verify_inclusion(index, tree_size, merkle.leaf_hash(leaf), by_index[index], root)
        except AuditError as exc:
            raise BundleVerifyError(where, f"inclusion proof fails ({exc})") from exc
        details = entry["details"]
        found[index] = _Entry(
            index,
            str(entry["time"]),
            str(entry["actor"]),
            str(entry["action"]),
            str(entry["object"]),
            details if isinstance(details, dict) else {},
            merkle.leaf_hash(leaf),
        )
    return found


def _signed_checkpoint(
    small: dict[str, bytes], device_vkey: str | None, cosigner_vkey: str | None
) -> tuple[Verifier, Verifier, int, bytes, dict[int, list[bytes]]]:
    """The checkpoint signed by the device and cosigned by the owner, and the proofs to it."""
    device = _verifier(small, "audit/device.vkey", device_vkey)
    cosigner = _verifier(small, "audit/cosigner.vkey", cosigner_vkey)
    try:
        note = open_note(small["audit/checkpoint.note"], [device, cosigner])
        checkpoint = parse_checkpoint(note.text)
    except NoteError as exc:
        raise BundleVerifyError("audit/checkpoint.note", str(exc)) from exc
    signers = {(s.name, s.key_id) for s in note.verified}
    if (device.name, device.key_id) not in signers:
        raise BundleVerifyError("audit/checkpoint.note", "no valid signature by the device key")
    if (cosigner.name, cosigner.key_id) not in signers:
        raise BundleVerifyError("audit/checkpoint.note", "no valid cosignature by the owner")
    if checkpoint.origin != device.name:
        raise BundleVerifyError("audit/checkpoint.note", "origin is not the device key name")
    proofs = _json(small, "audit/proofs.json")
    try:
        root = base64.b64decode(proofs["root"], validate=True)
        by_index = {
            int(p["index"]): [base64.b64decode(h, validate=True) for h in p["path"]]
            for p in proofs["proofs"]
        }
        tree_size = int(proofs["tree_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleVerifyError("audit/proofs.json", f"malformed ({exc})") from exc
    if tree_size != checkpoint.size or root != checkpoint.root_hash:
        raise BundleVerifyError(
            "audit/proofs.json", "tree size or root differs from the checkpoint"
        )
    return device, cosigner, tree_size, root, by_index


def _entry_at(entries: dict[int, _Entry], index: int, action: str, about: str, what: str) -> _Entry:
    entry = entries.get(index)
    if entry is None:
        raise BundleVerifyError(what, f"its {action} entry (index {index}) is not in the bundle")
    if entry.action != action or entry.object != about:
        raise BundleVerifyError(
            what, f"audit entry {index} is {entry.action} about {entry.object!r}, not {action}"
        )
    return entry


def _check_record(
    manifest: Manifest, entries: dict[int, _Entry], manifest_sha256: str, owner_key: bytes
) -> None:
    """The manifest against the signed entries: submission field by field, approval (signed
    by the owner's key ``owner_key``, raw Ed25519 bytes: :mod:`.decision`), seal, and every
    clip's origin (its clip.sealed entry)."""
    request, decision = manifest.request, manifest.decision
    about = f"request/{request.id}"
    submitted = _entry_at(
        entries, request.submission_index, "export.request_submitted", about, "manifest.json"
    )
    if submitted.time != request.submitted_at:
        raise BundleVerifyError("manifest.json", "request.submitted_at is not the entry's time")
    stated = request.submitted_fields()
    differing = [
        k
        for k in sorted(set(stated) | set(submitted.details))
        if stated.get(k) != submitted.details.get(k)
    ]
    if differing:
        raise BundleVerifyError(
            "manifest.json",
            f"the request differs from its signed submission in {', '.join(differing)}",
        )
    approved = _entry_at(
        entries, decision.approval_index, "export.request_approved", about, "manifest.json"
    )
    details = approved.details
    if approved.index < submitted.index or approved.time != decision.decided_at:
        raise BundleVerifyError("manifest.json", "decision is not the signed approval entry")
    problem = decision_problem(
        owner_key, request.id, submitted.leaf_hash, submitted.details, approved.details
    )
    if problem is not None:
        raise BundleVerifyError(
            f"audit/entries.jsonl entry {approved.index}",
            f"the export.request_approved entry is not the owner's decision: {problem} "
            "(anyone holding the device key can append an approval entry; only the owner "
            "can sign one)",
        )
    signed_decision = {
        "clips": sorted(decision.clips),
        "bundle_expires_at": decision.bundle_expires_at,
        "download_limit": decision.download_limit,
        "redaction": decision.redaction,
        "include_later_footage": decision.includes_later_footage,
    }
    differing = [k for k, v in signed_decision.items() if details.get(k, False) != v]
    if differing:
        raise BundleVerifyError(
            "manifest.json",
            f"the decision differs from the signed approval in {', '.join(differing)}",
        )
    sealed = [
        e for e in entries.values() if e.action == "export.bundle_sealed" and e.object == about
    ]
    if not any(e.details.get("manifest_sha256") == manifest_sha256 for e in sealed):
        raise BundleVerifyError("manifest.json", "its SHA-256 is not the one the audit log sealed")
    for entry in entries.values():
        if entry.object == about:
            if entry.action == "export.request_submitted" and entry.index != submitted.index:
                raise BundleVerifyError("audit/entries.jsonl", "a second submission entry")
            if entry.index < submitted.index:
                raise BundleVerifyError(
                    "audit/entries.jsonl", f"entry {entry.index} precedes the submission"
                )
    if sorted(c.id for c in manifest.clips) != sorted(decision.clips):
        raise BundleVerifyError("manifest.json", "the clips delivered are not the clips approved")
    clip_ids = {c.id for c in manifest.clips}
    for clip in manifest.clips:
        what = clip.file
        origin = _entry_at(entries, clip.sealed_index, "clip.sealed", clip.id, what)
        if origin.actor != "recorder":
            raise BundleVerifyError(what, "its clip.sealed entry is not by the recorder")
        if (
            origin.details.get("sha256") != clip.source_sha256
            or origin.details.get("size_bytes") != clip.source_size
        ):
            raise BundleVerifyError(
                what, "source_sha256/source_size differ from its clip.sealed entry"
            )
        if origin.time != clip.sealed_at:
            raise BundleVerifyError(what, "sealed_at is not its clip.sealed entry's time")
        after = origin.time >= submitted.time
        if after != clip.after_request:
            raise BundleVerifyError(what, "after_request is wrong")
        if after and not decision.includes_later_footage:
            raise BundleVerifyError(
                what,
                "sealed after the request was submitted, and the approval did not "
                "include later footage",
            )
    for entry in entries.values():
        if entry.object != about and not (
            entry.action == "clip.sealed" and entry.object in clip_ids
        ):
            raise BundleVerifyError(
                f"audit/entries.jsonl entry {entry.index}",
                f"is about {entry.object!r}, not this request or its clips",
            )


def check_contents(
    small: dict[str, bytes],
    clips: dict[str, tuple[str, int]],
    *,
    device_vkey: str | None = None,
    cosigner_vkey: str | None = None,
) -> BundleReport:
    """All the checks on a bundle's contents; raises :class:`BundleVerifyError`."""
    try:
        manifest = Manifest.from_bytes(small["manifest.json"])
    except ManifestError as exc:
        raise BundleVerifyError("manifest.json", str(exc)) from exc
    guide_sha256 = hashlib.sha256(small["VERIFY.txt"]).hexdigest()
    if guide_sha256 != manifest.verify_txt_sha256:
        raise BundleVerifyError("VERIFY.txt", "differs from the one manifest.json names")
    listed = {c.file: c for c in manifest.clips}
    if len(listed) != len(manifest.clips):
        raise BundleVerifyError("manifest.json", "a clip file is listed twice")
    for name in sorted(set(clips) | set(listed)):
        if name not in clips:
            raise BundleVerifyError(name, "listed in manifest.json but missing from the bundle")
        if name not in listed:
            raise BundleVerifyError(name, "in the bundle but not listed in manifest.json")
        if name != f"clips/{listed[name].id}.mp4":
            raise BundleVerifyError(name, "file name does not match its clip id")
        sha256, size = clips[name]
        if sha256 != listed[name].sha256 or size != listed[name].size:
            raise BundleVerifyError(name, "SHA-256 or size does not match manifest.json")
    device, cosigner, tree_size, root, by_index = _signed_checkpoint(
        small, device_vkey, cosigner_vkey
    )
    if manifest.device_vkey != device.vkey:
        raise BundleVerifyError("manifest.json", "device_vkey differs from audit/device.vkey")
    entries = _proven_entries(small, tree_size, root, by_index)
    manifest_sha256 = hashlib.sha256(small["manifest.json"]).hexdigest()
    _check_record(manifest, entries, manifest_sha256, cosigner.public_key)
    pinned = device_vkey is not None and cosigner_vkey is not None
    return BundleReport(
        manifest=manifest,
        clip_bytes=sum(size for _h, size in clips.values()),
        tree_size=tree_size,
        entries=len(entries),
        device_key=device.name,
        cosigner_key=cosigner.name,
        keys_pinned=pinned,
    )


def verify_bundle(
    path: Path,
    identities: list[Any],
    *,
    device_vkey: str | None = None,
    cosigner_vkey: str | None = None,
    extract_to: Path | None = None,
    trust_bundle_keys: bool = False,
) -> BundleReport:
    """Decrypt ``path`` with ``identities`` and check it all; raises BundleVerifyError.

    ``extract_to``: also write the bundle's files there (created if missing), exactly the
    bytes verified; they appear only when every check passed **and** both keys were pinned
    (or ``trust_bundle_keys``: the caller accepts the bundle's own keys on purpose). Without
    that, nothing is extracted and the report says so. An existing name is never replaced
    and a symlinked or non-directory ``clips``/``audit`` is refused (:class:`StorageError`,
    nothing written). Nothing else is written anywhere.
    """
    from doorbell.age.decrypt import decrypt
    from doorbell.errors import AgeError

    pinned = device_vkey is not None and cosigner_vkey is not None
    extract = extract_to if (pinned or trust_bundle_keys) else None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BundleVerifyError(str(path), f"cannot open ({exc.strerror})") from exc
    sink = _Sink(extract)
    try:
        with handle:
            try:
                plain = decrypt(handle, identities)
                small, clips = read_bundle(plain, sink)
            except AgeError as exc:
                raise BundleVerifyError("age", f"cannot decrypt the bundle ({exc})") from exc
        report = check_contents(small, clips, device_vkey=device_vkey, cosigner_vkey=cosigner_vkey)
        sink.commit(sorted(small) + sorted(clips))
    finally:
        sink.discard()
    report.extracted_to = extract
    if extract_to is not None and extract is None:
        report.warnings.append(
            f"nothing was extracted to {extract_to}: the keys were not pinned (pass "
            "--device-vkey and --cosigner-vkey, or --trust-bundle-keys on purpose)"
        )
    return report
