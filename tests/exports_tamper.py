"""The tamper cases of issue 16: each takes a genuine bundle and changes it as an attacker
would; ``verify-bundle`` must reject every one, naming the part (``expect``).

Shared by tests/test_exports_custody.py (each case must fail) and bench/exports.py (which
prints the table of case -> message for docs/formats.md).
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exports_helpers import World

from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.identities import X25519Identity
from doorbell.audit.devicekey import load_device_signer
from doorbell.audit.note import (
    Checkpoint,
    CosignatureSigner,
    NoteSignature,
    parse_checkpoint,
    parse_note,
    sign_note,
)
from doorbell.keys import OWNER_COSIGNER_NAME

Members = dict[str, bytes]


@dataclass(frozen=True)
class Bundle:
    """A genuine bundle to tamper with, and what its requester holds."""

    world: World
    path: Path
    identity: Any  # the requester's X25519 identity
    request_id: str


@dataclass(frozen=True)
class TamperCase:
    name: str
    apply: Callable[[Bundle], None]
    expect: str  # what the error's ``what`` starts with


def plain_tar(bundle: Bundle) -> bytes:
    with open(bundle.path, "rb") as handle:
        return decrypt(handle, [bundle.identity]).read()


def write_plain(bundle: Bundle, data: bytes) -> None:
    """Re-encrypt ``data`` to the requester's public key (it is in the request)."""
    with open(bundle.path, "wb") as handle, encrypt(handle, [bundle.identity.recipient]) as out:
        out.write(data)


def members(bundle: Bundle) -> Members:
    with tarfile.open(fileobj=io.BytesIO(plain_tar(bundle)), mode="r:") as tar:
        found: Members = {}
        for info in tar:
            handle = tar.extractfile(info)
            found[info.name] = handle.read() if handle else b""
        return found


def write_members(bundle: Bundle, files: Members) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1767225600
            tar.addfile(info, io.BytesIO(data))
    write_plain(bundle, buffer.getvalue())


def _edit(name: str, change: Callable[[bytes], bytes]) -> Callable[[Bundle], None]:
    def apply(bundle: Bundle) -> None:
        files = members(bundle)
        target = next(n for n in files if n.startswith(name))
        files[target] = change(files[target])
        write_members(bundle, files)

    return apply


def _clip_name(bundle: Bundle, number: int = 0) -> str:
    return sorted(n for n in members(bundle) if n.startswith("clips/"))[number]


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _entry_lines(files: Members) -> list[bytes]:
    return files["audit/entries.jsonl"].split(b"\n")[:-1]


def _remove_entry(action: str, *, with_proof: bool) -> Callable[[Bundle], None]:
    def apply(bundle: Bundle) -> None:
        files = members(bundle)
        kept, removed = [], None
        for line in _entry_lines(files):
            if removed is None and json.loads(line)["action"] == action:
                removed = json.loads(line)["index"]
                continue
            kept.append(line)
        if removed is None:
            raise AssertionError(f"no {action} entry in the bundle")
        files["audit/entries.jsonl"] = b"".join(line + b"\n" for line in kept)
        if with_proof:
            proofs = json.loads(files["audit/proofs.json"])
            proofs["proofs"] = [p for p in proofs["proofs"] if p["index"] != removed]
            files["audit/proofs.json"] = json.dumps(proofs, indent=2).encode() + b"\n"
        write_members(bundle, files)

    return apply


def _remove_clip(bundle: Bundle) -> None:
    files = members(bundle)
    del files[_clip_name(bundle)]
    write_members(bundle, files)


def _add_clip(bundle: Bundle) -> None:
    files = members(bundle)
    first = _clip_name(bundle)
    files[first[:-12] + "deadbeef.mp4"] = files[first]
    write_members(bundle, files)


def _drop_signature(which: str) -> Callable[[Bundle], None]:
    def change(note: bytes) -> bytes:
        text, _blank, signatures = note.partition(b"\n\n")
        lines = [line for line in signatures.split(b"\n") if line]
        keep = [
            line for line in lines if (OWNER_COSIGNER_NAME.encode() in line) != (which == "owner")
        ]
        return text + b"\n\n" + b"".join(line + b"\n" for line in keep)

    return _edit("audit/checkpoint.note", change)


def _older_checkpoint(bundle: Bundle) -> None:
    """A genuinely device-signed and owner-cosigned checkpoint of the log before the bundle
    was sealed (as kept from an earlier bundle), with proofs recomputed for it."""
    world = bundle.world
    files = members(bundle)
    current = parse_checkpoint(parse_note(files["audit/checkpoint.note"]).text)
    sealed = max(
        json.loads(line)["index"]
        for line in _entry_lines(files)
        if json.loads(line)["action"] == "export.bundle_sealed"
    )
    size = sealed  # everything before the seal
    signer = load_device_signer(world.data_dir / "keys")
    body = Checkpoint(current.origin, size, world.audit.root_at(size)).body()
    device_note = sign_note(body, signer)
    cosigner = CosignatureSigner(OWNER_COSIGNER_NAME, world.cosigning_key)
    line = NoteSignature(
        OWNER_COSIGNER_NAME, cosigner.key_id, cosigner.sign_at(body, int(world.clock()))
    ).line()
    files["audit/checkpoint.note"] = device_note + line.encode()
    lines = [x for x in _entry_lines(files) if json.loads(x)["index"] < size]
    files["audit/entries.jsonl"] = b"".join(x + b"\n" for x in lines)
    proofs = {
        "tree_size": size,
        "root": base64.b64encode(world.audit.root_at(size)).decode(),
        "hash": "RFC 6962 SHA-256 (leaf = SHA-256(0x00 || entry line))",
        "proofs": [
            {
                "index": json.loads(x)["index"],
                "path": [
                    base64.b64encode(h).decode()
                    for h in world.audit.inclusion_proof(json.loads(x)["index"], size)
                ],
            }
            for x in lines
        ],
    }
    files["audit/proofs.json"] = json.dumps(proofs, indent=2).encode() + b"\n"
    write_members(bundle, files)


def _header(name: str, size: int, *, devmajor: bytes | None = None) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 1767225600
    block = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    if devmajor is not None:
        block[329:337] = devmajor
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _end_offset(data: bytes) -> int:
    """Offset of the end-of-archive block (the first all-zero header)."""
    offset = 0
    while data[offset : offset + 512].strip(b"\0"):
        size = int(data[offset + 124 : offset + 136].rstrip(b"\0 ") or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return offset


def hidden_member(bundle: Bundle, replacement: bytes) -> None:
    """Issue item 4: after the genuine members, a header tarfile cannot parse (garbage
    devmajor, valid checksum) but GNU tar reads, carrying another clip under the genuine
    clip's name; re-encrypted to the requester's public key."""
    data = plain_tar(bundle)
    end = _end_offset(data)
    name = _clip_name(bundle)
    evil = _header(name, len(replacement), devmajor=b"zzzzzzz\0")
    padded = replacement + b"\0" * (-len(replacement) % 512)
    tail = b"\0" * 1024
    rebuilt = data[:end] + evil + padded + tail
    write_plain(bundle, rebuilt + b"\0" * (-len(rebuilt) % 10240))


def _trailing_data(bundle: Bundle) -> None:
    write_plain(bundle, plain_tar(bundle) + b"and then some more bytes")


CASES: list[TamperCase] = [
    TamperCase("byte flipped in a clip", _edit("clips/", _flip_last), "clips/"),
    TamperCase(
        "manifest edited (requester)",
        _edit("manifest.json", lambda d: d.replace(b"Jane", b"John")),
        "manifest.json",
    ),
    TamperCase(
        "manifest edited (legal basis)",
        _edit("manifest.json", lambda d: d.replace(b'"warrant"', b'"court_order"')),
        "manifest.json",
    ),
    TamperCase("clip removed", _remove_clip, "clips/"),
    TamperCase("clip added", _add_clip, "clips/"),
    TamperCase(
        "submission entry removed",
        _remove_entry("export.request_submitted", with_proof=False),
        "manifest.json",
    ),
    TamperCase(
        "submission entry and its proof removed",
        _remove_entry("export.request_submitted", with_proof=True),
        "manifest.json",
    ),
    TamperCase(
        "approval entry removed",
        _remove_entry("export.request_approved", with_proof=True),
        "manifest.json",
    ),
    TamperCase(
        "seal entry removed",
        _remove_entry("export.bundle_sealed", with_proof=True),
        "manifest.json",
    ),
    TamperCase(
        "a clip's clip.sealed entry removed",
        _remove_entry("clip.sealed", with_proof=False),
        "clips/",
    ),
    TamperCase(
        "a clip's clip.sealed entry and its proof removed",
        _remove_entry("clip.sealed", with_proof=True),
        "clips/",
    ),
    TamperCase(
        "entry edited",
        _edit("audit/entries.jsonl", lambda d: d.replace(b"W-2026/0042", b"W-2026/0043")),
        "audit/entries.jsonl",
    ),
    TamperCase("older checkpoint", _older_checkpoint, "manifest.json"),
    TamperCase("owner cosignature removed", _drop_signature("owner"), "audit/checkpoint.note"),
    TamperCase("device signature removed", _drop_signature("device"), "audit/checkpoint.note"),
    TamperCase(
        "proof path edited",
        _edit(
            "audit/proofs.json",
            lambda d: d.replace(b'"path": [\n        "', b'"path": [\n        "A'),
        ),
        "audit/",
    ),
    TamperCase(
        "VERIFY.txt edited", _edit("VERIFY.txt", lambda d: d + b"Trust me.\n"), "VERIFY.txt"
    ),
    TamperCase(
        "tar header tarfile stops on but GNU tar reads",
        lambda b: hidden_member(b, b"another clip entirely" * 100),
        "tar",
    ),
    TamperCase("data after the end of the archive", _trailing_data, "tar"),
]


# --- the recorder's forgery (issue 16b, C) ---------------------------------------------------


def forge_by_recorder(bundle: Bundle, *, sign_with: Any = None) -> Bundle:
    """What a compromised recorder can make with the device key alone: a request of its own
    (to a recipient it holds), an ``export.request_approved`` entry by "owner" (unsigned, or
    signed with ``sign_with``, a key that is not the owner's), the ``export.bundle_sealed``
    entry of its own manifest; then it waits for the owner's routine cosignature (at unlock
    or every few minutes, run here through the owner anchor as the web UI does) and packs a
    bundle. The clips are the genuine bundle's plaintext (the recorder saw every frame)."""
    import dataclasses
    import hashlib

    from doorbell.exports.decision import SIGNATURE_FIELD, sign_decision
    from doorbell.exports.manifest import Manifest
    from doorbell.exports.proofs import audit_files
    from doorbell.exports.record import read_record
    from doorbell.keys import derive_owner_anchor_key

    world, audit = bundle.world, bundle.world.audit
    files = members(bundle)
    genuine = Manifest.from_bytes(files["manifest.json"])
    attacker = X25519Identity.generate()
    forged_id = "req-" + hashlib.sha256(bundle.request_id.encode()).hexdigest()[:12]
    about = f"request/{forged_id}"
    submission = {**genuine.request.submitted_fields(), "recipient": str(attacker.recipient)}
    submission.update(source="owner", invitation=None)
    submitted_index = audit.append("owner", "export.request_submitted", about, submission)
    submitted = read_record(audit, forged_id).submitted
    assert submitted is not None and submitted.index == submitted_index
    approval: dict[str, Any] = {
        "clips": sorted(genuine.decision.clips),
        "bundle_expires_at": genuine.decision.bundle_expires_at,
        "download_limit": genuine.decision.download_limit,
        "redaction": genuine.decision.redaction,
        "step_up": True,
        "include_later_footage": genuine.decision.includes_later_footage,
    }
    if sign_with is not None:
        approval[SIGNATURE_FIELD] = sign_decision(
            sign_with, forged_id, submitted.leaf_hash, submission, approval
        )
    approved_index = audit.append("owner", "export.request_approved", about, approval)
    entries = {i: json.loads(leaf) for i, leaf in audit.entries(submitted_index)}
    manifest = dataclasses.replace(
        genuine,
        request=dataclasses.replace(
            genuine.request,
            id=forged_id,
            submitted_at=entries[submitted_index]["time"],
            submission_index=submitted_index,
            source="owner",
            invitation=None,
            recipient=str(attacker.recipient),
        ),
        decision=dataclasses.replace(
            genuine.decision,
            decided_at=entries[approved_index]["time"],
            approval_index=approved_index,
        ),
    )
    manifest_bytes = manifest.to_bytes()
    sealed_index = audit.append(
        "system",
        "export.bundle_sealed",
        about,
        {"manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(), "clips": 2},
    )
    indexes = [submitted_index, approved_index, sealed_index]
    indexes += [clip.sealed_index for clip in genuine.clips]
    forged: Members = {name: data for name, data in files.items() if name.startswith("clips/")}
    forged["manifest.json"] = manifest_bytes
    forged.update(  # the owner's routine cosignature, as at the next unlock
        audit_files(
            audit,
            indexes,
            sealed_index,
            world.cosigning_key,
            2.0,
            anchor_key=derive_owner_anchor_key(world.owner),
        )
    )
    forged["VERIFY.txt"] = files["VERIFY.txt"]
    result = Bundle(world, bundle.path.with_name(f"{forged_id}.tar.age"), attacker, forged_id)
    write_members(result, forged)
    return result
