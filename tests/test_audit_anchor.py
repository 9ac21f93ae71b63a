"""The owner anchor: sealed last-cosigned head; unlock refuses a log that does not match it."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import rewrite_log

from doorbell.age.identities import X25519Identity
from doorbell.audit.anchor import (
    ANCHOR_FILE,
    AnchorError,
    AnchorMissing,
    check_log,
    cosign_anchored,
    read_anchor,
    write_anchor,
)
from doorbell.audit.devicekey import create_device_key, load_device_signer
from doorbell.audit.log import AuditLog
from doorbell.audit.note import CosignatureSigner
from doorbell.audit.verify import verify_data_dir
from doorbell.keys import (
    OWNER_COSIGNER_NAME,
    derive_owner_anchor_key,
    derive_owner_cosigning_key,
)

IDENTITY = X25519Identity.generate()
ANCHOR_KEY = derive_owner_anchor_key(IDENTITY)
COSIGN_KEY = derive_owner_cosigning_key(IDENTITY)


def _open(data_dir: Path) -> AuditLog:
    return AuditLog.open(data_dir, signer=load_device_signer(data_dir / "keys"))


def _init(data_dir: Path, *, with_anchor: bool = True) -> None:
    """What `doorbell init` does (with_anchor=False: as it did before anchors existed)."""
    (data_dir / "keys").mkdir()
    create_device_key(data_dir / "keys", "doorbell.test/anchor")
    with _open(data_dir) as log:
        log.append("owner", "keys.created", "keys", {"owner_anchor": with_anchor})
        if with_anchor:
            cosign_anchored_first(log)
        else:
            log.cosign(COSIGN_KEY, OWNER_COSIGNER_NAME, first=True)


def cosign_anchored_first(log: AuditLog) -> None:
    from doorbell.audit.anchor import anchor_from_cosignature, write_anchor

    note = log.cosign(COSIGN_KEY, OWNER_COSIGNER_NAME, first=True)
    write_anchor(log.data_dir, anchor_from_cosignature(note), ANCHOR_KEY)


def _visit(data_dir: Path) -> None:
    """The owner unlocks, views two clips, locks."""
    with _open(data_dir) as log:
        log.append("owner", "web.unlocked")
        cosign_anchored(log, ANCHOR_KEY, COSIGN_KEY, OWNER_COSIGNER_NAME)
        log.append("owner", "clip.viewed", "20260101T000000Z-deadbeef")
        log.append("owner", "clip.downloaded", "20260101T000000Z-deadbeef")
        log.append("owner", "web.locked")


def _cosignatures(data_dir: Path) -> int:
    with AuditLog.open(data_dir) as log:
        return log._conn.execute("SELECT count(*) FROM cosignatures").fetchone()[0]


def test_anchor_is_sealed_mode_0600_in_its_own_0700_dir_and_follows_each_cosignature(
    data_dir: Path,
) -> None:
    _init(data_dir)
    first = read_anchor(data_dir, ANCHOR_KEY)
    _visit(data_dir)
    second = read_anchor(data_dir, ANCHOR_KEY)
    assert second.size > first.size and b"doorbell-owner" in second.note
    path = data_dir / ANCHOR_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert b"root" not in path.read_bytes()  # sealed, not readable
    other = derive_owner_anchor_key(X25519Identity.generate())
    with pytest.raises(AnchorError, match="does not open"):
        read_anchor(data_dir, other)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AnchorError, match="does not open"):
        read_anchor(data_dir, ANCHOR_KEY)


def test_rewritten_log_without_cosignatures_is_refused_and_not_cosigned(data_dir: Path) -> None:
    _init(data_dir)
    _visit(data_dir)
    _visit(data_dir)
    rewrite_log(data_dir)
    verdict = verify_data_dir(data_dir)  # issue 17: keys.created without any cosignature
    assert not verdict.ok and "no owner cosignature at all" in verdict.problem
    with _open(data_dir) as log, pytest.raises(AnchorError, match=r"rewritten|rolled back"):
        cosign_anchored(log, ANCHOR_KEY, COSIGN_KEY, OWNER_COSIGNER_NAME)  # and the anchor
    assert _cosignatures(data_dir) == 0


def test_deleted_anchor_is_not_recreated_on_a_new_data_dir(data_dir: Path) -> None:
    _init(data_dir)
    _visit(data_dir)
    (data_dir / ANCHOR_FILE).unlink()
    with _open(data_dir) as log, pytest.raises(AnchorMissing, match="made at setup is gone"):
        cosign_anchored(log, ANCHOR_KEY, COSIGN_KEY, OWNER_COSIGNER_NAME)


def test_rollback_below_the_anchor(data_dir: Path) -> None:
    _init(data_dir)
    _visit(data_dir)
    anchor = read_anchor(data_dir, ANCHOR_KEY)
    with pytest.raises(AnchorError, match="rolled back"):
        check_log(anchor.size - 1, lambda n: b"", anchor)


def test_older_data_dir_gets_an_anchor_when_its_log_verifies(data_dir: Path) -> None:
    _init(data_dir, with_anchor=False)
    with _open(data_dir) as log:
        log.append("owner", "clip.viewed")
        done = cosign_anchored(log, ANCHOR_KEY, COSIGN_KEY, OWNER_COSIGNER_NAME)
    assert done.status == "created"
    assert read_anchor(data_dir, ANCHOR_KEY).size == 3
    vkey = CosignatureSigner(OWNER_COSIGNER_NAME, COSIGN_KEY).vkey
    assert verify_data_dir(data_dir, [vkey]).ok


def test_older_data_dir_with_its_cosignatures_deleted_gets_no_anchor(data_dir: Path) -> None:
    _init(data_dir, with_anchor=False)
    rewrite_log(data_dir)
    with _open(data_dir) as log, pytest.raises(AnchorMissing, match="does not verify"):
        cosign_anchored(log, ANCHOR_KEY, COSIGN_KEY, OWNER_COSIGNER_NAME)
    assert _cosignatures(data_dir) == 0 and not (data_dir / ANCHOR_FILE).exists()


# --- issue 17, finding 8: the anchor is only trusted where only the web user can write -------


def _sealed(data_dir: Path) -> tuple[bytes, Any]:
    _init(data_dir)
    return ANCHOR_KEY, read_anchor(data_dir, ANCHOR_KEY)


def test_a_group_writable_anchor_or_directory_is_refused(data_dir: Path) -> None:
    key, anchor = _sealed(data_dir)
    assert read_anchor(data_dir, key) == anchor
    path = data_dir / ANCHOR_FILE
    path.chmod(0o660)
    with pytest.raises(AnchorError, match="writable by group"):
        read_anchor(data_dir, key)
    path.chmod(0o600)
    path.parent.chmod(0o770)
    with pytest.raises(AnchorError, match="writable by group"):
        read_anchor(data_dir, key)


def test_an_anchor_owned_by_another_user_is_refused(data_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    key, _ = _sealed(data_dir)
    os.chown(data_dir / ANCHOR_FILE, 65534, -1)
    with pytest.raises(AnchorError, match="belongs to uid 65534"):
        read_anchor(data_dir, key)


def test_a_legacy_anchor_is_read_then_moved(data_dir: Path) -> None:
    key, anchor = _sealed(data_dir)
    (data_dir / ANCHOR_FILE).rename(data_dir / "owner-anchor")
    (data_dir / "owner").rmdir()
    assert read_anchor(data_dir, key) == anchor
    write_anchor(data_dir, anchor, key)
    assert not (data_dir / "owner-anchor").exists()
    assert read_anchor(data_dir, key) == anchor


def test_an_entry_edited_with_its_hash_kept_is_not_cosigned(data_dir: Path) -> None:
    """Issue 17, finding 9: the roots come from stored hashes, so the unlock re-hashes."""
    _init(data_dir)
    _visit(data_dir)
    with _open(data_dir) as log:
        log.append("owner", "clip.viewed", "20260101T000000Z-cafe0001")
        index = log.size - 1
    with AuditLog.open(data_dir) as log:
        leaf = log._conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()[0]
        edited = bytes(leaf).replace(b"cafe0001", b"cafe0002")
        log._conn.execute("UPDATE entries SET leaf = ? WHERE idx = ?", (edited, index))
    before = _cosignatures(data_dir)
    with _open(data_dir) as log, pytest.raises(AnchorError, match=f"entry {index}"):
        cosign_anchored(log, ANCHOR_KEY, COSIGN_KEY, OWNER_COSIGNER_NAME)
    assert _cosignatures(data_dir) == before


def test_all_cosignatures_deleted_fails_verify(data_dir: Path) -> None:
    _init(data_dir)
    _visit(data_dir)
    assert verify_data_dir(data_dir).ok
    with AuditLog.open(data_dir) as log:
        log._conn.execute("DELETE FROM cosignatures")
    verdict = verify_data_dir(data_dir)
    assert not verdict.ok and "no owner cosignature at all" in verdict.problem
