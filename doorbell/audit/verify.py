"""Verify an audit log, live (a data dir) or exported (a directory of plain files).

One streaming pass over the entries recomputes every leaf hash and the tree (O(log n) memory)
and compares, where the source has them, the stored leaf and node hashes (exact index of an
edited entry or a corrupted hash) and each entry's own ``index`` (exact index of a deleted or
reordered entry in an export). Along the way it records the tree head at every size a
checkpoint or cosignature names; comparing those with the signed roots is the consistency
check (it is what a consistency proof proves, computed from the entries themselves).

Then: each checkpoint must carry a valid device signature (``device.vkey``), each owner
cosignature a valid tlog-cosignature; none may name a size beyond the log (rollback) or a root
the entries do not produce (rewritten history: with the device key stolen from the SD card an
attacker can re-sign device checkpoints, but not the owner's cosignature on the old head).
Entry 0 (``audit.log_created``) names the device key; a different ``device.vkey`` is a swap.
A pinned owner key (``--cosigner``) with no cosignature at all fails: `doorbell init`
always cosigns, so none means they were deleted.

A rewritten range can only be located between the last cosigned head that still matches and
the first that does not: the old entries are gone, so the report gives that range.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from doorbell.audit.devicekey import load_device_verifier
from doorbell.audit.entries import EntryError, decode_entry, stated_index
from doorbell.audit.merkle import CompactRange
from doorbell.audit.note import Checkpoint, NoteError, Verifier, open_note, parse_checkpoint
from doorbell.datadir import DataDir
from doorbell.errors import AuditError, StorageError

#: (index, leaf bytes, stored leaf hash or None, stored completed nodes or None)
Row = tuple[int, bytes, bytes | None, bytes | None]
#: (entry index or None when no single entry is to blame, what failed)
Problem = tuple[int | None, str]


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found. ``ok`` is True only when every check held."""

    ok: bool
    entries: int
    checkpoints: int
    cosignatures: int
    unsigned_entries: int = 0
    first_bad_index: int | None = None
    problem: str = ""
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        """The one-line verdict ``doorbell audit verify`` prints."""
        counts = (
            f"{self.entries} entries, {self.checkpoints} checkpoints, "
            f"{self.cosignatures} owner cosignatures"
        )
        if self.ok:
            tail = f", {self.unsigned_entries} not yet signed" if self.unsigned_entries else ""
            return f"OK: {counts}{tail}"
        where = "" if self.first_bad_index is None else f" at entry {self.first_bad_index}"
        return f"FAILED{where}: {self.problem} ({counts})"


@dataclass
class LogSource:
    """Everything verification reads, from wherever it lives."""

    device: Verifier
    rows: Iterable[Row]
    checkpoints: list[bytes]
    cosignatures: list[tuple[bytes, str]]  # (note, cosigner vkey recorded beside it)
    total_entries: int
    tree_state: tuple[int, bytes, bytes] | None = None  # stored (size, peaks, root)
    warnings: list[str] = field(default_factory=list)


#: How a ``keys.created`` entry reads in its canonical JSON (sorted keys, no spaces).
_KEYS_CREATED = b'"action":"keys.created"'


def verify_source(source: LogSource, cosigner_vkeys: Iterable[str] = ()) -> VerifyResult:
    """Run every check on ``source``; never raises for a bad log (the result says why)."""
    problems: list[Problem] = []
    warnings = list(source.warnings)
    checkpoints, cosignatures = [], []
    for note in source.checkpoints:
        try:
            opened = open_note(note, [source.device])
            checkpoints.append(parse_checkpoint(opened.text))
        except NoteError as exc:
            problems.append((None, f"a stored checkpoint does not verify with device.vkey: {exc}"))
    pinned = [Verifier.from_vkey(v) for v in cosigner_vkeys]
    if not pinned and source.cosignatures:
        warnings.append("owner cosigner keys not pinned (--cosigner): trusted as recorded")
    seen_by: set[tuple[str, bytes]] = set()
    for note, recorded in source.cosignatures:
        try:
            verifiers = pinned or [Verifier.from_vkey(recorded)]
            opened = open_note(note, [v for v in verifiers if v.sig_type == 0x04])
            cosignatures.append(parse_checkpoint(opened.text))
            seen_by.update((s.name, s.key_id) for s in opened.verified)
        except NoteError as exc:
            problems.append((None, f"a stored owner cosignature does not verify: {exc}"))
    for verifier in pinned:
        if (verifier.name, verifier.key_id) not in seen_by:
            # A pinned owner key that never cosigned: every cosignature was deleted (and the
            # log maybe rebuilt with the stolen device key). `doorbell init` always cosigns.
            message = (
                f"no cosignature by the pinned owner key {verifier.name} "
                f"({verifier.vkey}): its cosignatures were deleted"
            )
            problems.append((None, message))
    wanted = {c.size for c in checkpoints} | {c.size for c in cosignatures}
    keys_created: list[int] = []
    roots, compact, first_leaf, stopped = _stream_tree(source.rows, wanted, problems, keys_created)
    if keys_created and not source.cosignatures:
        # `doorbell init` writes keys.created and cosigns at once: a log that has one and no
        # cosignature at all had them deleted (issue 17), pinned key or not.
        problems.append(
            (
                None,
                f"entry {keys_created[0]} is keys.created, but the log holds no owner "
                "cosignature at all: they were deleted",
            )
        )
    size = compact.size
    if source.tree_state is not None and not stopped:
        _check_tree_state(source.tree_state, compact, problems)
    _check_genesis(first_leaf, source.device, problems, warnings)
    before = len(problems)
    good_device = _check_heads(checkpoints, roots, size, stopped, "checkpoint signed", [], problems)
    if len(problems) == before:
        # Every device checkpoint matches: if an owner cosignature does not, the device key
        # re-signed a rewritten history, so only the owner's own heads can bound the damage.
        _check_heads(cosignatures, roots, size, stopped, "owner-cosigned checkpoint", [], problems)
    for head in checkpoints + cosignatures:
        if head.origin != source.device.name:
            problems.append((None, f"checkpoint origin {head.origin!r} is not this log's"))
    signed = max(good_device, default=0)
    if size and not checkpoints:
        problems.append((0, "no checkpoint signed by the device key covers the entries"))
    unsigned = max(0, size - signed)
    if unsigned and checkpoints and not problems:
        warnings.append(f"entries {signed}..{size - 1} are not covered by a checkpoint yet")
    count = (len(source.checkpoints), len(source.cosignatures))
    if problems:
        index, message = min(problems, key=lambda p: (p[0] is None, p[0] or 0))
        return VerifyResult(
            False, source.total_entries, *count, unsigned, index, message, tuple(warnings)
        )
    return VerifyResult(True, size, *count, unsigned, warnings=tuple(warnings))


def _stream_tree(
    rows: Iterable[Row], wanted: set[int], problems: list[Problem], keys_created: list[int]
) -> tuple[dict[int, bytes], CompactRange, bytes | None, bool]:
    """Recompute the tree; stop at the first bad entry. Returns roots at ``wanted`` sizes;
    appends to ``keys_created`` the index of every ``keys.created`` entry."""
    compact = CompactRange()
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = compact.root()
    first_leaf = None
    sha256 = hashlib.sha256
    for expected, (index, leaf, stored_leaf_hash, stored_nodes) in enumerate(rows):
        if index != expected:
            problems.append((expected, f"entry {expected} is missing (next stored is {index})"))
            return roots, compact, first_leaf, True
        if expected == 0:
            first_leaf = leaf
        if _KEYS_CREATED in leaf:
            keys_created.append(index)
        leaf_hash = sha256(b"\x00" + leaf).digest()
        if stored_leaf_hash is None:
            said = stated_index(leaf)
            if said != index:
                problems.append((index, f"entry {index} states index {said}: deleted or moved"))
                return roots, compact, first_leaf, True
        elif leaf_hash != stored_leaf_hash:
            problems.append((index, f"entry {index} does not match its stored leaf hash"))
            return roots, compact, first_leaf, True
        completed = compact.append(leaf_hash)
        if stored_nodes is not None and b"".join(completed) != stored_nodes:
            problems.append((index, f"entry {index}: a stored tree node hash is wrong"))
            return roots, compact, first_leaf, True
        if compact.size in wanted:
            roots[compact.size] = compact.root()
    return roots, compact, first_leaf, False


def _check_tree_state(
    state: tuple[int, bytes, bytes], compact: CompactRange, problems: list[Problem]
) -> None:
    stored_size, peaks, root = state
    if stored_size > compact.size:
        problems.append(
            (
                compact.size,
                f"entries {compact.size}..{stored_size - 1} are missing"
                f" (the tree state says {stored_size})",
            )
        )
    elif stored_size < compact.size:
        problems.append((stored_size, f"entries from {stored_size} are not in the tree state"))
    elif peaks != compact.to_bytes() or root != compact.root():
        problems.append((max(0, compact.size - 1), "the stored tree state hashes are wrong"))


def _check_genesis(
    first_leaf: bytes | None, device: Verifier, problems: list[Problem], warnings: list[str]
) -> None:
    if first_leaf is None:
        return
    try:
        entry = decode_entry(first_leaf)
    except EntryError:
        warnings.append("entry 0 is not an audit.log_created entry naming the device key")
        return
    if entry["action"] != "audit.log_created":
        warnings.append("entry 0 is not an audit.log_created entry naming the device key")
        return
    named = entry["details"].get("device_vkey") if isinstance(entry["details"], dict) else None
    if named != device.vkey:
        problems.append(
            (
                0,
                f"entry 0 names device key {named}, but device.vkey is "
                f"{device.vkey}: the device key was swapped",
            )
        )


def _check_heads(
    heads: list[Checkpoint],
    roots: dict[int, bytes],
    size: int,
    stopped: bool,
    what: str,
    matched: list[int],
    problems: list[Problem],
) -> list[int]:
    """Compare signed heads with recomputed roots; return the sizes that matched."""
    for head in sorted(heads, key=lambda h: h.size):
        if head.size > size:
            if not stopped:
                problems.append(
                    (
                        size,
                        f"log truncated: {what} at size {head.size}, but only "
                        f"{size} entries remain",
                    )
                )
            continue
        if roots.get(head.size) == head.root_hash:
            matched.append(head.size)
            continue
        low = max((m for m in matched if m < head.size), default=0)
        problems.append(
            (
                low,
                f"history rewritten: the entries do not produce the root of the "
                f"{what} at size {head.size}; the first rewritten entry is in "
                f"[{low}, {head.size})",
            )
        )
    return matched


# --- sources ---------------------------------------------------------------------------


def verify_data_dir(data_dir: Path, cosigner_vkeys: Iterable[str] = ()) -> VerifyResult:
    """Verify ``<data_dir>/audit.sqlite3`` against ``<data_dir>/keys/device.vkey``.

    Raises :class:`StorageError` if there is no log, :class:`KeyFileError` without the key.
    """
    path = DataDir(data_dir).audit
    if not path.exists():
        raise StorageError(f"{path}: no audit log here")
    device = load_device_verifier(DataDir(data_dir).keys)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot for every read below
        total = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        tree = conn.execute("SELECT size, peaks, root FROM tree WHERE id = 0").fetchone()
        checkpoints = [r[0] for r in conn.execute("SELECT note FROM checkpoints ORDER BY size")]
        cosignatures = list(conn.execute("SELECT note, cosigner_vkey FROM cosignatures"))
        rows = conn.execute("SELECT idx, leaf, leaf_hash, nodes FROM entries ORDER BY idx")
        source = LogSource(device, rows, checkpoints, cosignatures, total, tree)
        return verify_source(source, cosigner_vkeys)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot read the audit log ({exc})") from exc
    finally:
        conn.close()


def _export_rows(path: Path) -> Iterator[Row]:
    with open(path, "rb") as handle:
        for index, line in enumerate(handle):
            yield index, line[:-1] if line.endswith(b"\n") else line, None, None


def verify_export(export_dir: Path, cosigner_vkeys: Iterable[str] = ()) -> VerifyResult:
    """Verify a directory written by ``doorbell audit export`` (layout in its VERIFY.md)."""
    export_dir = Path(export_dir)
    entries = export_dir / "entries.jsonl"
    if not entries.is_file():
        raise StorageError(f"{export_dir}: no entries.jsonl; is this an audit export?")
    device = load_device_verifier(export_dir)
    checkpoints = [p.read_bytes() for p in sorted((export_dir / "checkpoints").glob("*.note"))]
    recorded = _read_vkeys(export_dir / "cosigners.vkeys")
    cosignatures = []
    for path in sorted((export_dir / "cosignatures").glob("*.note")):
        note = path.read_bytes()
        cosignatures.append((note, _recorded_vkey_for(note, recorded)))
    with open(entries, "rb") as handle:
        total = sum(1 for _ in handle)
    source = LogSource(device, _export_rows(entries), checkpoints, cosignatures, total)
    return verify_source(source, cosigner_vkeys)


def _read_vkeys(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text("ascii").splitlines() if line.strip()]


def _recorded_vkey_for(note: bytes, vkeys: list[str]) -> str:
    """The listed cosigner vkey whose name appears on a signature line of ``note``."""
    for vkey in vkeys:
        name = vkey.split("+", 1)[0]
        if f"\u2014 {name} ".encode() in note:
            return vkey
    return ""  # no key listed: verification reports the cosignature as unverifiable


__all__ = ["AuditError", "LogSource", "VerifyResult", "verify_data_dir", "verify_export"]
