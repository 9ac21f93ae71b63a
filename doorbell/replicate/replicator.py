"""Copy the ciphertext and the log off-site as they are written (``doorbell replicate``).

One pass (:meth:`Replicator.sync`) reads the index and the audit log read-only and, in this
order: appends the new bytes of clips still being recorded (so a clip cut short by a theft
plays from the copy up to its last authenticated chunk), appends new audit entries and writes
new checkpoints and cosignatures, writes changed index rows, thumbnails and the owner anchor,
copies older clips (at most ``backlog_bytes_per_pass`` of them, so a backlog never starves
the clip being recorded), and finally mirrors deletions older than ``delete_delay_s``.

Resuming: after every (re)connect the sizes on the copy are re-read; a clip is cut back to
its last confirmed offset (pipelined bytes past it may have a gap) and its tail compared
with the local bytes; the log copy's count is taken from the copy (a half line cut off). So a
pass cut anywhere (server killed, disk full, replicator killed) resumes where the copy
stopped: nothing lost, nothing written twice. The copy of the log is never rewritten: a
device log shorter than, or different from, the copy is a rollback or a fork; the replicator
then stops copying the log, keeps copying clips, and reports it (``witness_conflict``).

The recorder is never slowed: this is another process that only reads (SQLite WAL readers
never block the writer) and never holds a lock while talking to the network.

Audit entries (actor ``replicate``): ``replicate.stopped`` when the copy becomes unreachable
or unwritable, ``replicate.resumed`` when it works again, ``replicate.clip_deleted`` for each
copy removed after the delay, ``replicate.witness_conflict`` once per conflict.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from doorbell.audit.log import AUDIT_DB_FILE
from doorbell.audit.note import parse_note
from doorbell.datadir import DEVICE_VKEY_FILE, INDEX_FILE, OWNER_RECIPIENTS_FILE, DataDir
from doorbell.errors import ReplicationError, StorageError
from doorbell.fsutil import write_file_atomic
from doorbell.replicate import layout
from doorbell.replicate.destination import Destination
from doorbell.replicate.state import (
    ClipProgress,
    ReplicationState,
    load_state,
    save_state,
    witness_note_path,
)

log = logging.getLogger(__name__)

#: Largest read from a local clip file per write to the copy.
CHUNK_BYTES = 1024 * 1024
#: Audit entries appended per write.
ENTRIES_PER_WRITE = 2000
#: How much of the tail already on the copy is compared with the local bytes on resume.
TAIL_CHECK_BYTES = 4096
AUDIT_ACTOR = "replicate"
#: Longest time between two saves of an unchanged state (doctor's "has it run lately").
STATUS_SAVE_S = 60.0


class AuditSink(Protocol):
    """Where the replicator records its stops, resumptions and deletions (the audit log)."""

    def append(
        self, actor: str, action: str, object: str = "", details: dict[str, Any] | None = None
    ) -> int: ...


@dataclass(frozen=True)
class PassReport:
    """What one pass did."""

    bytes_copied: int
    entries_copied: int
    clips_deleted: int
    bytes_behind: int
    more: bool  # backlog left: run the next pass at once


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _row_json(row: sqlite3.Row) -> bytes:
    return json.dumps(dict(row), sort_keys=True, separators=(",", ":")).encode()


class Replicator:
    """Copies one data dir to one destination. Not thread-safe: one per process.

    ``connect`` opens the destination (called again after every failure); ``clock`` gives
    epoch seconds; ``audit`` receives the entries above (None: not audited, for tests of
    other parts). Use :meth:`run` for the service loop, :meth:`sync` for one pass.
    """

    def __init__(
        self,
        data_dir: Path,
        connect: Callable[[], Destination],
        *,
        audit: AuditSink | None = None,
        clock: Callable[[], float] = time.time,
        delete_delay_s: float = 7 * 86400.0,
        backlog_bytes_per_pass: int = 16 * CHUNK_BYTES,
        description: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        self._connect = connect
        self._audit = audit
        self._clock = clock
        self.delete_delay_s = delete_delay_s
        self.backlog_bytes_per_pass = backlog_bytes_per_pass
        self.state: ReplicationState = load_state(self.data_dir)
        if description and self.state.status.destination not in ("", description):
            log.warning(
                "destination changed from %s to %s: starting a new copy",
                self.state.status.destination,
                description,
            )
            self.state = ReplicationState()
        self.state.status.destination = description
        self._destination: Destination | None = None
        self._verified = False
        self._tail_checked = False
        self._copied_this_pass = 0
        self._dirty = False

    # --- the service loop ----------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        interval_s: float = 1.0,
        retry_s: float = 10.0,
        on_pass: Callable[[], object] | None = None,
    ) -> None:
        """Pass after pass until ``stop`` is set; reconnects after ``retry_s`` on failure.

        ``on_pass`` is called after every pass, successful or not (the systemd watchdog).
        """
        try:
            while not stop.is_set():
                try:
                    report = self.sync()
                except ReplicationError as exc:
                    self.record_failure(str(exc))
                    if on_pass is not None:
                        on_pass()
                    stop.wait(retry_s)
                    continue
                if on_pass is not None:
                    on_pass()
                if not report.more:
                    stop.wait(interval_s)
        finally:
            self.close()

    def close(self) -> None:
        """Disconnect and save the state."""
        self._disconnect()
        self._save(force=True)

    def _disconnect(self) -> None:
        if self._destination is not None:
            self._destination.close()
            self._destination = None
        self._verified = False
        self._tail_checked = False

    def record_failure(self, reason: str) -> None:
        """A pass failed: disconnect, record the outage (audited once, when it starts)."""
        self._disconnect()
        status = self.state.status
        log.warning("replication to %s stopped: %s", status.destination, reason)
        if status.connected or status.down_since is None:
            status.down_since = self._clock()
            self._record("replicate.stopped", {"reason": reason[:500]})
        status.connected = False
        status.last_error = reason[:500]
        self._dirty = True
        self._save(force=True)

    def _record(self, action: str, details: dict[str, Any], object: str = "") -> None:
        if self._audit is None:
            return
        try:
            self._audit.append(AUDIT_ACTOR, action, object, details)
        except (StorageError, ValueError) as exc:  # the copy must go on even if this fails
            log.error("cannot audit %s: %s", action, exc)

    def _save(self, *, force: bool = False) -> None:
        """Save after progress; a pass that copied nothing refreshes the status only every
        :data:`STATUS_SAVE_S` (an fsynced write per second would wear an SD card)."""
        now = self._clock()
        if self._dirty or force or now - self.state.status.updated_at >= STATUS_SAVE_S:
            self.state.status.updated_at = now
            save_state(self.data_dir, self.state)
            self._dirty = False

    # --- one pass -------------------------------------------------------------------------

    def sync(self) -> PassReport:
        """One pass over everything (see the module docstring); raises ReplicationError
        when the destination fails (the state is saved first, so the next pass resumes)."""
        self._copied_this_pass = 0
        entries_before = self.state.entries
        if self._destination is None:
            self._destination = self._connect()
            self._verified = False
        dest = self._destination
        try:
            index = self._open_ro(INDEX_FILE)
            try:
                report = self._sync_with(dest, index)
            finally:
                index.close()
        except ReplicationError:
            self._save(force=True)
            raise
        status = self.state.status
        now = self._clock()
        if not status.connected:
            down = None if status.down_since is None else round(now - status.down_since, 1)
            if status.last_success_at is not None or status.down_since is not None:
                self._record("replicate.resumed", {"down_s": down})
            status.connected, status.down_since, status.last_error = True, None, ""
            self._dirty = True
        status.last_success_at = now
        if self._copied_this_pass:
            status.last_copied_at = now
        status.bytes_behind = report.bytes_behind
        self._save()
        return PassReport(
            self._copied_this_pass,
            self.state.entries - entries_before,
            report.clips_deleted,
            report.bytes_behind,
            report.more,
        )

    def _open_ro(self, name: str) -> sqlite3.Connection:
        path = self.data_dir / name
        if not path.exists():
            raise StorageError(f"{path}: not there yet; is the recorder set up?")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def _sync_with(self, dest: Destination, index: sqlite3.Connection) -> PassReport:
        if not self._verified:
            self._start_copy(dest)
        query = "SELECT * FROM clips ORDER BY started_at"
        rows = {row["id"]: row for row in index.execute(query).fetchall()}
        live = [r for r in rows.values() if not r["sealed"]]
        for row in reversed(live):  # newest first: the clip being recorded right now
            self._copy_clip(dest, row, budget=None)
        self._copy_audit(dest)
        for row in rows.values():
            self._copy_row(dest, row)
        for row in index.execute("SELECT * FROM events ORDER BY started_at").fetchall():
            data = _row_json(row)
            digest = _digest(data)
            if self.state.events.get(row["id"]) != digest:
                dest.replace(layout.event_row_path(row["id"]), data)
                self.state.events[row["id"]] = digest
                self._dirty = True
        budget = self.backlog_bytes_per_pass
        for row in rows.values():
            if row["sealed"] and budget > 0:
                budget -= self._copy_clip(dest, row, budget=budget)
        deleted = self._mirror_deletions(dest, set(rows))
        behind = 0
        for clip_id, progress in self.state.clips.items():
            if not progress.done and progress.gone_since is None and clip_id in rows:
                behind += max(0, self._local_size(progress.path) - progress.copied)
        return PassReport(self._copied_this_pass, 0, deleted, behind, more=budget <= 0)

    # --- start of a copy, after every connect -----------------------------------------------

    def _start_copy(self, dest: Destination) -> None:
        """Check the format marker, place public keys, re-read the remote offsets."""
        marker = dest.size(layout.FORMAT_FILE)
        if marker is None:
            if dest.listdir(".") and not self.state.keys_copied:
                names = ", ".join(dest.listdir(".")[:5])
                raise ReplicationError(
                    f"{dest.description}: not empty and not a doorbell copy ({names}); "
                    "give an empty directory"
                )
            dest.replace(layout.FORMAT_FILE, layout.FORMAT_LINE)
        elif dest.read(layout.FORMAT_FILE) != layout.FORMAT_LINE:
            raise ReplicationError(f"{dest.description}: FORMAT is not doorbell-replica/v1")
        paths = DataDir(self.data_dir)
        device = self._device_vkey()
        for target, local in (
            (f"{layout.KEYS_DIR}/{DEVICE_VKEY_FILE}", paths.device_vkey),
            (layout.AUDIT_DEVICE_VKEY, paths.device_vkey),
            (f"{layout.KEYS_DIR}/{OWNER_RECIPIENTS_FILE}", paths.owner_recipients),
        ):
            if local.exists():
                data = local.read_bytes()
                if dest.size(target) is None:
                    dest.replace(target, data)
                elif target.endswith(DEVICE_VKEY_FILE) and dest.read(target) != data:
                    raise ReplicationError(
                        f"{dest.description}: the copy belongs to another device key "
                        f"({target} differs from {device}); give a new destination"
                    )
        self.state.keys_copied = True
        self._fetch_witness(dest)
        self._resume_entries(dest)
        for clip_id, progress in self.state.clips.items():
            if progress.done or progress.gone_since is not None or progress.conflict:
                continue
            self._resume_clip(dest, clip_id, progress)
        self._verified = True
        self._dirty = True

    def _fetch_witness(self, dest: Destination) -> None:
        """Keep the copy's latest checkpoint, as found at connect (before this process adds
        any), in replicate/witness.note: the web UI checks the log against it at unlock
        without reaching the server itself (it has neither the key nor the network)."""
        from doorbell.replicate.witness import checkpoint_sizes

        sizes = checkpoint_sizes(dest)
        if not sizes:
            return
        note = dest.read(layout.checkpoint_path(sizes[-1]))
        path = witness_note_path(self.data_dir)
        if not path.exists() or path.read_bytes() != note:
            path.parent.mkdir(mode=0o750, exist_ok=True)
            write_file_atomic(path, note, mode=0o640)

    def _device_vkey(self) -> str:
        path = DataDir(self.data_dir).device_vkey
        return path.read_text("ascii").strip() if path.exists() else "(none)"

    def _resume_clip(self, dest: Destination, clip_id: str, progress: ClipProgress) -> None:
        """Where to go on with a clip after a (re)connect.

        Clip bytes are sent pipelined, so only what an acknowledged write covered (the
        state's ``copied``) is known good: anything past it is cut off and sent again
        (the same bytes: nothing is duplicated). A copy shorter than that lost data: go on
        from its end. A copy longer than the local file, or whose last bytes differ from
        the local ones, is not this clip's: it is never touched (``conflict``).
        """
        remote = dest.size(progress.path) or 0
        local = self._local_size(progress.path)
        if remote > local:
            progress.conflict = f"the copy has {remote} bytes, this device {local}"
        else:
            if remote > progress.copied:
                dest.truncate(progress.path, progress.copied)
                remote = progress.copied
            if remote < progress.copied:
                log.info("clip %s: the copy holds %d of %d bytes", clip_id, remote, progress.copied)
            progress.copied = remote
            if remote:
                start = max(0, remote - TAIL_CHECK_BYTES)
                with open(self.data_dir / progress.path, "rb") as handle:
                    handle.seek(start)
                    mine = handle.read(remote - start)
                if dest.read(progress.path, start, remote - start) != mine:
                    progress.conflict = "the bytes on the copy differ from this device's"
        if progress.conflict:
            log.error("clip %s: %s; not copying it", clip_id, progress.conflict)
        self._dirty = True

    def _resume_entries(self, dest: Destination) -> None:
        """Take the number of entries from the copy (dropping a half-written last line)."""
        remote = dest.size(layout.ENTRIES_FILE) or 0
        if remote == self.state.entries_bytes:
            return
        data = dest.read(layout.ENTRIES_FILE) if remote else b""
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            dest.truncate(layout.ENTRIES_FILE, len(complete))
        self.state.entries = complete.count(b"\n")
        self.state.entries_bytes = len(complete)
        self._dirty = True

    # --- the log ------------------------------------------------------------------------------

    def _copy_audit(self, dest: Destination) -> None:
        """Entries, then the checkpoints and cosignatures they cover, then the anchor.

        Every database read finishes before the network is touched (a hung destination
        never keeps a read snapshot open on the recorder's WAL), and a checkpoint goes to
        the copy only once its entries are there, so the copy always verifies.
        """
        if not (self.data_dir / AUDIT_DB_FILE).exists():
            return
        conn = self._open_ro(AUDIT_DB_FILE)
        try:
            local_size = conn.execute("SELECT size FROM tree WHERE id = 0").fetchone()[0]
            self._check_witness(dest, conn, local_size)
            if self.state.status.witness_conflict:
                return
            self._copy_entries(dest, conn)
            query = "SELECT size, note FROM checkpoints WHERE size > ? AND size <= ? ORDER BY size"
            limits = (self.state.checkpoint_size, self.state.entries)
            for size, note in conn.execute(query, limits).fetchall():
                path = layout.checkpoint_path(size)
                if dest.size(path) is None:
                    dest.replace(path, bytes(note))
                self.state.checkpoint_size = size
                self._dirty = True
            query = (
                "SELECT id, size, timestamp, cosigner_vkey, note FROM cosignatures"
                " WHERE id > ? ORDER BY id"
            )
            rows = conn.execute(query, (self.state.cosignature_id,)).fetchall()
            vkeys: list[str] = []
            for (vkey,) in conn.execute("SELECT cosigner_vkey FROM cosignatures ORDER BY id"):
                if vkey not in vkeys:
                    vkeys.append(vkey)
        finally:
            conn.close()
        for row_id, size, stamp, _vkey, note in rows:
            if size > self.state.entries:
                break  # its entries are not on the copy yet: next pass
            key_id = parse_note(bytes(note)).signatures[-1].key_id.hex()
            path = f"{layout.COSIGNATURES_DIR}/{size}-{stamp}-{key_id}.note"
            if dest.size(path) is None:
                dest.replace(path, bytes(note))
            self.state.cosignature_id = row_id
            self._dirty = True
        listing = "".join(v + "\n" for v in vkeys).encode()
        if _digest(listing) != self.state.cosigners_digest:
            dest.replace(layout.COSIGNERS_FILE, listing)
            self.state.cosigners_digest = _digest(listing)
            self._dirty = True
        try:  # the web user's own directory: readable only where the units allow it
            data: bytes | None = DataDir(self.data_dir).owner_anchor.read_bytes()
        except OSError:
            data = None
        if data is not None and _digest(data) != self.state.anchor_digest:
            dest.replace(layout.ANCHOR_COPY, data)
            self.state.anchor_digest = _digest(data)
            self._dirty = True

    def _check_witness(self, dest: Destination, conn: sqlite3.Connection, local_size: int) -> None:
        """The copy's entries must be a prefix of this device's log; otherwise stop copying
        the log (never overwrite the witness) and report it once. The size is compared on
        every pass, the last copied entry's bytes once per connection (every pass while in
        conflict, so a conflict clears itself when the device's true log is put back)."""
        if self.state.entries == 0:
            return
        conflict = self.state.status.witness_conflict
        problem = ""
        if local_size < self.state.entries:
            problem = (
                f"the copy holds {self.state.entries} log entries but this device only "
                f"{local_size}: the device's log was rolled back"
            )
        elif conflict or not self._tail_checked:
            self._tail_checked = True
            row = conn.execute(
                "SELECT leaf FROM entries WHERE idx = ?", (self.state.entries - 1,)
            ).fetchone()
            start = max(0, self.state.entries_bytes - len(bytes(row[0])) - 1) if row else 0
            tail = dest.read(layout.ENTRIES_FILE, start, self.state.entries_bytes - start)
            if row is None or tail != bytes(row[0]) + b"\n":
                problem = (
                    f"entry {self.state.entries - 1} on the copy differs from this device's: "
                    "the device's log was rewritten (forked)"
                )
        if problem and not conflict:
            log.error("witness conflict: %s", problem)
            self._record("replicate.witness_conflict", {"reason": problem})
        elif conflict and not problem:
            log.warning("witness conflict resolved: the device's log extends the copy again")
            self._record("replicate.witness_resolved", {"was": conflict[:500]})
        if bool(problem) != bool(conflict):  # the first reason stands until resolved
            self.state.status.witness_conflict = problem
            self._dirty = True

    def _copy_entries(self, dest: Destination, conn: sqlite3.Connection) -> None:
        while True:
            rows = conn.execute(
                "SELECT idx, leaf FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?",
                (self.state.entries, ENTRIES_PER_WRITE),
            ).fetchall()
            if not rows:
                return
            data = b"".join(bytes(leaf) + b"\n" for _idx, leaf in rows)
            dest.write_at(layout.ENTRIES_FILE, self.state.entries_bytes, data)
            self.state.entries += len(rows)
            self.state.entries_bytes += len(data)
            self._copied_this_pass += len(data)
            self._dirty = True

    # --- clips ----------------------------------------------------------------------------

    def _local_size(self, relative: str) -> int:
        try:
            return os.stat(self.data_dir / relative).st_size
        except FileNotFoundError:
            return 0

    def _progress(self, row: sqlite3.Row) -> ClipProgress:
        progress = self.state.clips.get(row["id"])
        if progress is None:
            progress = ClipProgress(path=row["path"])
            self.state.clips[row["id"]] = progress
            self._dirty = True
        return progress

    def _copy_row(self, dest: Destination, row: sqlite3.Row) -> None:
        """The index row (as soon as the clip exists, so the copy can be browsed), and the
        thumbnail once it is written."""
        progress = self._progress(row)
        data = _row_json(row)
        if progress.row_digest != _digest(data):
            dest.replace(layout.clip_row_path(row["id"]), data)
            progress.row_digest = _digest(data)
            self._dirty = True
        thumb = row["thumb_path"]
        if thumb and not progress.thumb_done and (self.data_dir / thumb).exists():
            dest.replace(thumb, (self.data_dir / thumb).read_bytes())
            progress.thumb, progress.thumb_done = thumb, True
            self._dirty = True
        self._update_done(row, progress)

    def _update_done(self, row: sqlite3.Row, progress: ClipProgress) -> None:
        complete = (
            bool(row["sealed"])
            and progress.copied >= row["size_bytes"]
            and progress.copied >= self._local_size(progress.path)
            and (not row["thumb_path"] or progress.thumb_done)
            and progress.row_digest == _digest(_row_json(row))
        )
        if complete and not progress.done:
            progress.done = True
            self._dirty = True

    def _copy_clip(self, dest: Destination, row: sqlite3.Row, *, budget: int | None) -> int:
        """Append what is new in one clip's file; returns bytes copied."""
        progress = self._progress(row)
        if progress.done or progress.conflict:
            return 0
        local_path = self.data_dir / row["path"]
        copied = 0
        try:
            with open(local_path, "rb") as handle:
                while budget is None or copied < budget:
                    size = os.fstat(handle.fileno()).st_size
                    if progress.copied >= size:
                        break
                    handle.seek(progress.copied)
                    data = handle.read(min(CHUNK_BYTES, size - progress.copied))
                    if not data:
                        break
                    dest.write_at(row["path"], progress.copied, data, in_order=False)
                    progress.copied += len(data)
                    copied += len(data)
                    self._copied_this_pass += len(data)
                    self._dirty = True
        except FileNotFoundError:
            pass  # deleted meanwhile: the deletion pass handles it
        return copied

    # --- deletions --------------------------------------------------------------------------

    def _mirror_deletions(self, dest: Destination, present: set[str]) -> int:
        """Clips gone from this device are removed from the copy only ``delete_delay_s``
        after their disappearance was first seen."""
        now = self._clock()
        deleted = 0
        for clip_id in list(self.state.clips):
            progress = self.state.clips[clip_id]
            if clip_id in present:
                if progress.gone_since is not None:
                    progress.gone_since = None
                    self._dirty = True
                continue
            if progress.gone_since is None:
                progress.gone_since = now
                self._dirty = True
                continue
            if now - progress.gone_since < self.delete_delay_s:
                continue
            for path in (progress.path, progress.thumb, layout.clip_row_path(clip_id)):
                if path:
                    dest.remove(path)
            del self.state.clips[clip_id]
            self._dirty = True
            deleted += 1
            self._record(
                "replicate.clip_deleted",
                {"gone_since": round(progress.gone_since, 3)},
                object=clip_id,
            )
        return deleted
