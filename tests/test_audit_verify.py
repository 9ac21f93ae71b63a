"""The tamper suite: every way to rewrite the log is caught, at the right entry index."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from doorbell.audit import merkle
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.export import export_log
from doorbell.audit.log import AuditLog
from doorbell.audit.note import Checkpoint, CosignatureSigner, sign_note
from doorbell.audit.verify import verify_data_dir, verify_export
from doorbell.errors import AuditError

OWNER_KEY = Ed25519PrivateKey.generate()
OWNER = "doorbell.local/owner"


@pytest.fixture
def log_dir(data_dir: Path) -> Path:
    """25 entries; a checkpoint at every size; the owner cosigned sizes 10 and 20."""
    (data_dir / "keys").mkdir()
    create_device_key(data_dir / "keys", "doorbell.local/tamper")
    signer = load_device_signer(data_dir / "keys")
    with AuditLog.open(data_dir, signer=signer, checkpoint_interval_s=0) as log:
        while log.size < 25:
            log.append("owner", "clip.viewed", f"clip/{log.size}", {"n": log.size})
            if log.size in (10, 20):
                log.cosign(OWNER_KEY, OWNER, first=log.size == 10)
    result = verify_data_dir(data_dir)
    assert result.ok and (result.entries, result.cosignatures) == (25, 2), result.summary()
    return data_dir


def _sql(data_dir: Path, *statements: tuple) -> None:
    conn = sqlite3.connect(data_dir / "audit.sqlite3")
    for statement in statements:
        conn.execute(*statement)
    conn.commit()
    conn.close()


def _leaves(data_dir: Path) -> list[bytes]:
    conn = sqlite3.connect(data_dir / "audit.sqlite3")
    leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf FROM entries ORDER BY idx")]
    conn.close()
    return leaves


def _rewrite_everything(data_dir: Path, leaves: list[bytes]) -> None:
    """What an attacker holding the SD card and the device key does: rebuild all hashes and
    re-sign a checkpoint at every size. Only the owner's cosignatures stay as they were."""
    signer = load_device_signer(data_dir / "keys")
    compact = merkle.CompactRange()
    conn = sqlite3.connect(data_dir / "audit.sqlite3")
    conn.execute("DELETE FROM entries")
    conn.execute("DELETE FROM checkpoints")
    for index, leaf in enumerate(leaves):
        leaf_hash = merkle.leaf_hash(leaf)
        nodes = b"".join(compact.append(leaf_hash))
        conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (index, leaf, leaf_hash, nodes))
        body = Checkpoint(signer.name, compact.size, compact.root()).body()
        conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?, 0)", (compact.size, sign_note(body, signer))
        )
    conn.execute(
        "UPDATE tree SET size = ?, peaks = ?, root = ?",
        (compact.size, compact.to_bytes(), compact.root()),
    )
    conn.commit()
    conn.close()


def _edited(leaf: bytes) -> bytes:
    entry = json.loads(leaf)
    entry["details"]["n"] = 999
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def test_edited_entry_json(log_dir: Path) -> None:
    _sql(log_dir, ("UPDATE entries SET leaf = ? WHERE idx = 7", (_edited(_leaves(log_dir)[7]),)))
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, 7)
    assert "leaf hash" in result.problem


def test_deleted_entry(log_dir: Path) -> None:
    _sql(log_dir, ("DELETE FROM entries WHERE idx = 7",))
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, 7)
    assert "missing" in result.problem


def test_reordered_entries(log_dir: Path) -> None:
    leaves = _leaves(log_dir)
    _sql(
        log_dir,
        ("UPDATE entries SET leaf = ? WHERE idx = 7", (leaves[12],)),
        ("UPDATE entries SET leaf = ? WHERE idx = 12", (leaves[7],)),
    )
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, 7)


def test_reordered_entries_with_all_hashes_rebuilt(log_dir: Path) -> None:
    leaves = _leaves(log_dir)
    leaves[13], leaves[16] = leaves[16], leaves[13]
    _rewrite_everything(log_dir, leaves)
    result = verify_data_dir(log_dir)
    assert not result.ok
    assert result.first_bad_index == 10 and "[10, 20)" in result.problem  # 13 is in there


def test_truncated_below_a_cosigned_checkpoint(log_dir: Path) -> None:
    _rewrite_everything(log_dir, _leaves(log_dir)[:15])
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, 15)
    assert "truncated" in result.problem and "owner-cosigned" in result.problem


def test_truncated_entries_only(log_dir: Path) -> None:
    _sql(log_dir, ("DELETE FROM entries WHERE idx >= 18",))
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, 18)


def test_fork_resigned_with_the_device_key_is_exposed_by_the_owner(log_dir: Path) -> None:
    leaves = _leaves(log_dir)
    leaves[15] = _edited(leaves[15])
    _rewrite_everything(log_dir, leaves)
    result = verify_data_dir(log_dir)
    assert not result.ok
    assert result.first_bad_index == 10 and "[10, 20)" in result.problem
    assert "owner-cosigned checkpoint at size 20" in result.problem
    # and the owner's UI refuses to cosign the fork
    signer = load_device_signer(log_dir / "keys")
    with AuditLog.open(log_dir, signer=signer) as log, pytest.raises(AuditError, match="rewr"):
        log.cosign(OWNER_KEY, OWNER)


def test_swapped_device_key(log_dir: Path) -> None:
    for name in ("device.key", "device.vkey"):
        (log_dir / "keys" / name).unlink()
    create_device_key(log_dir / "keys", "doorbell.local/tamper")
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, 0)
    assert "swapped" in result.problem
    _rewrite_everything(log_dir, _leaves(log_dir))  # re-signed with the new key: still caught
    assert verify_data_dir(log_dir).first_bad_index == 0


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        ("UPDATE entries SET leaf_hash = zeroblob(32) WHERE idx = 9", 9),
        ("UPDATE entries SET nodes = zeroblob(64) WHERE idx = 11", 11),
        ("UPDATE tree SET root = zeroblob(32)", 24),
    ],
)
def test_corrupted_stored_hash(log_dir: Path, statement: str, index: int) -> None:
    _sql(log_dir, (statement,))
    result = verify_data_dir(log_dir)
    assert (result.ok, result.first_bad_index) == (False, index), result.summary()


def test_pinned_cosigner_rejects_a_planted_cosignature(log_dir: Path) -> None:
    pinned = CosignatureSigner(OWNER, OWNER_KEY).vkey
    assert verify_data_dir(log_dir, [pinned]).ok
    other = CosignatureSigner(OWNER, Ed25519PrivateKey.generate())
    _sql(log_dir, ("UPDATE cosignatures SET cosigner_vkey = ?", (other.vkey,)))
    assert not verify_data_dir(log_dir).ok  # recorded key does not match the signatures
    assert verify_data_dir(log_dir, [pinned]).ok


# --- exports --------------------------------------------------------------------------------


@pytest.fixture
def export_dir(log_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    assert export_log(log_dir, out) == {"entries": 25, "checkpoints": 25, "cosignatures": 2}
    assert verify_export(out).ok
    return out


def _lines(export_dir: Path) -> list[bytes]:
    return (export_dir / "entries.jsonl").read_bytes().split(b"\n")[:-1]


def _write_lines(export_dir: Path, lines: list[bytes]) -> None:
    (export_dir / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def test_export_lines_are_exactly_the_leaves(log_dir: Path, export_dir: Path) -> None:
    assert _lines(export_dir) == _leaves(log_dir)
    assert (export_dir / "device.vkey").read_text() == (log_dir / "keys/device.vkey").read_text()
    assert "RFC 6962" in (export_dir / "VERIFY.md").read_text()
    assert len(list((export_dir / "cosignatures").glob("*.note"))) == 2


def test_export_edited_line(export_dir: Path) -> None:
    lines = _lines(export_dir)
    lines[7] = _edited(lines[7])
    _write_lines(export_dir, lines)
    result = verify_export(export_dir)
    assert (result.ok, result.first_bad_index) == (False, 7)


def test_export_deleted_and_reordered_lines(export_dir: Path) -> None:
    lines = _lines(export_dir)
    _write_lines(export_dir, lines[:7] + lines[8:])
    assert verify_export(export_dir).first_bad_index == 7
    lines[7], lines[12] = lines[12], lines[7]
    _write_lines(export_dir, lines)
    assert verify_export(export_dir).first_bad_index == 7


def test_export_truncated_and_key_swapped(export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    _write_lines(copy, _lines(copy)[:15])
    result = verify_export(copy)
    assert (result.ok, result.first_bad_index) == (False, 15)
    (tmp_path / "keys").mkdir()
    other = create_device_key(tmp_path / "keys", "doorbell.local/tamper")
    (export_dir / "device.vkey").write_text(other + "\n")
    assert verify_export(export_dir).first_bad_index == 0


def test_pinned_cosigner_with_every_cosignature_deleted_fails(log_dir: Path) -> None:
    """Review finding 1: an attacker rebuilds the log and drops the owner's cosignatures."""
    _rewrite_everything(log_dir, _leaves(log_dir)[:5])
    _sql(log_dir, ("DELETE FROM cosignatures",))
    pinned = CosignatureSigner(OWNER, OWNER_KEY).vkey
    result = verify_data_dir(log_dir, [pinned])
    assert not result.ok
    assert "no cosignature" in result.problem and OWNER in result.problem
    assert verify_data_dir(log_dir).ok  # unpinned it cannot tell (the anchor check can)


def test_pinned_cosigner_needs_a_cosignature_by_each_pinned_key(log_dir: Path) -> None:
    ours = CosignatureSigner(OWNER, OWNER_KEY).vkey
    other = CosignatureSigner("someone-else", Ed25519PrivateKey.generate()).vkey
    assert verify_data_dir(log_dir, [ours]).ok
    result = verify_data_dir(log_dir, [ours, other])
    assert not result.ok and "someone-else" in result.problem
