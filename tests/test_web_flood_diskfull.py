"""Issue 17, finding 1 end to end: a minute of wrong unlocks against a real ``doorbell web``
on a small filesystem, with the recorder's retention running on the same data dir.

Before the fix every refused unlock was one fsynced audit entry (~36-590 a second): the
log grew by megabytes, the recorder found the disk short of space and deleted clips to make
room. Now the flood is summarised per burst and footage retention does not count the log's
growth: the log stays bounded and no clip is deleted.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from recorder_helpers import EventLog, IndexCamera, ScriptedMotion, recorder_config
from stress_helpers import audit_entries
from test_recorder_diskfull import small_filesystem
from test_web_attacks import _flood
from ui_helpers import make_clip
from web_attack_helpers import make_site, start_web, timed_unlock, unlocked

from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.recorder import retention
from doorbell.recorder.pipeline import Recorder
from doorbell.store import Store, free_bytes

FLOOD_S = float(os.environ.get("DOORBELL_FLOOD_S", "60"))


def run_recorder_retention(data_dir: Path, min_free_bytes: int) -> None:
    """The real recorder pipeline for a few motionless frames: its retention pass runs."""
    config = recorder_config(
        data_dir, storage={"min_free_gb": min_free_bytes / (1 << 30), "retention_days": 0}
    )
    with AuditLog.open(data_dir) as audit, Store.open(data_dir) as store:
        recorder = Recorder(
            config,
            camera_factory=lambda: IndexCamera(5),
            detector=ScriptedMotion(set()),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
            events=EventLog(),
        )
        assert recorder.run() == 0


def test_an_unlock_flood_on_a_small_disk_deletes_no_clip(tmp_path: Path, monkeypatch) -> None:
    with small_filesystem(tmp_path / "mnt", size="48m") as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here")
        data_dir, config = make_site(tmp_path, data_dir=mount / "data")
        with Store.open(data_dir) as store:
            recipient = parse_recipients_file(data_dir / "keys" / "owner.recipients")
            clips = [make_clip(store, recipient, 1_767_225_600.0 + 60 * i) for i in range(4)]
        # a test-sized reserve; leave 2 MiB above what retention keeps free
        monkeypatch.setattr(retention, "AUDIT_RESERVE_BYTES", 256 << 10)
        min_free = 2 << 20
        ballast = free_bytes(mount) - (min_free + (2 << 20) + (256 << 10))
        (mount / "ballast").write_bytes(b"\0" * ballast)
        run_recorder_retention(data_dir, min_free)  # nothing to do yet
        log_before = retention.audit_log_bytes(data_dir)
        entries_before = len(audit_entries(data_dir))

        web = start_web(config)
        try:
            stop, counter = threading.Event(), [0]
            threads = [
                threading.Thread(
                    target=_flood, args=(web.port, [f"127.0.0.{40 + i}"], stop, counter)
                )
                for i in range(4)
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + FLOOD_S
            while time.monotonic() < deadline:
                run_recorder_retention(data_dir, min_free)  # retention runs during the flood
                time.sleep(5)
            stop.set()
            for thread in threads:
                thread.join(15)
            answer, _ = timed_unlock(web.port)
        finally:
            web.stop()
        run_recorder_retention(data_dir, min_free)
        entries = audit_entries(data_dir)
        grown = retention.audit_log_bytes(data_dir) - log_before
        with Store.open(data_dir) as store:
            kept = [c.id for c in store.clips()]
    assert counter[0] >= 100, "the flood really ran"
    assert unlocked(answer), "the owner still unlocks"
    deleted = [e for e in entries if e["action"] == "clip.deleted"]
    assert deleted == [] and set(kept) == set(clips), "no clip was deleted"
    assert len(entries) - entries_before < 40, f"{counter[0]} wrong unlocks, bounded entries"
    assert grown < 512 << 10, f"the log grew by {grown} bytes"
