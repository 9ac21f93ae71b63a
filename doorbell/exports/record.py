"""A request's signed record: its entries in the device's audit log, read from the log itself.

The export registry's rows are a cache. What approval and the bundle build trust is what
the device signed: the request's ``export.request_submitted`` and
``export.request_approved`` entries and each clip's ``clip.sealed`` entry. They are found
here by reading the audit log (never through the registry's tables, which anyone able to
write that database file could point elsewhere), after the caller has checked the log
against the owner anchor.

For each (action, object) the *first* entry counts: a request id is random and only known
once it is submitted, a clip id once it is sealed, so no entry about either can precede the
genuine one; a later copy (appended by whoever holds the device key) is ignored.

Approvals are different: whoever holds the device key (the recorder) can append an
``export.request_approved`` entry as soon as it sees the submission, before the owner
decides. So an approval counts only when it carries the owner's signature over this
decision and this submission (:mod:`.decision`); the first such entry counts, and entries
without a valid one are ignored (a bogus one cannot block the real approval).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from doorbell.audit.entries import EntryError, decode_entry
from doorbell.audit.merkle import leaf_hash
from doorbell.exports.decision import decision_problem

SUBMITTED = "export.request_submitted"
APPROVED = "export.request_approved"
SEALED = "export.bundle_sealed"
CLIP_SEALED = "clip.sealed"


class EntrySource(Protocol):
    """What this module needs of :class:`doorbell.audit.log.AuditLog`."""

    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]: ...


@dataclass(frozen=True)
class LoggedEntry:
    """One audit entry: its index, RFC 3339 ``time``, actor, ``details`` and its RFC 6962
    leaf hash ``SHA-256(0x00 || line)``."""

    index: int
    time: str
    actor: str
    details: dict[str, object]
    leaf_hash: bytes = b""


@dataclass(frozen=True)
class RequestRecord:
    """The first entry of each kind found about one request and its clips (``approved``:
    the first one the owner signed, when the caller gave the owner's key)."""

    submitted: LoggedEntry | None
    approved: LoggedEntry | None
    clips: dict[str, LoggedEntry]


def read_record(
    audit: EntrySource,
    request_id: str,
    clip_ids: Iterable[str] = (),
    *,
    owner_key: bytes | None = None,
) -> RequestRecord:
    """Read the log once: the request's first submission entry, its first approval entry
    signed by the owner (``owner_key``: the owner cosigner key's 32 raw Ed25519 bytes;
    without it no approval is read), and the first ``clip.sealed`` entry of each clip in
    ``clip_ids`` (absent ones are simply missing)."""
    wanted_clips = set(clip_ids)
    needles = [f"request/{request_id}".encode()] + [c.encode() for c in wanted_clips]
    subject = f"request/{request_id}"
    submitted: LoggedEntry | None = None
    approved: LoggedEntry | None = None
    clips: dict[str, LoggedEntry] = {}
    for index, leaf in audit.entries():
        if not any(needle in leaf for needle in needles):  # cheap filter before decoding
            continue
        try:
            entry = decode_entry(leaf)
        except EntryError:
            continue  # `doorbell audit verify` reports a bad leaf; not ours to judge here
        found = LoggedEntry(
            index,
            str(entry["time"]),
            str(entry["actor"]),
            dict(entry["details"]),
            leaf_hash(leaf),
        )
        action, target = entry["action"], entry["object"]
        if target == subject and action == SUBMITTED and submitted is None:
            submitted = found
        elif (
            target == subject
            and action == APPROVED
            and approved is None
            and submitted is not None
            and owner_key is not None
            and decision_problem(
                owner_key, request_id, submitted.leaf_hash, submitted.details, found.details
            )
            is None
        ):
            approved = found
        elif action == CLIP_SEALED and target in wanted_clips and target not in clips:
            clips[target] = found
    return RequestRecord(submitted, approved, clips)
