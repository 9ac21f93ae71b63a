"""Every sealed clip gets its ``clip.sealed`` audit entry exactly once, even across power cuts.

The cut is simulated deterministically: an audit log (or index) that raises :class:`PowerCut`
at a chosen write and refuses every write after it, as a dead process would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from recorder_helpers import IndexCamera, ScriptedMotion, make_owner, recorder_config

from doorbell.age.recipients import parse_recipients_file
from doorbell.audit.log import AuditLog
from doorbell.audit.note import Signer
from doorbell.recorder.pipeline import Recorder
from doorbell.recorder.sealaudit import clip_sealed_details, recover_clip_sealed_entries
from doorbell.store import Store, new_clip_id

T0 = 1_700_000_000.0


class PowerCut(BaseException):
    """The process died here (not an Exception: nothing may catch it)."""


class CutAudit:
    """An audit log that dies at the ``die_at``-th append of ``action`` (1-based)."""

    def __init__(self, log: AuditLog, action: str, die_at: int = 1) -> None:
        self.log, self.action, self.die_at = log, action, die_at
        self.seen = 0
        self.dead = False
        self.starts: list[int] = []

    @property
    def signer(self) -> Signer | None:
        return None  # unsigned, like the web process: no checkpoints from the recorder

    def checkpoint(self) -> bytes:
        return self.log.checkpoint()

    @property
    def size(self) -> int:
        return self.log.size

    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        self.starts.append(start)
        return self.log.entries(start)

    def append(self, actor: str, action: str, object: str = "", details: Any = None) -> int:
        if self.dead:
            raise PowerCut(f"append {action} after the cut")
        if action == self.action:
            self.seen += 1
            if self.seen == self.die_at:
                self.dead = True
                raise PowerCut(f"cut before {action}")
        return self.log.append(actor, action, object, details)


def run_recorder(
    data_dir: Path,
    frames: int,
    motion: set[int],
    *,
    cut: tuple[str, int] | None = None,
    store_hook=None,
) -> CutAudit:
    """One recorder process: reconcile, run; ``cut`` = (action, n) kills it at that append."""
    config = recorder_config(data_dir)
    with AuditLog.open(data_dir) as log, Store.open(data_dir) as store:
        store.reconcile()
        audit = CutAudit(log, *(cut or ("never", 1)))
        if store_hook is not None:
            store_hook(store)
        recorder = Recorder(
            config,
            camera_factory=lambda: IndexCamera(frames),
            detector=ScriptedMotion(motion),
            store=store,
            audit=audit,
            recipients=parse_recipients_file(data_dir / "keys" / "owner.recipients"),
        )
        if cut is None and store_hook is None:
            assert recorder.run() == 0
        else:
            with pytest.raises(PowerCut):
                recorder.run()
    return audit


def entries(data_dir: Path) -> list[dict]:
    with AuditLog.open(data_dir) as log:
        return [json.loads(leaf) for _index, leaf in log.entries()]


def sealed_entries(data_dir: Path, clip_id: str) -> list[dict]:
    return [e for e in entries(data_dir) if e["action"] == "clip.sealed" and e["object"] == clip_id]


def test_a_cut_between_sealing_and_the_audit_entry_is_repaired_once_at_the_next_start(
    data_dir: Path,
) -> None:
    make_owner(data_dir)
    # two clips; the process dies right before the second clip's clip.sealed append
    run_recorder(data_dir, 160, set(range(10, 20)) | set(range(80, 90)), cut=("clip.sealed", 2))
    with Store.open(data_dir) as store:
        first, second = store.clips(newest_first=False)
        assert [c.id for c in store.clips_owing_audit()] == [second.id]
    assert second.sealed and not second.interrupted and second.audit_pending_from is not None
    assert first.audit_pending_from is None  # the normal path marked it
    assert sealed_entries(data_dir, second.id) == []  # the gap, reproduced
    (normal,) = sealed_entries(data_dir, first.id)

    for _restart in range(3):
        run_recorder(data_dir, 5, set())  # no motion: only the start-up work
        (entry,) = sealed_entries(data_dir, second.id)  # exactly one, however many restarts
    ciphertext = (data_dir / second.path).read_bytes()
    assert entry["details"] == {
        "sha256": hashlib.sha256(ciphertext).hexdigest(),
        "size_bytes": len(ciphertext),
        "duration_s": round(second.duration_s, 3),
        "trigger": second.trigger,
        "event": second.event_id,
        "recovered": True,
    }
    assert entry["details"]["sha256"] == second.sha256
    assert set(entry["details"]) == set(normal["details"]) | {"recovered"}
    # it comes before the recorder.start of the run that recovered it
    actions = [(e["action"], e["object"]) for e in entries(data_dir)]
    at = actions.index(("clip.sealed", second.id))
    assert actions[at + 1][0] == "recorder.start"
    assert [a for a, _ in actions].count("recorder.start") == 4
    with Store.open(data_dir) as store:
        assert store.clips_owing_audit() == []
        assert store.get_clip(second.id).audit_pending_from is None


def test_a_cut_during_the_recovery_never_doubles_the_entry(data_dir: Path) -> None:
    make_owner(data_dir)
    run_recorder(data_dir, 60, set(range(10, 20)), cut=("clip.sealed", 1))
    with Store.open(data_dir) as store:
        (clip,) = store.clips()

    def die_when_marking(store: Store) -> None:
        def mark_audited(clip_id: str) -> None:
            raise PowerCut("cut after the recovered append, before marking the row")

        store.mark_audited = mark_audited  # type: ignore[method-assign]

    run_recorder(data_dir, 5, set(), store_hook=die_when_marking)
    (entry,) = sealed_entries(data_dir, clip.id)
    assert entry["details"]["recovered"] is True
    assert [e["action"] for e in entries(data_dir)].count("recorder.start") == 1  # died first
    with Store.open(data_dir) as store:
        assert [c.id for c in store.clips_owing_audit()] == [clip.id]  # still owing

    audit = run_recorder(data_dir, 5, set())
    assert sealed_entries(data_dir, clip.id) == [entry]  # found in the tail, not appended again
    assert audit.starts and audit.starts[0] == clip.audit_pending_from
    with Store.open(data_dir) as store:
        assert store.clips_owing_audit() == []
    run_recorder(data_dir, 5, set())
    assert sealed_entries(data_dir, clip.id) == [entry]


def seal_owing(store: Store, started_at: float, owed_from: int | None) -> str:
    clip_id = new_clip_id(started_at)
    store.begin_clip(clip_id, started_at=started_at, trigger="ring").write_bytes(b"x" * 10)
    store.seal_clip(
        clip_id,
        ended_at=started_at + 4,
        duration_s=4.0004,
        size_bytes=10,
        sha256="ab" * 32,
        audit_pending_from=owed_from,
    )
    return clip_id


def test_recovery_reads_only_the_tail_and_nothing_when_nothing_is_owed(data_dir: Path) -> None:
    with AuditLog.open(data_dir) as log, Store.open(data_dir) as store:
        audit = CutAudit(log, "never")
        for i in range(40):
            log.append("web", "clip.viewed", f"filler-{i}")
        seal_owing(store, T0, None)  # sealed without a recorder (tests, tools): owes nothing
        unsealed = new_clip_id(T0 + 10)
        store.begin_clip(unsealed, started_at=T0 + 10, trigger="motion")
        assert recover_clip_sealed_entries(store, audit) == []
        assert audit.starts == []  # the log was not read at all

        owed_from = log.size
        found = seal_owing(store, T0 + 20, owed_from)
        log.append("recorder", "clip.sealed", found, clip_sealed_details(store.get_clip(found)))
        log.append("web", "clip.viewed", found)
        missing = seal_owing(store, T0 + 30, log.size)
        size = log.size
        assert recover_clip_sealed_entries(store, audit) == [missing]
        assert audit.starts == [owed_from]  # from the oldest owing clip's seal on, no earlier
        assert log.size == size + 1
        assert recover_clip_sealed_entries(store, audit) == []
        assert log.size == size + 1 and store.clips_owing_audit() == []
    by_clip = {e["object"]: e for e in entries(data_dir) if e["action"] == "clip.sealed"}
    assert "recovered" not in by_clip[found]["details"]
    assert by_clip[missing]["details"] == {
        "sha256": "ab" * 32,
        "size_bytes": 10,
        "duration_s": 4.0,
        "trigger": "ring",
        "event": None,
        "recovered": True,
    }
