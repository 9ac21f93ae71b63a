"""Audit entries: canonical JSON, one RFC 6962 leaf each, and the no-secrets rule.

An entry is a JSON object with exactly these members, serialised canonically (keys sorted,
no insignificant whitespace, UTF-8, non-ASCII characters written as themselves)::

    {"action":"clip.viewed","actor":"owner","details":{...},"index":41,
     "object":"clip/2026/01/02/abc","time":"2026-01-02T03:04:05.678Z"}

- ``time``: RFC 3339, UTC, millisecond precision, ``Z`` suffix.
- ``actor``: who did it: ``recorder``, ``owner``, ``system``, ``requester:<id>`` ...
- ``action``: dotted lower-case verb, e.g. ``clip.viewed``, ``export.approved``.
- ``object``: what it was done to (may be empty).
- ``details``: a JSON object of strings, integers, finite floats, booleans, null, lists and
  objects.
- ``index``: the entry's position in the log (0-based), so a deleted or reordered entry
  shows up at its exact position even in an exported copy.

The leaf hashed into the Merkle tree is exactly these bytes; an export writes them one per line.

Nothing secret goes in. :func:`check_no_secrets` refuses (with :class:`SecretInEntryError`)
any details key, at any depth, whose name contains ``passphrase``, ``password``, ``passwd``,
``secret``, ``private``, ``seed``, ``token``, ``plaintext`` or ``skey``; any string that looks
like key material (``AGE-SECRET-KEY-``, ``PRIVATE+KEY+``, a PEM ``PRIVATE KEY`` block); and any
entry larger than :data:`MAX_ENTRY_BYTES` (so no image data). Public material is welcome:
fingerprints, recipients, verifier keys (``device_vkey``, ``owner_recipient_fingerprint``).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from doorbell.errors import AuditError

MAX_ENTRY_BYTES = 16 * 1024
_FORBIDDEN_KEY = re.compile(r"passphrase|password|passwd|secret|private|seed|token|plaintext|skey")
_SECRET_VALUE_MARKERS = ("AGE-SECRET-KEY-", "PRIVATE+KEY+", "PRIVATE KEY-----")
_ACTION = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,99}")
ENTRY_FIELDS = ("action", "actor", "details", "index", "object", "time")


class EntryError(AuditError):
    """An entry cannot be written: bad field, wrong type, or too large."""


class SecretInEntryError(EntryError):
    """An entry would carry a secret (passphrase, key material, token, plaintext)."""


def rfc3339_utc(timestamp: float) -> str:
    """``timestamp`` (POSIX seconds) as RFC 3339 UTC with milliseconds: 2026-01-02T03:04:05.678Z."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8; NaN and infinity refused."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise EntryError(f"audit entry is not plain JSON data: {exc}") from exc
    return text.encode("utf-8")


def check_no_secrets(details: Any, path: str = "details") -> None:
    """Raise :class:`SecretInEntryError` if ``details`` looks like it carries a secret."""
    if isinstance(details, dict):
        for key, value in details.items():
            if not isinstance(key, str):
                raise EntryError(f"audit entry {path}: key {key!r} is not a string")
            if _FORBIDDEN_KEY.search(key.lower()):
                raise SecretInEntryError(
                    f"audit entry {path}.{key}: secrets never go in the audit log "
                    "(log a fingerprint or an id instead)"
                )
            check_no_secrets(value, f"{path}.{key}")
    elif isinstance(details, list | tuple):
        for position, value in enumerate(details):
            check_no_secrets(value, f"{path}[{position}]")
    elif isinstance(details, str):
        if any(marker in details for marker in _SECRET_VALUE_MARKERS):
            raise SecretInEntryError(f"audit entry {path}: looks like private key material")
    elif isinstance(details, float) and not math.isfinite(details):
        raise EntryError(f"audit entry {path}: {details} is not a finite number")
    elif details is not None and not isinstance(details, bool | int | float):
        raise EntryError(f"audit entry {path}: {type(details).__name__} is not JSON data")


def encode_entry(
    *,
    index: int,
    timestamp: float,
    actor: str,
    action: str,
    object: str,
    details: dict[str, Any] | None,
) -> bytes:
    """The canonical leaf bytes of one entry; raises :class:`EntryError` on bad input."""
    if not isinstance(actor, str) or not actor or len(actor) > 200:
        raise EntryError(f"audit entry actor {actor!r}: want a non-empty string (<= 200 chars)")
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise EntryError(f"audit entry action {action!r}: want lower-case like 'clip.viewed'")
    if not isinstance(object, str) or len(object) > 1000:
        raise EntryError("audit entry object: want a string of at most 1000 characters")
    details = {} if details is None else details
    if not isinstance(details, dict):
        raise EntryError("audit entry details: want a dict")
    check_no_secrets(details)
    check_no_secrets(object, "object")
    leaf = canonical_json(
        {
            "action": action,
            "actor": actor,
            "details": details,
            "index": index,
            "object": object,
            "time": rfc3339_utc(timestamp),
        }
    )
    if len(leaf) > MAX_ENTRY_BYTES:
        raise EntryError(f"audit entry is {len(leaf)} bytes; the limit is {MAX_ENTRY_BYTES}")
    return leaf


def decode_entry(leaf: bytes) -> dict[str, Any]:
    """Parse leaf bytes back into a dict; raises :class:`EntryError` if not an entry object."""
    try:
        value = json.loads(leaf.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EntryError(f"audit entry is not UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict) or sorted(value) != list(ENTRY_FIELDS):
        raise EntryError("audit entry does not have exactly the fields " + ", ".join(ENTRY_FIELDS))
    return value


def stated_index(leaf: bytes) -> int | None:
    """The ``index`` an entry states about itself, read without a full JSON parse.

    In canonical form ``"index":`` can only appear unescaped as a key, and the top-level one
    is the last (only ``object`` and ``time``, both strings, follow it). None if absent.
    """
    at = leaf.rfind(b'"index":')
    if at < 0:
        return None
    end = leaf.find(b",", at)
    try:
        return int(leaf[at + 8 : end if end >= 0 else len(leaf)])
    except ValueError:
        return None
