"""The age v1 header: recipient stanzas and the header MAC, parsed strictly.

Parsing follows the ABNF of the C2SP spec exactly: LF line endings only, canonical unpadded
base64, body lines of 64 columns ending with one shorter line, and a ``---`` MAC line. Any
deviation raises :class:`HeaderError`, because a second, lenient reading of the same bytes
is how malleability creeps in. The MAC is checked over the exact bytes read, which strict
parsing makes identical to what an encoder would have produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from doorbell.age.errors import HeaderError, UnsupportedVersionError
from doorbell.age.primitives import b64decode, b64encode

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
_STANZA_PREFIX = b"->"
_MAC_PREFIX = b"---"
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3
#: A header larger than this is refused (bounded memory against hostile files).
MAX_HEADER_BYTES = 256 * 1024
_READ_BLOCK = 4096


class ByteSource(Protocol):
    """Where a header is read from: ``read(size)``, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: a type (first argument), more arguments, and a binary body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def encode(self) -> bytes:
        """The canonical text of this stanza, body wrapped at 64 columns."""
        line = b" ".join([_STANZA_PREFIX, *(a.encode("ascii") for a in (self.type, *self.args))])
        body = b64encode(self.body)
        lines = [body[i : i + _COLUMNS] for i in range(0, len(body), _COLUMNS)]
        if not lines or len(lines[-1]) == _COLUMNS:
            lines.append(b"")
        return line + b"\n" + b"".join(part + b"\n" for part in lines)


@dataclass(frozen=True)
class Header:
    """A parsed header: its stanzas, its MAC, and the exact bytes the MAC covers."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes


def encode_header(stanzas: list[Stanza]) -> bytes:
    """The header text up to and including ``---`` (what the MAC covers)."""
    return VERSION_LINE + b"".join(s.encode() for s in stanzas) + _MAC_PREFIX


def finish_header(header_without_mac: bytes, mac: bytes) -> bytes:
    """The complete header: the MAC-covered part, a space, the MAC in base64, LF."""
    return header_without_mac + b" " + b64encode(mac) + b"\n"


class _LineReader:
    """Reads LF-terminated lines from a binary stream, keeping what follows the header."""

    def __init__(self, src: ByteSource) -> None:
        self._src = src
        self._buffer = bytearray()
        self.position = 0

    def _fill(self) -> None:
        if len(self._buffer) > MAX_HEADER_BYTES:
            raise HeaderError(f"header is larger than {MAX_HEADER_BYTES} bytes; refusing it")
        block = self._src.read(_READ_BLOCK)
        if not block:
            raise HeaderError("the file ends inside the age header (truncated or not age)")
        self._buffer += block

    def peek(self, size: int) -> bytes:
        while len(self._buffer) - self.position < size:
            self._fill()
        return bytes(self._buffer[self.position : self.position + size])

    def line(self) -> bytes:
        while (end := self._buffer.find(b"\n", self.position)) < 0:
            self._fill()
        line = bytes(self._buffer[self.position : end + 1])
        self.position = end + 1
        return line

    def consumed(self, start: int = 0) -> bytes:
        return bytes(self._buffer[start : self.position])

    def leftover(self) -> bytes:
        return bytes(self._buffer[self.position :])


def _is_valid_argument(argument: bytes) -> bool:
    return bool(argument) and all(33 <= b <= 126 for b in argument)


def _read_stanza(reader: _LineReader) -> Stanza:
    line = reader.line()
    parts = line[:-1].split(b" ")
    if parts[0] != _STANZA_PREFIX:
        raise HeaderError(f"malformed stanza opening line {line[:80]!r}")
    arguments = parts[1:]
    if not arguments or not all(_is_valid_argument(a) for a in arguments):
        raise HeaderError(f"malformed stanza arguments in {line[:80]!r}")
    body = bytearray()
    while True:
        text = reader.line()[:-1]
        if len(text) > _COLUMNS:
            raise HeaderError(f"stanza body line longer than {_COLUMNS} columns")
        if text.startswith((_MAC_PREFIX, _STANZA_PREFIX)):
            raise HeaderError("stanza ended without its final short body line")
        chunk = b64decode(text, HeaderError, "stanza body line")
        body += chunk
        if len(chunk) < _BYTES_PER_LINE:
            break
    names = [a.decode("ascii") for a in arguments]
    return Stanza(type=names[0], args=tuple(names[1:]), body=bytes(body))


def read_header(src: ByteSource) -> tuple[Header, int, bytes]:
    """Parse the header at the start of ``src``.

    Returns ``(header, header_length, leftover)``: the header's size in bytes, and the bytes
    already read past its end (the start of the payload), which the caller must use before
    reading ``src`` again. Raises :class:`HeaderError` (or
    :class:`UnsupportedVersionError`) for anything but a canonical v1 header.
    """
    reader = _LineReader(src)
    try:
        version = reader.line()
    except HeaderError:
        raise HeaderError("not an age file: no header line (empty or truncated)") from None
    if version != VERSION_LINE:
        if version.startswith(_VERSION_PREFIX):
            raise UnsupportedVersionError(
                f"unsupported age format version {version[:80]!r}; only v1 is known"
            )
        raise HeaderError(f"not an age v1 file: first line is {version[:80]!r}")
    stanzas = []
    while reader.peek(len(_MAC_PREFIX)) != _MAC_PREFIX:
        stanzas.append(_read_stanza(reader))
    mac_start = reader.position
    line = reader.line()
    parts = line[:-1].split(b" ")
    if parts[0] != _MAC_PREFIX or len(parts) != 2:
        raise HeaderError(f"malformed header MAC line {line[:80]!r}")
    mac = b64decode(parts[1], HeaderError, "header MAC")
    if len(mac) != 32:
        raise HeaderError(f"header MAC is {len(mac)} bytes, expected 32")
    if not stanzas:
        raise HeaderError("header has no recipient stanza")
    mac_input = reader.consumed()[: mac_start + len(_MAC_PREFIX)]
    return Header(tuple(stanzas), mac, mac_input), reader.position, reader.leftover()
