"""The random-access age payload reader: seekable files, for HTTP Range playback.

Like age's Go ``stream.ReaderAt``: chunk ``i`` of a payload of known size starts at a
computable offset, so a seek decrypts only the chunk it lands in. Which chunk is the last,
and so must carry the final flag, follows from the file size. The file must not change
while it is read.
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag

from doorbell.age.errors import TruncatedError
from doorbell.age.payload import DecryptReader, OpenedChunk, open_chunk
from doorbell.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, pack_chunk_nonce


class SeekableSource(Protocol):
    """A seekable file of bytes (any seekable io file object)."""

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class RandomAccessReader(DecryptReader):
    """Reads the payload of ``source`` that starts at byte ``payload_start`` and runs to the
    end of the file. Seekable; errors are per chunk (a damaged chunk does not spoil others)."""

    def __init__(
        self, source: SeekableSource, key: bytes, *, payload_start: int, allow_truncated: bool
    ) -> None:
        super().__init__(key, allow_truncated=allow_truncated)
        self._source = source
        self._payload_start = payload_start
        self._payload_size = source.seek(0, os.SEEK_END) - payload_start
        #: index of the last chunk present (0 for an empty payload: it is missing)
        self._last_index = max(0, -(-self._payload_size // ENCRYPTED_CHUNK_SIZE) - 1)
        self._encrypted = bytearray(ENCRYPTED_CHUNK_SIZE)
        self._view = memoryview(self._encrypted)
        self._source_position = -1  # where ``source`` is now (sequential reads need no seek)

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        """Plaintext size in bytes; verifies the final chunk first (raises if it does not)."""
        self._load(self._last_index)
        if self._end_error is not None:
            raise self._end_error
        return self._last_index * CHUNK_SIZE + len(self._plain)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to a plaintext offset; decrypts nothing until the next read (except SEEK_END)."""
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

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` plaintext bytes (all the rest if negative or None)."""
        # The common case of playback and exports, in few calls: one whole chunk that is not
        # the last (so it must open as non-final). Anything else, or a chunk that does not
        # open, goes the general way, which reads it again and names the exact error.
        if size == CHUNK_SIZE and not self.closed:
            index, offset = divmod(self._position, CHUNK_SIZE)
            end = self._end_index
            if offset == 0 and index < self._last_index and (end is None or index < end):
                plain = self._open_whole(index)
                if plain is not None:
                    self._position += CHUNK_SIZE
                    return plain
        return super().read(size)

    def close(self) -> None:
        self._view.release()
        super().close()

    def _open_whole(self, index: int) -> bytes | None:
        """Chunk ``index`` (below the last) when one read brings it whole and it opens as
        non-final; None otherwise (the general path then reads it again, with the checks)."""
        offset = self._payload_start + index * ENCRYPTED_CHUNK_SIZE
        if offset != self._source_position:
            self._source.seek(offset)
        got = self._source.readinto(self._view) or 0
        self._source_position = offset + got
        if got != ENCRYPTED_CHUNK_SIZE:
            return None
        try:
            plain = self._aead.decrypt(pack_chunk_nonce(index, False), self._view, None)
        except InvalidTag:
            return None
        self._index, self._plain = index, plain
        return plain

    def _load(self, index: int) -> None:
        if index > self._last_index:  # past the end: it is real only if the final chunk is
            index = self._last_index
        if index == self._index:
            return
        start = index * ENCRYPTED_CHUNK_SIZE
        length = max(0, min(ENCRYPTED_CHUNK_SIZE, self._payload_size - start))
        if self._read_chunk(index, length) != length:
            raise TruncatedError("the file shrank while it was being read")
        chunk: OpenedChunk = open_chunk(
            self._aead,
            self._view[:length],
            index,
            more=start + length < self._payload_size,
            allow_truncated=self._allow_truncated,
        )
        self._accept(index, chunk)

    def _read_chunk(self, index: int, length: int) -> int:
        """Read ``length`` bytes of chunk ``index`` into the buffer; return how many came."""
        offset = self._payload_start + index * ENCRYPTED_CHUNK_SIZE
        if offset != self._source_position:
            self._source.seek(offset)
        target = self._view[:length]
        got = 0
        while got < length:
            count = self._source.readinto(target[got:]) or 0
            if not count:
                break
            got += count
        self._source_position = offset + got
        return got
