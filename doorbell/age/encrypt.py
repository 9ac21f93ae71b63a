"""Encrypt to age v1 as a stream: ``encrypt(dst, recipients)`` gives a writable file object.

Plaintext written to it is sealed in 64 KiB chunks and passed to ``dst`` as soon as a chunk
is known not to be the last one, so memory stays bounded (one chunk) however long the
stream. ``dst`` may be any object with ``write`` (a pipe, a socket file, a temporary file):
nothing is ever seeked. This is the encrypt-only side: it imports recipients, never
identities or decryption.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from types import TracebackType

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from doorbell.age.armor import ArmorWriter, ByteSink
from doorbell.age.errors import RecipientError
from doorbell.age.header import encode_header, finish_header
from doorbell.age.primitives import FILE_KEY_SIZE, header_mac
from doorbell.age.recipients import Recipient, ScryptRecipient
from doorbell.age.stream import CHUNK_SIZE, PAYLOAD_NONCE_SIZE, pack_chunk_nonce, payload_key
from doorbell.errors import AgeError


class EncryptWriter:
    """A write-only file object that age-encrypts into ``dst``. Get one from :func:`encrypt`.

    - ``write(data)`` accepts any bytes-like object and returns its length.
    - ``flush()`` makes every sealed chunk reach ``dst`` and calls ``dst.flush()``. All
      complete chunks are written as soon as more data follows them, so after ``flush()``
      everything but the last, possibly final, chunk (at most 64 KiB of plaintext) is in
      ``dst``; the caller may then ``os.fsync`` it. The held-back chunk cannot be written
      early: the last chunk must carry the final flag and must not be empty. After a power
      cut, ``decrypt(..., allow_truncated=True)`` recovers every flushed chunk.
    - ``close()`` seals the final chunk (and the armor END line). It does not close ``dst``.
    - As a context manager, a clean exit closes (seals) the file; an exception leaves it
      unsealed (truncated), so a failed recording never looks complete.
    """

    def __init__(self, sink: ByteSink, armor: ArmorWriter | None, key: bytes) -> None:
        self._sink = sink
        self._armor = armor
        self._aead = ChaCha20Poly1305(key)
        self._buffer = bytearray(CHUNK_SIZE)
        self._filled = 0
        # A full chunk taken by reference from an immutable ``bytes`` write (no copy); it is
        # sealed as non-final when more data comes, or as final by close().
        self._held: memoryview | None = None
        self._counter = 0
        self._written = 0
        self.closed = False

    # -- io-like surface -----------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        return self._written

    def _seal(self, data: memoryview | bytearray, final: bool) -> None:
        self._sink.write(self._aead.encrypt(pack_chunk_nonce(self._counter, final), data, None))
        self._counter += 1

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data`` (any bytes-like object); returns the number of bytes taken."""
        if self.closed:
            raise ValueError("write to a closed age writer")
        view = memoryview(data).cast("B")
        size = len(view)
        if size and self._held is not None:  # more data follows the held chunk: not the last
            self._seal(self._held, final=False)
            self._held = None
        position = 0
        buffer = self._buffer
        immutable = isinstance(view.obj, bytes)
        while position < size:
            if self._filled == 0 and immutable and size - position == CHUNK_SIZE:
                self._held = view[position:]
                break
            if self._filled == CHUNK_SIZE:  # more data follows a full chunk: not the last
                self._seal(buffer, final=False)
                self._filled = 0
            if self._filled == 0 and size - position > CHUNK_SIZE:
                self._seal(view[position : position + CHUNK_SIZE], final=False)
                position += CHUNK_SIZE
                continue
            take = min(CHUNK_SIZE - self._filled, size - position)
            buffer[self._filled : self._filled + take] = view[position : position + take]
            self._filled += take
            position += take
        self._written += size
        return size

    def flush(self) -> None:
        """Pass everything sealed so far on to ``dst`` and flush it (see the class doc)."""
        if not self.closed:
            self._sink.flush()

    def close(self) -> None:
        """Seal the final chunk, finish the armor, flush ``dst``. Idempotent."""
        if self.closed:
            return
        last = self._held if self._held is not None else memoryview(self._buffer)[: self._filled]
        self._seal(last, final=True)
        self._held = None
        self.closed = True
        if self._armor is not None:
            self._armor.close()
        self._sink.flush()

    def abort(self) -> None:
        """Stop without sealing: the output stays a truncated age file. Idempotent."""
        self.closed = True
        self._held = None

    def __enter__(self) -> EncryptWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encrypt(
    dst: ByteSink, recipients: Iterable[Recipient], *, armor: bool = False
) -> EncryptWriter:
    """Start an age v1 file on ``dst`` for ``recipients``; returns the plaintext writer.

    The header and payload nonce are written at once. ``armor=True`` produces the ASCII
    armored form. Raises :class:`RecipientError` for no recipients or an
    :class:`ScryptRecipient` mixed with others (the spec forbids it).
    """
    recipients = list(recipients)
    if not recipients:
        raise RecipientError("no recipients: nobody could ever decrypt this file")
    if any(isinstance(r, ScryptRecipient) for r in recipients) and len(recipients) != 1:
        raise RecipientError("a passphrase (scrypt) recipient must be the only recipient")
    file_key = secrets.token_bytes(FILE_KEY_SIZE)
    stanzas = [stanza for r in recipients for stanza in r.wrap(file_key)]
    if not stanzas:
        raise AgeError("recipients produced no header stanza")
    header = encode_header(stanzas)
    nonce = secrets.token_bytes(PAYLOAD_NONCE_SIZE)
    armor_writer = ArmorWriter(dst) if armor else None
    sink: ByteSink = armor_writer if armor_writer is not None else dst
    sink.write(finish_header(header, header_mac(file_key, header)) + nonce)
    return EncryptWriter(sink, armor_writer, payload_key(file_key, nonce))
