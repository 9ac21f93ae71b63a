"""The index and files of a data dir: clips, events, reconcile after a crash, retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from doorbell.errors import StorageError
from doorbell.fsutil import temp_path_for
from doorbell.recorder.retention import retention_victims
from doorbell.store import Store, new_clip_id

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(store: Store, started_at: float, size: int = 1000, seal: bool = True) -> str:
    clip_id = new_clip_id(started_at)
    path = store.begin_clip(clip_id, started_at=started_at, trigger="motion")
    path.write_bytes(b"c" * size)
    if seal:
        store.seal_clip(
            clip_id, ended_at=started_at + 10, duration_s=10, size_bytes=size, sha256="00" * 32
        )
    return clip_id


def test_clip_lifecycle_and_layout(data_dir: Path) -> None:
    with Store.open(data_dir) as store:
        clip_id = record(store, T0)
        clip = store.get_clip(clip_id)
        assert clip.path == f"clips/2023/11/14/{clip_id}.mp4.age"
        assert clip.sealed and not clip.interrupted and clip.size_bytes == 1000
        assert (data_dir / clip.path).read_bytes() == b"c" * 1000
        assert [c.id for c in store.clips()] == [clip_id]
        store.delete_clip(clip_id)
        assert store.clips() == []
        assert not (data_dir / clip.path).exists()
        with pytest.raises(StorageError, match="no such clip"):
            store.get_clip(clip_id)


def test_events_newest_first_with_filters(data_dir: Path) -> None:
    with Store.open(data_dir) as store:
        first = store.add_event("motion", started_at=T0)
        ring = store.add_event("ring", started_at=T0 + 60)
        store.end_event(first, ended_at=T0 + 20, score=0.7, zones=("porch",))
        assert [e.id for e in store.events()] == [ring, first]
        assert [e.id for e in store.events(kind="ring")] == [ring]
        (motion,) = store.events(kind="motion")
        assert motion.ended_at == T0 + 20 and motion.score == 0.7 and motion.zones == ("porch",)
        assert [e.id for e in store.events(limit=1, offset=1)] == [first]


def test_reconcile_after_crash(data_dir: Path) -> None:
    with Store.open(data_dir) as store:
        sealed = record(store, T0)
        cut = record(store, T0 + 100, size=500, seal=False)
        gone = record(store, T0 + 200)
        (data_dir / store.get_clip(gone).path).unlink()
        stray = temp_path_for(data_dir / "thumbs.bin")
        stray.write_bytes(b"partial ciphertext")
        orphan_id = new_clip_id(T0 + 300)
        orphan = data_dir / store.clip_relative_path(orphan_id, T0 + 300)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"x" * 10)
    with Store.open(data_dir) as store:
        report = store.reconcile()
        assert report.temp_files_removed == 1 and not stray.exists()
        assert report.clips_marked_interrupted == (cut,)
        assert report.rows_without_file == (gone,)
        assert report.files_without_row == (orphan_id,)
        clip = store.get_clip(cut)
        assert clip.sealed and clip.interrupted and clip.size_bytes == 500
        assert not store.get_clip(sealed).interrupted
        assert store.get_clip(orphan_id).trigger == "recovered"
        assert store.reconcile() == type(report)(0, (), (), ())


def test_retention_by_age_quota_and_free_space(data_dir: Path) -> None:
    clock = Clock(T0 + 40 * DAY)
    with Store.open(data_dir, clock=clock) as store:
        old = record(store, T0)
        mid = record(store, T0 + 20 * DAY)
        new = record(store, T0 + 39 * DAY)
        unsealed = record(store, T0 - DAY, seal=False)
        by_age = retention_victims(
            store,
            now=store.now(),
            retention_days=30,
            quota_bytes=0,
            min_free_bytes=0,
            free_bytes=10**12,
        )
        assert [(c.id, why) for c, why in by_age] == [(old, "older than 30 days")]
        by_quota = retention_victims(
            store,
            now=store.now(),
            retention_days=0,
            quota_bytes=1500,
            min_free_bytes=0,
            free_bytes=10**12,
        )
        assert [c.id for c, _ in by_quota] == [old, mid]
        by_free = retention_victims(
            store,
            now=store.now(),
            retention_days=0,
            quota_bytes=0,
            min_free_bytes=2500,
            free_bytes=1000,
        )
        assert [c.id for c, _ in by_free] == [old, mid]
        kept = retention_victims(
            store,
            now=store.now(),
            retention_days=0,
            quota_bytes=0,
            min_free_bytes=2500,
            free_bytes=1000,
            keep={old},
        )
        assert [c.id for c, _ in kept] == [mid, new]
        assert unsealed not in [c.id for c, _ in kept]


def test_paths_cannot_escape_the_data_dir(data_dir: Path) -> None:
    with Store.open(data_dir) as store:
        with pytest.raises(StorageError, match="outside the data directory"):
            store.absolute("../../etc/passwd")
        with pytest.raises(StorageError, match="not a clip id"):
            store.clip_relative_path("../x", T0)


def test_missing_data_dir_and_newer_schema_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="run `doorbell init` first"):
        Store.open(tmp_path / "absent")
    import sqlite3

    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StorageError, match="newer than this doorbell"):
        Store.open(tmp_path)


def test_reconcile_keeps_thumbnails_of_cut_clips_and_drops_orphaned_ones(data_dir: Path) -> None:
    with Store.open(data_dir) as store:
        cut = record(store, T0, seal=False)
        (data_dir / "thumbs").mkdir()
        (data_dir / "thumbs" / f"{cut}.jpg.age").write_bytes(b"ciphertext")
        stray = data_dir / "thumbs" / f"{new_clip_id(T0 + 50)}.jpg.age"
        stray.write_bytes(b"ciphertext of a deleted clip")
        report = store.reconcile()
        assert report.clips_marked_interrupted == (cut,)
        assert report.thumbnails_removed == 1 and not stray.exists()
        clip = store.get_clip(cut)
        assert clip.thumb_path == f"thumbs/{cut}.jpg.age"
        store.delete_clip(cut)  # retention of a cut clip takes its thumbnail with it
        assert not (data_dir / "thumbs" / f"{cut}.jpg.age").exists()


#: the clips and events tables exactly as schema 1 created them (before audit_pending_from)
SCHEMA_1 = """
CREATE TABLE events (id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('motion', 'ring')),
    started_at REAL NOT NULL, ended_at REAL, score REAL NOT NULL DEFAULT 0,
    zones TEXT NOT NULL DEFAULT '[]', clip_id TEXT);
CREATE INDEX events_started ON events (started_at);
CREATE TABLE clips (id TEXT PRIMARY KEY, event_id TEXT, started_at REAL NOT NULL, ended_at REAL,
    duration_s REAL NOT NULL DEFAULT 0, size_bytes INTEGER NOT NULL DEFAULT 0,
    trigger TEXT NOT NULL CHECK (trigger IN ('motion', 'ring', 'continuation', 'recovered')),
    zones TEXT NOT NULL DEFAULT '[]', sealed INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0, path TEXT NOT NULL UNIQUE, thumb_path TEXT,
    sha256 TEXT);
CREATE INDEX clips_started ON clips (started_at);
PRAGMA user_version=1;
"""


def test_a_schema_1_index_is_migrated_and_its_sealed_clips_count_as_audited(
    data_dir: Path,
) -> None:
    import sqlite3
    import threading

    sealed, unsealed = new_clip_id(T0), new_clip_id(T0 + 60)
    db = sqlite3.connect(data_dir / "index.sqlite3")
    db.execute("PRAGMA journal_mode=WAL")  # as schema 1's Store.open left it
    db.executescript(SCHEMA_1)
    for clip_id, started, is_sealed in ((sealed, T0, 1), (unsealed, T0 + 60, 0)):
        relative = f"clips/2023/11/14/{clip_id}.mp4.age"
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / relative).write_bytes(b"c" * 100)
        db.execute(
            "INSERT INTO clips (id, started_at, duration_s, size_bytes, trigger, sealed, path,"
            " sha256) VALUES (?, ?, 5, 100, 'motion', ?, ?, ?)",
            (clip_id, started, is_sealed, relative, "cd" * 32),
        )
    db.commit()
    db.close()

    # the recorder and the web process may open the old index at the same moment
    barrier, errors = threading.Barrier(4), []

    def open_it() -> None:
        barrier.wait()
        try:
            Store.open(data_dir).close()
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = sqlite3.connect(data_dir / "index.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    columns = [row[1] for row in db.execute("PRAGMA table_info(clips)")]
    db.close()
    assert columns.count("audit_pending_from") == 1
    with Store.open(data_dir) as store:
        old = store.get_clip(sealed)
        assert old.sealed and old.sha256 == "cd" * 32 and old.audit_pending_from is None
        assert store.clips_owing_audit() == []  # existing sealed clips count as audited
        store.seal_clip(
            unsealed,
            ended_at=T0 + 65,
            duration_s=5,
            size_bytes=100,
            sha256="ef" * 32,
            audit_pending_from=7,
        )
        assert [(c.id, c.audit_pending_from) for c in store.clips_owing_audit()] == [(unsealed, 7)]
        store.mark_audited(unsealed)
        assert store.clips_owing_audit() == []
        assert store.reconcile().clips_marked_interrupted == ()
