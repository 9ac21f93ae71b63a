"""The replicator's progress: the one file it writes in the data dir.

``<data_dir>/replicate/state.json``, replaced atomically. It says how far each clip and the
audit log have been copied, which clips vanished locally and since when (their copies are
removed only after ``replicate.delete_delay_days``), and the status that ``doorbell doctor``
and the web UI show. The copy itself stays the truth for byte offsets: after every (re)connect
the replicator re-reads the remote sizes, so a state file older than the copy (a crash between
a write and the state save) costs neither a lost nor a duplicated byte.

No secret and no footage is in it: clip ids, paths, sizes, hashes of index rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doorbell.errors import StorageError
from doorbell.fsutil import write_file_atomic

STATE_DIR = "replicate"
STATE_FILE = "state.json"
#: The copy's latest checkpoint as the replicator found it at its last connect.
WITNESS_NOTE_FILE = "witness.note"
STATE_VERSION = 1


def state_path(data_dir: Path) -> Path:
    """``<data_dir>/replicate/state.json``."""
    return Path(data_dir) / STATE_DIR / STATE_FILE


def witness_note_path(data_dir: Path) -> Path:
    """``<data_dir>/replicate/witness.note``."""
    return Path(data_dir) / STATE_DIR / WITNESS_NOTE_FILE


@dataclass
class ClipProgress:
    """How far one clip has been copied."""

    path: str
    copied: int = 0
    thumb: str | None = None
    thumb_done: bool = False
    row_digest: str = ""
    done: bool = False
    gone_since: float | None = None
    conflict: str = ""


@dataclass
class Status:
    """What the owner sees: is the copy reachable, when did it last take bytes, how far behind."""

    destination: str = ""
    connected: bool = False
    #: epoch seconds: last pass that finished without an error
    last_success_at: float | None = None
    #: epoch seconds: last time clip or log bytes were written to the copy
    last_copied_at: float | None = None
    bytes_behind: int = 0
    last_error: str = ""
    down_since: float | None = None
    #: the copy is ahead of or forked from this device's log (the witness disagrees)
    witness_conflict: str = ""
    updated_at: float = 0.0


@dataclass
class ReplicationState:
    """Everything in state.json."""

    clips: dict[str, ClipProgress] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    entries: int = 0
    entries_bytes: int = 0
    checkpoint_size: int = -1
    cosignature_id: int = 0
    cosigners_digest: str = ""
    anchor_digest: str = ""
    keys_copied: bool = False
    status: Status = field(default_factory=Status)

    def to_json(self) -> bytes:
        document = {"version": STATE_VERSION, **asdict(self)}
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def load_state(data_dir: Path) -> ReplicationState:
    """The saved state, or a fresh one when there is none.

    Raises :class:`StorageError` when the file exists but is not a state file (the
    replicator then stops rather than re-copying everything over a copy it cannot place).
    """
    path = state_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ReplicationState()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read the replication state: {exc.strerror}") from None
    try:
        document: Any = json.loads(raw)
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"version {document.get('version')!r}")
        clips = {k: ClipProgress(**v) for k, v in document["clips"].items()}
        status = Status(**document["status"])
        return ReplicationState(
            clips=clips,
            events={str(k): str(v) for k, v in document["events"].items()},
            entries=int(document["entries"]),
            entries_bytes=int(document["entries_bytes"]),
            checkpoint_size=int(document["checkpoint_size"]),
            cosignature_id=int(document["cosignature_id"]),
            cosigners_digest=str(document["cosigners_digest"]),
            anchor_digest=str(document["anchor_digest"]),
            keys_copied=bool(document["keys_copied"]),
            status=status,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(
            f"{path}: not a replication state file ({exc}); move it away to start a fresh copy"
        ) from None


def save_state(data_dir: Path, state: ReplicationState) -> None:
    """Replace state.json atomically (the directory is created if needed)."""
    path = state_path(data_dir)
    try:
        path.parent.mkdir(mode=0o750, exist_ok=True)
        write_file_atomic(path, state.to_json(), mode=0o640)
    except OSError as exc:
        raise StorageError(f"{path}: cannot save the replication state: {exc}") from None


def read_status(data_dir: Path, *, clock: Any = time.time) -> Status | None:
    """The status part of state.json for doctor and the UI; None when never replicated."""
    try:
        return load_state(data_dir).status if state_path(data_dir).exists() else None
    except StorageError:
        return None
