"""The sequential age payload reader: forward only, for pipes and armored files.

Like age's Go ``stream.Reader``: each chunk is read with one byte of look-ahead, which tells
whether another chunk follows, and so whether this one must carry the final flag.
"""

from __future__ import annotations

import io
from typing import Protocol

from doorbell.age.errors import PayloadError
from doorbell.age.payload import DecryptReader, open_chunk
from doorbell.age.stream import ENCRYPTED_CHUNK_SIZE


class ReadableInto(Protocol):
    """A byte source: ``readinto`` fills a buffer, 0 at the end."""

    def readinto(self, buffer: memoryview) -> int: ...


class SequentialReader(DecryptReader):
    """Reads ``source`` (positioned just after the payload nonce) once, front to back.

    ``pending``: payload bytes already read from ``source`` while parsing the header. Errors
    are final: after one, every read raises it again. Not seekable.
    """

    def __init__(
        self, source: ReadableInto, key: bytes, *, pending: bytes, allow_truncated: bool
    ) -> None:
        super().__init__(key, allow_truncated=allow_truncated)
        self._source = source
        self._pending = pending
        # one chunk and the first byte of the next (the look-ahead)
        self._encrypted = bytearray(ENCRYPTED_CHUNK_SIZE + 1)
        self._view = memoryview(self._encrypted)
        self._carry = 0  # 1 when the look-ahead byte is at the end of _encrypted
        self._error: PayloadError | None = None

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._view.release()
        super().close()

    def _load(self, index: int) -> None:
        if self._error is not None:
            raise self._error
        if index != self._index + 1:  # pragma: no cover - positions only move forward
            raise io.UnsupportedOperation("a sequential age stream is read in order")
        if self._carry:  # the look-ahead byte starts this chunk
            self._encrypted[0] = self._encrypted[ENCRYPTED_CHUNK_SIZE]
        got = self._carry + self._fill(self._view[self._carry :])
        more = got > ENCRYPTED_CHUNK_SIZE
        self._carry = 1 if more else 0
        data = self._view[: min(got, ENCRYPTED_CHUNK_SIZE)]
        try:
            chunk = open_chunk(
                self._aead, data, index, more=more, allow_truncated=self._allow_truncated
            )
        except PayloadError as exc:
            self._error = exc
            raise
        self._accept(index, chunk)

    def _fill(self, view: memoryview) -> int:
        """Read into ``view`` until it is full or the input ends; return the count."""
        filled = 0
        if self._pending:
            filled = min(len(view), len(self._pending))
            view[:filled] = self._pending[:filled]
            self._pending = self._pending[filled:]
        while filled < len(view):
            count = self._source.readinto(view[filled:])
            if not count:
                break
            filled += count
        return filled
