"""A strict reader of the tar inside a bundle: what it verifies is what ``tar -x`` extracts.

Python's :mod:`tarfile` stops quietly at a header it cannot parse (a regular-file header
with a garbage ``devmajor`` and a valid checksum, say) while GNU tar reads on. A bundle
built that way verified with ``tarfile`` and then extracted a different clip over the
genuine one. So the bundle's tar is read here, block by block, and anything but the one
simple shape the writer produces is an error:

- every member is one POSIX ustar header (magic ``ustar\\0``, version ``00``) of a regular
  file (type ``0``), with a valid checksum, every numeric field plain octal, no link name,
  no prefix, and the reserved tail of the header zero; no pax, GNU or other extensions;
- its data, then zero padding to the next 512-byte block;
- the end of the archive is a zero block, and everything after it to the end of the
  decrypted stream is zero bytes (tar pads to a 10240-byte record), nothing else.

Names and duplicates are the caller's business (:mod:`.verify`); this module knows blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from doorbell.errors import DoorbellError

BLOCK = 512
_OCTAL = re.compile(rb"[0-7]+")
#: (offset, length) of the ustar numeric fields, by name.
_NUMERIC = {
    "mode": (100, 8),
    "uid": (108, 8),
    "gid": (116, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "devmajor": (329, 8),
    "devminor": (337, 8),
}
_CHECKSUM = (148, 8)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class TarFormatError(DoorbellError, ValueError):
    """The tar stream is not the strict ustar shape a bundle has; ``offset`` is where."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"at byte {offset}: {message}")
        self.offset = offset


@dataclass(frozen=True)
class Member:
    """One regular file of the archive (``mtime``: epoch seconds)."""

    name: str
    size: int
    mode: int
    mtime: int
    offset: int


def _octal(header: bytes, name: str, offset: int, length: int, at: int) -> int:
    """A numeric field: octal digits, then only NUL/space terminators (at least one digit)."""
    raw = header[offset : offset + length]
    digits = raw.rstrip(b"\0 ")
    if not _OCTAL.fullmatch(digits) or raw[len(digits) :].strip(b"\0 "):
        raise TarFormatError(at, f"header field {name} is not an octal number ({raw!r})")
    return int(digits, 8)


def _text(header: bytes, offset: int, length: int, what: str, at: int) -> str:
    raw = header[offset : offset + length]
    text, _nul, rest = raw.partition(b"\0")
    if rest.strip(b"\0"):
        raise TarFormatError(at, f"header field {what} has bytes after its terminator")
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise TarFormatError(at, f"header field {what} is not ASCII") from None


def parse_header(header: bytes, at: int) -> Member:
    """One 512-byte ustar header of a regular file; raises :class:`TarFormatError`."""
    stored = _octal(header, "chksum", *_CHECKSUM, at)
    computed = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    if stored != computed:
        raise TarFormatError(at, "header checksum is wrong")
    if header[257:265] != b"ustar\x0000":
        raise TarFormatError(at, "not a POSIX ustar header (GNU, pax or old tar format)")
    if header[156:157] != b"0":
        raise TarFormatError(at, f"member type {header[156:157]!r} is not a regular file")
    values = {
        # empty device numbers are what tarfile writes for a regular file (both tars read 0)
        name: 0
        if name.startswith("dev") and not header[off : off + length].strip(b"\0")
        else _octal(header, name, off, length, at)
        for name, (off, length) in _NUMERIC.items()
    }
    name = _text(header, 0, 100, "name", at)
    if _text(header, 157, 100, "linkname", at):
        raise TarFormatError(at, "a regular file with a link name")
    _text(header, 265, 32, "uname", at)
    _text(header, 297, 32, "gname", at)
    if _text(header, 345, 155, "prefix", at):
        raise TarFormatError(at, "header uses the prefix field (bundle names are short)")
    if header[500:].strip(b"\0"):
        raise TarFormatError(at, "reserved bytes at the end of the header are not zero")
    if not name:
        raise TarFormatError(at, "member without a name")
    return Member(name, values["size"], values["mode"], values["mtime"], at)


def _read_exactly(stream: Readable, size: int, at: int, what: str) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise TarFormatError(at, f"the stream ends inside {what}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class StrictTarReader:
    """Iterate the members of a bundle tar read from ``stream`` (a decrypted age stream).

    For each :class:`Member`, read its data with :meth:`read_data` (in chunks) before asking
    for the next member; unread data is read and dropped. Iteration ends only at a proper
    end of archive followed by nothing but zero bytes to the end of the stream.
    """

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._offset = 0
        self._left = 0  # data bytes of the current member not read yet
        self._padding = 0

    def __iter__(self) -> Iterator[Member]:
        while True:
            self._skip_rest()
            header = self._block("a header")
            if header is None:
                raise TarFormatError(self._offset, "the stream ends without an end-of-archive")
            at = self._offset - BLOCK
            if not header.strip(b"\0"):
                self._check_only_zeros()
                return
            member = parse_header(header, at)
            self._left = member.size
            self._padding = -member.size % BLOCK
            yield member

    def read_data(self, size: int = 1 << 20) -> bytes:
        """Up to ``size`` bytes of the current member's data (``b""`` at its end)."""
        if self._left <= 0:
            return b""
        wanted = min(size, self._left)
        data = _read_exactly(self._stream, wanted, self._offset, "a member's data")
        self._offset += wanted
        self._left -= wanted
        if self._left == 0:
            pad = _read_exactly(self._stream, self._padding, self._offset, "padding")
            if pad.strip(b"\0"):
                raise TarFormatError(self._offset, "padding after a member's data is not zero")
            self._offset += self._padding
            self._padding = 0
        return data

    def _skip_rest(self) -> None:
        while self.read_data():
            pass

    def _block(self, what: str) -> bytes | None:
        first = self._stream.read(BLOCK)
        if not first:
            return None
        data = first + (
            _read_exactly(self._stream, BLOCK - len(first), self._offset, what)
            if len(first) < BLOCK
            else b""
        )
        self._offset += BLOCK
        return data

    def _check_only_zeros(self) -> None:
        while chunk := self._stream.read(1 << 16):
            if chunk.strip(b"\0"):
                offset = self._offset + len(chunk) - len(chunk.lstrip(b"\0"))
                raise TarFormatError(offset, "data after the end of the archive")
            self._offset += len(chunk)
