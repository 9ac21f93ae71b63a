"""The ``audit/`` part of a bundle: the request's entries, a cosigned checkpoint, proofs.

A bundle must show that its manifest is on the device's signed record. So after the
``export.bundle_sealed`` entry (which holds the manifest's SHA-256) is appended, we need a
checkpoint covering it, signed by the device key. The web process usually does not hold
that key (the recorder signs, within ``audit.checkpoint_interval_s``), so we wait for one;
a process that holds the key signs at once. The owner then cosigns it through the owner
anchor, as at unlock (:func:`doorbell.audit.anchor.owner_cosign`: a log that does not match
the anchor refuses to be cosigned, audited; the anchor moves on), and the note shipped
carries both signatures. Every entry gets an RFC 6962 inclusion proof to that tree head.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from doorbell.audit.note import Note, parse_checkpoint, parse_note
from doorbell.errors import AuditError

if TYPE_CHECKING:  # types only
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from doorbell.audit.log import AuditLog

#: How often to look for the recorder's checkpoint while waiting, in seconds.
POLL_S = 0.1


def _device_note(audit: AuditLog, size: int) -> bytes:
    """The device-signed checkpoint note of exactly ``size`` (read from the log's table)."""
    from doorbell.audit.log import AUDIT_DB_FILE, connect

    conn = connect(audit.data_dir / AUDIT_DB_FILE, readonly=True)
    try:
        row = conn.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise AuditError(f"no device checkpoint of size {size}")
    return bytes(row[0])


def wait_for_checkpoint(
    audit: AuditLog, min_size: int, wait_s: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Return once a device-signed checkpoint of at least ``min_size`` entries exists.

    Signs one now when this process holds the device key. Raises :class:`AuditError` after
    ``wait_s`` seconds (is the recorder running?).
    """
    if audit.signer is not None:
        audit.checkpoint()
        return
    deadline = time.monotonic() + wait_s
    while True:
        note = audit.latest_checkpoint()
        if note is not None and parse_checkpoint(parse_note(note).text).size >= min_size:
            return
        if time.monotonic() >= deadline:
            raise AuditError(
                f"no signed audit checkpoint covering entry {min_size - 1} after {wait_s:g} s; "
                "the recorder (which holds the device key) signs them: is it running?"
            )
        sleep(POLL_S)


def audit_files(
    audit: AuditLog,
    indexes: list[int],
    sealed_index: int,
    cosigning_key: Ed25519PrivateKey,
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    *,
    anchor_key: bytes,
) -> list[tuple[str, bytes]]:
    """The files of ``audit/`` for the entries ``indexes`` (which include ``sealed_index``).

    The owner cosigns through the owner anchor sealed under ``anchor_key``
    (:func:`doorbell.keys.derive_owner_anchor_key`) with
    :func:`doorbell.audit.anchor.owner_cosign`, which audits a refusal and raises
    :class:`doorbell.audit.anchor.AnchorError` (log does not match the anchor) or
    :class:`AuditError`.
    """
    from doorbell.audit.anchor import owner_cosign
    from doorbell.audit.note import CosignatureSigner
    from doorbell.keys import OWNER_COSIGNER_NAME

    wait_for_checkpoint(audit, sealed_index + 1, wait_s, sleep)
    cosigned = parse_note(owner_cosign(audit, anchor_key, cosigning_key, OWNER_COSIGNER_NAME))
    checkpoint = parse_checkpoint(cosigned.text)
    if checkpoint.size <= sealed_index:
        raise AuditError("the cosigned checkpoint does not cover the manifest entry")
    device = parse_note(_device_note(audit, checkpoint.size))
    if device.text != cosigned.text:
        raise AuditError("device and owner signed different checkpoints of the same size")
    note = Note(cosigned.text, (*device.signatures, *cosigned.signatures)).to_bytes()
    wanted = sorted(i for i in set(indexes) if i < checkpoint.size)
    leaves: dict[int, bytes] = {}
    if wanted:
        for index, leaf in audit.entries(wanted[0]):
            if index > wanted[-1]:
                break
            if index in wanted:
                leaves[index] = leaf
    proofs = [
        {
            "index": i,
            "path": [
                base64.b64encode(h).decode() for h in audit.inclusion_proof(i, checkpoint.size)
            ],
        }
        for i in wanted
    ]
    proof_doc = {
        "tree_size": checkpoint.size,
        "root": base64.b64encode(checkpoint.root_hash).decode(),
        "hash": "RFC 6962 SHA-256 (leaf = SHA-256(0x00 || entry line))",
        "proofs": proofs,
    }
    cosigner = CosignatureSigner(OWNER_COSIGNER_NAME, cosigning_key)
    return [
        ("audit/entries.jsonl", b"".join(leaves[i] + b"\n" for i in wanted)),
        ("audit/checkpoint.note", note),
        ("audit/proofs.json", json.dumps(proof_doc, indent=2).encode() + b"\n"),
        ("audit/device.vkey", (audit.device_verifier().vkey + "\n").encode()),
        ("audit/cosigner.vkey", (cosigner.vkey + "\n").encode()),
    ]
