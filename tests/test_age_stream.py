"""STREAM payload behaviour: round trips at chunk edges, random seeks, flush, tampering.

Property tests (hypothesis) cover sizes around the 64 KiB chunk edges and arbitrary write
splits and seeks; tamper tests check that every single-byte change, every truncation and any
appended data is rejected, and that no plaintext other than a true prefix is ever released.
"""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorbell.age.decrypt import decrypt, decrypt_random_access
from doorbell.age.encrypt import encrypt
from doorbell.age.errors import (
    ChunkAuthenticationError,
    HeaderMacError,
    NoIdentityMatchError,
    PayloadError,
    TrailingDataError,
    TruncatedError,
)
from doorbell.age.identities import X25519Identity
from doorbell.age.random_access import RandomAccessReader
from doorbell.age.sequential import SequentialReader
from doorbell.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE
from doorbell.errors import AgeError, UsageError

IDENTITY = X25519Identity.generate()
EDGE_SIZES = [
    0,
    1,
    2,
    65535,
    65536,
    65537,
    *(n * CHUNK_SIZE + d for n in (2, 3) for d in (-1, 0, 1)),
]
PATTERN = bytes(range(251)) * (4 * CHUNK_SIZE // 251 + 2)


class Pipe(io.RawIOBase):
    """A non-seekable reader with short reads, like a pipe or socket."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), len(self._data) - self._pos, 7919)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class WriteOnlySink:
    """A non-seekable sink (no seek/tell) that records writes and flushes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.flushes = 0

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        self.flushes += 1


def seal(data: bytes, *, splits: list[int] | None = None, armor: bool = False) -> bytes:
    sink = WriteOnlySink()
    with encrypt(sink, [IDENTITY.recipient], armor=armor) as writer:
        position = 0
        for size in splits or []:
            writer.write(data[position : position + size])
            position += size
        writer.write(memoryview(data)[position:])
    return bytes(sink.data)


#: Read sizes for the damage tests: 10000 takes the general path; whole chunks take the
#: sequential hot paths of DecryptReader.read. Both must refuse the same damage.
READ_SIZES = (10000, CHUNK_SIZE)


def released(
    source: io.RawIOBase | io.BytesIO, read_size: int = 10000, **options: bool
) -> tuple[bytes, Exception | None]:
    """All plaintext a reader hands out before it fails, and the failure."""
    out = bytearray()
    try:
        reader = decrypt(source, [IDENTITY], **options)
        while piece := reader.read(read_size):
            out += piece
    except AgeError as exc:
        return bytes(out), exc
    return bytes(out), None


def payload_start(ciphertext: bytes) -> int:
    return (
        ciphertext.index(b"\n---")
        + ciphertext[ciphertext.index(b"\n---") + 1 :].index(b"\n")
        + 2
        + 16
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, 4 * CHUNK_SIZE)),
    splits=st.lists(st.integers(0, 2 * CHUNK_SIZE), max_size=5),
    armor=st.booleans(),
)
def test_round_trip_any_size_and_write_split(size: int, splits: list[int], armor: bool) -> None:
    data = PATTERN[:size]
    ciphertext = seal(data, splits=splits, armor=armor)
    assert decrypt(io.BytesIO(ciphertext), [IDENTITY]).read() == data
    assert decrypt(Pipe(ciphertext), [IDENTITY]).read() == data


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_sizes_have_the_expected_chunk_layout(size: int) -> None:
    ciphertext = seal(PATTERN[:size])
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(ciphertext) - payload_start(ciphertext) == size + 16 * chunks
    reader = decrypt(io.BytesIO(ciphertext), [IDENTITY])
    assert reader.seekable() and reader.size == size


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from(EDGE_SIZES[3:]),
    seeks=st.lists(
        st.tuples(st.integers(0, 4 * CHUNK_SIZE), st.integers(0, 3 * CHUNK_SIZE)),
        min_size=1,
        max_size=6,
    ),
)
def test_random_seeks_read_the_plaintext_slice(size: int, seeks: list[tuple[int, int]]) -> None:
    data = PATTERN[:size]
    reader = decrypt(io.BytesIO(seal(data)), [IDENTITY])
    for offset, length in seeks:
        assert reader.seek(offset) == offset
        assert reader.read(length) == data[offset : offset + length]
        assert reader.tell() == min(offset + length, max(offset, size))


def test_seek_whence_and_size() -> None:
    data = PATTERN[: 2 * CHUNK_SIZE + 5]
    reader = decrypt(io.BytesIO(seal(data)), [IDENTITY])
    assert reader.seek(-10, os.SEEK_END) == len(data) - 10
    assert reader.read() == data[-10:]
    reader.seek(100)
    assert reader.seek(50, os.SEEK_CUR) == 150
    assert reader.read(5) == data[150:155]
    with pytest.raises(ValueError, match="negative"):
        reader.seek(-1)


def test_armored_and_piped_readers_are_not_seekable() -> None:
    for reader in (
        decrypt(io.BytesIO(seal(b"x", armor=True)), [IDENTITY]),
        decrypt(Pipe(seal(b"x")), [IDENTITY]),
    ):
        assert not reader.seekable()
        with pytest.raises(io.UnsupportedOperation):
            reader.seek(0)


def test_decrypt_picks_the_reader_and_random_access_refuses_a_stream() -> None:
    data = PATTERN[: CHUNK_SIZE + 5]
    assert isinstance(decrypt(io.BytesIO(seal(data)), [IDENTITY]), RandomAccessReader)
    assert isinstance(decrypt(Pipe(seal(data)), [IDENTITY]), SequentialReader)
    reader = decrypt_random_access(io.BytesIO(seal(data)), IDENTITY)
    assert reader.size == len(data) and reader.read() == data
    for stream in (io.BytesIO(seal(data, armor=True)), Pipe(seal(data))):
        with pytest.raises(UsageError, match="seekable file that is not armored"):
            decrypt_random_access(stream, [IDENTITY])


def test_seek_decrypts_only_the_needed_chunk() -> None:
    data = PATTERN[: 3 * CHUNK_SIZE + 1]
    ciphertext = bytearray(seal(data))
    start = payload_start(bytes(ciphertext))
    ciphertext[start + 5] ^= 1  # chunk 0 is damaged; chunks 1..3 are fine
    reader = decrypt(io.BytesIO(bytes(ciphertext)), [IDENTITY])
    reader.seek(2 * CHUNK_SIZE + 3)
    assert reader.read(10) == data[2 * CHUNK_SIZE + 3 : 2 * CHUNK_SIZE + 13]
    reader.seek(0)
    with pytest.raises(ChunkAuthenticationError, match="chunk 0"):
        reader.read(1)


def test_flush_writes_all_complete_chunks_and_flushes_the_sink() -> None:
    sink = WriteOnlySink()
    writer = encrypt(sink, [IDENTITY.recipient])
    header_size = len(sink.data)
    writer.write(PATTERN[: 3 * CHUNK_SIZE + 100])
    writer.flush()
    assert sink.flushes >= 1
    assert len(sink.data) == header_size + 3 * ENCRYPTED_CHUNK_SIZE
    # a power cut now: the flushed part is recoverable, but only on request
    cut = bytes(sink.data)
    with pytest.raises(TruncatedError, match="cut short"):
        decrypt(io.BytesIO(cut), [IDENTITY]).read()
    reader = decrypt(io.BytesIO(cut), [IDENTITY], allow_truncated=True)
    assert reader.read() == PATTERN[: 3 * CHUNK_SIZE]
    assert reader.truncated
    # a full chunk is held back until more data shows it is not the last
    writer.write(PATTERN[3 * CHUNK_SIZE + 100 : 4 * CHUNK_SIZE])
    writer.flush()
    assert len(sink.data) == header_size + 3 * ENCRYPTED_CHUNK_SIZE
    writer.close()
    assert decrypt(io.BytesIO(bytes(sink.data)), [IDENTITY]).read() == PATTERN[: 4 * CHUNK_SIZE]


def test_exception_in_with_block_leaves_the_file_unsealed() -> None:
    sink = WriteOnlySink()
    with pytest.raises(RuntimeError), encrypt(sink, [IDENTITY.recipient]) as writer:
        writer.write(PATTERN[: CHUNK_SIZE + 1])
        raise RuntimeError("encoder failed")
    with pytest.raises(TruncatedError):
        decrypt(io.BytesIO(bytes(sink.data)), [IDENTITY]).read()


def test_wrong_identity_is_no_match() -> None:
    with pytest.raises(NoIdentityMatchError, match="wrong key"):
        decrypt(io.BytesIO(seal(b"secret")), [X25519Identity.generate()])


def test_every_single_byte_flip_is_rejected() -> None:
    data = b"a small clip" * 20
    ciphertext = seal(data)
    for position in range(len(ciphertext)):
        for mask in (0x01, 0x80):
            damaged = bytearray(ciphertext)
            damaged[position] ^= mask
            for source in (io.BytesIO(bytes(damaged)), Pipe(bytes(damaged))):
                out, error = released(source)
                assert error is not None, f"flip at {position} accepted"
                assert out == b"", f"flip at {position} released plaintext"


def test_body_flips_in_a_multi_chunk_file_release_only_a_true_prefix() -> None:
    data = PATTERN[: 2 * CHUNK_SIZE + 300]
    ciphertext = seal(data)
    start = payload_start(ciphertext)
    for position in range(start - 16, len(ciphertext), 997):
        damaged = bytearray(ciphertext)
        damaged[position] ^= 0x40
        for read_size in READ_SIZES:
            for source in (io.BytesIO(bytes(damaged)), Pipe(bytes(damaged))):
                out, error = released(source, read_size)
                assert error is not None, (position, read_size)
                assert data.startswith(out)
                chunk = (position - start) // ENCRYPTED_CHUNK_SIZE
                assert len(out) <= max(0, chunk) * CHUNK_SIZE, (position, read_size)


def test_every_truncation_is_rejected() -> None:
    data = PATTERN[: 3 * CHUNK_SIZE + 300]
    ciphertext = seal(data)
    start = payload_start(ciphertext)
    cuts = list(range(0, start + 1, 7))
    for k in range(4):
        boundary = start + k * ENCRYPTED_CHUNK_SIZE
        cuts += [boundary - 1, boundary, boundary + 1, boundary + 16, boundary + CHUNK_SIZE // 2]
    for cut in sorted(set(c for c in cuts if c < len(ciphertext))):
        truncated = ciphertext[:cut]
        for read_size in READ_SIZES:
            for source in (io.BytesIO(truncated), Pipe(truncated)):
                out, error = released(source, read_size)
                assert error is not None, f"cut at {cut} accepted (reads of {read_size})"
                assert data.startswith(out), cut
            if cut >= start:
                out, error = released(io.BytesIO(truncated), read_size, allow_truncated=True)
                assert error is None
                assert data.startswith(out) and len(out) % CHUNK_SIZE == 0


@pytest.mark.parametrize(
    "extra", [b"\x00", b"garbage", bytes(16), bytes(17), os.urandom(ENCRYPTED_CHUNK_SIZE)]
)
def test_appended_bytes_are_rejected(extra: bytes) -> None:
    for size in (10, CHUNK_SIZE, 2 * CHUNK_SIZE + 5):
        data = PATTERN[:size]
        ciphertext = seal(data) + extra
        for read_size in READ_SIZES:
            for source in (io.BytesIO(ciphertext), Pipe(ciphertext)):
                out, error = released(source, read_size)
                assert isinstance(error, PayloadError), (size, extra[:4], read_size)
                assert data.startswith(out)
            # Recovery mode cannot tell a damaged tail from a cut one; it may stop early, but it
            # never hands out anything but a true prefix, and never the whole file as if intact.
            out, error = released(io.BytesIO(ciphertext), read_size, allow_truncated=True)
            assert data.startswith(out)
            assert error is not None or len(out) < len(data)


def test_appended_copy_of_a_chunk_is_trailing_data() -> None:
    data = PATTERN[:CHUNK_SIZE]
    ciphertext = seal(data)
    out, error = released(Pipe(ciphertext + ciphertext[-ENCRYPTED_CHUNK_SIZE:]))
    assert isinstance(error, (TrailingDataError, ChunkAuthenticationError))
    assert data.startswith(out)


def test_header_change_fails_the_mac() -> None:
    ciphertext = bytearray(seal(b"data"))
    mac_line = ciphertext.index(b"\n--- ") + 5
    ciphertext[mac_line] = ord("A") if ciphertext[mac_line] != ord("A") else ord("B")
    with pytest.raises((HeaderMacError, AgeError)):
        decrypt(io.BytesIO(bytes(ciphertext)), [IDENTITY])


@pytest.mark.parametrize("read_size", [CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE])
def test_chunk_sized_reads_return_exactly_what_was_asked(read_size: int) -> None:
    for size in EDGE_SIZES:
        data = PATTERN[:size]
        reader = decrypt(io.BytesIO(seal(data)), [IDENTITY])
        pieces = []
        while piece := reader.read(read_size):
            pieces.append(piece)
        assert b"".join(pieces) == data, size
        assert all(len(p) == read_size for p in pieces[:-1]), size
