"""HTTP Range (RFC 9110 section 14) over a seekable decrypting reader.

One range per request: ``bytes=a-b``, ``bytes=a-`` and the suffix form ``bytes=-n``.
A syntactically invalid header, another unit, or several ranges are ignored (the whole
representation is sent with 200, as RFC 9110 allows); a range that starts at or beyond the
end, or a zero suffix, is unsatisfiable (416 with ``Content-Range: bytes */size``).

Bodies stream in 64 KiB pieces straight from the decrypting reader, which only decrypts the
age chunks the range touches: seeking to 90 % of a clip costs one chunk, not 90 % of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Protocol

from flask import Response

PIECE_SIZE = 64 * 1024
#: Positions of at most 64 digits: int() refuses 4300+ digit strings (ValueError, a 500), and
#: anything longer than any file is ignored like any other invalid header.
_SINGLE = re.compile(r"^bytes[ \t]*=[ \t]*(\d{0,64})[ \t]*-[ \t]*(\d{0,64})[ \t]*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The range does not overlap the representation (answer 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range ``(first, last)`` asked for, or None for the whole file.

    Raises :class:`RangeNotSatisfiable` when the range lies outside ``size`` bytes.
    """
    if not header:
        return None
    match = _SINGLE.match(header.strip())
    if match is None:
        return None  # invalid or multiple ranges: ignore the header
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix: the last n bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # invalid range-spec: ignore
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


class SeekableReader(Protocol):
    """What a ranged response reads from: a seekable plaintext reader (or a plain file)."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, size: int = -1, /) -> bytes | None: ...


def stream_body(
    reader: SeekableReader, first: int, length: int, close: Callable[[], None]
) -> Iterator[bytes]:
    """Yield ``length`` plaintext bytes from ``first``; always calls ``close`` at the end."""
    try:
        reader.seek(first)
        remaining = length
        while remaining > 0:
            piece = reader.read(min(PIECE_SIZE, remaining))
            if not piece:
                break  # the file ended early (shrank): the client sees a short body
            remaining -= len(piece)
            yield piece
    finally:
        close()


def ranged_response(
    range_header: str | None,
    reader: SeekableReader,
    size: int,
    close: Callable[[], None],
    *,
    mimetype: str,
    etag: str | None = None,
    if_range: str | None = None,
) -> Response:
    """A 200, 206 or 416 response streaming ``reader`` (``size`` bytes); ``close`` is
    called when the body is done (or at once for 416)."""
    if if_range and etag and if_range.strip() != f'"{etag}"':
        range_header = None  # the client's copy is stale: send it all
    try:
        wanted = parse_range(range_header, size)
    except RangeNotSatisfiable:
        close()
        response = Response(b"", status=416, mimetype="text/plain")
        response.headers["Content-Range"] = f"bytes */{size}"
        response.headers["Accept-Ranges"] = "bytes"
        return response
    first, last = wanted if wanted is not None else (0, size - 1)
    length = max(0, last - first + 1)
    response = Response(
        stream_body(reader, first, length, close),
        status=206 if wanted is not None else 200,
        mimetype=mimetype,
        direct_passthrough=True,
    )
    response.headers["Content-Length"] = str(length)
    response.headers["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if etag:
        response.headers["ETag"] = f'"{etag}"'
    return response
