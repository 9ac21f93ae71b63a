"""Decrypt age v1 files as a stream, with random access when the source allows it.

``decrypt(src, identities)`` parses and authenticates the header, then returns a
:class:`DecryptReader`: a read-only file object that decrypts one 64 KiB chunk at a time.
No plaintext leaves it before the chunk's tag has verified, and the end of the stream is
reported only after a chunk flagged as final has verified, so a truncated file never reads
as a complete one. Memory is bounded: one encrypted and one plaintext chunk.

When ``src`` is seekable and not armored, the reader is seekable too: seeking computes the
chunk's offset and decrypts only that chunk (HTTP Range playback relies on this). The file
must not change while it is read.
"""

from __future__ import annotations

import hmac
import io
import os
import sys
import types
from collections.abc import Iterable
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from doorbell.age.armor import ArmorReader
from doorbell.age.errors import (
    ChunkAuthenticationError,
    EmptyFinalChunkError,
    HeaderError,
    HeaderMacError,
    PayloadError,
    TrailingDataError,
    TruncatedError,
)
from doorbell.age.header import read_header
from doorbell.age.identities import Identity, unwrap_header_key
from doorbell.age.primitives import header_mac
from doorbell.age.stream import (
    CHUNK_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    PAYLOAD_NONCE_SIZE,
    TAG_SIZE,
    chunk_nonce,
    pack_chunk_nonce,
    payload_key,
)

_DETECT_BYTES = 1100


class _Prefixed:
    """``src`` with some already-read bytes put back in front (read and readline)."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        self._prefix = prefix
        self._src = src

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._src.read(size)
        if size < 0:
            data, self._prefix = self._prefix + self._src.read(), b""
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


class DecryptReader(io.RawIOBase):
    """A read-only file object over the plaintext of an age file. Get one from :func:`decrypt`.

    ``read(n)`` returns exactly ``n`` bytes unless the end comes first. Errors are the
    :mod:`doorbell.age.errors` payload errors. With ``allow_truncated=True`` a file cut
    short (by a power loss) reads up to its last authenticated chunk and then ends, with
    :attr:`truncated` set to True; the default raises :class:`TruncatedError` instead.
    """

    def __init__(
        self,
        source: object,
        key: bytes,
        *,
        pending: bytes,
        payload_start: int | None,
        allow_truncated: bool,
    ) -> None:
        super().__init__()
        self._source = source
        self._aead = ChaCha20Poly1305(key)
        self._pending = pending
        self._allow_truncated = allow_truncated
        self._encrypted = bytearray(ENCRYPTED_CHUNK_SIZE + 1)
        self._encrypted_view = memoryview(self._encrypted)  # made once: reused for every chunk
        self._full_view = self._encrypted_view[:ENCRYPTED_CHUNK_SIZE]  # one whole chunk
        self._carry = 0  # sequential mode: bytes of the next chunk already in _encrypted
        self._position = 0
        self._index = -1
        self._plain = b""
        self._final_index: int | None = None  # index of the verified final chunk
        self._end_index: int | None = None  # first chunk index that does not exist (truncated)
        self._deferred: PayloadError | None = None
        self._end_error: PayloadError | None = None  # raised on reaching _end_index
        self._error: PayloadError | None = None
        self._payload_start = payload_start
        self._payload_size = 0
        self._source_position = -1
        #: seekable readers: index of the last chunk present (computed once; None otherwise)
        self._last_index: int | None = None
        if payload_start is not None:
            end = source.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
            self._payload_size = end - payload_start
            self._last_index = max(0, -(-self._payload_size // ENCRYPTED_CHUNK_SIZE) - 1)
        #: True once the end was reached early because the file was cut (allow_truncated).
        self.truncated = False

    # -- io surface -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._payload_start is not None

    def tell(self) -> int:
        return self._position

    @property
    def size(self) -> int:
        """Plaintext size in bytes (seekable readers only); verifies the final chunk first."""
        if not self.seekable():
            raise io.UnsupportedOperation("size of a non-seekable age stream is unknown")
        last = max(0, -(-self._payload_size // ENCRYPTED_CHUNK_SIZE) - 1)
        self._load(last)
        if self._end_error is not None:
            raise self._end_error
        if self._end_index is not None and self._final_index is None:
            return self._end_index * CHUNK_SIZE
        return last * CHUNK_SIZE + len(self._plain)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to a plaintext offset; decrypts nothing until the next read (except SEEK_END)."""
        if not self.seekable():
            raise io.UnsupportedOperation("armored or non-seekable age streams cannot seek")
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._position + offset
        elif whence == os.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` plaintext bytes (all the rest if negative or None)."""
        if self.closed:
            raise ValueError("read from a closed age reader")
        if size is not None and size > 0 and self._last_index is not None:
            # Hot path of sequential reading (playback, exports): the next chunk, from its
            # start, no more than one chunk. Same checks as below, fewer calls per chunk.
            index, offset = divmod(self._position, CHUNK_SIZE)
            if (
                offset == 0
                and index == self._index + 1
                and index <= self._last_index
                and self._end_index is None
                and self._final_index is None
            ):
                if index < self._last_index and size >= CHUNK_SIZE and self._error is None:
                    plain = self._open_full(index)  # a whole chunk that is not the last
                    if plain is not None and size == CHUNK_SIZE:
                        self._position += CHUNK_SIZE
                        return plain
                self._load(index)
                plain = self._plain
                if index == self._index and size <= len(plain):
                    self._position += size
                    return plain if size == len(plain) else plain[:size]
        wanted = size if size is not None and size >= 0 else -1
        pieces: list[bytes] = []
        got = 0
        while wanted < 0 or got < wanted:
            try:
                plain, offset = self._chunk_at(self._position)
            except PayloadError:
                if pieces and wanted >= 0:
                    break  # hand over what verified; the error comes on the next read
                raise
            if offset >= len(plain):
                break
            take = len(plain) - offset if wanted < 0 else min(len(plain) - offset, wanted - got)
            pieces.append(
                plain if offset == 0 and take == len(plain) else plain[offset : offset + take]
            )
            got += take
            self._position += take
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        """Close the reader (not ``src``) and drop the plaintext it held."""
        self._plain = b""
        self._full_view.release()
        self._encrypted_view.release()
        super().close()

    # -- chunks -----------------------------------------------------------------------------
    def _chunk_at(self, position: int) -> tuple[bytes, int]:
        """``(plaintext of the chunk holding position, offset in it)``; offset past the end
        of the returned chunk means end of file. Raises the stream's payload errors."""
        index = position // CHUNK_SIZE
        if index == self._index:
            return self._end_check(self._plain, position - index * CHUNK_SIZE)
        if self._end_index is not None and index >= self._end_index:
            if self._end_error is not None:
                raise self._end_error
            return b"", 0
        if self._final_index is not None and index > self._final_index:
            return self._end_check(b"", 0)
        last = self._last_index
        if last is not None:
            if index > last:  # past the end: the end is real only if the final chunk verifies
                self._load(last)
                return self._chunk_at(position)
        elif index != self._index + 1:  # pragma: no cover - sequential reads move forward
            raise io.UnsupportedOperation("non-seekable age stream read out of order")
        self._load(index)
        if index == self._index:
            plain, offset = self._plain, position - index * CHUNK_SIZE
            if offset < len(plain) or self._deferred is None:  # _end_check, inlined: hot path
                return plain, offset
            raise self._deferred
        return self._chunk_at(position)

    def _open_full(self, index: int) -> bytes | None:
        """Chunk ``index`` of a seekable reader when it reads whole and opens as a non-final
        chunk (the common case, in few calls); None sends the caller to :meth:`_load`, which
        reads it again and tells the exact error. Only for indexes below the last chunk."""
        offset = self._payload_start + index * ENCRYPTED_CHUNK_SIZE  # type: ignore[operator]
        if offset != self._source_position:
            self._source.seek(offset)  # type: ignore[attr-defined]
        got = self._source.readinto(self._full_view)  # type: ignore[attr-defined]
        self._source_position = offset + got
        if got != ENCRYPTED_CHUNK_SIZE:
            return None
        try:
            plain = self._aead.decrypt(pack_chunk_nonce(index, False), self._full_view, None)
        except InvalidTag:
            return None
        self._index, self._plain, self._deferred = index, plain, None
        return plain

    def _end_check(self, plain: bytes, offset: int) -> tuple[bytes, int]:
        if offset >= len(plain) and self._deferred is not None:
            raise self._deferred
        return plain, offset

    def _fetch(self, index: int) -> tuple[memoryview, bool]:
        """The encrypted bytes of chunk ``index`` and whether more bytes follow them."""
        buffer = self._encrypted_view
        if self._payload_start is not None:
            start = index * ENCRYPTED_CHUNK_SIZE
            length = max(0, min(ENCRYPTED_CHUNK_SIZE, self._payload_size - start))
            offset = self._payload_start + start
            if offset != self._source_position:  # sequential reads need no seek
                self._source.seek(offset)  # type: ignore[attr-defined]
            target = buffer[:length]
            got = self._source.readinto(target) if not self._pending else 0  # type: ignore[attr-defined]
            if got != length:
                got = got + self._fill(target[got:])
            self._source_position = offset + got
            if got != length:
                raise TruncatedError("the file shrank while it was being read")
            return buffer[:length], start + length < self._payload_size
        got = self._carry + self._fill(buffer[self._carry :])
        more = got > ENCRYPTED_CHUNK_SIZE
        if more:
            self._carry = 1
            data = buffer[:ENCRYPTED_CHUNK_SIZE]
        else:
            self._carry = 0
            data = buffer[:got]
        return data, more

    def _fill(self, view: memoryview) -> int:
        """Read into ``view`` until full or end of input; returns the count."""
        filled = 0
        if self._pending:
            filled = min(len(view), len(self._pending))
            view[:filled] = self._pending[:filled]
            self._pending = self._pending[filled:]
        reader = getattr(self._source, "readinto", None)
        while filled < len(view):
            if reader is not None:
                count = reader(view[filled:])
            else:
                block = self._source.read(len(view) - filled)  # type: ignore[attr-defined]
                count = len(block)
                view[filled : filled + count] = block
            if not count:
                break
            filled += count
        return filled

    def _open(self, data: memoryview, index: int, final: bool) -> bytes | None:
        try:
            return self._aead.decrypt(chunk_nonce(index, final), data, None)
        except InvalidTag:
            return None

    def _load(self, index: int) -> None:
        if self._error is not None:
            raise self._error
        if index == self._index:
            return
        try:
            self._load_chunk(index)
        except PayloadError as exc:
            if not self.seekable():
                self._error = exc
            raise

    def _load_chunk(self, index: int) -> None:
        if not self.seekable() and self._carry:  # the look-ahead byte starts the next chunk
            self._encrypted[0] = self._encrypted[ENCRYPTED_CHUNK_SIZE]
        data, more = self._fetch(index)
        size = len(data)
        deferred: PayloadError | None = None
        if more:
            plain = self._open(data, index, final=False)
            final = False
            if plain is None:
                plain = self._open(data, index, final=True)
                if plain is None:
                    raise ChunkAuthenticationError(self._bad_chunk(index))
                final = True
                deferred = TrailingDataError(
                    f"data follows the final chunk (chunk {index}): bytes were appended"
                )
        elif size == 0:
            self._truncate(index, TruncatedError(self._cut(index)))
            return
        else:
            plain = self._open(data, index, final=True) if size >= TAG_SIZE else None
            final = True
            if plain is None:
                early = (
                    self._open(data, index, final=False) if size == ENCRYPTED_CHUNK_SIZE else None
                )
                if early is None:
                    self._truncate(index, ChunkAuthenticationError(self._bad_chunk(index)))
                    return
                # Authentic but not final: hand it over, then report the cut at its end.
                plain, final = early, False
                self._end_index = index + 1
                if self._allow_truncated:
                    self.truncated = True
                else:
                    self._end_error = TruncatedError(self._cut(index + 1))
            elif not plain and index > 0:
                raise EmptyFinalChunkError(
                    f"final chunk {index} is empty; age v1 forbids that unless the file is empty"
                )
        self._index, self._plain, self._deferred = index, plain, deferred
        if final:
            self._final_index = index

    def _truncate(self, index: int, error: PayloadError) -> None:
        """The stream ends at chunk ``index`` (it is missing or unreadable)."""
        if not self._allow_truncated:
            raise error
        self._end_index = index
        self.truncated = True
        self._index, self._plain = index, b""

    @staticmethod
    def _cut(index: int) -> str:
        return (
            f"the file ends after {index} chunk(s) without a final chunk: it was cut short "
            "(power loss or incomplete copy); decrypt with allow_truncated to recover the "
            "authenticated part"
        )

    @staticmethod
    def _bad_chunk(index: int) -> str:
        return f"payload chunk {index} failed authentication: the file is damaged or was altered"


def decrypt(
    src: BinaryIO,
    identities: Iterable[Identity] | Identity,
    *,
    armor: bool | None = None,
    allow_truncated: bool = False,
) -> DecryptReader:
    """Open the age file ``src`` with the first matching identity; returns the plaintext reader.

    ``armor``: None detects the ASCII armor, True/False force it. The header is parsed and its
    MAC verified before this returns. ``allow_truncated=True`` is the owner's recovery mode
    for files cut by a power loss (see :class:`DecryptReader`); never use it otherwise.

    Raises :class:`~doorbell.age.errors.HeaderError`, ``ArmorError``,
    ``NoIdentityMatchError``, ``HeaderMacError`` (here) and the payload errors (on read).
    """
    if hasattr(identities, "unwrap"):
        identities = [identities]  # type: ignore[list-item]
    seekable = bool(getattr(src, "seekable", lambda: False)())
    start = src.tell() if seekable else 0
    prefix = src.read(_DETECT_BYTES)
    if armor is None:
        armor = _looks_armored(prefix)
    source: object
    if armor:
        source = ArmorReader(_Prefixed(prefix, src))
        seekable = False
    elif seekable:
        src.seek(start)
        source = src
    else:
        source = _Prefixed(prefix, src)
    header, header_size, leftover = read_header(source)  # type: ignore[arg-type]
    file_key = unwrap_header_key(header.stanzas, identities)  # type: ignore[arg-type]
    if not hmac.compare_digest(header_mac(file_key, header.mac_input), header.mac):
        raise HeaderMacError("header MAC does not match: the header was altered")
    nonce = leftover[:PAYLOAD_NONCE_SIZE]
    while len(nonce) < PAYLOAD_NONCE_SIZE:
        more = source.read(PAYLOAD_NONCE_SIZE - len(nonce))  # type: ignore[attr-defined]
        if not more:
            raise HeaderError("the file ends before the payload nonce (truncated after header)")
        nonce += more
    return DecryptReader(
        source,
        payload_key(file_key, nonce),
        pending=b"" if seekable else leftover[PAYLOAD_NONCE_SIZE:],
        payload_start=start + header_size + PAYLOAD_NONCE_SIZE if seekable else None,
        allow_truncated=allow_truncated,
    )


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`decrypt`.

    Importing a submodule binds its name on the package, so ``doorbell.age.decrypt`` is this
    module as soon as anything imported it; being callable keeps
    ``from doorbell.age import decrypt; decrypt(...)`` working either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return decrypt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
