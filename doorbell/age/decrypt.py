"""Decrypt age v1 files: :func:`decrypt` opens the header and returns a payload reader.

``decrypt(src, identities)`` parses and authenticates the header, then returns a
:class:`~doorbell.age.payload.DecryptReader`, a read-only file object that decrypts one
64 KiB chunk at a time (the rules are in :mod:`doorbell.age.payload`). Memory is bounded: one
encrypted and one plaintext chunk. When ``src`` is seekable and not armored, the reader is a
:class:`~doorbell.age.random_access.RandomAccessReader` (seeking decrypts only the chunk it
lands in: HTTP Range playback relies on this); otherwise a
:class:`~doorbell.age.sequential.SequentialReader`.
"""

from __future__ import annotations

import hmac
import io
from collections.abc import Iterable
from typing import BinaryIO

from doorbell.age.armor import ArmorReader
from doorbell.age.errors import HeaderError, HeaderMacError
from doorbell.age.header import ByteSource, read_header
from doorbell.age.identities import Identity, unwrap_header_key
from doorbell.age.payload import DecryptReader
from doorbell.age.primitives import header_mac
from doorbell.age.random_access import RandomAccessReader
from doorbell.age.sequential import SequentialReader
from doorbell.age.stream import PAYLOAD_NONCE_SIZE, payload_key
from doorbell.errors import UsageError

_DETECT_BYTES = 1100

#: What :func:`decrypt` reads: any binary file object (a file, BytesIO, a pipe, a socket file).
AgeSource = BinaryIO | io.RawIOBase | io.BufferedIOBase


class _Prefixed:
    """``src`` with some already-read bytes put back in front (read and readline)."""

    def __init__(self, prefix: bytes, src: AgeSource) -> None:
        self._prefix = prefix
        self._src = src

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._src.read(size) or b""  # a raw stream without data yet says None
        if size < 0:
            data, self._prefix = self._prefix + (self._src.read() or b""), b""
            return data
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        return data

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        if not self._prefix:
            return self._src.readline(limit)
        end = self._prefix.find(b"\n")
        if end >= 0 and (limit < 0 or end < limit):
            line, self._prefix = self._prefix[: end + 1], self._prefix[end + 1 :]
            return line
        if 0 <= limit <= len(self._prefix):
            line, self._prefix = self._prefix[:limit], self._prefix[limit:]
            return line
        line, self._prefix = self._prefix, b""
        return line + self._src.readline(-1 if limit < 0 else limit - len(line))


def _looks_armored(prefix: bytes) -> bool:
    return prefix.lstrip().startswith(b"-----BEGIN")


def decrypt(
    src: AgeSource,
    identities: Iterable[Identity] | Identity,
    *,
    armor: bool | None = None,
    allow_truncated: bool = False,
) -> DecryptReader:
    """Open the age file ``src`` with the first matching identity; returns the plaintext reader.

    ``armor``: None detects the ASCII armor, True/False force it. The header is parsed and its
    MAC verified before this returns. ``allow_truncated=True`` is the owner's recovery mode
    for files cut by a power loss (see :class:`DecryptReader`); never use it otherwise. A
    seekable, unarmored ``src`` gives a :class:`RandomAccessReader`, anything else a
    :class:`SequentialReader`.

    Raises :class:`~doorbell.age.errors.HeaderError`, ``ArmorError``,
    ``NoIdentityMatchError``, ``HeaderMacError`` (here) and the payload errors (on read).
    """
    return _open(src, identities, armor, allow_truncated, require_random_access=False)


def decrypt_random_access(
    src: AgeSource, identities: Iterable[Identity] | Identity, *, allow_truncated: bool = False
) -> RandomAccessReader:
    """:func:`decrypt` for a seekable, unarmored file: a reader that seeks and knows its size.

    Raises :class:`~doorbell.errors.UsageError` when ``src`` cannot seek or is armored, and
    what :func:`decrypt` raises.
    """
    reader = _open(src, identities, None, allow_truncated, require_random_access=True)
    if not isinstance(reader, RandomAccessReader):  # pragma: no cover - _open guarantees it
        raise UsageError("random access needs a seekable file that is not armored")
    return reader


def _open(
    src: AgeSource,
    identities: Iterable[Identity] | Identity,
    armor: bool | None,
    allow_truncated: bool,
    *,
    require_random_access: bool,
) -> DecryptReader:
    """The header of ``src`` opened; the payload reader for it."""
    candidates = list(identities) if isinstance(identities, Iterable) else [identities]
    # random access needs seek and readinto, which every seekable io file object has
    seekable = isinstance(src, io.BufferedIOBase | io.RawIOBase) and src.seekable()
    start = src.tell() if seekable else 0
    prefix = src.read(_DETECT_BYTES) or b""
    if armor is None:
        armor = _looks_armored(prefix)
    stream: ArmorReader | _Prefixed | None = None  # the source of a sequential reader
    if armor:
        stream = ArmorReader(_Prefixed(prefix, src))
    elif seekable:
        src.seek(start)
    else:
        stream = _Prefixed(prefix, src)
    source: ByteSource = src if stream is None else stream
    header, header_size, leftover = read_header(source)
    file_key = unwrap_header_key(header.stanzas, candidates)
    if not hmac.compare_digest(header_mac(file_key, header.mac_input), header.mac):
        raise HeaderMacError("header MAC does not match: the header was altered")
    nonce = leftover[:PAYLOAD_NONCE_SIZE]
    while len(nonce) < PAYLOAD_NONCE_SIZE:
        more = source.read(PAYLOAD_NONCE_SIZE - len(nonce))
        if not more:
            raise HeaderError("the file ends before the payload nonce (truncated after header)")
        nonce += more
    key = payload_key(file_key, nonce)
    if stream is None and isinstance(src, io.BufferedIOBase | io.RawIOBase):
        payload_start = start + header_size + PAYLOAD_NONCE_SIZE
        return RandomAccessReader(
            src, key, payload_start=payload_start, allow_truncated=allow_truncated
        )
    if require_random_access:
        raise UsageError("random access needs a seekable file that is not armored")
    return SequentialReader(
        stream if stream is not None else _Prefixed(b"", src),
        key,
        pending=leftover[PAYLOAD_NONCE_SIZE:],
        allow_truncated=allow_truncated,
    )
