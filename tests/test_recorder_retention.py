"""Retention (doorbell/recorder/retention.py): holds of export requests, the audit log's
reserve, and the recorder applying both (issue 17, findings 1 and 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exports_helpers import make_world

from doorbell.datadir import DataDir
from doorbell.recorder.retention import (
    AUDIT_RESERVE_BYTES,
    footage_free_bytes,
    held_windows,
    retention_victims,
)

YEAR = 365 * 86400.0


def test_clips_a_pending_request_names_are_never_chosen(data_dir: Path) -> None:
    """Finding 6: a police request's review page said "No clips in this window"."""
    for world in make_world(data_dir, clips=3):
        # the request's window (2026-01-01 00:00-01:00) covers all three clips
        request, _ = world.registry.submit(world.raw_request(), source="owner")
        later = world.store.now() + YEAR  # every clip is far past retention_days
        holds = held_windows(DataDir(data_dir).exports_index)
        assert holds
        rules: dict[str, Any] = {"retention_days": 30, "quota_bytes": 0, "min_free_bytes": 0}
        chosen = retention_victims(world.store, now=later, free_bytes=10**12, holds=holds, **rules)
        assert chosen == [], "held clips are kept"
        unheld = retention_victims(world.store, now=later, free_bytes=10**12, holds=[], **rules)
        assert [c.id for c, _ in unheld] == world.clip_ids, "before the fix: all deleted"
        world.registry.deny(request.id, reason="not enough detail")
        assert held_windows(DataDir(data_dir).exports_index) == [], "a denied request holds nothing"


def test_an_unreadable_registry_deletes_nothing(data_dir: Path, tmp_path: Path) -> None:
    for world in make_world(data_dir, clips=2):
        broken = tmp_path / "registry.sqlite3"
        broken.write_bytes(b"this is not a database" * 100)
        holds = held_windows(broken)
        assert holds is None
        chosen = retention_victims(
            world.store,
            now=world.store.now() + YEAR,
            retention_days=1,
            quota_bytes=0,
            min_free_bytes=0,
            free_bytes=10**12,
            holds=holds,
        )
        assert chosen == []


def test_log_growth_never_makes_footage_short_of_space(data_dir: Path) -> None:
    """Finding 1: the log filling the disk must not delete clips to make room for it."""
    free = 100 << 20
    before = footage_free_bytes(data_dir, free)
    (data_dir / "audit.sqlite3").write_bytes(b"\0" * (5 << 20))  # the log grew by 5 MiB ...
    assert footage_free_bytes(data_dir, free - (5 << 20)) == before  # ... footage sees no change
    assert before == free - AUDIT_RESERVE_BYTES  # and the reserve is never footage's
