"""Rebuild a browsable data dir from an off-site copy (``doorbell restore``).

On a new Pi or a laptop, with the owner's key file (``owner.key.age``) and passphrase:

1. the copy's ``FORMAT`` is checked and the owner key is unlocked, and must be the owner the
   copy's ``owner.recipients`` names (else the footage is not this owner's);
2. the audit log is downloaded and verified as an export (every entry's stated index, every
   device checkpoint, and the owner's cosignatures, pinned to the key just unlocked), then
   rebuilt as ``audit.sqlite3`` and verified again as a live log;
3. every clip and thumbnail is downloaded (streamed, hashed on the way): a clip whose hash
   differs from its index row or from its ``clip.sealed`` audit entry is reported (and kept,
   for the owner to look at); clips the copy holds only in part (cut by a theft) become
   *interrupted* clips, playable up to their last authenticated chunk;
4. the index is rebuilt from the copy's rows and reconciled with the files.

The new data dir holds no device signing key: it can be browsed and verified, not record as
the old device. Nothing is decrypted here except the owner key file, to check the passphrase.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doorbell.audit import merkle
from doorbell.audit.entries import EntryError, decode_entry
from doorbell.audit.log import AuditLog, connect
from doorbell.audit.note import CosignatureSigner
from doorbell.audit.verify import VerifyResult, _recorded_vkey_for, verify_data_dir, verify_export
from doorbell.datadir import DEVICE_VKEY_FILE, OWNER_RECIPIENTS_FILE, DataDir
from doorbell.errors import AuditError, KeyFileError, ReplicationError, StorageError, UsageError
from doorbell.fsutil import fsync_dir, write_file_atomic
from doorbell.replicate import layout
from doorbell.replicate.destination import Destination
from doorbell.store import CLIP_ID_PATTERN, Store, thumb_relative_path

CHUNK_BYTES = 1024 * 1024
_CLIP_COLUMNS = (
    "id", "event_id", "started_at", "ended_at", "duration_s", "size_bytes", "trigger", "zones",
    "sealed", "interrupted", "path", "thumb_path", "sha256",
)  # fmt: skip
_INSERT_CLIP = (
    "INSERT INTO clips (id, event_id, started_at, ended_at, duration_s, size_bytes, trigger,"
    " zones, sealed, interrupted, path, thumb_path, sha256)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EVENT_COLUMNS = ("id", "kind", "started_at", "ended_at", "score", "zones", "clip_id")
_INSERT_EVENT = (
    "INSERT OR REPLACE INTO events (id, kind, started_at, ended_at, score, zones, clip_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class RestoreReport:
    """What :func:`restore` did."""

    clips: int = 0
    interrupted: list[str] = field(default_factory=list)
    bytes: int = 0
    audit: VerifyResult | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.audit is not None and self.audit.ok


def restore(
    dest: Destination,
    data_dir: Path,
    *,
    key_file: Path,
    passphrase: str,
    clock: Callable[[], float] = time.time,
) -> RestoreReport:
    """Rebuild ``data_dir`` (new or empty) from the copy at ``dest``; see the module text.

    Raises :class:`UsageError` (data dir not empty), :class:`ReplicationError` (not a copy,
    unreadable), :class:`KeyFileError` / :class:`PassphraseError` (wrong key or passphrase)
    and :class:`AuditError` (the copy's log does not verify: nothing further is restored).
    Clip problems do not raise: they are listed in the report.
    """
    from doorbell.keys import (
        OWNER_COSIGNER_NAME,
        derive_owner_cosigning_key,
        unlock_owner_identity,
    )

    data_dir = Path(data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UsageError(f"{data_dir}: not empty; restore into a new directory")
    if dest.size(layout.FORMAT_FILE) is None or dest.read(layout.FORMAT_FILE) != (
        layout.FORMAT_LINE
    ):
        raise ReplicationError(f"{dest.description}: not a doorbell copy (no FORMAT v1 marker)")
    paths = DataDir(data_dir)
    keys = paths.keys
    keys.mkdir(parents=True, mode=0o750, exist_ok=True)
    try:
        key_bytes = Path(key_file).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{key_file}: cannot read the owner key file: {exc.strerror}") from None
    write_file_atomic(paths.owner_key, key_bytes, mode=0o600)
    device = _first(dest, (f"{layout.KEYS_DIR}/device.vkey", layout.AUDIT_DEVICE_VKEY))
    if device is None:
        raise ReplicationError(f"{dest.description}: the copy has no device.vkey")
    write_file_atomic(paths.device_vkey, device, mode=0o644)
    recipients = _first(dest, (f"{layout.KEYS_DIR}/{OWNER_RECIPIENTS_FILE}",))
    if recipients is not None:
        write_file_atomic(paths.owner_recipients, recipients, mode=0o644)
    identity = unlock_owner_identity(data_dir, passphrase)  # checks it against the recipients
    if recipients is None:
        text = f"# doorbell owner recipient (public)\n{identity.recipient}\n"
        write_file_atomic(paths.owner_recipients, text.encode(), mode=0o644)
    owner_vkey = CosignatureSigner(OWNER_COSIGNER_NAME, derive_owner_cosigning_key(identity)).vkey

    report = RestoreReport()
    sealed_hashes = _restore_audit(dest, data_dir, owner_vkey, clock)
    report.audit = verify_data_dir(data_dir, (owner_vkey,))
    if not report.audit.ok:
        raise AuditError(f"the restored audit log does not verify: {report.audit.summary()}")
    anchor = _first(dest, (layout.ANCHOR_COPY,))
    if anchor is not None:
        paths.owner_dir.mkdir(mode=0o700, exist_ok=True)
        write_file_atomic(paths.owner_anchor, anchor, mode=0o600)
    with Store.open(data_dir, clock=clock) as store:
        _restore_clips(dest, store, sealed_hashes, report)
        _restore_events(dest, store, report)
        reconciled = store.reconcile()
    report.interrupted = sorted(set(report.interrupted) | set(reconciled.clips_marked_interrupted))
    return report


def _first(dest: Destination, paths: tuple[str, ...]) -> bytes | None:
    for path in paths:
        if dest.size(path) is not None:
            return dest.read(path)
    return None


# --- the audit log -------------------------------------------------------------------------


def _restore_audit(
    dest: Destination, data_dir: Path, owner_vkey: str, clock: Callable[[], float]
) -> dict[str, str]:
    """Download, verify as an export, rebuild audit.sqlite3; return clip id -> sealed hash."""
    scratch = Path(tempfile.mkdtemp(prefix=".restore-audit-", dir=data_dir))
    try:
        for name in ("entries.jsonl", "cosigners.vkeys", DEVICE_VKEY_FILE):
            data = _first(dest, (f"{layout.AUDIT_DIR}/{name}",))
            if data is not None:
                (scratch / name).write_bytes(data)
        for directory in (layout.CHECKPOINTS_DIR, layout.COSIGNATURES_DIR):
            local = scratch / Path(directory).name
            local.mkdir()
            for name in dest.listdir(directory):
                if name.endswith(".note") and not name.startswith("."):
                    (local / name).write_bytes(dest.read(f"{directory}/{name}"))
        if not (scratch / "entries.jsonl").exists():
            raise ReplicationError(f"{dest.description}: the copy holds no audit log")
        result = verify_export(scratch, (owner_vkey,))
        if not result.ok:
            raise AuditError(f"the copy's audit log does not verify: {result.summary()}")
        return _build_audit_db(scratch, data_dir, clock)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build_audit_db(scratch: Path, data_dir: Path, clock: Callable[[], float]) -> dict[str, str]:
    AuditLog.open(data_dir).close()  # the schema, empty
    conn = connect(DataDir(data_dir).audit)
    sealed: dict[str, str] = {}
    try:
        conn.execute("BEGIN IMMEDIATE")
        compact = merkle.CompactRange()
        with open(scratch / "entries.jsonl", "rb") as handle:
            for index, line in enumerate(handle):
                leaf = line.rstrip(b"\n")
                leaf_hash = merkle.leaf_hash(leaf)
                nodes = b"".join(compact.append(leaf_hash))
                conn.execute(
                    "INSERT INTO entries(idx, leaf, leaf_hash, nodes) VALUES (?, ?, ?, ?)",
                    (index, leaf, leaf_hash, nodes),
                )
                _note_sealed(leaf, sealed)
        conn.execute(
            "UPDATE tree SET size = ?, peaks = ?, root = ? WHERE id = 0",
            (compact.size, compact.to_bytes(), compact.root()),
        )
        for path in sorted((scratch / "checkpoints").glob("*.note")):
            conn.execute(
                "INSERT OR IGNORE INTO checkpoints(size, note, signed_at) VALUES (?, ?, ?)",
                (int(path.stem), path.read_bytes(), clock()),
            )
        vkeys_file = scratch / "cosigners.vkeys"
        vkeys = vkeys_file.read_text("ascii").split() if vkeys_file.exists() else []
        for path in sorted((scratch / "cosignatures").glob("*.note")):
            size, stamp = path.stem.split("-")[:2]
            note = path.read_bytes()
            conn.execute(
                "INSERT INTO cosignatures(size, cosigner_vkey, timestamp, note)"
                " VALUES (?, ?, ?, ?)",
                (int(size), _recorded_vkey_for(note, vkeys), int(stamp), note),
            )
        conn.execute("COMMIT")
    except (sqlite3.Error, ValueError) as exc:
        conn.execute("ROLLBACK")
        raise StorageError(f"cannot rebuild the audit log from the copy: {exc}") from exc
    finally:
        conn.close()
    return sealed


def _note_sealed(leaf: bytes, sealed: dict[str, str]) -> None:
    try:
        entry = decode_entry(leaf)
    except EntryError:
        return
    details = entry["details"]
    if entry["action"] == "clip.sealed" and isinstance(details, dict):
        sealed[str(entry["object"])] = str(details.get("sha256", ""))


# --- clips and the index -------------------------------------------------------------------


def _rows(dest: Destination, directory: str) -> list[dict[str, Any]]:
    rows = []
    for name in dest.listdir(directory):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            row = json.loads(dest.read(f"{directory}/{name}"))
        except ValueError as exc:
            raise ReplicationError(f"{directory}/{name}: not an index row ({exc})") from None
        if not isinstance(row, dict) or row.get("id") != name.removesuffix(".json"):
            raise ReplicationError(f"{directory}/{name}: not the index row of this id")
        rows.append(row)
    return rows


def _download(dest: Destination, remote: str, local: Path) -> tuple[int, str]:
    """Stream ``remote`` into ``local`` (0640); returns (size, sha256 hex)."""
    local.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    digest = hashlib.sha256()
    size = 0
    total = dest.size(remote)
    if total is None:
        raise ReplicationError(f"{remote}: missing from the copy")
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    with os.fdopen(fd, "wb") as handle:
        while size < total:
            data = dest.read(remote, size, min(CHUNK_BYTES, total - size))
            if not data:
                break
            handle.write(data)
            digest.update(data)
            size += len(data)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(local.parent)
    return size, digest.hexdigest()


def _restore_clips(
    dest: Destination, store: Store, sealed_hashes: dict[str, str], report: RestoreReport
) -> None:
    for row in _rows(dest, layout.CLIP_ROWS_DIR):
        clip_id = str(row["id"])
        if not CLIP_ID_PATTERN.match(clip_id):
            report.problems.append(f"{clip_id!r}: not a clip id; skipped")
            continue
        relative = str(row.get("path", ""))
        thumb = row.get("thumb_path")
        try:
            expected_path = store.clip_relative_path(clip_id, float(row["started_at"]))
        except (KeyError, TypeError, ValueError, StorageError) as exc:
            report.problems.append(f"clip {clip_id}: the copy's index row is damaged ({exc})")
            continue
        if relative != expected_path or thumb not in (None, thumb_relative_path(clip_id)):
            # The copy is not trusted: a row may only name the files of its own clip.
            report.problems.append(
                f"clip {clip_id}: the copy's index row names {relative!r} / {thumb!r}, not "
                "this clip's own files; skipped"
            )
            continue
        try:
            size, sha256 = _download(dest, relative, store.absolute(relative))
        except ReplicationError as exc:
            report.problems.append(f"clip {clip_id}: {exc}")
            continue
        report.bytes += size
        sealed_size = int(row.get("size_bytes") or 0)
        whole = bool(row.get("sealed")) and not row.get("interrupted")
        if whole and size < sealed_size:
            # The copy stopped before the clip's end (the device went away mid-copy): what
            # is there plays up to its last authenticated chunk, as an interrupted clip.
            row = {**row, "sealed": 0}
        else:
            expected = row.get("sha256") if whole else None
            logged = sealed_hashes.get(clip_id) if whole else None
            for what, wanted in (("its index row", expected), ("its clip.sealed entry", logged)):
                if wanted and wanted != sha256:
                    report.problems.append(
                        f"clip {clip_id}: the copy's SHA-256 {sha256[:16]}... is not the one "
                        f"in {what} ({wanted[:16]}...): it was altered"
                    )
        if not row.get("sealed"):
            report.interrupted.append(clip_id)
        if thumb:
            try:
                _download(dest, str(thumb), store.absolute(str(thumb)))
            except (ReplicationError, StorageError) as exc:
                report.problems.append(f"clip {clip_id}: thumbnail: {exc}")
                row = {**row, "thumb_path": None}
        values = [row.get(column) for column in _CLIP_COLUMNS]
        try:
            with store._transaction() as db:
                db.execute(_INSERT_CLIP, values)
        except sqlite3.Error as exc:
            report.problems.append(f"clip {clip_id}: the copy's index row is refused ({exc})")
            continue
        report.clips += 1


def _restore_events(dest: Destination, store: Store, report: RestoreReport) -> None:
    for row in _rows(dest, layout.EVENT_ROWS_DIR):
        values = [row.get(column) for column in _EVENT_COLUMNS]
        try:
            with store._transaction() as db:
                db.execute(_INSERT_EVENT, values)
        except sqlite3.Error as exc:
            report.problems.append(f"event {row.get('id')}: the copy's row is refused ({exc})")


__all__ = ["RestoreReport", "restore"]
