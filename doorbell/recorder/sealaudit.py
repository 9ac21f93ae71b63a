"""The ``clip.sealed`` audit entry of every sealed clip, exactly once, even across a power cut.

Sealing a clip is two durable writes in two databases: the index row (``Store.seal_clip``,
``sealed = 1``) and then the ``clip.sealed`` audit entry with the SHA-256 of the ciphertext.
A power cut between them used to leave an intact, indexed clip whose hash was never logged.

How it is closed (one nullable column, ``clips.audit_pending_from``):

1. just before sealing, the recorder reads the audit log's size ``n``; ``seal_clip`` stores
   ``audit_pending_from = n`` in the same transaction as ``sealed = 1``: the row now *owes*
   its entry, and whenever that entry gets appended its index is ``>= n`` (entries are only
   ever appended, by any process);
2. :func:`append_clip_sealed` appends the entry, then clears the column (``mark_audited``);
3. at start-up, before ``recorder.start``, :func:`recover_clip_sealed_entries` takes the rows
   that still owe (normally none: one query of the clips table, and the log is not read), reads
   the log from the smallest ``n`` among them to its end, and for each such clip marks it if
   a ``clip.sealed`` entry for its id is there (the cut hit after the append) or appends one,
   with the same details plus ``"recovered": true``, and then marks it.

Idempotent: a cut at any point of the recovery leaves either no entry (the row still owes;
the next start appends it) or the entry with the row still owing (the next start finds it
in the tail, which begins at or before it, and only marks). So no clip ever gets two entries,
however many restarts. Cheap: only the entries appended since the oldest owing clip was
sealed are read (one run's worth at most), never the whole log.

An index migrated from schema 1 starts with every row at NULL: existing sealed clips count as
audited. Nothing here decrypts or touches clip bytes; the details come from the index row.
"""

from __future__ import annotations

import logging
from typing import Any

from doorbell.audit.entries import EntryError, decode_entry
from doorbell.audit.sink import AuditSink
from doorbell.store import Clip, Store

log = logging.getLogger(__name__)

ACTOR = "recorder"
ACTION = "clip.sealed"


def clip_sealed_details(clip: Clip, *, recovered: bool = False) -> dict[str, Any]:
    """The details of a clip's ``clip.sealed`` entry, from its sealed index row.

    ``sha256`` of the ciphertext, ``size_bytes``, ``duration_s`` (ms precision), ``trigger``
    and ``event``; an interrupted clip's entry says ``"interrupted": true``, a recovered
    entry ``"recovered": true``.
    """
    details: dict[str, Any] = {
        "sha256": clip.sha256 or "",
        "size_bytes": clip.size_bytes,
        "duration_s": round(clip.duration_s, 3),
        "trigger": clip.trigger,
        "event": clip.event_id,
    }
    if clip.interrupted:  # cut short (power cut, disk full): sha256 is of what survived
        details["interrupted"] = True
    if recovered:
        details["recovered"] = True
    return details


def append_clip_sealed(
    store: Store, audit: AuditSink, clip: Clip, *, recovered: bool = False
) -> int:
    """Append ``clip``'s ``clip.sealed`` entry, then record in the index that it is there.

    Returns the entry's index. Raises what the audit log or the index raise (StorageError,
    sqlite3 errors); the row then still owes its entry and the next start completes it.
    """
    index = audit.append(ACTOR, ACTION, clip.id, clip_sealed_details(clip, recovered=recovered))
    store.mark_audited(clip.id)
    return index


def recover_clip_sealed_entries(store: Store, audit: AuditSink) -> list[str]:
    """Give every sealed clip that still owes its ``clip.sealed`` entry exactly one.

    Call at start-up, after ``Store.reconcile`` and before ``recorder.start``. Returns the ids
    of the clips whose entry had to be appended (``recovered: true``); clips whose entry was
    already in the log are only marked. See the module docstring for why this is idempotent
    and reads only the log's tail.
    """
    owing = store.clips_owing_audit()
    if not owing:
        return []
    start = min(clip.audit_pending_from or 0 for clip in owing)
    wanted = {clip.id for clip in owing}
    logged: set[str] = set()
    for _index, leaf in audit.entries(start):
        try:
            entry = decode_entry(leaf)
        except EntryError:
            continue  # not ours to judge here: verification reports a bad leaf
        if entry["action"] == ACTION and entry["object"] in wanted:
            logged.add(entry["object"])
    appended: list[str] = []
    for clip in owing:
        if clip.id in logged:
            store.mark_audited(clip.id)
            continue
        append_clip_sealed(store, audit, clip, recovered=True)
        appended.append(clip.id)
        log.warning("clip %s was sealed without its audit entry (power cut?): appended", clip.id)
    return appended
