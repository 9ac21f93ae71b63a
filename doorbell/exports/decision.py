"""The owner's signature on an export decision (``export.request_approved``).

The device key signs the audit log, but the recorder holds that key, and the owner cosigns
the log at unlock and every few minutes without reading each entry. So an entry that says
"the owner approved" proves nothing by being in the cosigned log: a compromised recorder
could append one. The owner therefore signs the decision itself, with the owner cosigning
key (derived from the owner identity, ``keys/owner-cosigner.vkey``, the key a requester
already pins with ``--cosigner-vkey``) under a context of its own::

    message   = "doorbell-export-decision/v1\\n" || statement
    statement = canonical JSON (keys sorted, no whitespace, UTF-8) of
        {"request": <id>, "decision": "approved",
         "submission": hex SHA-256(0x00 || the request's export.request_submitted line),
         "delivery": ..., "recipient": ... (as in that submission),
         "clips_sha256": hex SHA-256 of the approved clip ids joined by "\\n" (as listed),
         "bundle_expires_at": ..., "download_limit": ..., "redaction": ...,
         "include_later_footage": ...}   (as in the approval entry's details)

A tlog cosignature signs ``"cosignature/v1\\n..."``; no decision message starts that way, and
no cosignature message starts with ``"doorbell-export-decision/v1\\n"``, so a signature of
one kind is never a valid signature of the other. Reusing the cosigning key (rather than a
third key derived with another label) keeps what a requester must get from the owner by
another channel to the two keys ``doorbell keys show`` already prints.

The approval entry carries ``owner_signature``: ``{"statement": <the statement, as text>,
"signature": <base64 Ed25519 signature, 64 bytes>}``. A verifier checks the signature over
the stated text, then that the parsed statement equals what the entries say (so no one ever
has to re-serialize JSON the same way). :func:`decision_problem` is that check; approval,
the bundle build (:mod:`.record`) and ``verify-bundle`` ignore or refuse approval entries
it does not pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from doorbell.audit.entries import canonical_json

if TYPE_CHECKING:  # types only
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: Prefix of every signed decision message (domain separation from tlog cosignatures).
DECISION_CONTEXT = b"doorbell-export-decision/v1\n"
#: The member of the approval entry's ``details`` that carries the owner's signature.
SIGNATURE_FIELD = "owner_signature"


def clips_digest(clips: object) -> str | None:
    """Hex SHA-256 of the clip ids joined by newlines, or None if ``clips`` is not a list of
    strings."""
    if not isinstance(clips, list) or not all(isinstance(c, str) for c in clips):
        return None
    return hashlib.sha256("\n".join(clips).encode("utf-8")).hexdigest()


def decision_statement(
    request_id: str,
    submission_leaf_hash: bytes,
    submission: Mapping[str, object],
    approval: Mapping[str, object],
) -> dict[str, object]:
    """What the owner signs for approving ``request_id``: the submission (its leaf hash and
    the recipient it names) and the decision (the approval entry's ``details``)."""
    return {
        "request": request_id,
        "decision": "approved",
        "submission": submission_leaf_hash.hex(),
        "delivery": submission.get("delivery"),
        "recipient": submission.get("recipient"),
        "clips_sha256": clips_digest(approval.get("clips")),
        "bundle_expires_at": approval.get("bundle_expires_at"),
        "download_limit": approval.get("download_limit"),
        "redaction": approval.get("redaction"),
        "include_later_footage": approval.get("include_later_footage", False),
    }


def sign_decision(
    cosigning_key: Ed25519PrivateKey,
    request_id: str,
    submission_leaf_hash: bytes,
    submission: Mapping[str, object],
    approval: Mapping[str, object],
) -> dict[str, str]:
    """The ``owner_signature`` member for an approval entry with ``approval`` details."""
    statement = canonical_json(
        decision_statement(request_id, submission_leaf_hash, submission, approval)
    )
    signature = cosigning_key.sign(DECISION_CONTEXT + statement)
    return {
        "statement": statement.decode("utf-8"),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def decision_problem(
    owner_public_key: bytes,
    request_id: str,
    submission_leaf_hash: bytes,
    submission: Mapping[str, object],
    approval: Mapping[str, object],
) -> str | None:
    """Why ``approval`` (an ``export.request_approved`` entry's details) is not a decision
    the owner signed for this submission, or None when it is. ``owner_public_key``: the
    owner cosigner key's 32 raw Ed25519 bytes."""
    carried = approval.get(SIGNATURE_FIELD)
    if not isinstance(carried, dict):
        return "it carries no owner signature"
    statement, signature = carried.get("statement"), carried.get("signature")
    if not isinstance(statement, str) or not isinstance(signature, str):
        return "its owner signature is malformed"
    try:
        raw = base64.b64decode(signature, validate=True)
        key = Ed25519PublicKey.from_public_bytes(owner_public_key)
    except (binascii.Error, ValueError):
        return "its owner signature is malformed"
    try:
        key.verify(raw, DECISION_CONTEXT + statement.encode("utf-8"))
    except InvalidSignature:
        return "its owner signature is not valid under the owner's key"
    try:
        stated = json.loads(statement)
    except ValueError:
        return "its signed statement is not JSON"
    expected = decision_statement(request_id, submission_leaf_hash, submission, approval)
    if not isinstance(stated, dict):
        return "its signed statement is not a JSON object"
    differing = sorted(
        k for k in set(stated) | set(expected) if stated.get(k, None) != expected.get(k, None)
    )
    if differing or set(stated) != set(expected):
        return f"the owner signed a different decision ({', '.join(differing) or 'fields'})"
    return None
