"""Durable file writes: the one atomic-write helper every module uses.

A write goes to a temporary file in the destination's own directory, is flushed and fsynced,
renamed over the destination, and then the directory is fsynced, so a power cut leaves either
the old file or the new one, never a mix. Temporary files carry a fixed marker in their name
(:data:`TEMP_MARKER`) so that start-up can sweep the ones a crash left behind.

By privacy invariant 1 (docs/architecture.md), callers only ever write ciphertext, public
keys, signatures or configuration through this helper: a swept temp file is never plaintext
footage.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from doorbell.errors import StorageError

#: Every temporary file this helper creates has a name starting with "." and containing this.
TEMP_MARKER = ".tmp-doorbell-"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that a rename or unlink inside it survives a power cut."""
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(path: Path) -> Path:
    """A fresh, unguessable temporary path in the same directory as ``path``."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{secrets.token_hex(6)}")


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, mode: int = 0o600, overwrite: bool = True
) -> Iterator[BinaryIO]:
    """Open a binary file that replaces ``path`` atomically when the block ends without error.

    ``mode`` is applied to the new file before any byte is written (default owner-only).
    With ``overwrite=False`` an existing ``path`` is never replaced: the call raises
    :class:`FileExistsError` before writing (and again at the end, if one appeared meanwhile,
    using a hard link so the check and the publish are one step).
    If the block raises, the temporary file is removed and ``path`` is left untouched.

    Raises :class:`doorbell.errors.StorageError` if the directory does not exist.
    """
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise StorageError(f"{directory}: directory does not exist; cannot write {target.name}")
    if not overwrite and target.exists():
        raise FileExistsError(f"{target}: already exists; refusing to overwrite it")
    tmp = temp_path_for(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what the caller asked
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails with FileExistsError if target appeared meanwhile
            os.unlink(tmp)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_file_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600, overwrite: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, mode=mode, overwrite=overwrite) as handle:
        handle.write(data)


def is_temp_file(path: Path) -> bool:
    """True for a temporary file made by :func:`atomic_write` (or another doorbell writer)."""
    return path.name.startswith(".") and TEMP_MARKER in path.name


def sweep_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files a crash left anywhere below ``root``; return what was removed.

    Only names made by :func:`temp_path_for` are touched, so nothing else can be lost.
    """
    removed: list[Path] = []
    root_path = Path(root)
    if not root_path.is_dir():
        return removed
    for dirpath, _dirnames, filenames in os.walk(root_path):
        for name in filenames:
            candidate = Path(dirpath) / name
            if is_temp_file(candidate):
                with contextlib.suppress(FileNotFoundError):
                    candidate.unlink()
                    removed.append(candidate)
    for directory in {p.parent for p in removed}:
        fsync_dir(directory)
    return removed
