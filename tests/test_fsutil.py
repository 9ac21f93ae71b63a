"""The one atomic-write helper: all or nothing, modes, no overwrite, temp sweeping."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from doorbell.errors import StorageError
from doorbell.fsutil import (
    TEMP_MARKER,
    atomic_write,
    is_temp_file,
    sweep_temp_files,
    temp_path_for,
    write_file_atomic,
)


def test_write_replaces_atomically_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    write_file_atomic(target, b"new", mode=0o640)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_default_mode_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_file_atomic(tmp_path / "secret", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_failure_inside_block_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_no_overwrite_refuses_existing(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        write_file_atomic(target, b"other", overwrite=False)
    assert target.read_bytes() == b"precious"
    fresh = tmp_path / "fresh"
    write_file_atomic(fresh, b"data", overwrite=False)
    assert fresh.read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "key"]


def test_no_overwrite_detects_a_file_appearing_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "key"
    with pytest.raises(FileExistsError), atomic_write(target, overwrite=False) as handle:
        handle.write(b"mine")
        target.write_bytes(b"someone else's")
    assert target.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        write_file_atomic(tmp_path / "nope" / "file", b"x")


def test_sweep_removes_only_temp_files(tmp_path: Path) -> None:
    keep = tmp_path / "clips" / "a.mp4.age"
    keep.parent.mkdir()
    keep.write_bytes(b"ciphertext")
    stray = temp_path_for(keep)
    stray.write_bytes(b"partial ciphertext")
    lookalike = tmp_path / "clips" / "tmp-notes.txt"
    lookalike.write_bytes(b"not ours")
    assert is_temp_file(stray) and TEMP_MARKER in stray.name
    assert sweep_temp_files(tmp_path) == [stray]
    assert keep.exists() and lookalike.exists() and not stray.exists()
    assert sweep_temp_files(tmp_path / "absent") == []
