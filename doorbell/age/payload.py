"""Reading an age v1 payload: the checks on one chunk, and the reader both modes share.

Two readers sit on top, as in age's Go package (``internal/stream``: ``Reader`` and
``ReaderAt``): :class:`~doorbell.age.sequential.SequentialReader` for streams that only read
forward (pipes, armored files) and :class:`~doorbell.age.random_access.RandomAccessReader`
for seekable files (HTTP Range playback). Each fetches the encrypted bytes of chunk ``i`` its
own way and hands them to :func:`open_chunk`; :class:`DecryptReader` turns opened chunks into
a read-only file object.

The rules, for every reader: no plaintext leaves before its chunk's tag verified; the end of
the stream is reported only after a chunk flagged final verified, so a truncated file never
reads as a complete one; a final chunk followed by more data, an empty final chunk after the
first, and a cut are each their own :mod:`doorbell.age.errors` payload error.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from doorbell.age.errors import (
    ChunkAuthenticationError,
    EmptyFinalChunkError,
    PayloadError,
    TrailingDataError,
    TruncatedError,
)
from doorbell.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, TAG_SIZE, pack_chunk_nonce


@dataclass(frozen=True, slots=True)
class OpenedChunk:
    """One authenticated chunk. ``last``: no chunk follows it; then, on reaching its end,
    ``end_error`` (if set) is raised instead of reporting the end of the stream;
    ``truncated``: the stream was cut here and the reader was told to allow that."""

    plain: bytes
    last: bool = False
    end_error: PayloadError | None = None
    truncated: bool = False


def open_chunk(
    aead: ChaCha20Poly1305, data: memoryview, index: int, *, more: bool, allow_truncated: bool
) -> OpenedChunk:
    """Open chunk ``index`` (its encrypted bytes ``data``); ``more``: bytes follow it.

    Raises :class:`ChunkAuthenticationError`, :class:`EmptyFinalChunkError`, or, unless
    ``allow_truncated``, :class:`TruncatedError` for a chunk that is missing or cut.
    """
    if more:
        try:
            return OpenedChunk(aead.decrypt(pack_chunk_nonce(index, False), data, None))
        except InvalidTag:
            pass
        try:
            plain = aead.decrypt(pack_chunk_nonce(index, True), data, None)
        except InvalidTag:
            raise ChunkAuthenticationError(bad_chunk(index)) from None
        trailing = TrailingDataError(
            f"data follows the final chunk (chunk {index}): bytes were appended"
        )
        return OpenedChunk(plain, last=True, end_error=trailing)
    if not data:
        return _cut_here(TruncatedError(cut_message(index)), allow_truncated)
    if len(data) >= TAG_SIZE:
        try:
            plain = aead.decrypt(pack_chunk_nonce(index, True), data, None)
        except InvalidTag:
            pass
        else:
            if not plain and index > 0:
                raise EmptyFinalChunkError(
                    f"final chunk {index} is empty; age v1 forbids that unless the file is empty"
                )
            return OpenedChunk(plain, last=True)
    if len(data) == ENCRYPTED_CHUNK_SIZE:
        try:
            plain = aead.decrypt(pack_chunk_nonce(index, False), data, None)
        except InvalidTag:
            pass
        else:  # authentic but not final: hand it over, then report the cut at its end
            if allow_truncated:
                return OpenedChunk(plain, last=True, truncated=True)
            return OpenedChunk(plain, last=True, end_error=TruncatedError(cut_message(index + 1)))
    return _cut_here(ChunkAuthenticationError(bad_chunk(index)), allow_truncated)


def _cut_here(error: PayloadError, allow_truncated: bool) -> OpenedChunk:
    """The stream ends before this chunk (missing or unreadable): an error, or the end."""
    if not allow_truncated:
        raise error
    return OpenedChunk(b"", last=True, truncated=True)


def cut_message(index: int) -> str:
    return (
        f"the file ends after {index} chunk(s) without a final chunk: it was cut short "
        "(power loss or incomplete copy); decrypt with allow_truncated to recover the "
        "authenticated part"
    )


def bad_chunk(index: int) -> str:
    return f"payload chunk {index} failed authentication: the file is damaged or was altered"


class DecryptReader(io.RawIOBase):
    """A read-only file object over the plaintext of an age file. Get one from
    :func:`doorbell.age.decrypt.decrypt`.

    ``read(n)`` returns exactly ``n`` bytes unless the end comes first. Errors are the
    :mod:`doorbell.age.errors` payload errors; bytes that verified before an error are
    handed over first, the error comes on the next read. With ``allow_truncated=True`` a
    file cut short (by a power loss) reads up to its last authenticated chunk and then ends,
    with :attr:`truncated` set; the default raises :class:`TruncatedError` instead.

    A subclass provides :meth:`_load`: make chunk ``index`` the current one.
    """

    def __init__(self, key: bytes, *, allow_truncated: bool) -> None:
        super().__init__()
        self._aead = ChaCha20Poly1305(key)
        self._allow_truncated = allow_truncated
        self._position = 0
        self._index = -1  # the chunk in _plain
        self._plain = b""
        self._end_index: int | None = None  # the chunk after which the stream ends
        self._end_error: PayloadError | None = None
        #: True once the end was reached early because the file was cut (allow_truncated).
        self.truncated = False

    def readable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        """Plaintext size in bytes: random-access readers only (they verify the final chunk)."""
        raise io.UnsupportedOperation("the size of a sequential age stream is not known")

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # io.RawIOBase types the buffer as WriteableBuffer; any writable bytes-like works here.
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` plaintext bytes (all the rest if negative or None)."""
        if self.closed:
            raise ValueError("read from a closed age reader")
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
        """Close the reader (not its source) and drop the plaintext it held."""
        self._plain = b""
        super().close()

    def _chunk_at(self, position: int) -> tuple[bytes, int]:
        """``(plaintext of the chunk holding position, offset in it)``; an offset at or past
        the end of the chunk means the end of the stream. Raises the payload errors."""
        index, offset = divmod(position, CHUNK_SIZE)
        if self._end_index is not None and index > self._end_index:
            return self._at_end()
        if index != self._index:
            self._load(index)
            if index != self._index:  # the reader loaded another chunk (the last) first
                return self._chunk_at(position)
        if offset >= len(self._plain):  # only the last chunk is short
            return self._at_end()
        return self._plain, offset

    def _at_end(self) -> tuple[bytes, int]:
        if self._end_error is not None:
            raise self._end_error
        return b"", 0

    def _accept(self, index: int, chunk: OpenedChunk) -> None:
        """Make the opened chunk ``index`` the current one."""
        self._index, self._plain = index, chunk.plain
        if chunk.last and (self._end_index is None or index <= self._end_index):
            self._end_index, self._end_error = index, chunk.end_error
            if chunk.truncated:
                self.truncated = True

    def _load(self, index: int) -> None:
        """Make chunk ``index`` current (past the end: the last one); raises payload errors."""
        raise NotImplementedError  # pragma: no cover
