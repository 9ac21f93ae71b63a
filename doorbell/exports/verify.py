"""Check an export bundle: decrypt, hash every clip, signatures, cosignature, inclusion proofs.

:func:`verify_bundle` streams the age file through ``tarfile`` (mode ``r|``): clips are hashed
as they pass and never written anywhere. It raises :class:`BundleVerifyError` naming the
first thing that does not hold (``what``: the file or check), or returns a
:class:`BundleReport`. The same steps, by hand, are in ``VERIFY.txt``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorbell.audit import merkle
from doorbell.audit.entries import EntryError, decode_entry, stated_index
from doorbell.audit.note import NoteError, Verifier, open_note, parse_checkpoint
from doorbell.errors import AuditError, DoorbellError

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
    request_id: str
    requester: str
    organisation: str
    kind: str
    legal_basis: str
    clips: list[dict[str, Any]]
    clip_bytes: int
    time_range: tuple[float, float]
    tree_size: int
    entries: int
    device_key: str
    cosigner_key: str
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        from doorbell.exports.model import format_time

        lines = [
            f"OK: bundle for request {self.request_id} verifies",
            f"  requester: {self.requester} ({self.organisation or '-'}), {self.kind}, "
            f"legal basis {self.legal_basis}",
            f"  clips: {len(self.clips)} ({self.clip_bytes} bytes), "
            f"{format_time(self.time_range[0])} to {format_time(self.time_range[1])}",
            "  every clip SHA-256 matches manifest.json; manifest SHA-256 is in audit entry "
            "export.bundle_sealed",
            f"  {self.entries} audit entries included in checkpoint of size {self.tree_size}, "
            f"signed by device {self.device_key} and cosigned by owner {self.cosigner_key}",
        ]
        lines += [f"  {line}" for clip in self.clips for line in clip_lines(clip)]
        return "\n".join(lines + [f"  note: {w}" for w in self.warnings])


def clip_lines(entry: dict[str, Any]) -> list[str]:
    """What the manifest says about one clip: redaction (what, method, detector, frame
    counts) and whether it is the playable prefix of an interrupted clip. Untrusted text from
    the manifest is shown with ``repr`` so it cannot forge lines."""
    lines = [f"clip {entry.get('id')!r}: {entry.get('size')} bytes"]
    prefix = entry.get("interrupted_prefix")
    if entry.get("interrupted"):
        detail = ""
        if isinstance(prefix, dict):
            detail = (
                f" ({prefix.get('playable_bytes')} playable of "
                f"{prefix.get('authenticated_bytes')} authenticated bytes)"
            )
        lines.append(f"  INTERRUPTED: the recording was cut; this is its playable prefix{detail}")
    redaction = entry.get("redaction")
    if not isinstance(redaction, dict):
        lines.append("  not redacted")
        return lines
    what = redaction.get("what") or {}
    method = redaction.get("method") or {}
    faces = redaction.get("faces") or {}
    result = redaction.get("result") or {}
    parts = [f"{len(what.get('regions') or [])} region(s)"]
    if what.get("keep"):
        parts.append(f"everything outside {len(what['keep'])} kept region(s)")
    if what.get("faces"):
        parts.append(f"faces by {faces.get('detector')!r} {faces.get('detector_version')!r}")
    lines.append(f"  redacted: {', '.join(parts)}; method {method.get('name')!r}")
    lines.append(f"  frames: {result.get('frames')}, with faces: {result.get('frames_with_faces')}")
    return lines


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_SMALL_MEMBER:
        raise BundleVerifyError(member.name, "too large")
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleVerifyError(member.name, "not a regular file")
    return handle.read()


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, int]:
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleVerifyError(member.name, "not a regular file")
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def read_bundle(stream: Any) -> tuple[dict[str, bytes], dict[str, tuple[str, int]]]:
    """Walk the tar in ``stream`` once: small files in memory, clips as (sha256, size)."""
    small: dict[str, bytes] = {}
    clips: dict[str, tuple[str, int]] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name
                if name in small or name in clips:
                    raise BundleVerifyError(name, "appears twice in the bundle")
                if not member.isfile():
                    raise BundleVerifyError(name, "is not a regular file")
                if name in _SMALL:
                    small[name] = _read_small(tar, member)
                elif _CLIP_NAME.fullmatch(name):
                    clips[name] = _hash_member(tar, member)
                else:
                    raise BundleVerifyError(name, "unexpected file in the bundle")
    except tarfile.TarError as exc:
        raise BundleVerifyError("tar", f"the bundle is not a valid tar ({exc})") from exc
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


def check_contents(
    small: dict[str, bytes],
    clips: dict[str, tuple[str, int]],
    *,
    device_vkey: str | None = None,
    cosigner_vkey: str | None = None,
) -> BundleReport:
    """All the checks on a bundle's contents; raises :class:`BundleVerifyError`."""
    manifest = _json(small, "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != "doorbell-export/1":
        raise BundleVerifyError("manifest.json", "not a doorbell-export/1 manifest")
    request = manifest.get("request") or {}
    request_id = str(request.get("id", ""))
    listed = {c.get("file"): c for c in manifest.get("clips", []) if isinstance(c, dict)}
    for name in sorted(set(clips) | set(listed)):
        if name not in clips:
            raise BundleVerifyError(name, "listed in manifest.json but missing from the bundle")
        if name not in listed:
            raise BundleVerifyError(name, "in the bundle but not listed in manifest.json")
        sha256, size = clips[name]
        if sha256 != listed[name].get("sha256") or size != listed[name].get("size"):
            raise BundleVerifyError(name, "SHA-256 or size does not match manifest.json")
    device = _verifier(small, "audit/device.vkey", device_vkey)
    if manifest.get("device_vkey") != device.vkey:
        raise BundleVerifyError("manifest.json", "device_vkey differs from audit/device.vkey")
    cosigner = _verifier(small, "audit/cosigner.vkey", cosigner_vkey)
    note_bytes = small["audit/checkpoint.note"]
    try:
        note = open_note(note_bytes, [device, cosigner])
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
    manifest_sha256 = hashlib.sha256(small["manifest.json"]).hexdigest()
    actions: dict[str, dict] = {}
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
        try:
            merkle.verify_inclusion(index, tree_size, merkle.leaf_hash(leaf), by_index[index], root)
        except AuditError as exc:
            raise BundleVerifyError(where, f"inclusion proof fails ({exc})") from exc
        if entry["object"] != f"request/{request_id}":
            raise BundleVerifyError(where, f"is about {entry['object']!r}, not this request")
        actions.setdefault(entry["action"], entry["details"])
    sealed = actions.get("export.bundle_sealed")
    if sealed is None or sealed.get("manifest_sha256") != manifest_sha256:
        raise BundleVerifyError("manifest.json", "its SHA-256 is not the one the audit log sealed")
    approved = actions.get("export.request_approved")
    decision = manifest.get("decision") or {}
    if approved is None or sorted(approved.get("clips", [])) != sorted(decision.get("clips", [])):
        raise BundleVerifyError("manifest.json", "the approved clips differ from the audit log")
    if sorted(c.get("id") for c in listed.values()) != sorted(decision.get("clips", [])):
        raise BundleVerifyError("manifest.json", "the clips delivered are not the clips approved")
    time_range = manifest.get("time_range") or {}
    return BundleReport(
        request_id=request_id,
        requester=str(request.get("requester", "")),
        organisation=str(request.get("organisation", "")),
        kind=str(request.get("kind", "")),
        legal_basis=f"{request.get('legal_basis', '')} "
        f"{request.get('legal_reference', '')}".strip(),
        clips=list(listed.values()),
        clip_bytes=sum(size for _h, size in clips.values()),
        time_range=(float(time_range.get("start", 0)), float(time_range.get("end", 0))),
        tree_size=tree_size,
        entries=len(lines) - 1,
        device_key=device.name,
        cosigner_key=cosigner.name,
        warnings=[]
        if device_vkey and cosigner_vkey
        else [
            "the device and owner keys were taken from the bundle itself; compare "
            "audit/device.vkey and audit/cosigner.vkey with keys the owner gives you"
        ],
    )


def verify_bundle(
    path: Path,
    identities: list[Any],
    *,
    device_vkey: str | None = None,
    cosigner_vkey: str | None = None,
) -> BundleReport:
    """Decrypt ``path`` with ``identities`` and check it all; raises BundleVerifyError."""
    from doorbell.age.decrypt import decrypt
    from doorbell.errors import AgeError

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BundleVerifyError(str(path), f"cannot open ({exc.strerror})") from exc
    with handle:
        try:
            plain = decrypt(handle, identities)
            small, clips = read_bundle(plain)
        except AgeError as exc:
            raise BundleVerifyError("age", f"cannot decrypt the bundle ({exc})") from exc
    return check_contents(small, clips, device_vkey=device_vkey, cosigner_vkey=cosigner_vkey)
