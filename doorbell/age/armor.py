"""ASCII armor for age files: strict PEM with the label ``AGE ENCRYPTED FILE``.

Writing: base64 with padding, 64 columns, LF line endings, as ``age -a`` does.
Reading is strict (RFC 7468 "strict" form, as the age spec asks): the BEGIN and END lines
exactly, full 64-column lines, one shorter last line, canonical padded base64, no empty
lines, no headers. LF or CRLF endings are accepted, and whitespace-only lines before the
BEGIN line and after the END line (at most 1 KiB each), nothing else. Any deviation raises
:class:`ArmorError`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol

from doorbell.age.errors import ArmorError

BEGIN_LINE = b"-----BEGIN AGE ENCRYPTED FILE-----"
END_LINE = b"-----END AGE ENCRYPTED FILE-----"
COLUMNS = 64
_BYTES_PER_LINE = COLUMNS // 4 * 3
_MAX_WHITESPACE = 1024
_MAX_LINE = COLUMNS + 3


class LineSource(Protocol):
    """What :class:`ArmorReader` reads from: ``readline(limit)`` and ``read(size)``."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class ByteSink(Protocol):
    """Where encrypted bytes go: ``write(data)`` (its result is ignored) and ``flush()``."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...


class ArmorWriter:
    """Encodes bytes written to it as armored lines on ``dst``; :meth:`close` adds END.

    Closing does not close ``dst``.
    """

    def __init__(self, dst: ByteSink) -> None:
        self._dst = dst
        self._pending = bytearray()
        self._dst.write(BEGIN_LINE + b"\n")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; write every complete 64-column line. Returns ``len(data)``."""
        self._pending += data
        whole = len(self._pending) // _BYTES_PER_LINE * _BYTES_PER_LINE
        if whole:
            encoded = base64.b64encode(self._pending[:whole])
            self._dst.write(
                b"".join(encoded[i : i + COLUMNS] + b"\n" for i in range(0, len(encoded), COLUMNS))
            )
            del self._pending[:whole]
        return len(data)

    def flush(self) -> None:
        """Flush ``dst`` (bytes of an incomplete line stay buffered until more come)."""
        self._dst.flush()

    def close(self) -> None:
        """Write the last, shorter line and the END line."""
        if self._pending:
            self._dst.write(base64.b64encode(self._pending) + b"\n")
            self._pending.clear()
        self._dst.write(END_LINE + b"\n")


class ArmorReader:
    """Decodes an armored age file from ``src`` on the fly (bounded memory).

    ``read(size)`` returns up to ``size`` decoded bytes, ``b""`` at the end; malformed
    armor raises :class:`ArmorError` when reached.
    """

    def __init__(self, src: LineSource) -> None:
        self._src = src
        self._started = False
        self._finished = False
        self._pending = b""

    def _line(self) -> bytes:
        raw = self._src.readline(_MAX_LINE)
        if not raw:
            raise ArmorError("armored file ends without its END line")
        if not raw.endswith(b"\n") and len(raw) >= _MAX_LINE:
            raise ArmorError(f"armor line longer than {COLUMNS} columns")
        line = raw.removesuffix(b"\n")
        if raw.endswith(b"\n"):
            line = line.removesuffix(b"\r")
        return line

    def _start(self) -> None:
        skipped = 0
        while True:
            line = self._line()
            if line.strip():
                break
            skipped += len(line) + 1
            if skipped > _MAX_WHITESPACE:
                raise ArmorError("too much whitespace before the armor BEGIN line")
        if line != BEGIN_LINE:
            raise ArmorError(f"expected {BEGIN_LINE.decode()!r}, found {line[:80]!r}")
        self._started = True

    def _finish(self) -> None:
        rest = self._src.read(_MAX_WHITESPACE + 1)
        if rest.strip():
            raise ArmorError("data after the armor END line")
        if len(rest) > _MAX_WHITESPACE:
            raise ArmorError("too much whitespace after the armor END line")
        self._finished = True

    def _decode_next_line(self) -> None:
        line = self._line()
        if line == END_LINE:
            self._finish()
            return
        if not line:
            raise ArmorError("empty line inside the armor")
        if len(line) > COLUMNS:
            raise ArmorError(f"armor line longer than {COLUMNS} columns")
        try:
            data = binascii.a2b_base64(line, strict_mode=True)
        except binascii.Error as exc:
            raise ArmorError(f"armor line is not strict base64: {exc}") from None
        if base64.b64encode(data) != line:
            raise ArmorError("armor line is not canonical base64")
        if len(data) < _BYTES_PER_LINE:
            if self._line() != END_LINE:
                raise ArmorError("a short armor line must be the last, followed by END")
            self._finish()
        self._pending = data

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decoded bytes (all the rest if negative); ``b""`` at the end."""
        if not self._started:
            self._start()
        chunks = []
        wanted = size if size >= 0 else 1 << 62
        while wanted > 0:
            if not self._pending:
                if self._finished:
                    break
                self._decode_next_line()
                continue
            piece, self._pending = self._pending[:wanted], self._pending[wanted:]
            chunks.append(piece)
            wanted -= len(piece)
        return b"".join(chunks)

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` with decoded bytes; return the count (0 at the end)."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
