"""Disk full: on a real 8 MiB tmpfs the recorder keeps recording, deletes the oldest clips,
flags the clip it had to abandon, raises a visible alert, and loses nothing it had sealed.

Where mounting is not allowed, the same behaviour is checked with a file writer that fails
with a real ``OSError(ENOSPC)`` (the seam the recorder sees either way).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorder_helpers import (
    EventLog,
    IndexCamera,
    ScriptedMotion,
    clip_indexes,
    make_owner,
    plaintext_hits,
    recorder_config,
)
from stress_helpers import audit_entries, check_interrupted_clip

from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.recorder import clipfile
from doorbell.recorder.pipeline import Recorder
from doorbell.recorder.retention import is_disk_full
from doorbell.store import Store, free_bytes


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "8m") -> Iterator[Path | None]:
    """A tmpfs of ``size`` mounted at ``where`` (None if this machine will not mount one)."""
    where.mkdir()
    result = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size},mode=0700",
            f"doorbell-{uuid.uuid4().hex[:6]}",
            str(where),
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def record_until_full(data_dir: Path, frames: int, **kwargs) -> tuple[Recorder, list, list]:
    config = recorder_config(
        data_dir,
        recording={"max_clip_s": 5.0, "bitrate_kbps": 2000},
        storage={"min_free_gb": 0.0, "quota_gb": 0.0},
    )
    sink = EventLog()
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: IndexCamera(frames),
            detector=ScriptedMotion(set(range(5, frames))),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            events=sink,
            **kwargs,
        )
        assert recorder.run() == 0, "the recorder survives a full disk"
    return recorder, sink.events, sink.statuses


def check_nothing_sealed_was_lost(data_dir: Path, identity, recorder: Recorder) -> list:
    entries = audit_entries(data_dir)
    deleted = {e["object"] for e in entries if e["action"] == "clip.deleted"}
    with Store.open(data_dir) as store:
        clips = {c.id: c for c in store.clips()}
    assert all(c.sealed for c in clips.values()), "no half-sealed clip is left unmarked"
    for clip_id in recorder.sealed_clips:
        assert clip_id in clips or clip_id in deleted, f"{clip_id} lost without retention"
    for clip in clips.values():
        path = data_dir / clip.path
        if clip.interrupted:
            assert check_interrupted_clip(path, identity).ok
        else:
            assert clip_indexes(path, identity), f"{clip.id} decrypts and decodes"
    return entries


def test_full_tmpfs_deletes_oldest_and_keeps_recording(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "mnt") as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here; the injected ENOSPC test covers this")
        data_dir = mount / "data"
        data_dir.mkdir()
        identity = make_owner(data_dir)
        # leave ~3 MiB: a few 5 s clips fit, then every further clip needs a deletion
        (mount / "ballast").write_bytes(os.urandom(int(free_bytes(mount) - (3 << 20))))
        recorder, events, notes = record_until_full(data_dir, 900)
        entries = check_nothing_sealed_was_lost(data_dir, identity, recorder)
        assert plaintext_hits(mount) == []
    actions = [e["action"] for e in entries]
    assert "storage.full" in actions, "the owner sees the alert in the audit log"
    assert actions.count("clip.deleted") >= 2
    assert any(kind == "storage_full" for kind, _ in events), "and live"
    assert any("storage full" in note for note in notes), "and in systemctl status"
    assert len(recorder.sealed_clips) >= 8, "recording went on after the disk filled"
    full = [e for e in entries if e["action"] == "storage.full"]
    assert len(full) <= actions.count("storage.recovered") + 1, "one alert per episode"


class FullAfter:
    """Wraps a clip file: writes fail with ENOSPC once ``budget`` bytes went to disk."""

    budget = 0

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data) -> int:
        if FullAfter.budget < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        FullAfter.budget -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def test_injected_enospc_mid_clip_flags_it_and_frees_space(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = make_owner(data_dir)
    original = clipfile._HashingFile.__init__

    def wrapped(self, handle) -> None:
        original(self, FullAfter(handle))

    monkeypatch.setattr(clipfile._HashingFile, "__init__", wrapped)
    FullAfter.budget = 1_500_000  # two clips and a bit, then the "disk" is full
    delete_clip = Store.delete_clip

    def delete_and_give_back(self, clip_id: str):
        clip = delete_clip(self, clip_id)
        FullAfter.budget += clip.size_bytes  # a deletion gives its space back
        return clip

    monkeypatch.setattr(Store, "delete_clip", delete_and_give_back)
    monkeypatch.setattr("doorbell.recorder.pipeline.free_bytes", lambda _path: 0)
    recorder, events, _notes = record_until_full(data_dir, 400)
    entries = check_nothing_sealed_was_lost(data_dir, identity, recorder)
    actions = [e["action"] for e in entries]
    assert "storage.full" in actions and "clip.deleted" in actions
    with Store.open(data_dir) as store:
        assert any(c.interrupted for c in store.clips()), "the abandoned clip is flagged"
    assert any(kind == "storage_full" for kind, _ in events)


def test_disk_full_is_recognised_through_wrapping_errors() -> None:
    import sqlite3

    from doorbell.errors import StorageError

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    tiny = sqlite3.connect(":memory:")
    tiny.execute("PRAGMA max_page_count = 2")
    try:
        tiny.execute("CREATE TABLE t(x)")
        for _ in range(100):
            tiny.execute("INSERT INTO t VALUES (randomblob(4000))")
    except sqlite3.OperationalError as real:  # SQLite's own SQLITE_FULL, not a message
        assert is_disk_full(real)
    else:
        raise AssertionError("SQLite never filled up")
    finally:
        tiny.close()
    # Only the result code counts: a message that happens to say "full" is not disk full.
    assert not is_disk_full(sqlite3.OperationalError("no such table: full"))
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise StorageError("audit log: commit failed") from inner
    except StorageError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
