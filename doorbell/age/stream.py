"""The age v1 STREAM payload: constants, key derivation and chunk nonces.

The payload is a 16-byte nonce followed by chunks of at most 64 KiB of plaintext, each
sealed with ChaCha20-Poly1305 under the payload key. The 12-byte chunk nonce is an 11-byte
big-endian counter and a final-chunk flag (1 for the last chunk, 0 before). Because every
chunk has a fixed size except the last, chunk ``i`` starts at a computable offset, which is
what makes random access (seeking) possible.
"""

from __future__ import annotations

import struct

from doorbell.age.primitives import hkdf_sha256

#: Plaintext bytes per chunk (64 KiB); only the final chunk may be shorter.
CHUNK_SIZE = 64 * 1024
#: Poly1305 tag size appended to every chunk.
TAG_SIZE = 16
#: Size of one full encrypted chunk.
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
#: Size of the random nonce at the start of the payload.
PAYLOAD_NONCE_SIZE = 16
#: Chunk counters above this do not fit the 11-byte nonce field (never reached in practice).
MAX_CHUNKS = 1 << 64

# 3 zero bytes + 8-byte counter = the 11-byte big-endian counter; then the final flag.
_NONCE = struct.Struct(">3xQB")
#: :func:`chunk_nonce` without a Python call around it, for per-chunk hot paths.
pack_chunk_nonce = _NONCE.pack


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """The ChaCha20-Poly1305 key of the payload, from the file key and payload nonce."""
    return hkdf_sha256(file_key, nonce, b"payload")


def chunk_nonce(index: int, final: bool) -> bytes:
    """The 12-byte nonce of chunk ``index`` (0-based), flagged when it is the final chunk."""
    return _NONCE.pack(index, final)


def plaintext_size(payload_size: int) -> int:
    """Plaintext bytes carried by ``payload_size`` bytes of chunks (nonce excluded).

    Assumes a well-formed payload; callers verify the final chunk before trusting it.
    """
    if payload_size <= 0:
        return 0
    chunks = -(-payload_size // ENCRYPTED_CHUNK_SIZE)
    return payload_size - chunks * TAG_SIZE
