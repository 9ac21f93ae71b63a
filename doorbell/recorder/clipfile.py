"""Encrypted files as the recorder writes them: MP4 -> age -> disk, never plaintext.

:class:`EncryptedClipWriter` stacks the three layers of a clip: packets are muxed into
fragmented MP4 (:class:`doorbell.media.video.Mp4ClipWriter`), whose bytes go straight into the age
encryptor (to the owner's recipients only), whose ciphertext goes to the clip's final path,
hashed on the way (the SHA-256 of the ciphertext goes into the index and the audit log).

Power cuts: :meth:`EncryptedClipWriter.sync` pushes every complete age chunk to the file and
fsyncs it, so at most ``recording.fsync_interval_s`` plus one 64 KiB chunk is lost; what is on
disk is an authenticated prefix the owner can still play.

This module is on the recorder side: it imports only the encrypting half of :mod:`doorbell.age`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from doorbell.age.encrypt import encrypt
from doorbell.age.recipients import Recipient
from doorbell.errors import StorageError
from doorbell.fsutil import atomic_write, fsync_dir
from doorbell.media.video import EncodedPacket, Mp4ClipWriter, StreamInfo

#: Clip files: owner read/write, group (the web user) read; nobody else.
CLIP_FILE_MODE = 0o640


class _RawFile(Protocol):
    """The file under a :class:`_HashingFile`: an open binary file, or a test's wrapper."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int | None: ...

    def flush(self) -> object: ...

    def fileno(self) -> int: ...


class _HashingFile:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, handle: _RawFile) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha256.update(data)
        written = self._handle.write(data)
        self.size += len(data)
        return written if written is not None else len(data)

    def flush(self) -> None:
        self._handle.flush()

    def fileno(self) -> int:
        return self._handle.fileno()


@dataclass(frozen=True)
class SealedFile:
    """What a finished encrypted file looks like: ciphertext size and SHA-256 (hex)."""

    size_bytes: int
    sha256: str
    duration_s: float = 0.0
    first_time_s: float | None = None
    last_time_s: float | None = None


class EncryptedClipWriter:
    """Write one clip: packets in, an age-encrypted fragmented MP4 at ``path`` out.

    The file is created exclusively (an existing file is never overwritten) with mode
    :data:`CLIP_FILE_MODE`. Call :meth:`seal` to finish it, or :meth:`abandon` to stop
    writing and leave the prefix (the index then marks it interrupted).
    """

    def __init__(
        self, path: Path, recipients: Sequence[Recipient], stream_info: StreamInfo
    ) -> None:
        if not recipients:
            raise StorageError(f"{path}: no recipients to encrypt to; run `doorbell init`")
        self.path = path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, CLIP_FILE_MODE)
        except FileExistsError:
            raise StorageError(f"{path}: a clip with this name exists; not overwriting") from None
        self._raw = os.fdopen(fd, "wb")
        fsync_dir(path.parent)
        self._file = _HashingFile(self._raw)
        self._age = encrypt(self._file, list(recipients))
        self._mp4 = Mp4ClipWriter(self._age, stream_info)
        self._done = False

    @property
    def packet_count(self) -> int:
        return self._mp4.packet_count

    @property
    def first_time_s(self) -> float | None:
        """Camera time of the first packet written (None before any)."""
        return self._mp4.first_time_s

    @property
    def last_time_s(self) -> float | None:
        return self._mp4.last_time_s

    def write(self, packet: EncodedPacket) -> None:
        """Append one encoded packet (the first must be a keyframe)."""
        self._mp4.write(packet)

    def sync(self) -> None:
        """Make everything written so far that can be authenticated durable on disk."""
        self._age.flush()
        self._raw.flush()
        os.fsync(self._raw.fileno())

    def seal(self) -> SealedFile:
        """Finish the MP4 and the age stream, fsync, close; return size and hash."""
        if self._done:
            raise StorageError(f"{self.path}: already sealed or abandoned")
        self._done = True
        try:
            self._mp4.close()
            self._age.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        finally:
            self._raw.close()
        fsync_dir(self.path.parent)
        return SealedFile(
            size_bytes=self._file.size,
            sha256=self._file.sha256.hexdigest(),
            duration_s=self._mp4.duration_s,
            first_time_s=self._mp4.first_time_s,
            last_time_s=self._mp4.last_time_s,
        )

    def abandon(self) -> None:
        """Stop without finishing: make the prefix durable and close the file."""
        if self._done:
            return
        self._done = True
        try:
            self._age.flush()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        finally:
            self._raw.close()


def write_encrypted_file(path: Path, data: bytes, recipients: Sequence[Recipient]) -> SealedFile:
    """Encrypt ``data`` (a thumbnail JPEG) to ``recipients`` and write it atomically."""
    with atomic_write(path, mode=CLIP_FILE_MODE) as handle:
        hashing = _HashingFile(handle)
        with encrypt(hashing, list(recipients)) as writer:
            writer.write(data)
    return SealedFile(size_bytes=hashing.size, sha256=hashing.sha256.hexdigest())
