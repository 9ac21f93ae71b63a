"""Helpers for the stress harnesses (power cuts, disk full, camera faults, phoning home).

They run ``doorbell`` as real processes and read the data dir the way a restart would, without
writing to it: the index and the audit log are opened read-only so that the checks never
repair what they are checking.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from recorder_helpers import HEIGHT, WIDTH, decrypt_bytes

from doorbell.age.identities import X25519Identity
from doorbell.fsutil import is_temp_file
from doorbell.media.fmp4 import playable_prefix_length
from doorbell.media.video import decode_frames

DOORBELL = [sys.executable, "-c", "import sys; from doorbell.cli import main; sys.exit(main())"]


def start_doorbell(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """``doorbell ARGS`` as a child process; its stderr goes to a temporary file.

    Not a pipe: a long-running child (the web server logs every request) would fill an
    unread pipe and block on its next log line. Read the end with :func:`stderr_tail`.
    """
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    if "stderr" in kwargs:
        return subprocess.Popen(
            [*DOORBELL, *args], env=env, stdin=subprocess.DEVNULL, text=True, **kwargs
        )
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by kill_hard
    process = subprocess.Popen(
        [*DOORBELL, *args], env=env, stdin=subprocess.DEVNULL, stderr=log, text=True, **kwargs
    )
    process.stderr_log = log  # type: ignore[attr-defined]
    return process


def stderr_tail(process: subprocess.Popen, limit: int = 2000) -> str:
    """The last ``limit`` characters the child wrote to stderr."""
    log = getattr(process, "stderr_log", None)
    if log is None or log.closed:
        return ""
    log.flush()
    log.seek(0)
    return log.read()[-limit:]


def write_stress_config(
    path: Path, data_dir: Path, *, camera: dict | None = None, **sections: dict
) -> Path:
    """A small, fast recorder config: 320x240 mock camera as fast as it renders, 5 s clips."""
    document: dict[str, dict] = {
        "camera": {
            "backend": "mock",
            "scenario": "person",
            "realtime": False,
            "width": WIDTH,
            "height": HEIGHT,
            "fps": 10,
            "lores_width": 160,
            "lores_height": 120,
            **(camera or {}),
        },
        "recording": {
            "pre_roll_s": 1.0,
            "post_roll_s": 3.0,
            "max_clip_s": 5.0,
            "keyframe_interval_s": 0.5,
            "fsync_interval_s": 0.5,
            "bitrate_kbps": 300,
        },
        "storage": {"data_dir": str(data_dir), "retention_days": 0, "min_free_gb": 0.0},
        "live": {"socket_path": str(data_dir / "live.sock")},
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    lines = []
    for name, table in document.items():
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _read_only(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


def _rows(path: Path, table: str, query: str) -> list[sqlite3.Row]:
    """``query``'s rows, or none while the file or its ``table`` does not exist yet.

    A starting process creates the database file a moment before its schema; a reader
    polling in that moment sees a file with no tables, which is "no log yet", not an error.
    """
    if not path.exists():
        return []
    connection = _read_only(path)
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return list(connection.execute(query)) if exists else []
    finally:
        connection.close()


def audit_entries(data_dir: Path) -> list[dict]:
    """Every audit entry as a dict (read-only; empty when there is no log yet)."""
    rows = _rows(data_dir / "audit.sqlite3", "entries", "SELECT leaf FROM entries")
    return [json.loads(row[0]) for row in rows]


def count_actions(data_dir: Path, action: str) -> int:
    return sum(1 for entry in audit_entries(data_dir) if entry.get("action") == action)


def index_rows(data_dir: Path) -> list[dict]:
    """The clips table as dicts, read-only (what a restart would find)."""
    return [dict(row) for row in _rows(data_dir / "index.sqlite3", "clips", "SELECT * FROM clips")]


def temp_files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and is_temp_file(p)]


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass(frozen=True)
class ClipCheck:
    """What decrypting and decoding one clip file found."""

    ok: bool
    frames: int
    problem: str = ""


def check_sealed_clip(path: Path, row: dict, identity: X25519Identity) -> ClipCheck:
    """A sealed clip: ciphertext hash and size as indexed, decrypts fully, every frame decodes."""
    data = path.read_bytes()
    if row["sha256"] and hashlib.sha256(data).hexdigest() != row["sha256"]:
        return ClipCheck(False, 0, "ciphertext SHA-256 differs from the index")
    if len(data) != row["size_bytes"]:
        return ClipCheck(False, 0, f"size {len(data)} != indexed {row['size_bytes']}")
    try:
        plain = decrypt_bytes(path, identity)
        frames = sum(1 for frame in decode_frames(io.BytesIO(plain)) if frame.image.size)
    except Exception as error:
        return ClipCheck(False, 0, f"{type(error).__name__}: {error}")
    return ClipCheck(frames > 0, frames, "" if frames else "no frames")


def check_interrupted_clip(path: Path, identity: X25519Identity) -> ClipCheck:
    """An interrupted clip: its authenticated prefix decrypts and the playable part decodes.

    A clip cut before its first fsync may hold no complete age chunk yet (``frames == 0``
    with ``ok``): at most ``recording.fsync_interval_s`` is lost, as documented.
    """
    if path.stat().st_size == 0:
        return ClipCheck(True, 0, "empty: cut before the first fsync")
    try:
        plain = decrypt_bytes(path, identity, allow_truncated=True)
    except Exception as error:
        if path.stat().st_size < 64 * 1024 + 1024:  # not even one full chunk was written
            return ClipCheck(True, 0, f"no complete chunk yet ({error})")
        return ClipCheck(False, 0, f"{type(error).__name__}: {error}")
    playable = playable_prefix_length(io.BytesIO(plain), len(plain))
    if playable == 0:
        return ClipCheck(True, 0, "no complete fragment yet")
    try:
        frames = sum(1 for _frame in decode_frames(plain[:playable]))
    except Exception as error:
        return ClipCheck(False, 0, f"prefix does not decode: {type(error).__name__}: {error}")
    return ClipCheck(frames > 0, frames, "" if frames else "prefix has no frames")


def kill_hard(process: subprocess.Popen) -> None:
    """kill -9, as a power cut would, and reap the child (closing its pipes)."""
    if process.poll() is None:
        os.kill(process.pid, 9)
    process.communicate(timeout=30)
    log = getattr(process, "stderr_log", None)
    if log is not None:
        log.close()
