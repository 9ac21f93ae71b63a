"""Top-level boxes of a fragmented MP4, and the playable prefix of a clip cut by a power loss.

A clip interrupted by a power cut ends in the middle of a fragment: its last ``moof`` or
``mdat`` box is incomplete, and decoders choke on the partial packet. The playable prefix is
everything up to the end of the last complete top-level box, which is the end of a whole
fragment (``moof`` + ``mdat``). Only box headers are read (8 or 16 bytes each), so this
costs a few reads on a seekable reader however long the clip.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")


def top_level_boxes(reader: BinaryIO, length: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, offset, size) of each complete top-level box in the first ``length`` bytes.

    Stops at the first box that is incomplete or malformed. ``reader`` must be seekable.
    """
    offset = 0
    while offset + _HEADER.size <= length:
        reader.seek(offset)
        header = reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        size, kind = _HEADER.unpack(header)
        if size == 1:
            large = reader.read(_LARGE.size)
            if len(large) < _LARGE.size:
                return
            (size,) = _LARGE.unpack(large)
        elif size == 0:  # "to the end of the file": complete only if the file is
            size = length - offset
        if size < _HEADER.size or offset + size > length:
            return
        yield kind, offset, size
        offset += size


def playable_prefix_length(reader: BinaryIO, length: int) -> int:
    """Bytes from the start that form a decodable fragmented MP4 (0 if not even the header).

    The prefix ends after the last complete ``mdat`` that follows a ``moof`` (or after the
    ``moov`` header if no fragment is complete).
    """
    end = 0
    seen_moov = False
    for kind, offset, size in top_level_boxes(reader, length):
        if kind == b"moov":
            seen_moov = True
            end = offset + size
        elif (kind == b"mdat" and seen_moov) or (kind == b"mfra" and seen_moov):
            end = offset + size
    return end
