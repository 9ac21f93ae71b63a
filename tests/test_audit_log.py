"""AuditLog: appends, canonical entries, no secrets, checkpoints, cosigning, processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.audit import merkle
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.entries import EntryError, SecretInEntryError
from doorbell.audit.log import AuditLog
from doorbell.audit.note import Verifier, open_note, parse_checkpoint
from doorbell.audit.verify import verify_data_dir
from doorbell.errors import AuditError

OWNER = "doorbell.local/owner"


class FakeClock:
    def __init__(self, start: float = 1_767_323_045.678) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keyed_dir(data_dir: Path) -> Path:
    (data_dir / "keys").mkdir()
    create_device_key(data_dir / "keys", "doorbell.local/test")
    return data_dir


def test_entries_are_canonical_json_leaves(keyed_dir: Path) -> None:
    clock = FakeClock()
    with AuditLog.open(
        keyed_dir, signer=load_device_signer(keyed_dir / "keys"), clock=clock
    ) as log:
        index = log.append("owner", "clip.viewed", "clip/1", {"b": "é", "a": [1, 2.5, None]})
        assert index == 1  # entry 0 is audit.log_created
        leaf = dict(log.entries())[1]
    assert (
        leaf
        == (
            '{"action":"clip.viewed","actor":"owner","details":{"a":[1,2.5,null],"b":"é"},'
            '"index":1,"object":"clip/1","time":"2026-01-02T03:04:05.678Z"}'
        ).encode()
    )
    with AuditLog.open(keyed_dir) as log:
        genesis = json.loads(dict(log.entries())[0])
    assert genesis["action"] == "audit.log_created"
    assert genesis["details"]["device_vkey"].startswith("doorbell.local/test+")


@pytest.mark.parametrize(
    "details",
    [
        {"passphrase": "hunter2"},
        {"nested": {"owner_secret": 1}},
        {"private_key": "x"},
        {"k": "AGE-SECRET-KEY-1QQQ"},
        {"k": ["PRIVATE+KEY+a+00000000+AAAA"]},
        {"session_token": "t"},
    ],
)
def test_secrets_are_refused(data_dir: Path, details: dict) -> None:
    with AuditLog.open(data_dir) as log:
        with pytest.raises(SecretInEntryError):
            log.append("owner", "settings.changed", details=details)
        assert log.size == 0


def test_bad_entries_are_refused(data_dir: Path) -> None:
    with AuditLog.open(data_dir) as log:
        bad: list[tuple[Any, ...]] = [
            ("", "a.b"),
            ("owner", "Not An Action"),
            ("owner", "a.b", "", {"x": b"1"}),
            ("owner", "a.b", "", {"x": float("nan")}),
            ("owner", "a.b", "x" * 9999),
        ]
        for args in bad:
            with pytest.raises(EntryError):
                log.append(*args)
        with pytest.raises(EntryError):
            log.append("owner", "thumb.viewed", details={"jpeg": "x" * 20_000})
        assert log.append("owner", "a.b", details={"owner_recipient_fingerprint": "SHA256:ab"}) == 0


def test_checkpoints_are_batched_within_the_interval(keyed_dir: Path) -> None:
    clock = FakeClock()
    signer = load_device_signer(keyed_dir / "keys")
    log = AuditLog.open(keyed_dir, signer=signer, clock=clock, checkpoint_interval_s=600)
    try:

        def sizes() -> list[int]:
            return [
                parse_checkpoint(open_note(n, [signer.verifier()]).text).size
                for (n,) in log._conn.execute("SELECT note FROM checkpoints")
            ]

        assert sizes() == [1]
        log.append("owner", "a.b")
        log.append("owner", "a.b")
        assert sizes() == [1]  # batched: a timer is armed for the rest of the interval
        clock.now += 600
        log.append("owner", "a.b")  # the interval passed: signed on this append
        assert sizes() == [1, 4]
        log.append("owner", "a.b")
        log.checkpoint()  # explicit
        assert sizes() == [1, 4, 5]
        log.append("owner", "a.b")
    finally:
        log.close()  # signs the tail
    assert verify_data_dir(keyed_dir).unsigned_entries == 0


def test_timer_signs_without_another_append(keyed_dir: Path) -> None:
    signer = load_device_signer(keyed_dir / "keys")
    with AuditLog.open(keyed_dir, signer=signer, checkpoint_interval_s=0.2) as log:
        log.append("owner", "a.b")
        log.append("owner", "a.b")
        deadline = time.monotonic() + 5
        while (latest := log.latest_checkpoint()) is None or b"\n3\n" not in latest:
            assert time.monotonic() < deadline, "the timer never signed"
            time.sleep(0.05)


def test_proofs_from_stored_hashes(keyed_dir: Path) -> None:
    with AuditLog.open(keyed_dir, signer=load_device_signer(keyed_dir / "keys")) as log:
        for i in range(40):
            log.append("recorder", "clip.sealed", f"clip/{i}")
        leaves = [merkle.leaf_hash(leaf) for _, leaf in log.entries()]
        root = log.root_at(log.size)
        assert root == merkle.root_of(leaves)
        for index in (0, 17, 40):
            merkle.verify_inclusion(index, 41, leaves[index], log.inclusion_proof(index), root)
        merkle.verify_consistency(
            13, 41, merkle.root_of(leaves[:13]), root, log.consistency_proof(13)
        )


def test_owner_cosigns_and_refuses_a_rewritten_history(keyed_dir: Path) -> None:
    owner = Ed25519PrivateKey.generate()
    clock = FakeClock()
    with AuditLog.open(
        keyed_dir, signer=load_device_signer(keyed_dir / "keys"), clock=clock
    ) as log:
        for _ in range(5):
            log.append("owner", "login")
        cosigned = log.cosign(owner, OWNER, first=True)
        log.append("owner", "clip.viewed")
        again = log.cosign(owner, OWNER)
    from doorbell.audit.note import CosignatureSigner

    verifier = Verifier.from_vkey(CosignatureSigner(OWNER, owner).vkey)
    assert parse_checkpoint(open_note(cosigned, [verifier]).text).size == 6
    assert open_note(again, [verifier]).verified[0].timestamp == int(clock.now)
    # rewrite entry 3 and everything after it consistently, as an attacker with the device key
    conn = sqlite3.connect(keyed_dir / "audit.sqlite3")
    conn.execute("DELETE FROM entries WHERE idx >= 3")
    conn.execute("UPDATE tree SET size = 0, peaks = x'', root = x'00'")
    rows = conn.execute("SELECT leaf FROM entries ORDER BY idx").fetchall()
    conn.execute("DELETE FROM entries")
    conn.commit()
    conn.close()
    with AuditLog.open(keyed_dir) as log:
        log._conn.execute("UPDATE tree SET root = ? WHERE id = 0", (merkle.EMPTY_ROOT,))
        for (leaf,) in rows:
            entry = json.loads(leaf)
            log.append(entry["actor"], entry["action"], entry["object"], entry["details"])
        for _ in range(5):
            log.append("owner", "forged")
    signer = load_device_signer(keyed_dir / "keys")
    with AuditLog.open(keyed_dir, signer=signer) as log, pytest.raises(AuditError, match="rewr"):
        log.cosign(owner, OWNER)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from doorbell.audit.devicekey import load_device_signer
    from doorbell.audit.log import AuditLog
    data_dir, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys"),
                       checkpoint_interval_s=0.05) as log:
        print("ready", flush=True)
        i = 0
        while count < 0 or i < count:
            log.append(who, "test.append", str(i), {"n": i})
            i += 1
    """
)


def _child(data_dir: Path, who: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), who, str(count)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )


def test_two_processes_appending_make_one_tree(keyed_dir: Path) -> None:
    AuditLog.open(keyed_dir, signer=load_device_signer(keyed_dir / "keys")).close()
    children = [_child(keyed_dir, who, 1000) for who in ("recorder", "web")]
    for child in children:
        assert child.wait(timeout=120) == 0
        child.stdout.close()  # type: ignore[union-attr]
    result = verify_data_dir(keyed_dir)
    assert result.ok, result.summary()
    assert result.entries == 2001
    with AuditLog.open(keyed_dir) as log:
        seen: dict[str, list[int]] = {}
        for index, leaf in log.entries():
            entry = json.loads(leaf)
            assert entry["index"] == index
            if entry["actor"] != "system":
                seen.setdefault(entry["actor"], []).append(int(entry["object"]))
    assert seen["recorder"] == list(range(1000)) and seen["web"] == list(range(1000))


def test_kill_9_mid_append_leaves_a_verifiable_log(keyed_dir: Path) -> None:
    child = _child(keyed_dir, "recorder", -1)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    deadline = time.monotonic() + 20
    with AuditLog.open(keyed_dir) as watcher:
        while watcher.size < 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    with AuditLog.open(keyed_dir, signer=load_device_signer(keyed_dir / "keys")) as log:
        size = log.size
        log.append("system", "service.started")
    result = verify_data_dir(keyed_dir)
    assert result.ok, result.summary()
    assert result.entries == size + 1 and result.unsigned_entries == 0


def test_cosign_refuses_without_anything_to_check_against(keyed_dir: Path) -> None:
    """Review finding 1: "no previous cosignature" must not be a pass once init cosigned."""
    owner = Ed25519PrivateKey.generate()
    with AuditLog.open(keyed_dir, signer=load_device_signer(keyed_dir / "keys")) as log:
        log.append("owner", "login")
        with pytest.raises(AuditError, match="nothing to check"):
            log.cosign(owner, OWNER)
        first = log.cosign(owner, OWNER, first=True)  # doorbell init, or an explicit re-anchor
        log.append("owner", "clip.viewed")
        assert log.cosign(owner, OWNER) != first  # the previous cosignature is the reference


def test_cosign_checks_a_trusted_head(keyed_dir: Path) -> None:
    owner = Ed25519PrivateKey.generate()
    with AuditLog.open(keyed_dir, signer=load_device_signer(keyed_dir / "keys")) as log:
        for _ in range(4):
            log.append("owner", "login")
        trusted = (3, log.root_at(3))
        log.cosign(owner, OWNER, trusted=trusted)
        with pytest.raises(AuditError, match="rewritten"):
            log.cosign(owner, OWNER, trusted=(3, bytes(32)))
        with pytest.raises(AuditError, match="shrank"):
            log.cosign(owner, OWNER, trusted=(log.size + 5, bytes(32)))


def test_concurrent_appends_share_commits_and_each_is_durable(
    keyed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, load: appends arriving during a commit go into the next one together."""
    import contextlib
    import threading

    from doorbell.audit import log as log_module
    from doorbell.sqlite import immediate_transaction as real_transaction

    commits = []

    @contextlib.contextmanager
    def counting_transaction(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real_transaction(*args, **kwargs) as connection:
            commits.append(1)
            yield connection

    signer = load_device_signer(keyed_dir / "keys")
    with AuditLog.open(keyed_dir, signer=signer) as log:
        monkeypatch.setattr(log_module, "immediate_transaction", counting_transaction)
        try:
            indexes: list[int] = []
            errors: list[BaseException] = []
            start = threading.Barrier(20)

            def view(n: int) -> None:
                start.wait()
                try:
                    for i in range(10):
                        indexes.append(log.append("owner", "timeline.viewed", "", {"n": n, "i": i}))
                    log.append("owner", "bad", "", {"passphrase": "x" * 3})
                except BaseException as exc:  # the bad one of each thread
                    errors.append(exc)

            threads = [threading.Thread(target=view, args=(n,)) for n in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        finally:
            monkeypatch.undo()
        assert sorted(indexes) == sorted(set(indexes)) and len(indexes) == 200
        assert all(isinstance(e, EntryError) for e in errors) and len(errors) == 20
        viewed = [json.loads(leaf) for _, leaf in log.entries()]
        assert sum(1 for e in viewed if e["action"] == "timeline.viewed") == 200
        assert len(commits) < 220  # some commits carried several entries
    assert verify_data_dir(keyed_dir).ok
