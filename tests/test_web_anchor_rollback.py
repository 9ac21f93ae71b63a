"""Issue 17, finding 8: a compromised recorder rolls the owner anchor back.

The recorder's user (here ``nobody``, group ``nogroup``) shares the data dir with the web
(mode 2770, no sticky bit), may read the group-readable files and write the shared SQLite
files. It copies ``audit.sqlite3`` and the owner anchor while the owner's last cosigned head
is N1; after the owner's next visit (anchor at N2) and a restart, it puts both copies back.
Before the fix the owner's next unlock found log and anchor agreeing at N1 and cosigned
without a word. Now the anchor is in the web user's own 0700 directory: the copy and the
swap are refused, and the unlock reports the rollback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stress_helpers import audit_entries
from web_attack_helpers import Browser, make_site, start_web, unlocked

from doorbell.audit.anchor import LEGACY_ANCHOR_FILE, anchor_path

RECORDER_UID = RECORDER_GID = 65534


@pytest.fixture
def shared_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as the recorder's user")
    root = Path(tempfile.mkdtemp(prefix="doorbell-anchor-"))
    root.chmod(0o711)  # the "recorder" must be able to reach the data dir inside
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_recorder(action, *args: Path) -> int:
    """Run ``action(*args)`` in a child process as the recorder's user; its exit code
    (0: done, 13: permission denied, 2: nothing there)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(RECORDER_GID)
            os.setuid(RECORDER_UID)
            action(*args)
            code = 0
        except PermissionError:
            code = 13
        except FileNotFoundError:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def share_with_recorder(data_dir: Path) -> None:
    """What tmpfiles.d sets up: group doorbell (here nogroup) on the data dir, 2770, the
    SQLite files 0660."""
    os.chown(data_dir, -1, RECORDER_GID)
    data_dir.chmod(0o2770)
    for path in data_dir.iterdir():
        if path.name.startswith(("audit.sqlite3", "index.sqlite3")):
            os.chown(path, -1, RECORDER_GID)
            path.chmod(0o660)
        elif path.name == LEGACY_ANCHOR_FILE:
            os.chown(path, -1, RECORDER_GID)


def copy_out(data_dir: Path, stash: Path) -> None:
    anchor = anchor_path(data_dir)
    (stash / "anchor").write_bytes(anchor.read_bytes())
    (stash / "audit.sqlite3").write_bytes((data_dir / "audit.sqlite3").read_bytes())


def put_back(data_dir: Path, stash: Path) -> None:
    (stash / "audit.sqlite3").replace(data_dir / "audit.sqlite3")
    anchor = anchor_path(data_dir)
    scratch = data_dir / ".anchor-swap"
    scratch.write_bytes((stash / "anchor").read_bytes())
    scratch.replace(anchor)


def test_a_compromised_recorder_cannot_roll_the_anchor_back(shared_root: Path) -> None:
    data_dir, config = make_site(shared_root, data_dir=shared_root / "data")
    stash = shared_root / "stash"
    stash.mkdir(mode=0o700)
    os.chown(stash, RECORDER_UID, RECORDER_GID)
    web = start_web(config)
    try:
        assert unlocked(Browser(web.port).unlock())  # the owner cosigns N1
    finally:
        web.stop()
    share_with_recorder(data_dir)
    copied = as_recorder(copy_out, data_dir, stash)
    web = start_web(config)
    try:
        owner = Browser(web.port)
        assert unlocked(owner.unlock())  # the owner's next visit: anchor at N2 > N1
        owner.request("GET", "/timeline")
    finally:
        web.stop()
    size_before = len(audit_entries(data_dir))
    swapped = as_recorder(put_back, data_dir, stash) if copied == 0 else copied
    web = start_web(config)
    try:
        answer = Browser(web.port).unlock()
    finally:
        web.stop()
    actions = [e["action"] for e in audit_entries(data_dir)]
    rolled_back = len(audit_entries(data_dir)) < size_before
    warned = "audit.anchor_mismatch" in actions[-4:] or "audit.anchor_missing" in actions[-4:]
    assert unlocked(answer), "the footage stays reachable either way"
    # Before the fix: copied == swapped == 0 and the log silently went back to N1.
    assert not rolled_back or warned, "a rolled-back log was cosigned without a warning"
    assert copied != 0 or swapped != 0, "the recorder's user could copy and swap the anchor"
